"""Operators' sign-in for the dashboard, their sessions, and their access tokens (a FastAPI router).

POST /auth/signin    tenant, username, password (JSON or a form): a session cookie and a CSRF token
POST /auth/signout   ends the session
GET  /auth/session   who is signed in: operator, tenant, role, when the session ends
POST /auth/token     a short-lived access token (JWT) for the signed-in operator, for scripts and MQTT

The session id travels only in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over https) and is
stored hashed. A request authenticated by that cookie with an unsafe method (POST, PUT, ...) must also send
the CSRF token it got at sign-in in the ``X-Roost-CSRF`` header (the page reads it from the ``roost_csrf``
cookie or from the sign-in answer), and must not come from another origin. Failed sign-ins take from the
same kind of token buckets as the token endpoint, per address and per username.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cloud import api_models as models
from cloud.authz import Principal
from cloud.errors import ApiError
from cloud.identity import admin
from cloud.identity.service import IdentityService
from cloud.identity.sessions import ActiveSession, NewSession

_LOGGER = logging.getLogger(__name__)

SESSION_COOKIE = "roost_session"
CSRF_COOKIE = "roost_csrf"
CSRF_HEADER = "X-Roost-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_WRONG = "wrong tenant, username or password"


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """The problem to raise (answered as problem details, not stored)."""
    return ApiError(status, message, headers={**_NO_STORE, **(headers or {})})


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def check_origin(request: Request) -> None:
    """ApiError(403) when a browser says the request comes from another origin than the one it is sent to."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host") or request.url.netloc
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise ApiError(403, "a cross-origin request may not use an operator's session")


def principal_of_session(active: ActiveSession) -> Principal:
    """The principal a live session proves: its operator, with the role the database holds now."""
    op = active.operator
    return Principal("operator", op.username, op.tenant, role=op.role)


async def active_session(identity: IdentityService, request: Request) -> ActiveSession | None:
    """The request's live session; None without a session cookie; ApiError(401) for an ended one, and
    ApiError(403) for an unsafe method without the session's CSRF token or from another origin."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    active = await run_in_threadpool(identity.sessions.lookup, session_id)
    if active is None:
        raise ApiError(401, "the session has ended (signed out, expired or idle too long): sign in again")
    if request.method.upper() not in SAFE_METHODS:
        check_origin(request)
        if not active.csrf_ok(request.headers.get(CSRF_HEADER)):
            raise ApiError(403, f"a request signed in by a session cookie must send its CSRF token in {CSRF_HEADER}")
    return active


async def session_caller(identity: IdentityService, request: Request) -> Principal | None:
    """The operator a session cookie proves (see :func:`active_session`), or None without a cookie."""
    active = await active_session(identity, request)
    return principal_of_session(active) if active is not None else None


async def _credentials(request: Request) -> dict[str, str]:
    """tenant, username, password from a JSON object or an urlencoded form; ApiError(400) otherwise."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "the request body is too large")
    raw: Any
    try:
        if ctype == "application/json":
            raw = await request.json()
        elif ctype == "application/x-www-form-urlencoded":
            raw = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        else:
            raise ApiError(400, "send tenant, username and password as JSON or as a form")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON or form data") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "send an object with tenant, username and password")
    found: dict[str, str] = {}
    for name in ("tenant", "username", "password"):
        value = raw.get(name)
        if name == "username" and value is None:
            value = raw.get("email")  # what a sign-in form may call it
        if not isinstance(value, str) or not value or len(value) > 1024:
            raise ApiError(400, f"{name} is missing", parameter=name)
        found[name] = value
    return found


def _base_url(identity: IdentityService, request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return identity.issuer_for(f"{request.url.scheme}://{host}")


def _secure(identity: IdentityService, request: Request) -> bool:
    return request.url.scheme == "https" or identity.public_url.startswith("https://")


def _session_body(identity: IdentityService, active: ActiveSession) -> dict[str, Any]:
    op = active.operator
    return {
        "operator": op.username,
        "tenant": op.tenant,
        "role": op.role,
        "expires": _rfc3339(active.record.expires),
        "idle_expires": _rfc3339(identity.sessions.idle_deadline(active)),
    }


def _clear_cookies(response: Response, secure: bool) -> None:
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=http_only, samesite="strict")


