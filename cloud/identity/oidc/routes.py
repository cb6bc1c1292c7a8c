"""OpenID Connect's HTTP endpoints (a FastAPI router the API mounts when identity is enabled).

GET  /.well-known/openid-configuration   OpenID Connect Discovery 1.0 (and RFC 8414 members)
GET  /oauth/authorize                    the authorization endpoint: a signed-in browser gets its code at once,
                                         others the sign-in form (or the external provider, when configured)
POST /oauth/authorize                    the sign-in form's answer
GET  /oauth/userinfo  (and POST)         the operator's claims, for an access token with the ``openid`` scope
GET  /oauth/end_session  (and POST)      RP-initiated logout: ends the session and revokes its tokens
GET  /auth/oidc/callback                 where the external provider sends the browser back (relying party)

``POST /oauth/token`` (grant_type ``authorization_code`` and ``refresh_token``) and ``POST /oauth/revoke`` are
the identity router's; the grant is registered on the same Authlib server.

Only the discovery document is in the OpenAPI document: the others are browser pages (HTML) or answer
OpenID's own errors (RFC 6750 ``WWW-Authenticate``), not the API's problem details.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749 import OAuth2Error  # type: ignore[import-untyped]
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from cloud.errors import ApiError
from cloud.identity import admin, hashing
from cloud.identity.errors import InvalidToken
from cloud.identity.oauth import FormRequest
from cloud.identity.oidc.clients import SCOPES
from cloud.identity.oidc.pages import error_page, signed_out_page, signin_page, signout_confirm_page
from cloud.identity.oidc.provider import ID_TOKEN_ALG, OpenIdProvider, SignedIn, user_claims
from cloud.identity.oidc.relying_party import RelyingParty, RpError
from cloud.identity.oidc.settings import OidcSection
from cloud.identity.oidc.store import OidcStore
from cloud.identity.service import IdentityService
from cloud.identity.sessions import ActiveSession
from cloud.identity.signin import (
    SESSION_COOKIE,
    check_origin,
    clear_session_cookies,
    set_session_cookies,
)

_LOGGER = logging.getLogger(__name__)

CALLBACK_PATH = "/auth/oidc/callback"
MAX_QUERY = 8192
_CREDENTIALS = ("tenant", "username", "password")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _params(raw: str) -> dict[str, str]:
    """Query or form parameters; _BadRequest for a repeated one (RFC 6749 §3.1) or an oversized request."""
    if len(raw) > MAX_QUERY:
        raise _BadRequest("the request is too large")
    found: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key in found:
            raise _BadRequest(f"the parameter {key!r} is repeated")
        found[key] = value
    return found


def _base_url(identity: IdentityService, request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return identity.issuer_for(f"{request.url.scheme}://{host}")


def _response(status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    """Authlib's (status, body, headers) as a response: a redirect, or a JSON error."""
    if status in (301, 302, 303, 307):
        return RedirectResponse(dict(headers)["Location"], status_code=302, headers=_NO_STORE)
    return JSONResponse(body, status_code=status, headers={**dict(headers), **_NO_STORE})


