"""The cloud as an OpenID provider: Authlib's authorization code grant with PKCE and OpenID Connect's ID token.

    provider = OpenIdProvider(identity, store)      # registers the grant on identity.oauth
    status, body, headers = provider.authorize(request, user=signed_in)   # 302 to the client with a code
    # ... the client posts grant_type=authorization_code to /oauth/token as for any grant

Rules beyond Authlib's defaults: PKCE is required of every client, with ``S256`` only (``plain`` and a missing
method are refused); ``state`` is required, and so is ``nonce`` when ``openid`` is asked; the redirect URI
must be registered exactly. A code lives ``identity.authorization_code_ttl_s`` seconds, is stored hashed and
works once: a second use is refused and revokes the tokens the first one gave (RFC 6749 §4.1.2). The access
token is the operator token the API and the broker already accept; the refresh token rotates like the
gateways'; the ID token (``typ`` JWT, so never mistaken for an access token) is signed by the same key ring.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import OAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from authlib.oidc.core.util import create_half_hash  # type: ignore[import-untyped]

from cloud.errors import StoreError
from cloud.identity import hashing
from cloud.identity.oauth import FormRequest, RoostRequest, Subject, _Issuing
from cloud.identity.oidc.clients import CONSOLE_CLIENT_ID, OidcClient, ensure_console_client
from cloud.identity.oidc.store import CodeRow, OidcStore, public_sid

if TYPE_CHECKING:
    from cloud.identity.service import IdentityService

_LOGGER = logging.getLogger(__name__)

ID_TOKEN_ALG = "ES256"
MAX_PARAM = 512


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The operator approving an authorization request, and the dashboard session that proves it."""

    username: str
    tenant: str
    role: str
    auth_time: float
    session_hash: str | None


@dataclass(frozen=True, slots=True)
class _Code:
    """A stored code as Authlib's authorization code."""

    row: CodeRow

    @property
    def code_challenge(self) -> str:
        return self.row.challenge

    @property
    def code_challenge_method(self) -> str:
        return self.row.method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time)

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"] if self.row.session_hash is not None else []


def _server_of(grant: Any) -> tuple[IdentityService, OidcStore]:
    server = grant.server
    return server.identity, server.oidc_store


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with ``S256`` only, and required of every client at the authorization endpoint."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        """code_challenge and code_challenge_method=S256 are required."""
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("missing 'code_challenge': PKCE (RFC 7636) with S256 is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256 ('plain' is refused)")
        super().validate_code_challenge(grant, redirect_uri)


class RoostOpenIDCode(OpenIDCode):  # type: ignore[misc]
    """OpenID Connect on the code grant: the ID token, signed by the cloud's key ring."""

    def __init__(self, identity: IdentityService, store: OidcStore) -> None:
        super().__init__(require_nonce=True)
        self.identity = identity
        self.store = store

    def exists_nonce(self, nonce: str, request: RoostRequest) -> bool:
        """Whether a recent code of this client carried the same nonce (a replayed request)."""
        return self.store.nonce_seen(request.payload.client_id, nonce, time.time())

    def generate_user_info(self, user: Subject, scope: str) -> dict[str, Any]:
        """The operator's claims for the granted scopes."""
        return user_claims(user.id, user.tenant, user.roles[0] if user.roles else "", scope)

    def encode_id_token(self, token: dict[str, Any], request: RoostRequest) -> str:
        """The ID token: iss, sub, aud, exp, iat, auth_time, nonce, at_hash, sid and the operator's claims."""
        identity = self.identity
        code: _Code = request.authorization_code
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": request.issuer,
            "aud": request.client.get_client_id(),
            "iat": now,
            "exp": now + identity.settings.access_token_ttl_s,
            "azp": request.client.get_client_id(),
        }
        claims.update(self.get_authorization_code_claims(code))
        at_hash = create_half_hash(token["access_token"], ID_TOKEN_ALG)
        claims["at_hash"] = at_hash.decode("ascii")
        if code.row.session_hash is not None:
            claims["sid"] = public_sid(code.row.session_hash)
        claims.update(self.generate_user_info(request.user, token["scope"]))
        return identity.keys.sign(claims, typ="JWT")


