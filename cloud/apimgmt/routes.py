"""The managed API's HTTP routes: applications, plans and usage (see docs/developers.md).

Who may do what is asked of the policies: registering and changing applications is
``manage_applications`` (operators, admins, owners by the default policies), reading usage and plans
``read_usage``, changing plans ``manage_clients``. A developer sees the applications they registered; a
caller the policies allow ``manage_clients`` sees every application of the tenant. Applications of
another tenant, or of another developer, are answered 404 (they are not shown to exist).
"""

from __future__ import annotations

import csv
import io
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from cloud.api import Caller, _allow, parse_time
from cloud.apimgmt import models
from cloud.apimgmt.service import Application, ManagedApi
from cloud.apimgmt.usage import UsageSummary, per_minute, summarize
from cloud.authz import Principal
from cloud.errors import ApiError
from cloud.openapi_doc import problem_responses
from cloud.paging import CursorQuery, limit_query, page_body, position_page
from cloud.policy.authorizer import subject_of

_NO_STORE = {"Cache-Control": "no-store"}
CSV_COLUMNS = (
    "client",
    "endpoint",
    "calls",
    "errors_4xx",
    "errors_5xx",
    "throttled",
    "latency_p50_ms",
    "latency_p95_ms",
    "first",
    "last",
)


def _person(caller: Principal | None) -> Principal:
    if caller is None:
        raise ApiError(401, "the managed API needs 'Authorization: Bearer <token>' or a signed-in session")
    return caller