def set_session_cookies(identity: IdentityService, request: Request, response: Response, new: NewSession) -> None:
    """Give the browser a new session's cookies (the session id ``HttpOnly``; the CSRF token readable)."""
    secure = _secure(identity, request)
    max_age = int(identity.sessions.ttl_s)
    response.set_cookie(
        SESSION_COOKIE, new.session_id, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict"
    )
    response.set_cookie(
        CSRF_COOKIE, new.csrf_token, max_age=max_age, path="/", secure=secure, httponly=False, samesite="strict"
    )


def clear_session_cookies(identity: IdentityService, request: Request, response: Response) -> None:
    """Tell the browser to forget the session's cookies."""
    _clear_cookies(response, _secure(identity, request))


def signin_router(identity: IdentityService) -> APIRouter:
    """The router over a running identity service."""
    router = APIRouter()
    throttle = identity.signin_throttle  # shared with the OpenID sign-in form

    @router.post("/auth/signin", response_model=models.SignedIn)
    async def signin(request: Request) -> Response:
        """Check an operator's password; answer with a session cookie and the session's CSRF token."""
        check_origin(request)  # no signing a victim's browser into someone else's account from another site
        creds = await _credentials(request)
        ip = _client_ip(request) or "unknown"
        keys = [f"ip:{ip}", f"operator:{creds['username'].lower()}"]
        wait = throttle.retry_after(keys)
        if wait > 0:
            raise _error(429, "too many failed sign-ins: wait and try again", {"Retry-After": str(int(wait) + 1)})
        op = await run_in_threadpool(admin.check_operator, identity.db, creds["username"], creds["password"])
        if op is None or op.tenant != creds["tenant"]:
            throttle.charge(keys)
            _LOGGER.warning(
                "sign-in refused for %r of tenant %r from %s", creds["username"][:64], creds["tenant"][:64], ip
            )
            raise _error(401, _WRONG)
        new = await run_in_threadpool(identity.sessions.start, op, source_ip=_client_ip(request))
        active = ActiveSession(new.record, op)
        _LOGGER.info("operator %s of tenant %s signed in from %s", op.username, op.tenant, ip)
        response = JSONResponse({**_session_body(identity, active), "csrf_token": new.csrf_token}, headers=_NO_STORE)
        set_session_cookies(identity, request, response, new)
        return response

    @router.post("/auth/signout", status_code=204, response_class=Response)
    async def signout(request: Request) -> Response:
        """End the session (its cookie stops working at once, everywhere)."""
        response = Response(status_code=204, headers=_NO_STORE)
        try:
            active = await active_session(identity, request)
        except ApiError as exc:
            if exc.status != 401:
                raise
            active = None  # ended already: only the cookies are left to clear
        if active is not None:
            await run_in_threadpool(identity.sessions.end, request.cookies[SESSION_COOKIE])
            _LOGGER.info("operator %s of tenant %s signed out", active.operator.username, active.operator.tenant)
        _clear_cookies(response, _secure(identity, request))
        return response

    @router.get("/auth/session", response_model=models.OperatorSession)
    async def session(request: Request) -> JSONResponse:
        """Who is signed in: operator, tenant, role, and when the session ends."""
        active = await active_session(identity, request)
        if active is None:
            raise ApiError(401, "not signed in: POST /auth/signin first")
        return JSONResponse(_session_body(identity, active), headers=_NO_STORE)

    @router.post("/auth/token", response_model=models.AccessToken)
    async def token(request: Request) -> JSONResponse:
        """A short-lived access token for the signed-in operator: an API bearer token and an MQTT password."""
        active = await active_session(identity, request)
        if active is None:
            raise ApiError(401, "not signed in: POST /auth/signin first")
        issued = await run_in_threadpool(identity.operator_token, active.operator, issuer=_base_url(identity, request))
        claims = identity.verifier.verify(issued["access_token"])
        await run_in_threadpool(identity.sessions.token_issued, active.record.id_hash, claims.jti, claims.expires)
        body = {**issued, "sub": active.operator.username, "tenant": active.operator.tenant}
        return JSONResponse(body, headers=_NO_STORE)

    return router
