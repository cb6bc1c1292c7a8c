"""The commands API: send a command to a gateway, read its result.

::

    POST /api/v1/gateways/{gateway}/commands       {"command": "rotate-credentials", "args": {}, "timeout_s": 60,
                                                    "wait_s": 10}
    GET  /api/v1/gateways/{gateway}/commands       the newest commands of that gateway
    GET  /api/v1/gateways/{gateway}/commands/{id}  one command and its result

Sending asks the decision point for ``send_command`` in the tenant (viewers never may); reading asks
``read_gateways``. ``wait_s`` (at most 30) holds the answer until the gateway's result is in, so a script
can send and read in one request; otherwise the answer is 202 with the command ``pending``.
"""

from __future__ import annotations

from typing import Annotated, Any

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


class CommandBody(BaseModel):
    """A command for ``POST /api/v1/gateways/{gateway}/commands``."""

    command: str = Field(min_length=1, max_length=64, description="The command, e.g. rotate-credentials, ping")
    args: JsonObject = Field(default_factory=dict, description="Its arguments")
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
        if body.wait_s > 0:
            rec = await center.wait(target, gateway, rec.request_id, body.wait_s) or rec
        return JSONResponse(rec.as_dict(), status_code=202 if rec.status == "pending" else 200)

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