def oidc_router(identity: IdentityService, settings: OidcSection) -> APIRouter:
    """The router over a running identity service (the console's client is registered here, idempotently)."""
    router = APIRouter()
    installed: OpenIdProvider | None = getattr(identity.oauth, "oidc_provider", None)
    provider = installed if installed is not None else OpenIdProvider(identity, OidcStore(identity.db.path))
    store = provider.store
    query_client = provider.client
    relying = RelyingParty(settings, store) if settings.enabled else None
    throttle = identity.signin_throttle  # shared with POST /auth/signin

    def form_request(request: Request, params: dict[str, str]) -> FormRequest:
        return FormRequest(
            method="GET",
            url=str(request.url),
            headers=request.headers,
            form=params,
            issuer=_base_url(identity, request),
            insecure_ok=identity.settings.allow_insecure_http,
        )

    def client_name(params: dict[str, str]) -> str:
        client = query_client(params.get("client_id", ""))
        return client.name if client is not None and client.name else "An application"

    async def current_session(request: Request) -> ActiveSession | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        return await run_in_threadpool(identity.sessions.lookup, session_id)  # None: ended, or another site's

    def signed_in(active: ActiveSession) -> SignedIn:
        op = active.operator
        return SignedIn(op.username, op.tenant, op.role, active.record.created, active.record.id_hash)

    async def validate(request: Request, params: dict[str, str], user: SignedIn | None = None) -> Response | None:
        """None when the authorization request is valid; else the answer: a redirect with the error to the
        client (once its redirect URI is known good), or an error page (never a redirect to an unknown URI).
        ``prompt=none`` without a signed-in ``user`` is ``login_required``, to the client."""
        try:
            await run_in_threadpool(provider.validate, form_request(request, params), user)
        except OAuth2Error as error:
            if error.redirect_uri:
                error.state = params.get("state")
                return _response(*error())
            return error_page(400, f"{error.error}: {error.description or 'the request is not valid'}")
        return None

    async def grant(request: Request, params: dict[str, str], user: SignedIn) -> Response:
        status, body, headers = await run_in_threadpool(provider.authorize, form_request(request, params), user)
        return _response(status, body, headers)

    def wants_login(params: dict[str, str], active: ActiveSession) -> bool:
        prompts = params.get("prompt", "").split()
        if "login" in prompts:
            return True
        max_age = params.get("max_age", "")
        return max_age.isdigit() and time.time() - active.record.created > int(max_age)

    @router.get("/.well-known/openid-configuration")
    async def discovery(request: Request) -> JSONResponse:
        """OpenID Connect Discovery 1.0: the provider's endpoints and what it supports."""
        issuer = _base_url(identity, request)
        doc = {
            **identity.metadata(issuer),
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "userinfo_endpoint": f"{issuer}/oauth/userinfo",
            "jwks_uri": f"{issuer}/jwks.json",
            "end_session_endpoint": f"{issuer}/oauth/end_session",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "sid",
                "azp",
                "preferred_username",
                "name",
                "tenant",
                "roles",
            ],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }
        return JSONResponse(doc, headers={"Cache-Control": "public, max-age=300"})

    @router.get("/oauth/authorize", include_in_schema=False)
    async def authorize(request: Request) -> Response:
        """The authorization endpoint (code flow with PKCE)."""
        try:
            params = _params(request.url.query)
        except _BadRequest as exc:
            return error_page(400, exc.message)
        active = await current_session(request)
        user = signed_in(active) if active is not None and not wants_login(params, active) else None
        problem = await validate(request, params, user)
        if problem is not None:
            return problem
        if user is not None:
            return await grant(request, params, user)
        if relying is not None:
            try:
                url = await relying.start(resume=params, redirect_uri=_base_url(identity, request) + CALLBACK_PATH)
            except RpError as exc:
                return error_page(exc.status, exc.message)
            return RedirectResponse(url, status_code=302, headers=_NO_STORE)
        return signin_page(action="/oauth/authorize", params=params, client_name=client_name(params))

    @router.post("/oauth/authorize", include_in_schema=False)
    async def authorize_form(request: Request) -> Response:
        """The sign-in form's answer: check the password, start a session, redirect with the code."""
        try:
            check_origin(request)
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                raise _BadRequest("send the sign-in form as application/x-www-form-urlencoded")
            form = _params((await request.body()).decode("utf-8", errors="replace"))
        except ApiError as exc:
            return error_page(exc.status, exc.message)
        except _BadRequest as exc:
            return error_page(400, exc.message)
        params = {k: v for k, v in form.items() if k not in _CREDENTIALS}
        problem = await validate(request, params)
        if problem is not None:
            return problem
        if relying is not None:
            return error_page(403, "operators of this cloud sign in at its sign-in provider, not with a password")
        tenant, username, password = (form.get(k, "")[:1024] for k in _CREDENTIALS)
        name = client_name(params)
        if not (tenant and username and password):
            return signin_page(
                action="/oauth/authorize",
                params=params,
                client_name=name,
                tenant=tenant,
                username=username,
                error="Fill in tenant, username and password.",
            )
        ip = request.client.host if request.client else "unknown"
        keys = [f"ip:{ip}", f"operator:{username.lower()}"]
        wait = throttle.retry_after(keys)
        if wait > 0:
            page = signin_page(
                action="/oauth/authorize",
                params=params,
                client_name=name,
                tenant=tenant,
                username=username,
                error="Too many failed sign-ins: wait a minute and try again.",
            )
            page.status_code = 429
            page.headers["Retry-After"] = str(int(wait) + 1)
            return page
        op = await run_in_threadpool(admin.check_operator, identity.db, username, password)
        if op is None or op.tenant != tenant:
            throttle.charge(keys)
            _LOGGER.warning("sign-in refused for %r of tenant %r from %s", username[:64], tenant[:64], ip)
            return signin_page(
                action="/oauth/authorize",
                params=params,
                client_name=name,
                tenant=tenant,
                username=username,
                error="Wrong tenant, username or password.",
            )
        new = await run_in_threadpool(
            identity.sessions.start, op, source_ip=request.client.host if request.client else None
        )
        _LOGGER.info(
            "operator %s of tenant %s signed in from %s for client %s",
            op.username,
            op.tenant,
            ip,
            params.get("client_id", "")[:64],
        )
        response = await grant(
            request, params, SignedIn(op.username, op.tenant, op.role, new.record.created, new.record.id_hash)
        )
        set_session_cookies(identity, request, response, new)
        return response

    async def userinfo(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse(
                {"error": "invalid_request", "error_description": "send the access token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", **_NO_STORE},
            )
        try:
            claims = identity.verifier.verify(token.strip())
        except InvalidToken as exc:
            return JSONResponse(
                {"error": "invalid_token", "error_description": f"the access token is not valid ({exc.reason})"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"', **_NO_STORE},
            )
        if "openid" not in claims.scope:
            return JSONResponse(
                {"error": "insufficient_scope", "error_description": "the token was not granted the 'openid' scope"},
                status_code=403,
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"', **_NO_STORE},
            )
        op = await run_in_threadpool(identity.db.operator, claims.subject)
        if op is None or op.disabled is not None or op.tenant != claims.tenant:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "the operator is disabled or gone"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse(user_claims(op.username, op.tenant, op.role, " ".join(claims.scope)), headers=_NO_STORE)

    router.add_api_route("/oauth/userinfo", userinfo, methods=["GET", "POST"], include_in_schema=False)

    def id_token_hint(hint: str, issuer: str) -> dict[str, Any] | None:
        """The claims of an ID token this cloud signed (expired ones too: a hint may be old); None otherwise."""
        if not hint or len(hint) > 8192:
            return None
        try:
            decoded = jwt.decode(hint, identity.keys.public_key_set(), algorithms=[ID_TOKEN_ALG])
        except (JoseError, ValueError, KeyError, TypeError):
            return None
        claims = dict(decoded.claims)
        if decoded.header.get("typ") != "JWT" or claims.get("iss") not in identity.issuers() | {issuer}:
            return None
        return claims

    async def end_session(request: Request) -> Response:
        """RP-initiated logout: end this browser's session (or the hinted one) and revoke its tokens."""
        try:
            if request.method == "POST":
                check_origin(request)
                params = _params((await request.body()).decode("utf-8", errors="replace"))
            else:
                params = _params(request.url.query)
        except ApiError as exc:
            return error_page(exc.status, exc.message, title="Sign-out is not possible")
        except _BadRequest as exc:
            return error_page(400, exc.message, title="Sign-out is not possible")
        issuer = _base_url(identity, request)
        hint = id_token_hint(params.get("id_token_hint", ""), issuer)
        if params.get("id_token_hint") and hint is None:
            return error_page(400, "id_token_hint is not an ID token of this cloud", title="Sign-out is not possible")
        aud = hint.get("aud") if hint else None
        client_id = params.get("client_id") or (aud if isinstance(aud, str) else "")
        if hint is not None and params.get("client_id") and params["client_id"] != aud:
            return error_page(400, "client_id is not the ID token's audience", title="Sign-out is not possible")
        target = params.get("post_logout_redirect_uri", "")
        if target:
            client = await run_in_threadpool(query_client, client_id) if client_id else None
            if client is None or not client.allows_logout_redirect(target, issuer):
                return error_page(
                    400, "post_logout_redirect_uri is not registered for this client", title="Sign-out is not possible"
                )
        if hint is None and request.method != "POST":
            return signout_confirm_page(action="/oauth/end_session", params=params)
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            await run_in_threadpool(identity.sessions.end, session_id)
        sid = hint.get("sid") if hint else None
        if isinstance(sid, str):
            session_hash = await run_in_threadpool(store.session_of_sid, sid)
            if session_hash is not None:
                await run_in_threadpool(identity.sessions.end_by_hash, session_hash)
        response: Response
        if target:
            state = params.get("state")
            location = target + (("&" if "?" in target else "?") + urlencode({"state": state}) if state else "")
            response = RedirectResponse(location, status_code=302, headers=_NO_STORE)
        else:
            response = signed_out_page()
        clear_session_cookies(identity, request, response)
        return response

    router.add_api_route("/oauth/end_session", end_session, methods=["GET", "POST"], include_in_schema=False)

    @router.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request) -> Response:
        """The external provider sends the browser back here: check its answer, sign the operator in, and
        answer the authorization request that started it (a code to the console)."""
        if relying is None:
            return error_page(404, "this cloud has no external sign-in provider (identity.oidc.issuer)")
        try:
            params = _params(request.url.query)
        except _BadRequest as exc:
            return error_page(400, exc.message)
        state = params.get("state", "")
        if params.get("error"):
            await run_in_threadpool(store.take_login, hashing.digest(state), time.time())
            reason = params.get("error_description") or params["error"]
            return error_page(403, f"the sign-in provider refused the sign-in: {reason[:300]}")
        if not state or not params.get("code"):
            return error_page(400, "the sign-in provider's answer lacks its code or state")
        issuer = _base_url(identity, request)
        ip = request.client.host if request.client else None
        try:
            who, resume = await relying.finish(code=params["code"], state=state, redirect_uri=issuer + CALLBACK_PATH)
            op = await run_in_threadpool(relying.provision, identity.db, who)
        except RpError as exc:
            return error_page(exc.status, exc.message)
        new = await run_in_threadpool(identity.sessions.start, op, source_ip=ip)
        _LOGGER.info("operator %s of tenant %s signed in through %s", op.username, op.tenant, relying.issuer)
        user = SignedIn(op.username, op.tenant, op.role, new.record.created, new.record.id_hash)
        response: Response
        if resume:
            problem = await validate(request, resume, user)
            response = problem if problem is not None else await grant(request, resume, user)
        else:
            response = RedirectResponse("/", status_code=302, headers=_NO_STORE)
        set_session_cookies(identity, request, response, new)
        return response

    return router
