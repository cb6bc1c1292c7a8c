"""The developer portal at /developers: server-rendered pages over the managed API (see docs/developers.md).

Sign-in is the operators' session (``/auth/signin``); :func:`portal_operator` is the one place that turns a
request into the signed-in operator, so another sign-in (OpenID Connect) changes only it. Forms post back
here with the session's CSRF token in a hidden field (a form cannot send the API's CSRF header), and the
handlers call the same checks as the API (policies, visibility, plans).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from cloud.api import _allow
from cloud.apimgmt import pages
from cloud.apimgmt.reference import render_reference
from cloud.apimgmt.routes import check_plan, client_principal, register_checked, visible_application
from cloud.apimgmt.service import Application, ManagedApi
from cloud.apimgmt.svgchart import usage_chart
from cloud.apimgmt.usage import per_minute, summarize
from cloud.authz import Principal
from cloud.errors import ApiError
from cloud.identity.signin import CSRF_COOKIE, SESSION_COOKIE, check_origin, principal_of_session

MAX_FORM_BYTES = 16 * 1024
_HTML_HEADERS = {
    "Cache-Control": "no-store",
    # Everything comes from this server: no script, style, image or frame from anywhere else.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
_STATIC = {"portal.css": "text/css; charset=utf-8", "signin.js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class PortalUser:
    """The signed-in operator and the CSRF token their forms carry."""

    principal: Principal
    csrf: str
    check_csrf: Callable[[str | None], bool]


async def portal_operator(managed: ManagedApi, request: Request) -> PortalUser | None:
    """The operator signed in to this browser (the session cookie), or None. The portal's only sign-in check."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    active = await run_in_threadpool(managed.identity.sessions.lookup, session_id)
    if active is None:
        return None
    return PortalUser(principal_of_session(active), request.cookies.get(CSRF_COOKIE, ""), active.csrf_ok)


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=_HTML_HEADERS)


def _to_signin() -> RedirectResponse:
    return RedirectResponse("/developers/signin", status_code=303)


async def _form(request: Request, user: PortalUser) -> list[tuple[str, str]]:
    """The posted form, once its CSRF token and origin are checked; ApiError otherwise."""
    check_origin(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "the form is too large")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "the form is not UTF-8") from None
    if not user.check_csrf(dict(fields).get("csrf")):
        raise ApiError(403, "the form's CSRF token is not this session's: reload the page and try again")
    return fields


def portal_router(managed: ManagedApi) -> APIRouter:
    """The portal's routes (left out of the OpenAPI document: they are pages, not API)."""
    router = APIRouter(include_in_schema=False)

    async def my_apps(request: Request, who: Principal) -> list[Application]:
        from cloud.apimgmt.routes import may_see_all

        return await managed.applications(who.tenant, None if may_see_all(request, who) else who.id)

    async def apps_page(
        request: Request, user: PortalUser, *, notice: str = "", error: str | None = None, status: int = 200
    ) -> HTMLResponse:
        who = user.principal
        apps = await my_apps(request, who)
        plans = list(managed.plans(who.tenant).values())
        text = pages.applications_page(
            who.id, user.csrf, apps, plans, managed.settings.default_plan, notice=notice, error=error
        )
        return _html(text, status)

    @router.get("/developers/static/{name}")
    async def portal_static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        text = resources.files("cloud.apimgmt").joinpath("static", name).read_text(encoding="utf-8")
        return Response(text, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})

    @router.get("/developers/signin")
    async def portal_signin(request: Request) -> Response:
        if await portal_operator(managed, request) is not None:
            return RedirectResponse("/developers", status_code=303)
        return _html(pages.signin_page())

    @router.post("/developers/signout")
    async def portal_signout(request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is not None:
            await _form(request, user)
            await run_in_threadpool(managed.identity.sessions.end, request.cookies[SESSION_COOKIE])
        response = _to_signin()
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", samesite="strict")
        return response

    @router.get("/developers")
    async def portal_home(request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        who = user.principal
        return _html(pages.overview_page(who.id, who.tenant, user.csrf, managed.plans(who.tenant).values()))

    @router.get("/developers/reference")
    async def portal_reference(request: Request) -> Response:
        user = await portal_operator(managed, request)
        body = render_reference(request.app.openapi())
        return _html(pages.reference_page(body, user.principal.id if user else None, user.csrf if user else ""))

    @router.get("/developers/applications")
    async def portal_applications(request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            _allow(request, user.principal, "manage_applications", None)
        except ApiError as exc:
            return _html(
                pages.layout("My applications", pages.alert(exc.message), who=user.principal.id, csrf=user.csrf),
                exc.status,
            )
        return await apps_page(request, user)

    @router.post("/developers/applications")
    async def portal_register(request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            fields = await _form(request, user)
            _allow(request, user.principal, "manage_applications", None)
            values = dict(fields)
            scopes = [v for k, v in fields if k == "scopes"]
            app, secret = await register_checked(
                managed, user.principal, values.get("name", ""), scopes, values.get("plan") or None
            )
        except ApiError as exc:
            return await apps_page(request, user, error=exc.message, status=exc.status)
        return await apps_page(request, user, notice=pages.secret_notice(app, secret), status=201)

    @router.post("/developers/applications/{app_id}/rotate")
    async def portal_rotate(app_id: str, request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            await _form(request, user)
            _allow(request, user.principal, "manage_applications", None)
            app = await visible_application(managed, request, user.principal, app_id)
            secret = await managed.rotate(app.record.client_id)
            if secret is None:
                raise ApiError(404, "the application has no OAuth2 client any more")
        except ApiError as exc:
            return await apps_page(request, user, error=exc.message, status=exc.status)
        return await apps_page(request, user, notice=pages.secret_notice(app, secret))

    @router.post("/developers/applications/{app_id}/plan")
    async def portal_plan(app_id: str, request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            plan = dict(await _form(request, user)).get("plan", "")
            _allow(request, user.principal, "manage_applications", None)
            app = await visible_application(managed, request, user.principal, app_id)
            check_plan(managed, user.principal, client_principal(app), plan)
            await managed.set_application_plan(app.record.client_id, plan)
        except ApiError as exc:
            return await apps_page(request, user, error=exc.message, status=exc.status)
        return RedirectResponse("/developers/applications", status_code=303)

    @router.post("/developers/applications/{app_id}/delete")
    async def portal_delete(app_id: str, request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            await _form(request, user)
            _allow(request, user.principal, "manage_applications", None)
            app = await visible_application(managed, request, user.principal, app_id)
            await managed.delete(app.record.client_id)
        except ApiError as exc:
            return await apps_page(request, user, error=exc.message, status=exc.status)
        return RedirectResponse("/developers/applications", status_code=303)

    @router.get("/developers/applications/{app_id}/usage")
    async def portal_usage(app_id: str, request: Request) -> Response:
        user = await portal_operator(managed, request)
        if user is None:
            return _to_signin()
        try:
            _allow(request, user.principal, "read_usage", None)
            app = await visible_application(managed, request, user.principal, app_id)
        except ApiError as exc:
            return _html(
                pages.layout("Usage", pages.alert(exc.message), who=user.principal.id, csrf=user.csrf), exc.status
            )
        rows = await managed.usage(
            user.principal.tenant,
            clients=[app.record.client_id],
            endpoint=None,
            since_s=time.time() - 3600,
            until_s=None,
        )
        chart = usage_chart(per_minute(rows), title="Calls per minute, last hour")
        return _html(pages.usage_page(user.principal.id, user.csrf, app, summarize(rows), chart))

    return router
