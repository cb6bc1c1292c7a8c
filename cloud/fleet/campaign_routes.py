"""The bundle and campaign API (docs/ota.md, "Campaigns").

::

    POST /api/v1/bundles               the bundle file as the body; checked, signed by the cloud   run_campaigns
    GET  /api/v1/bundles               name, version, hardware, sha256, size, ...                  read_bundles
    GET  /api/v1/bundles/{name}        the bundle (Range supported)           read_bundles, or a campaign's grant
    POST /api/v1/campaigns             {"bundle", "selector", "stages", "failure_threshold", ...}  run_campaigns
    GET  /api/v1/campaigns             the tenant's campaigns                                      read_gateways
    GET  /api/v1/campaigns/{id}        the campaign with per-gateway progress                      read_gateways
    POST /api/v1/campaigns/{id}/halt   {"reason": "..."}                                           run_campaigns

Every route is scoped to a tenant and asks the decision point (:func:`cloud.api._allow`). A download with
``grant`` and ``expires`` (the link a campaign sends a gateway, whose updater sends no bearer token) is
allowed by the grant alone, for that bundle of that tenant until it expires.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from cloud import api_models as models
from cloud.api import Caller, _allow, _caller
from cloud.errors import ApiError
from cloud.fleet.bundles import MAX_UPLOAD_BYTES, BundleRefused, BundleStore
from cloud.fleet.campaigns import Campaign, CampaignError, CampaignRunner, CampaignSpec, Link
from cloud.fleet.fleet_routes import SelectorBody
from cloud.fleet.routes import _issued_by
from cloud.fleet.service import FleetService, Selector
from cloud.openapi_doc import FILE_RESPONSE, problem_responses
from cloud.paging import CursorQuery, limit_query, page_body, position_page
from wire.names import check_tenant

TenantQuery = Annotated[str | None, Query(description="The tenant (default: the caller's)")]


class CampaignSelector(SelectorBody):
    """Which gateways: every condition given must hold; ``all`` to name every gateway of the tenant."""

    all: bool = False


class CampaignBody(BaseModel):
    """A new campaign."""

    bundle: str = Field(min_length=1, max_length=128, description="A bundle's name from GET /api/v1/bundles")
    selector: CampaignSelector
    stages: list[int] = Field(default_factory=lambda: [1, 10, 100], min_length=1, max_length=10)
    failure_threshold: float = Field(default=0.2, ge=0.0, lt=1.0)
    stage_timeout_s: float = Field(default=1800.0, ge=1.0, le=7 * 86400.0)
    confirm_version: bool = Field(default=True, description="Wait for each gateway to report the new version")
    force: bool = Field(default=False, description="Let gateways install a lower or the same version")


class HaltBody(BaseModel):
    """Why an operator halts a campaign."""

    reason: str = Field(default="halted by an operator", max_length=500)


class ResumeBody(BaseModel):
    """How an operator resumes a halted campaign."""

    retry_failed: bool = Field(
        default=False, description="send the update again to the halted stage's failed and rolled-back gateways"
    )
    failure_threshold: float | None = Field(default=None, ge=0.0, lt=1.0, description="a new failure threshold")


def link_for(store: BundleStore, grant_ttl_s: float) -> Link:
    """The download link a campaign sends: the bundle's URL with a grant valid for ``grant_ttl_s``."""

    def link(campaign: Campaign) -> str:
        spec = campaign.spec
        expires = int(time.time() + grant_ttl_s)
        grant = store.grant(spec.tenant, spec.bundle, expires)
        return (
            f"{spec.base_url}/api/v1/bundles/{quote(spec.bundle)}?tenant={spec.tenant}&expires={expires}&grant={grant}"
        )

    return link


def _no_updates() -> ApiError:
    return ApiError(404, "this cloud signs no bundles: its config has no [updates] key_file")


