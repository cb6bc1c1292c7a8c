"""The commands API: send a command to a gateway, read its result.

::

    POST /api/v1/gateways/{gateway}/commands       {"command": "rotate-credentials", "args": {}, "timeout_s": 60,
                                                    "wait_s": 10}
    GET  /api/v1/gateways/{gateway}/commands       the newest commands of that gateway
    GET  /api/v1/gateways/{gateway}/commands/{id}  one command and its result
    POST /api/v1/gateways/{gateway}/sensors/{sensor}/commands
                                                   {"action": "on", "args": {"output": 1}, "wait_s": 10}: the
                                                   gateway's ``actuate`` on a device behind it

Sending asks the decision point for ``send_command`` in the tenant (viewers never may); reading asks
``read_gateways``. ``wait_s`` (at most 30) holds the answer until the gateway's result is in, so a script
can send and read in one request; otherwise the answer is 202 with the command ``pending`` and a
``Location`` header naming the URL to poll for its result.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud import api_models as models
from cloud.api import Caller, _allow
from cloud.errors import ApiError
from cloud.fleet.commands import CommandCenter
from cloud.jsonvalues import JsonObject
from cloud.openapi_doc import problem_responses
from cloud.paging import CursorQuery, fetch_page, limit_query, page_body
from wire.commands import COMMAND_NAME
from wire.names import check_sensor


class CommandBody(BaseModel):
    """A command for ``POST /api/v1/gateways/{gateway}/commands``."""

    command: str = Field(min_length=1, max_length=64, description="The command, e.g. rotate-credentials, ping")
    args: JsonObject = Field(default_factory=dict, description="Its arguments")
    timeout_s: float = Field(default=60.0, ge=1.0, le=86400.0, description="Seconds the gateway has to answer")
    wait_s: float = Field(default=0.0, ge=0.0, le=30.0, description="Seconds this request waits for the result")


class SensorCommandBody(BaseModel):
    """An action on a device behind a gateway, for ``POST /api/v1/gateways/{gateway}/sensors/{sensor}/commands``."""

    action: str = Field(min_length=1, max_length=64, description="What to do: on, off, actuate, set-interval, ...")
    args: JsonObject = Field(default_factory=dict, description="Its arguments (e.g. output, value, seconds)")
    timeout_s: float = Field(default=60.0, ge=1.0, le=86400.0, description="Seconds the gateway has to answer")
    wait_s: float = Field(default=0.0, ge=0.0, le=30.0, description="Seconds this request waits for the result")


def _issued_by(caller: Any) -> str:
    return "anonymous" if caller is None else f"{caller.kind}:{caller.tenant}/{caller.id}"


def commands_router(center: CommandCenter) -> APIRouter:
    """The router over a running command center."""
    router = APIRouter()

    @router.post(
        "/api/v1/gateways/{gateway}/commands",
        response_model=models.Command,
        responses={202: {"model": models.Command, "description": "Sent; the result is not in yet (pending)"}},
    )
    async def send_command(
        gateway: str,
        body: CommandBody,
        request: Request,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
    ) -> JSONResponse:
        """Send a command; 200 with the result when it came within ``wait_s``, else 202 with it pending."""
        target = _allow(request, caller, "send_command", tenant) or "default"
        if not COMMAND_NAME.fullmatch(body.command):
            raise ApiError(400, "command: a name like 'rotate-credentials' (a-z, 0-9, -)", parameter="command")
        try:
            rec = await center.send(
                target, gateway, body.command, body.args, timeout_s=body.timeout_s, issued_by=_issued_by(caller)
            )
        except ValueError as exc:
            raise ApiError(400, str(exc), parameter="gateway") from None
        return await _answer(target, gateway, rec, body.wait_s)

    async def _answer(target: str, gateway: str, rec: Any, wait_s: float) -> JSONResponse:
        """200 with the result when it came within ``wait_s``; else 202, with the URL to poll in ``Location``."""
        if wait_s > 0:
            rec = await center.wait(target, gateway, rec.request_id, wait_s) or rec
        if rec.status != "pending":
            return JSONResponse(rec.as_dict(), status_code=200)
        poll = f"/api/v1/gateways/{quote(gateway, safe='')}/commands/{rec.request_id}"
        return JSONResponse(rec.as_dict(), status_code=202, headers={"Location": poll})

    @router.post(
        "/api/v1/gateways/{gateway}/sensors/{sensor}/commands",
        response_model=models.Command,
        responses={
            202: {"model": models.Command, "description": "Sent; the result is not in yet (pending): poll Location"},
            **problem_responses(400),
        },
    )
    async def send_sensor_command(
        gateway: str,
        sensor: str,
        body: SensorCommandBody,
        request: Request,
        caller: Caller,
        *,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
    ) -> JSONResponse:
        """Act on a device behind a gateway (the gateway's ``actuate``, through the adapter that owns it)."""
        target = _allow(request, caller, "send_command", tenant) or "default"
        try:
            check_sensor(sensor)
        except ValueError as exc:
            raise ApiError(400, f"sensor: {exc}", parameter="sensor") from None
        if not COMMAND_NAME.fullmatch(body.action):
            raise ApiError(400, "action: a name like 'on' or 'set-interval' (a-z, 0-9, -)", parameter="action")
        args = {"sensor": sensor, "action": body.action, "args": body.args}
        try:
            rec = await center.send(
                target, gateway, "actuate", args, timeout_s=body.timeout_s, issued_by=_issued_by(caller)
            )
        except ValueError as exc:
            raise ApiError(400, str(exc), parameter="gateway") from None
        return await _answer(target, gateway, rec, body.wait_s)

    @router.get("/api/v1/gateways/{gateway}/commands", response_model=models.CommandsPage)
    async def list_commands(
        gateway: str,
        request: Request,
        caller: Caller,
        *,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """The gateway's newest commands, newest first."""
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        rows, after = await fetch_page(lambda n: center.recent(target, gateway, n), cursor, limit)
        return page_body([r.as_dict() for r in rows], after)

    @router.get(
        "/api/v1/gateways/{gateway}/commands/{request_id}",
        response_model=models.Command,
        responses=problem_responses(404),
    )
    async def get_command(
        gateway: str,
        request_id: str,
        request: Request,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
    ) -> dict[str, Any]:
        """One command and its result."""
        target = _allow(request, caller, "read_gateways", tenant) or "default"
        rec = await center.get(target, gateway, request_id)
        if rec is None:
            raise ApiError(404, f"no command {request_id!r} for gateway {gateway!r}")
        return rec.as_dict()

    return router
