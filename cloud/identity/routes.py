"""The authorization server's HTTP endpoints (a FastAPI router the API mounts when identity is enabled).

GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
GET  /jwks.json                                the verifying keys (current and previous)
POST /oauth/device_authorization               RFC 8628 §3.1 (client ``roost-gateway``)
POST /oauth/token                              device_code, refresh_token, client_credentials, claim token
POST /oauth/revoke                             RFC 7009
POST /oauth/introspect                         RFC 7662 (API clients)
POST /api/v1/enrollments/approve               binds a user code to a tenant and gateway id (``approve_enrollment``)
POST /api/v1/enrollments/deny                  ... or refuses it

Who may approve or deny is the policy decision point's answer (action ``approve_enrollment`` on the tenant:
admins and owners of that tenant by the default policies); callers prove who they are with a bearer token
or an operator's session cookie (plus its CSRF token).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloud import api_models as models
from cloud.authz import Authorizer, Principal
from cloud.errors import ApiError
from cloud.identity.errors import Conflict, InvalidToken, NotFound
from cloud.identity.oauth import FormRequest
from cloud.identity.service import IdentityService
from cloud.identity.signin import session_caller
from cloud.identity.throttle import Throttle
from cloud.openapi_doc import problem_responses
from cloud.policy.authorizer import PolicyAuthorizer, subject_of
from cloud.policy.model import RequestContext

_LOGGER = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024
ADMIN_ROLES = frozenset({"owner", "admin"})
# Errors that mean "wrong guess": they take from the throttle's buckets. Pending and slow_down do not.
_GUESS_ERRORS = frozenset({"invalid_grant", "invalid_client", "invalid_request", "unauthorized_client"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class ApproveBody(BaseModel):
    """An operator's approval of a gateway's user code."""

    user_code: str = Field(min_length=1, max_length=32)
    tenant: str = Field(min_length=1, max_length=128)
    gateway_id: str | None = Field(default=None, min_length=1, max_length=128)


class DenyBody(BaseModel):
    """An operator's refusal of a gateway's user code."""

    user_code: str = Field(min_length=1, max_length=32)


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**_NO_STORE, **(headers or {})}
    )


def _base_url(identity: IdentityService, request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return identity.issuer_for(f"{request.url.scheme}://{host}")


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form; ApiError(400) for another content type, a repeated field or an oversized body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if ctype != "application/x-www-form-urlencoded" and (body or ctype):
        raise ApiError(400, "send the parameters as application/x-www-form-urlencoded")
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "the request body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the form is not valid UTF-8 urlencoded data") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise ApiError(400, f"the parameter {key!r} is repeated", parameter=key)  # RFC 6749 §3.2
        form[key] = value
    return form


def _basic_client_id(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0] or None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _http_context(request: Request) -> RequestContext:
    try:
        return RequestContext(source_ip=request.client.host if request.client else None, transport="http")
    except ValueError:  # not an IP address (a test client's name)
        return RequestContext(transport="http")


def identity_router(
    identity: IdentityService, *, authorizer: Authorizer | None = None, policy: PolicyAuthorizer | None = None
) -> APIRouter:
    """The router over a running identity service.

    ``authorizer``: what proves a bearer token (default: this service's own access tokens); ``policy``: the
    decision point that decides enrollments (None: admins and owners of the tenant, decided here).
    """
    router = APIRouter()
    settings = identity.settings
    throttle = Throttle(burst=settings.throttle_burst, rate_per_s=settings.throttle_rate_per_s)

    async def call_oauth(request: Request, endpoint: str) -> JSONResponse:
        try:
            form = await _form(request)
        except ApiError as exc:
            return _oauth_error(exc.status, "invalid_request", exc.message)
        client_ip = request.client.host if request.client else "unknown"
        client_id = form.get("client_id") or _basic_client_id(request)
        keys = [f"ip:{client_ip}"] + ([f"client:{client_id}"] if client_id else [])
        wait = throttle.retry_after(keys)
        if wait > 0:
            return _oauth_error(
                429, "slow_down", "too many failed attempts: wait and try again", {"Retry-After": str(int(wait) + 1)}
            )
        req = FormRequest(
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            form=form,
            issuer=_base_url(identity, request),
            insecure_ok=settings.allow_insecure_http,
        )
        if endpoint == "token":
            status, body, headers = await run_in_threadpool(identity.oauth.token, req)
        else:
            status, body, headers = await run_in_threadpool(identity.oauth.endpoint, endpoint, req)
        if status >= 400 and isinstance(body, dict) and body.get("error") in _GUESS_ERRORS:
            throttle.charge(keys)
        return JSONResponse(body, status_code=status, headers={**dict(headers), **_NO_STORE})

    @router.get("/.well-known/oauth-authorization-server")
    async def metadata(request: Request) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return identity.metadata(_base_url(identity, request))

    @router.get("/jwks.json")
    async def jwks() -> JSONResponse:
        """The public signing keys: the current one and those whose tokens may still be valid."""
        return JSONResponse(identity.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})

    per_minute = settings.device_authorizations_per_minute
    device_volume = Throttle(burst=per_minute, rate_per_s=per_minute / 60.0)

    @router.post("/oauth/device_authorization", response_model=models.DeviceAuthorization)
    async def device_authorization(request: Request) -> JSONResponse:
        """RFC 8628 §3.1: a gateway asks for a device code and a user code to show.

        Every request counts against its source address (not only failures: each one adds a row and a
        code an operator may be shown), and the codes waiting for approval are capped in total.
        """
        keys = [f"ip:{request.client.host if request.client else 'unknown'}"]
        wait = device_volume.retry_after(keys)
        if wait > 0:
            return _oauth_error(
                429,
                "slow_down",
                "too many enrollment requests from this address: wait and try again",
                {"Retry-After": str(int(wait) + 1)},
            )
        device_volume.charge(keys)
        pending = await run_in_threadpool(identity.db.pending_devices, time.time())
        if pending >= settings.pending_device_codes_max:
            return _oauth_error(
                503,
                "temporarily_unavailable",
                f"{pending} enrollments are already waiting for approval: approve them or let them expire, "
                "then try again",
                {"Retry-After": str(settings.device_code_ttl_s)},
            )
        return await call_oauth(request, "device_authorization")

    @router.post("/oauth/token", response_model=models.OAuthToken)
    async def token(request: Request) -> JSONResponse:
        """The token endpoint."""
        return await call_oauth(request, "token")

    @router.post("/oauth/revoke")
    async def revoke(request: Request) -> JSONResponse:
        """RFC 7009 token revocation."""
        return await call_oauth(request, "revocation")

    @router.post("/oauth/introspect")
    async def introspect(request: Request) -> JSONResponse:
        """RFC 7662 token introspection, for API clients."""
        return await call_oauth(request, "introspection")

    async def caller(request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            if authorizer is not None:
                found = authorizer.authenticate_bearer(token.strip())
                if found is None:
                    raise ApiError(401, "the bearer token is not valid (unknown, forged, expired or revoked)")
                return found
            from cloud.tokenauth import principal_of_claims

            try:
                return principal_of_claims(identity.verifier.verify(token.strip()))
            except InvalidToken as exc:
                raise ApiError(401, f"the bearer token is not valid ({exc.reason})") from None
        found = await session_caller(identity, request)
        if found is None:
            raise ApiError(401, "this endpoint needs 'Authorization: Bearer <access token>' or a signed-in session")
        return found

    def may_approve(request: Request, who: Principal, tenant: str) -> None:
        """ApiError(403) unless the decision point lets ``who`` approve enrollments in ``tenant``."""
        if policy is None:
            if who.role not in ADMIN_ROLES or who.tenant != tenant:
                raise ApiError(403, "deciding enrollments needs the admin or owner role in that tenant")
            return
        decision = policy.decision_point.decide_api(
            subject_of(who), "approve_enrollment", tenant, _http_context(request)
        )
        if not decision.allowed:
            why = f"denied by {', '.join(decision.reasons)}" if decision.reasons else "no policy permits it"
            raise ApiError(
                403,
                f"{who.kind} {who.id!r} of tenant {who.tenant!r} may not approve enrollments"
                f" in tenant {tenant!r}: {why}",
                parameter="tenant" if tenant != who.tenant else None,
                problem="policy-denied",
                extensions={"action": "approve_enrollment", "tenant": tenant},
            )

    @router.post("/api/v1/enrollments/approve", response_model=models.Approval, responses=problem_responses(404, 409))
    async def approve(body: ApproveBody, request: Request) -> dict[str, Any]:
        """Bind a gateway's user code to a tenant (and a gateway id); the gateway's next poll gets its tokens."""
        who = await caller(request)
        may_approve(request, who, body.tenant)
        try:
            gw = await run_in_threadpool(identity.approve, body.user_code, body.tenant, body.gateway_id)
        except NotFound as exc:
            raise ApiError(404, str(exc), parameter=exc.what) from None
        except Conflict as exc:
            raise ApiError(409, str(exc), parameter=exc.what) from None
        except ValueError as exc:
            raise ApiError(400, str(exc), parameter="gateway_id") from None
        _LOGGER.info("%s %s approved gateway %s into tenant %s", who.kind, who.id, gw.id, gw.tenant)
        return {"gateway_id": gw.id, "tenant": gw.tenant, "hardware_id": gw.hardware_id}

    @router.post("/api/v1/enrollments/deny", response_model=models.Denial, responses=problem_responses(404, 409))
    async def deny(body: DenyBody, request: Request) -> dict[str, Any]:
        """Refuse a pending user code (it has no tenant yet: any tenant's admin may); the next poll is denied."""
        who = await caller(request)
        may_approve(request, who, who.tenant)
        try:
            dev = await run_in_threadpool(identity.deny, body.user_code)
        except NotFound as exc:
            raise ApiError(404, str(exc), parameter="user_code") from None
        except Conflict as exc:
            raise ApiError(409, str(exc), parameter="user_code") from None
        _LOGGER.info("%s %s denied the enrollment of user code %s", who.kind, who.id, dev.user_code)
        return {"user_code": dev.user_code, "status": "denied"}

    return router