def campaign_router(
    store: BundleStore | None, runner: CampaignRunner | None, fleet: FleetService, *, public_url: str, max_gateways: int
) -> APIRouter:
    """The router over the bundle store and the campaign runner (both None: the routes answer 404)."""
    router = APIRouter()

    def parts() -> tuple[BundleStore, CampaignRunner]:
        if store is None or runner is None:
            raise _no_updates()
        return store, runner

    @router.post(
        "/api/v1/bundles",
        response_model=models.Bundle,
        status_code=201,
        responses={
            200: {"model": models.Bundle, "description": "The same bundle was uploaded before"},
            **problem_responses(404, 409, 413),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The bundle file (roost bundle build)",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload(request: Request, caller: Caller, tenant: TenantQuery = None) -> JSONResponse:
        """Upload a bundle (the file as the body): checked like a gateway checks it, then signed by the cloud."""
        bundles, _ = parts()
        target = _allow(request, caller, "run_campaigns", tenant) or "default"
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise ApiError(413, f"a bundle may have at most {MAX_UPLOAD_BYTES} bytes")
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
            try:
                info, new = await asyncio.to_thread(bundles.add, target, spool, by=_issued_by(caller))
            except BundleRefused as exc:
                raise ApiError(409 if exc.reason == "conflict" else 400, str(exc), parameter="body") from None
        if new:
            await fleet.registry.audit(
                target, _issued_by(caller), "bundle-uploaded", info.name, {"sha256": info.sha256, "size": info.size}
            )
        return JSONResponse(info.as_dict(), status_code=201 if new else 200)

    @router.get("/api/v1/bundles", response_model=models.BundlesPage, responses=problem_responses(404))
    async def list_bundles(
        request: Request,
        caller: Caller,
        tenant: TenantQuery = None,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """The tenant's bundles, newest first."""
        bundles, _ = parts()
        target = _allow(request, caller, "read_bundles", tenant) or "default"
        rows, after = position_page(await asyncio.to_thread(bundles.list, target), cursor, limit)
        return page_body([b.as_dict() for b in rows], after)

    @router.get(
        "/api/v1/bundles/{name}",
        response_class=FileResponse,
        responses={
            200: FILE_RESPONSE,
            206: {**FILE_RESPONSE, "description": "The part a Range header asked for"},
            **problem_responses(404, 416),
        },
    )
    async def download(
        name: str,
        request: Request,
        tenant: TenantQuery = None,
        expires: int | None = None,
        grant: Annotated[str | None, Query(max_length=64)] = None,
    ) -> FileResponse:
        """The bundle file (``Range: bytes=N-`` answered with 206, so a gateway resumes a cut download)."""
        bundles, _ = parts()
        if grant is not None and expires is not None:
            target = tenant or "default"
            try:
                check_tenant(target)
            except ValueError as exc:
                raise ApiError(400, str(exc), parameter="tenant") from None
            if not bundles.check_grant(target, name, expires, grant):
                raise ApiError(403, "the download grant is not valid for this bundle, or has expired")
        else:
            target = _allow(request, await _caller(request), "read_bundles", tenant) or "default"
        path = await asyncio.to_thread(bundles.path, target, name)
        if path is None:
            raise ApiError(404, f"no bundle {name!r} in tenant {target!r}", parameter="name")
        return FileResponse(path, media_type="application/octet-stream")

    @router.post("/api/v1/campaigns", response_model=models.Campaign, status_code=201, responses=problem_responses(404))
    async def create(body: CampaignBody, request: Request, caller: Caller, tenant: TenantQuery = None) -> JSONResponse:
        """Start a campaign: the selected gateways get the bundle stage by stage, halting on failures."""
        bundles, campaigns = parts()
        target = _allow(request, caller, "run_campaigns", tenant) or "default"
        info = await asyncio.to_thread(bundles.get, target, body.bundle)
        if info is None:
            raise ApiError(404, f"no bundle {body.bundle!r} in tenant {target!r}", parameter="bundle")
        s = body.selector
        selector = Selector(ids=tuple(s.ids), tags=tuple(s.tags), version=s.version, site=s.site, online=s.online)
        if selector.empty and not s.all:
            raise ApiError(400, "selector: name ids, tags, a version, a site, online, or all", parameter="selector")
        picked = [g["id"] for g in await fleet.select(target, selector)]
        if len(picked) > max_gateways:
            raise ApiError(400, f"the selector picks {len(picked)} gateways, over {max_gateways}", parameter="selector")
        base = public_url.rstrip("/") or str(request.base_url).rstrip("/")
        try:
            spec = CampaignSpec(
                tenant=target, bundle=info.name, version=info.version, sha256=info.sha256, base_url=base,
                stages=tuple(body.stages), failure_threshold=body.failure_threshold,
                stage_timeout_s=body.stage_timeout_s, confirm_version=body.confirm_version,
                selector=s.model_dump(), created_by=_issued_by(caller), force=body.force,
            )  # fmt: skip
            campaign = await campaigns.create(spec, picked)
        except CampaignError as exc:
            raise ApiError(400, str(exc), parameter="body") from None
        targets = await campaigns.db.targets(campaign.id)
        return JSONResponse(campaign.as_dict(targets), status_code=201)

    @router.get("/api/v1/campaigns", response_model=models.CampaignsPage, responses=problem_responses(404))
    async def list_campaigns(
        request: Request,
        caller: Caller,
        tenant: TenantQuery = None,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """The tenant's campaigns, newest first (without per-gateway progress)."""
        _, campaigns = parts()
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        rows, after = position_page(await campaigns.db.find(target), cursor, limit)
        return page_body([c.as_dict() for c in rows], after)

    @router.get("/api/v1/campaigns/{cid}", response_model=models.Campaign, responses=problem_responses(404))
    async def get_campaign(cid: str, request: Request, caller: Caller, tenant: TenantQuery = None) -> dict[str, Any]:
        """A campaign: its state, stage, reason, and each gateway's progress."""
        _, campaigns = parts()
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        campaign = await campaigns.db.get(target, cid)
        if campaign is None:
            raise ApiError(404, f"no campaign {cid!r} in tenant {target!r}", parameter="id")
        return campaign.as_dict(await campaigns.db.targets(cid))

    @router.post("/api/v1/campaigns/{cid}/halt", response_model=models.Campaign, responses=problem_responses(404))
    async def halt(
        cid: str, request: Request, caller: Caller, body: HaltBody | None = None, tenant: TenantQuery = None
    ) -> dict[str, Any]:
        """Halt a running campaign: no further gateway is sent the update (those sent are not called back)."""
        _, campaigns = parts()
        target = _allow(request, caller, "run_campaigns", tenant) or "default"
        reason = body.reason if body is not None else "halted by an operator"
        campaign = await campaigns.halt(target, cid, by=_issued_by(caller), reason=reason)
        if campaign is None:
            raise ApiError(404, f"no campaign {cid!r} in tenant {target!r}", parameter="id")
        return campaign.as_dict(await campaigns.db.targets(cid))

    @router.post(
        "/api/v1/campaigns/{cid}/resume", response_model=models.Campaign, responses=problem_responses(404, 409)
    )
    async def resume(
        cid: str, request: Request, caller: Caller, body: ResumeBody | None = None, tenant: TenantQuery = None
    ) -> dict[str, Any]:
        """Resume a halted campaign from the stage it halted in (retrying its failed gateways when asked)."""
        _, campaigns = parts()
        target = _allow(request, caller, "run_campaigns", tenant) or "default"
        opts = body or ResumeBody()
        try:
            campaign = await campaigns.resume(
                target, cid, by=_issued_by(caller), retry_failed=opts.retry_failed,
                failure_threshold=opts.failure_threshold,
            )  # fmt: skip
        except CampaignError as exc:
            raise ApiError(409, str(exc), parameter="id") from None
        if campaign is None:
            raise ApiError(404, f"no campaign {cid!r} in tenant {target!r}", parameter="id")
        return campaign.as_dict(await campaigns.db.targets(cid))

    return router
