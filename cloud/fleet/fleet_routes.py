"""The fleet API: the registry view, tags, desired state, bulk commands, the audit trail and revocation.

::

    GET  /api/v1/fleet/gateways?tag=&version=&online=&site=&q=   read_gateways
    PUT  /api/v1/gateways/{gw}/tags      {"tags": ["north"], "site": "plant-1"}        manage_gateways
    GET  /api/v1/gateways/{gw}/state     desired and reported state                   read_gateways
    PUT  /api/v1/gateways/{gw}/desired   {"config": {...}, "rules": "..."}            write_desired_state
    POST /api/v1/fleet/commands          {"selector": {...}, "command", "args", "timeout_s", "wait_s"}  send_command
    POST /api/v1/gateways/{gw}/revoke    {"stolen": true, "wipe": true}               manage_gateways
    GET  /api/v1/fleet/audit?gateway=&limit=                                           read_audit

Every route is scoped to a tenant (the caller's own unless ``tenant`` names another) and asks the decision
point (:func:`cloud.api._allow`), so no operator or client sees or touches another tenant's gateways.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from cloud import api_models as models
from cloud.api import Caller, _allow
from cloud.errors import ApiError
from cloud.fleet.routes import _issued_by
from cloud.fleet.service import FleetService, Selector
from cloud.jsonvalues import JsonObject
from cloud.openapi_doc import problem_responses
from cloud.paging import CursorQuery, fetch_page, limit_query, page_body, position_page
from wire.commands import COMMAND_NAME
from wire.names import check_gateway

TenantQuery = Annotated[str | None, Query(description="The tenant (default: the caller's)")]


class TagsBody(BaseModel):
    """Operators' labels for a gateway."""

    tags: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:=-]*$")]] = Field(
        default_factory=list, max_length=32
    )
    site: str | None = Field(default=None, min_length=1, max_length=128)


class DesiredBody(BaseModel):
    """A new desired state; the cloud numbers its version."""

    config: JsonObject = Field(default_factory=dict, description="gateway.toml tables the cloud may set")
    rules: str | None = Field(default=None, max_length=200_000, description="The gateway's rules (TOML text)")


class SelectorBody(BaseModel):
    """Which gateways: every condition given must hold."""

    ids: list[str] = Field(default_factory=list, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    version: str | None = None
    site: str | None = None
    online: bool | None = None


class BulkBody(BaseModel):
    """One command to many gateways."""

    selector: SelectorBody
    command: str = Field(min_length=1, max_length=64)
    args: JsonObject = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, ge=1.0, le=86400.0)
    wait_s: float = Field(default=0.0, ge=0.0, le=30.0)


class RevokeBody(BaseModel):
    """How far to revoke."""

    stolen: bool = Field(default=True, description="Block its hardware id and have it wipe itself")
    wipe: bool = Field(default=True, description="Queue a wipe for when it next connects")


def _gateway(gateway: str) -> str:
    try:
        return check_gateway(gateway)
    except ValueError as exc:
        raise ApiError(400, str(exc), parameter="gateway") from None


