"""The cloud rules API.

::

    GET    /api/v1/rules                 the tenant's cloud rules: files, rules with their counters, open alerts
    GET    /api/v1/rules/{name}          one rule file's TOML
    PUT    /api/v1/rules/{name}          write a rule file (TOML body), checked like ``roost rules check``; reload
    DELETE /api/v1/rules/{name}          remove a rule file; reload
    POST   /api/v1/rules/reload          read the tenant's folder again

Reading asks the decision point for ``read_events``; writing for ``write_desired_state`` (pushing rules
is desired state: operators and above). A file with problems is refused with 400 and every problem as
``roost rules check`` prints it (file, line, rule, field), and the rules running before stay.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

import rules
from cloud.api import Caller, _allow
from cloud.cloudrules import models
from cloud.cloudrules.folder import MAX_FILE_BYTES, RuleFileError, file_name
from cloud.cloudrules.runner import CloudRules
from cloud.errors import ApiError
from cloud.openapi_doc import problem_responses

TenantParam = Annotated[str | None, Query(description="The tenant (default: the caller's)")]
NameParam = Annotated[str, Path(description="The rule file's name (letters, digits, . _ -; .toml optional)")]


def _report(report: rules.ReloadReport | None) -> dict[str, Any]:
    if report is None:
        return {"reloaded": False}
    return {"reloaded": True, "added": list(report.added), "removed": list(report.removed),
            "changed": list(report.changed), "kept": list(report.kept)}  # fmt: skip


def _name(name: str) -> str:
    try:
        return file_name(name)
    except ValueError as exc:
        raise ApiError(400, str(exc), parameter="name") from exc


def rules_router(runner: CloudRules | None) -> APIRouter:
    """The router over the cloud rules (``runner`` None: this server runs none, and says so)."""
    router = APIRouter()

    def running() -> CloudRules:
        if runner is None:
            raise ApiError(404, "this cloud runs no cloud rules: set [rules] enabled = true in cloud.toml")
        return runner

    @router.get("/api/v1/rules", response_model=models.CloudRules, responses=problem_responses(404))
    async def list_rules(request: Request, caller: Caller, *, tenant: TenantParam = None) -> dict[str, Any]:
        """The tenant's cloud rules with their counters, the alerts they hold open and the last load error."""
        target = _allow(request, caller, "read_events", tenant) or "default"
        return {"enabled": runner is not None, **(await running().status(target))}

    @router.get(
        "/api/v1/rules/{name}",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **problem_responses(400, 404)},
    )
    async def get_rule_file(name: NameParam, request: Request, caller: Caller, *, tenant: TenantParam = None) -> str:
        """One rule file's text."""
        target = _allow(request, caller, "read_events", tenant) or "default"
        fname = _name(name)
        try:
            return running().folder.read(target, fname)
        except FileNotFoundError:
            raise ApiError(404, f"no rule file {fname!r} in tenant {target!r}", parameter="name") from None

    @router.put(
        "/api/v1/rules/{name}",
        response_model=models.RulesChanged,
        responses=problem_responses(400, 404, 413),
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/toml": {"schema": {"type": "string"}}}}
        },
    )
    async def put_rule_file(
        name: NameParam, request: Request, caller: Caller, *, tenant: TenantParam = None
    ) -> dict[str, Any]:
        """Write a rule file (the request body is its TOML), checked first; the rules are reloaded at once."""
        target = _allow(request, caller, "write_desired_state", tenant) or "default"
        fname = _name(name)
        body = await request.body()
        if len(body) > MAX_FILE_BYTES:
            raise ApiError(413, f"a rule file may be at most {MAX_FILE_BYTES // 1024} KiB")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, f"the rule file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        try:
            report = await running().write(target, fname, text)
        except RuleFileError as exc:
            raise ApiError(400, f"the rules were not saved: {exc.problems[0]}",
                           extensions={"problems": exc.problems}) from None  # fmt: skip
        return {"tenant": target, "file": fname, **_report(report)}

    @router.delete("/api/v1/rules/{name}", response_model=models.RulesChanged, responses=problem_responses(400, 404))
    async def delete_rule_file(
        name: NameParam, request: Request, caller: Caller, *, tenant: TenantParam = None
    ) -> dict[str, Any]:
        """Remove a rule file; its rules stop and the alerts they held open are cleared."""
        target = _allow(request, caller, "write_desired_state", tenant) or "default"
        fname = _name(name)
        try:
            report = await running().delete(target, fname)
        except FileNotFoundError:
            raise ApiError(404, f"no rule file {fname!r} in tenant {target!r}", parameter="name") from None
        return {"tenant": target, "file": fname, **_report(report)}

    @router.post("/api/v1/rules/reload", response_model=models.RulesChanged, responses=problem_responses(404))
    async def reload_rules(request: Request, caller: Caller, *, tenant: TenantParam = None) -> dict[str, Any]:
        """Read the tenant's folder again (files changed on disk are also picked up within ``watch_s``)."""
        target = _allow(request, caller, "write_desired_state", tenant) or "default"
        report = (await running().reload(target))[target]
        status = await running().status(target)
        return {"tenant": target, **_report(report), "last_error": status["last_error"]}

    return router