def may_see_all(request: Request, caller: Principal) -> bool:
    """Whether the caller sees every application of its tenant (``manage_clients``), not only its own.

    Cached per caller, policy version and minute: a developer's page that polls would otherwise add a
    "deny" to the audit log at every poll.
    """
    policy = request.app.state.ctx.policy
    if policy is None:
        return caller.role in ("admin", "owner")
    points = policy.decision_point
    cache: dict[tuple[Any, ...], bool] = request.app.state.managed_api.sees_all
    key = (caller, caller.role, points.version, int(time.time() // 60))
    found = cache.get(key)
    if found is None:
        found = bool(points.decide_api(subject_of(caller), "manage_clients", caller.tenant).allowed)
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = found
    return found


def usage_csv(items: list[UsageSummary]) -> str:
    """Usage summaries as CSV with a header line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        row = item.as_json()
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()


def usage_body(rows: list[Any]) -> dict[str, Any]:
    """The JSON answer of a usage query."""
    minutes = [
        {"minute": time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(m * 60)), "calls": c, "errors": e}
        for m, c, e in per_minute(rows)
    ]
    return {"items": [s.as_json() for s in summarize(rows)], "minutes": minutes}


async def visible_application(managed: ManagedApi, request: Request, caller: Principal, app_id: str) -> Application:
    """The application if the caller may see it (its own, or any of its tenant's with ``manage_clients``); 404."""
    found = await managed.application(app_id)
    if (
        found is None
        or found.record.tenant != caller.tenant
        or (found.record.owner != caller.id and not may_see_all(request, caller))
    ):
        raise ApiError(404, f"no application {app_id[:80]!r} of yours in tenant {caller.tenant!r}", parameter="id")
    return found


def check_plan(managed: ManagedApi, caller: Principal, client: Principal, plan: str) -> None:
    """ApiError(400) for an unknown plan, ApiError(403) when the policies do not permit the client the plan."""
    found = managed.plan(caller.tenant, plan)
    if found is None:
        known = ", ".join(managed.plans(caller.tenant))
        raise ApiError(400, f"plan {plan[:40]!r} is not one of {known}", parameter="plan")
    if not managed.gate.permits(client, found):
        raise ApiError(
            403,
            f"the policies do not permit application {client.id!r} plan {plan!r} (action use_plan): "
            "an owner can permit it in the policy set",
            parameter="plan",
            problem="policy-denied",
            extensions={"action": "use_plan", "tenant": caller.tenant},
        )


def client_principal(app: Application) -> Principal:
    """The principal an application's access tokens prove."""
    client = app.client
    return Principal("client", client.client_id, client.tenant, role=client.role, scopes=frozenset(client.scopes))


async def register_checked(
    managed: ManagedApi, caller: Principal, name: str, scopes: list[str], plan: str | None
) -> tuple[Application, str]:
    """Register an application for an operator, its plan checked (existing, permitted by the policies)."""
    if caller.kind != "operator":
        raise ApiError(403, "applications are registered by people (operators), not by other applications")
    chosen = plan or managed.settings.default_plan
    if managed.plan(caller.tenant, chosen) is None:
        raise ApiError(
            400, f"plan {chosen[:40]!r} is not one of {', '.join(managed.plans(caller.tenant))}", parameter="plan"
        )
    try:
        app, secret = await managed.register(caller, name, scopes, chosen)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ApiError(400, str(exc), parameter=key if problem else None) from None
    try:
        check_plan(managed, caller, client_principal(app), chosen)
    except ApiError:
        await managed.delete(app.record.client_id)
        raise
    return app, secret


def managed_api_router(managed: ManagedApi) -> APIRouter:
    """The router over a running managed API."""
    router = APIRouter()

    @router.post(
        "/api/v1/applications",
        tags=["applications"],
        status_code=201,
        response_model=models.ApplicationWithSecret,
        responses=problem_responses(429),
    )
    async def register_application(body: models.ApplicationBody, request: Request, caller: Caller) -> JSONResponse:
        """Register an application: an OAuth2 client (client credentials) with scopes and a plan.

        The answer holds ``client_secret`` once; it is stored only hashed. Exchange ``client_id`` and
        ``client_secret`` at ``POST /oauth/token`` (``grant_type=client_credentials``) for access tokens.
        """
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        app, secret = await register_checked(managed, who, body.name, body.scopes, body.plan)
        return JSONResponse(
            {**app.as_json(), "client_secret": secret, "token_endpoint": "/oauth/token"},
            status_code=201,
            headers=_NO_STORE,
        )

    @router.get("/api/v1/applications", tags=["applications"], response_model=models.ApplicationsPage)
    async def list_applications(
        request: Request,
        caller: Caller,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """The caller's applications (every application of the tenant for who may ``manage_clients``)."""
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        owner = None if may_see_all(request, who) else who.id
        apps = await managed.applications(who.tenant, owner)
        page, after = position_page(apps, cursor, limit)
        return page_body([a.as_json() for a in page], after)

    @router.get(
        "/api/v1/applications/{app_id}",
        tags=["applications"],
        response_model=models.Application,
        responses=problem_responses(404),
    )
    async def get_application(app_id: str, request: Request, caller: Caller) -> dict[str, Any]:
        """One application (never its secret)."""
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        return (await visible_application(managed, request, who, app_id)).as_json()

    @router.post(
        "/api/v1/applications/{app_id}/rotate-secret",
        tags=["applications"],
        response_model=models.ApplicationWithSecret,
        responses=problem_responses(404),
    )
    async def rotate_application_secret(app_id: str, request: Request, caller: Caller) -> JSONResponse:
        """Replace the application's secret: the old one stops working at once, tokens issued with it within a
        second. The answer holds the new ``client_secret`` once."""
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        app = await visible_application(managed, request, who, app_id)
        secret = await managed.rotate(app.record.client_id)
        fresh = await managed.application(app.record.client_id)
        if secret is None or fresh is None:
            raise ApiError(404, f"application {app_id!r} has no OAuth2 client any more", parameter="id")
        return JSONResponse(
            {**fresh.as_json(), "client_secret": secret, "token_endpoint": "/oauth/token"}, headers=_NO_STORE
        )

    @router.put(
        "/api/v1/applications/{app_id}/plan",
        tags=["applications"],
        response_model=models.Application,
        responses=problem_responses(404),
    )
    async def set_application_plan(
        app_id: str, body: models.PlanChoice, request: Request, caller: Caller
    ) -> dict[str, Any]:
        """Move the application to another plan; its next request is throttled under it. The policies decide
        whether the application may use the plan (``use_plan``): a 403 names the action when they do not."""
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        app = await visible_application(managed, request, who, app_id)
        check_plan(managed, who, client_principal(app), body.plan)
        await managed.set_application_plan(app.record.client_id, body.plan)
        fresh = await managed.application(app.record.client_id)
        assert fresh is not None
        return fresh.as_json()

    @router.delete(
        "/api/v1/applications/{app_id}",
        tags=["applications"],
        status_code=204,
        response_class=Response,
        responses=problem_responses(404),
    )
    async def delete_application(app_id: str, request: Request, caller: Caller) -> Response:
        """Delete the application: its client and secret go, its tokens are revoked; its usage stays."""
        who = _person(caller)
        _allow(request, who, "manage_applications", None)
        app = await visible_application(managed, request, who, app_id)
        await managed.delete(app.record.client_id)
        return Response(status_code=204)

    @router.get(
        "/api/v1/applications/{app_id}/usage",
        tags=["usage"],
        response_model=models.UsagePage,
        responses=problem_responses(404),
    )
    async def application_usage(
        app_id: str,
        request: Request,
        caller: Caller,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, inclusive")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, exclusive")] = None,
    ) -> dict[str, Any]:
        """One application's calls per endpoint (counts, 4xx and 5xx errors, latency p50/p95) and per minute."""
        who = _person(caller)
        _allow(request, who, "read_usage", None)
        app = await visible_application(managed, request, who, app_id)
        rows = await managed.usage(
            who.tenant,
            clients=[app.record.client_id],
            endpoint=None,
            since_s=_time(since, "since"),
            until_s=_time(until, "until"),
        )
        return usage_body(rows)

    @router.get(
        "/api/v1/usage",
        tags=["usage"],
        response_model=models.UsagePage,
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The usage"}},
    )
    async def usage(
        request: Request,
        caller: Caller,
        *,
        client: Annotated[str | None, Query(max_length=200, description="One client (application) id")] = None,
        endpoint: Annotated[
            str | None, Query(max_length=300, description="One endpoint: method and route, 'GET /api/v1/readings'")
        ] = None,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, inclusive")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, exclusive")] = None,
        format: Annotated[Literal["json", "csv"], Query(description="json, or csv to download")] = "json",
    ) -> Any:
        """Calls per client and endpoint: counts, errors (4xx, 5xx), throttled calls, latency p50 and p95.

        Who may ``manage_clients`` sees every caller of the tenant (applications, operators, anonymous);
        a developer sees their own applications.
        """
        who = _person(caller)
        _allow(request, who, "read_usage", None)
        clients: list[str] | None
        if may_see_all(request, who):
            clients = [client] if client is not None else None
        else:
            mine = [a.client_id for a in managed.application_records(who.tenant, who.id)]
            if client is not None and client not in mine:
                raise ApiError(404, f"no application {client[:80]!r} of yours", parameter="client")
            clients = [client] if client is not None else mine
        rows = await managed.usage(
            who.tenant, clients=clients, endpoint=endpoint, since_s=_time(since, "since"), until_s=_time(until, "until")
        )
        if format == "csv":
            return Response(
                usage_csv(summarize(rows)),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="usage.csv"', **_NO_STORE},
            )
        return usage_body(rows)

    @router.get("/api/v1/plans", tags=["plans"], response_model=models.PlansPage)
    async def list_plans(request: Request, caller: Caller) -> dict[str, Any]:
        """The tenant's plans (rate, burst) and the plans of operators, anonymous callers and new applications."""
        who = _person(caller)
        _allow(request, who, "read_usage", None)
        return _plans_body(managed, who.tenant)

    @router.put("/api/v1/plans", tags=["plans"], response_model=models.PlansPage, responses=problem_responses(409))
    async def replace_plans(body: models.PlansBody, request: Request, caller: Caller) -> dict[str, Any]:
        """Replace the tenant's plans; the next request is throttled by them (no restart). Plans in use (by an
        application, or configured for operators, anonymous callers and new applications) must stay."""
        who = _person(caller)
        _allow(request, who, "manage_clients", None)
        items = [p.model_dump() for p in body.items]
        try:
            await managed.set_plans(who.tenant, items, by=f"{who.kind}:{who.tenant}/{who.id}")
        except ValueError as exc:
            status = 409 if "is needed" in str(exc) else 400
            raise ApiError(status, str(exc), parameter="items") from None
        return _plans_body(managed, who.tenant)

    return router


def _time(text: str | None, parameter: str) -> float | None:
    return parse_time(parameter, text) / 1_000_000 if text is not None else None


def _plans_body(managed: ManagedApi, tenant: str) -> dict[str, Any]:
    s = managed.settings
    return {
        "items": [p.as_json() for p in managed.plans(tenant).values()],
        "default_plan": s.default_plan,
        "operator_plan": s.operator_plan,
        "client_plan": s.client_plan,
        "anonymous_plan": s.anonymous_plan,
    }