def fleet_router(fleet: FleetService) -> APIRouter:
    """The router over a running fleet service."""
    router = APIRouter()

    @router.get("/api/v1/fleet/gateways", response_model=models.FleetGatewaysPage)
    async def list_gateways(
        request: Request,
        caller: Caller,
        *,
        tenant: TenantQuery = None,
        tag: Annotated[list[str] | None, Query(description="Has every one of these tags")] = None,
        version: str | None = None,
        online: bool | None = None,
        site: str | None = None,
        q: Annotated[str | None, Query(max_length=128, description="Text in the id, tags, site or sensor ids")] = None,
        limit: Annotated[int, limit_query(1000, 10_000)] = 1000,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """The tenant's gateways: presence, last seen, version, location, health, tags, sensors, sync."""
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        items = await fleet.select(target, Selector(tags=tuple(tag or ()), version=version, site=site, online=online))
        if q:
            needle = q.lower()
            items = [
                g
                for g in items
                if needle in g["id"].lower()
                or any(needle in t.lower() for t in g["tags"])
                or needle in (g["site"] or "").lower()
                or any(needle in str(s.get("id", "")).lower() for s in g["sensors"])
            ]
        return page_body(*position_page(items, cursor, limit))

    @router.put("/api/v1/gateways/{gateway}/tags", response_model=models.Tags)
    async def set_tags(
        gateway: str, body: TagsBody, request: Request, caller: Caller, tenant: TenantQuery = None
    ) -> dict[str, Any]:
        """Replace a gateway's tags and site."""
        target = _allow(request, caller, "manage_gateways", tenant) or "default"
        meta = await fleet.registry.set_tags(target, _gateway(gateway), body.tags, body.site)
        await fleet.registry.audit(
            target, _issued_by(caller), "set-tags", gateway, {"tags": meta.tags, "site": meta.site}
        )
        return {"gateway": gateway, "tags": meta.tags, "site": meta.site}

    @router.get("/api/v1/gateways/{gateway}/state", response_model=models.GatewayState)
    async def get_state(gateway: str, request: Request, caller: Caller, tenant: TenantQuery = None) -> dict[str, Any]:
        """The desired state (what the operators set) and the reported state (what the gateway runs)."""
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        meta = await fleet.registry.get(target, _gateway(gateway))
        return {
            "gateway": gateway,
            "desired": meta.desired,
            "reported": meta.reported,
            "reported_at": meta.reported_at,
            "in_sync": meta.desired_version == 0 or (meta.reported or {}).get("version") == meta.desired_version,
        }

    @router.put("/api/v1/gateways/{gateway}/desired", response_model=models.DesiredState)
    async def set_desired(
        gateway: str, body: DesiredBody, request: Request, caller: Caller, tenant: TenantQuery = None
    ) -> dict[str, Any]:
        """Set the gateway's desired state: published retained, and again whenever the gateway connects."""
        target = _allow(request, caller, "write_desired_state", tenant) or "default"
        return await fleet.set_desired(target, _gateway(gateway), body.config, body.rules, _issued_by(caller))

    @router.post("/api/v1/fleet/commands", response_model=models.BulkResult)
    async def bulk(body: BulkBody, request: Request, caller: Caller, tenant: TenantQuery = None) -> dict[str, Any]:
        """One command to every gateway the selector picks: each gateway's request id and result."""
        target = _allow(request, caller, "send_command", tenant) or "default"
        if not COMMAND_NAME.fullmatch(body.command):
            raise ApiError(400, "command: a name like 'rotate-credentials' (a-z, 0-9, -)", parameter="command")
        s = body.selector
        selector = Selector(ids=tuple(s.ids), tags=tuple(s.tags), version=s.version, site=s.site, online=s.online)
        if selector.empty:
            raise ApiError(400, "selector: name ids, tags, a version, a site or online", parameter="selector")
        return await fleet.bulk(
            target, selector, body.command, body.args, timeout_s=body.timeout_s, wait_s=body.wait_s,
            by=_issued_by(caller),
        )  # fmt: skip

    @router.post(
        "/api/v1/gateways/{gateway}/revoke", response_model=models.Revocation, responses=problem_responses(404)
    )
    async def revoke(
        gateway: str, body: RevokeBody, request: Request, caller: Caller, tenant: TenantQuery = None
    ) -> dict[str, Any]:
        """Revoke a gateway: tokens revoked (its connections close), hardware blocked if stolen, wipe queued."""
        target = _allow(request, caller, "manage_gateways", tenant) or "default"
        try:
            return await fleet.revoke(
                target, _gateway(gateway), stolen=body.stolen, wipe=body.wipe, by=_issued_by(caller)
            )
        except LookupError as exc:
            raise ApiError(404, str(exc), parameter="gateway") from None

    @router.get("/api/v1/fleet/audit", response_model=models.AuditPage)
    async def audit(
        request: Request,
        caller: Caller,
        *,
        tenant: TenantQuery = None,
        gateway: str | None = None,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """Who did what to which gateways, newest first."""
        target = _allow(request, caller, "read_audit", tenant) or "default"
        rows, after = await fetch_page(lambda n: fleet.registry.audit_trail(target, n, gateway), cursor, limit)
        return page_body(rows, after)

    return router