def user_claims(username: str, tenant: str, role: str, scope: str) -> dict[str, Any]:
    """The claims about an operator that ``scope`` lets a client see (``sub`` always)."""
    scopes = scope.split()
    claims: dict[str, Any] = {"sub": username}
    if "profile" in scopes:
        claims["preferred_username"] = username
        claims["name"] = username
    if "roost" in scopes:
        claims["tenant"] = tenant
        claims["roles"] = [role]
    return claims


class RoostCodeGrant(_Issuing, AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization code grant for registered OpenID clients (public ones with ``none`` and PKCE)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none", "client_secret_basic", "client_secret_post"]
    AUTHORIZATION_CODE_LENGTH = 43

    @staticmethod
    def validate_authorization_redirect_uri(request: RoostRequest, client: Any) -> str:
        """The redirect URI, which must be named and registered exactly (a registered path: on this origin)."""
        uri = request.payload.redirect_uri
        if not uri:
            raise InvalidRequestError("missing 'redirect_uri'")
        if not isinstance(client, OidcClient) or not client.allows_redirect(uri, request.issuer):
            raise InvalidRequestError(f"the redirect URI {uri[:200]!r} is not registered for this client")
        return str(uri)

    def validate_authorization_request(self) -> str:
        """Authlib's checks, then ``state`` and parameter sizes (errors go back to the registered URI)."""
        redirect_uri: str = super().validate_authorization_request()
        data = self.request.payload.data
        if not data.get("state"):
            raise InvalidRequestError(
                "missing 'state': the client must bind the answer to its request", redirect_uri=redirect_uri
            )
        for name, value in data.items():
            if len(value) > MAX_PARAM:
                raise InvalidRequestError(f"{name!r} is longer than {MAX_PARAM} characters", redirect_uri=redirect_uri)
        if "openid" not in self.request.scope.split():
            raise InvalidRequestError("'scope' must contain 'openid'", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: RoostRequest) -> None:
        """Store the code's hash with everything it is bound to."""
        identity, store = _server_of(self)
        user: SignedIn = request.user
        data = request.payload.data
        now = time.time()
        store.add_code(
            CodeRow(
                code_hash=hashing.digest(code),
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                challenge=data["code_challenge"],
                method=data.get("code_challenge_method") or "S256",
                username=user.username,
                tenant=user.tenant,
                auth_time=user.auth_time,
                session_hash=user.session_hash,
                created=now,
                expires=now + identity.settings.authorization_code_ttl_s,
            )
        )

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        """The live code of this client; a used one is a replay: the tokens it gave are revoked."""
        identity, store = _server_of(self)
        if not code or len(code) > MAX_PARAM:
            return None
        row = store.code(hashing.digest(code))
        if row is None or row.client_id != client.get_client_id():
            return None
        if row.used is not None:
            if row.family is not None:
                identity.revoke_families([row.family], [])
            raise InvalidGrantError("the authorization code was used already: the tokens it gave are revoked")
        if row.expires <= time.time():
            raise InvalidGrantError("the authorization code has expired: start the sign-in again")
        return _Code(row)

    def authenticate_user(self, authorization_code: _Code) -> Subject:
        """The operator as it is now (disabled: refused), in a new token family."""
        identity, _ = _server_of(self)
        row = authorization_code.row
        op = identity.db.operator(row.username)
        if op is None or op.disabled is not None or op.tenant != row.tenant:
            raise InvalidGrantError("the operator was disabled or removed since signing in")
        return Subject("operator", op.username, op.tenant, (op.role,), family=uuid.uuid4().hex)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Use the code (once, atomically), issue, and link the token family to the approving session."""
        identity, store = _server_of(self)
        code: _Code = self.request.authorization_code
        if not store.use_code(code.row.code_hash, time.time()):
            raise InvalidGrantError("the authorization code was used already or has expired")
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_token_response()
        family = self.request.user.family
        store.set_code_family(code.row.code_hash, family)
        if code.row.session_hash is not None:
            expires = time.time() + identity.settings.refresh_token_ttl_s
            store.link(code.row.session_hash, family=family, expires=expires)
        return result

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing: the used code stays (hashed) until it is purged, so that a replay is recognized."""


class OpenIdProvider:
    """OpenID Connect on an identity service: installs the grant on its Authlib server, the registered clients,
    and what ties tokens to the dashboard session that gave them; runs authorization requests.

    Installed once per service (``identity.oauth.oidc_provider``); the console's client is registered here.
    """

    def __init__(self, identity: IdentityService, store: OidcStore) -> None:
        self.identity = identity
        self.store = store
        try:
            ensure_console_client(store)
            store.purge(time.time())
        except StoreError as exc:  # not fatal: the console's client is registered again when first asked for
            _LOGGER.warning("OpenID Connect: the console's client could not be registered yet: %s", exc)
        server = identity.oauth
        server.oidc_store = store
        server.oidc_provider = self
        server.register_grant(RoostCodeGrant, [S256Challenge(required=True), RoostOpenIDCode(identity, store)])
        server.more_clients = self.client
        server.family_check = self.family_check
        identity.sessions.on_end(self.session_ended)
        identity.sessions.on_token(lambda id_hash, jti, expires: store.link(id_hash, jti=jti, expires=expires))

    def client(self, client_id: str) -> OidcClient | None:
        """A registered client (the console's is registered again when missing)."""
        if not client_id or len(client_id) > 128:
            return None
        row = self.store.client(client_id)
        if row is None and client_id == CONSOLE_CLIENT_ID:
            ensure_console_client(self.store)
            row = self.store.client(client_id)
        return OidcClient.of(row) if row is not None else None

    def session_ended(self, id_hash: str) -> None:
        """A session ended (sign-out): revoke every token family and access token it gave."""
        families, jtis = self.store.linked(id_hash)
        if families or jtis:
            revoked = self.identity.revoke_families(families, jtis)
            _LOGGER.info(
                "sign-out: %d token famil(ies) and %d access token(s) of the session revoked", len(families), revoked
            )

    def family_check(self, family: str) -> str | None:
        """A family a session gave refreshes only while the session lives (a refresh counts as activity)."""
        session_hash = self.store.session_of_family(family)
        if session_hash is None:
            return None
        rec = self.identity.db.session(session_hash)
        now = time.time()
        if rec is None or rec.revoked is not None or now >= rec.expires:
            return "the sign-in session has ended (signed out or expired): sign in again"
        if now - rec.last_seen >= self.identity.sessions.idle_s:
            return "the sign-in session was idle too long: sign in again"
        self.identity.db.touch_session(session_hash, now)
        return None

    def request(self, req: FormRequest) -> RoostRequest:
        """Authlib's request over the parameters."""
        return RoostRequest(req)

    def validate(self, req: FormRequest, user: SignedIn | None = None) -> tuple[Any, RoostRequest]:
        """(the grant, the request) of a valid authorization request; OAuth2Error otherwise (its
        ``redirect_uri`` is set only once the client and its redirect URI are known good)."""
        request = self.request(req)
        grant = self.identity.oauth.get_consent_grant(request, end_user=user)
        return grant, request

    def authorize(self, req: FormRequest, user: SignedIn) -> tuple[int, Any, list[tuple[str, str]]]:
        """The authorization response for ``user``: a redirect with a code (or an error) to the client."""
        request = self.request(req)
        try:
            grant = self.identity.oauth.get_consent_grant(request)
        except OAuth2Error as error:
            return self.identity.oauth.handle_error_response(request, error)  # type: ignore[no-any-return]
        result: tuple[int, Any, list[tuple[str, str]]] = self.identity.oauth.create_authorization_response(
            request, grant_user=user, grant=grant
        )
        return result
