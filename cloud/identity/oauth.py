"""Authlib's OAuth2 authorization server with Roost's clients, grants and endpoints.

Grants at the token endpoint: device code (RFC 8628), refresh token (rotated on every use; a replayed one
revokes its whole family), client credentials (API clients) and Roost's claim token (``urn:roost:claim-token``,
unattended enrollment). Endpoints: device authorization (RFC 8628), revocation (RFC 7009), introspection
(RFC 7662). Access tokens are RFC 9068 JWTs signed by the key ring.

Authlib is synchronous: the router calls into this module on a worker thread, with the form already read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    BaseGrant,
    ClientMixin,
    OAuth2Request,
    TokenEndpointMixin,
)
from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
    AccessDeniedError,
    InsecureTransportError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload  # type: ignore[import-untyped]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc8628 import (  # type: ignore[import-untyped]
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
)

from cloud.identity import hashing
from cloud.identity.db import (
    BLOCKED_MESSAGE,
    AccessRecord,
    ClientRecord,
    DeviceRecord,
    GatewayRecord,
    RefreshRecord,
    SubjectKind,
)
from cloud.identity.errors import Conflict, InvalidToken
from wire import keyproof

if TYPE_CHECKING:
    from cloud.identity.service import IdentityService

_LOGGER = logging.getLogger(__name__)

GATEWAY_CLIENT_ID = "roost-gateway"
CLAIM_GRANT_TYPE = "urn:roost:claim-token"
GATEWAY_SCOPE = "gateway"
ROTATE_KEY_GRANT_TYPE = keyproof.GRANT_TYPE
GRANT_TYPES = [DEVICE_CODE_GRANT_TYPE, "refresh_token", "client_credentials", CLAIM_GRANT_TYPE, ROTATE_KEY_GRANT_TYPE]
SLOW_DOWN_S = 5  # RFC 8628 §3.5: each slow_down adds 5 seconds to the polling interval


# -- requests --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormRequest:
    """An HTTP request as the router hands it over: the form already parsed, the issuer already known."""

    method: str
    url: str
    headers: Mapping[str, str]
    form: dict[str, str]
    issuer: str
    insecure_ok: bool = False


class RoostRequest(OAuth2Request):  # type: ignore[misc]
    """Authlib's request over a FormRequest."""

    def __init__(self, req: FormRequest) -> None:
        # Authlib refuses plain http beyond loopback; ``allow_insecure_http`` (behind a TLS proxy) lifts that.
        super().__init__(req.method, "https://loopback/" if req.insecure_ok else req.url, headers=req.headers)
        self.uri = req.url
        self.payload = BasicOAuth2Payload(req.form)
        self.issuer = req.issuer
        self._form = req.form

    @property
    def args(self) -> dict[str, str]:
        """Query arguments: none are read."""
        return {}

    @property
    def form(self) -> dict[str, str]:
        """The form fields."""
        return self._form


# -- clients and subjects --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client(ClientMixin):  # type: ignore[misc]
    """A client: the public gateway client, or a confidential API client of one tenant."""

    client_id: str
    tenant: str | None = None
    role: str = "gateway"
    scopes: tuple[str, ...] = (GATEWAY_SCOPE,)
    secret_hash: str | None = None

    @property
    def public(self) -> bool:
        """Whether the client has no secret (the gateways' client)."""
        return self.secret_hash is None

    @classmethod
    def of(cls, rec: ClientRecord) -> Client:
        """The client of an API-client record."""
        return cls(rec.client_id, rec.tenant, rec.role, rec.scopes, rec.secret_hash)

    def get_client_id(self) -> str:
        """The client id."""
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """No redirect URIs: no browser-based grants."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client holds (all of its scopes when none are requested)."""
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """No redirect URIs."""
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        """Whether the secret is the client's."""
        return self.secret_hash is not None and hashing.same_digest(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Public clients authenticate with nothing; API clients with their secret (basic or post)."""
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        """No authorization endpoint."""
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        """Gateways: device code, claim token, refresh token; API clients: client credentials."""
        if self.public:
            return grant_type in (DEVICE_CODE_GRANT_TYPE, CLAIM_GRANT_TYPE, ROTATE_KEY_GRANT_TYPE, "refresh_token")
        return grant_type == "client_credentials"


GATEWAY_CLIENT = Client(GATEWAY_CLIENT_ID)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a token is for (Authlib's "user"): a gateway, or an operator; ``family`` of the refresh tokens."""

    kind: SubjectKind
    id: str
    tenant: str
    roles: tuple[str, ...]
    family: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get_user_id(self) -> str:
        """The subject id (``sub``)."""
        return self.id


# -- token issuing ---------------------------------------------------------------------------------------------


class _Issuing:
    """Grants issue through the identity service (it needs the request's issuer, which Authlib does not pass)."""

    request: RoostRequest
    server: RoostAuthorizationServer

    def generate_token(
        self,
        user: Subject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The token response for ``user`` (None: the client itself) from the service."""
        return self.server.identity.issue_tokens(
            issuer=self.request.issuer,
            client=self.request.client,
            subject=user,
            scope=scope,
            include_refresh_token=include_refresh_token,
        )


@dataclass(frozen=True, slots=True)
class _Device:
    """A device request as Authlib's device credential."""

    rec: DeviceRecord

    def get_client_id(self) -> str:
        return self.rec.client_id

    def get_scope(self) -> str:
        return self.rec.scope or GATEWAY_SCOPE

    def get_user_code(self) -> str:
        return self.rec.user_code

    def is_expired(self) -> bool:
        return self.rec.expires <= time.time()


class RoostDeviceCodeGrant(_Issuing, DeviceCodeGrant):  # type: ignore[misc]
    """RFC 8628 §3.4: the gateway polls with its device code until an operator approves or denies it."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def query_device_credential(self, device_code: str) -> _Device:
        """The device request, or invalid_grant when unknown or already exchanged for tokens."""
        rec = self.server.identity.db.device(hashing.digest(device_code))
        if rec is None or rec.status == "used":
            raise InvalidGrantError("the device code is not valid (unknown, or used already)")
        return _Device(rec)

    def query_user_grant(self, user_code: str) -> tuple[Subject | None, bool] | None:
        """(the gateway, True) once approved, (None, False) when denied, None while pending."""
        rec = self.server.identity.db.device_by_user_code(user_code)
        if rec is None or rec.status == "pending":
            return None
        if rec.status == "denied":
            return None, False
        assert rec.tenant is not None and rec.gateway_id is not None
        return Subject("gateway", rec.gateway_id, rec.tenant, ("gateway",)), True

    def should_slow_down(self, credential: _Device) -> bool:
        """Whether the gateway polled sooner than its interval (which then grows by 5 s)."""
        return self.server.identity.db.poll_device(credential.rec.code_hash, time.time(), SLOW_DOWN_S)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Exchange the approved device code (once) for tokens."""
        if not self.server.identity.db.use_device(self.request.credential.rec.code_hash):
            raise InvalidGrantError("the device code was used already")
        result: tuple[int, dict[str, Any], list[tuple[str, str]]] = super().create_token_response()
        return result


@dataclass(frozen=True, slots=True)
class _Refresh:
    """A refresh-token record as Authlib's token."""

    rec: RefreshRecord

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.rec.client_id

    def get_scope(self) -> str:
        return self.rec.scope


WIPE_DESCRIPTION = "revoked: wipe"
"""What a gateway revoked as stolen is told when it presents one of its refresh tokens: it wipes itself."""


def _tell_stolen(identity: IdentityService, kind: str, subject: str) -> None:
    """invalid_grant "revoked: wipe" for a refresh token of a gateway revoked as stolen (only its holder sees it)."""
    if kind == "gateway" and identity.db.stolen(subject):
        raise InvalidGrantError(WIPE_DESCRIPTION)


class RoostRefreshTokenGrant(_Issuing, RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation: each use gives a new refresh token; using an old one again revokes the family."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none", "client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> _Refresh | None:
        """The live refresh token; a used one is a replay: its whole family is revoked."""
        rec = self.server.identity.db.refresh(hashing.digest(refresh_token))
        if rec is not None:
            _tell_stolen(self.server.identity, rec.kind, rec.subject)
        if rec is None or rec.revoked is not None or rec.expires <= time.time():
            return None
        if rec.used is not None:
            self.server.identity.reuse_detected(rec)
            return None
        return _Refresh(rec)

    def authenticate_user(self, refresh_token: _Refresh) -> Subject:
        """The subject of the family; invalid_grant when the gateway was revoked meanwhile."""
        rec = refresh_token.rec
        if rec.kind == "gateway":
            gw = self.server.identity.db.gateway(rec.subject)
            if gw is None or gw.revoked is not None:
                raise InvalidGrantError("the gateway's enrollment was revoked: enroll it again")
        if rec.kind == "operator":  # the operator as it is now: disabled ends the family, a new role applies
            op = self.server.identity.db.operator(rec.subject)
            if op is None or op.disabled is not None or op.tenant != rec.tenant:
                raise InvalidGrantError("the operator was disabled or removed: sign in again")
            check = self.server.family_check
            problem = check(rec.family) if check is not None else None
            if problem:
                raise InvalidGrantError(problem)
            return Subject("operator", op.username, op.tenant, (op.role,), family=rec.family)
        return Subject(rec.kind, rec.subject, rec.tenant, rec.roles, family=rec.family)

    def issue_token(self, user: Subject, refresh_token: _Refresh) -> dict[str, Any]:
        """Use up the presented token (atomically: of two racing uses one is a replay), then issue."""
        if not self.server.identity.db.use_refresh(refresh_token.rec.token_hash, time.time()):
            self.server.identity.reuse_detected(refresh_token.rec)
            raise InvalidGrantError("the refresh token was used already")
        token: dict[str, Any] = super().issue_token(user, refresh_token)
        return token

    def revoke_old_credential(self, refresh_token: _Refresh) -> None:
        """Nothing: issue_token used it up before issuing."""


class RoostClientCredentialsGrant(_Issuing, ClientCredentialsGrant):  # type: ignore[misc]
    """API clients get an access token for their own tenant, scopes and role (no refresh token)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        """Only scopes the client holds."""
        scope = self.request.payload.scope
        if scope and not set(scope.split()) <= set(self.request.client.scopes):
            raise InvalidScopeError("the client does not hold every requested scope")


class ClaimTokenGrant(_Issuing, BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """Unattended enrollment: a claim token from the boot partition, the gateway's hardware id and public key."""

    GRANT_TYPE = CLAIM_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def validate_token_request(self) -> None:
        """claim_token and hardware_id are required; the client is the public gateway client."""
        form = self.request.form
        for name in ("claim_token", "hardware_id"):
            if not form.get(name):
                raise InvalidRequestError(f"missing {name!r}")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"the client may not use {self.GRANT_TYPE!r}")
        self.request.client = client

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Use the claim token once, enroll the gateway in its tenant, issue tokens."""
        form = self.request.form
        identity = self.server.identity
        token_hash = hashing.digest(form["claim_token"])
        claim = identity.db.use_claim(token_hash, time.time())
        if claim is None:
            raise InvalidGrantError("the claim token is not valid (unknown, expired, revoked or used up)")
        try:
            gw = identity.enroll_gateway(
                tenant=claim.tenant,
                gateway_id=form.get("gateway_id") or None,
                hardware_id=form["hardware_id"],
                public_key=form.get("public_key") or None,
                method=f"claim:{claim.id}",
            )
        except (Conflict, ValueError) as exc:
            identity.db.unuse_claim(token_hash)
            raise InvalidGrantError(str(exc)) from None
        subject = Subject("gateway", gw.id, gw.tenant, ("gateway",))
        token = self.generate_token(user=subject, scope=GATEWAY_SCOPE, include_refresh_token=True)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class RotateKeyGrant(_Issuing, BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """A gateway's new key pair (``urn:roost:rotate-key``): its refresh token, the new public key and a proof.

    The proof is the new private key's signature over :func:`wire.keyproof.rotation_message`. On success the
    new public key is recorded, every credential the gateway held is revoked (its MQTT connections close), and
    a new token family starts. The refresh token is used up like a refresh: a replay revokes its family.
    """

    GRANT_TYPE = ROTATE_KEY_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def validate_token_request(self) -> None:
        """refresh_token, public_key and proof are required; the client is the public gateway client."""
        form = self.request.form
        for name in ("refresh_token", "public_key", "proof"):
            if not form.get(name):
                raise InvalidRequestError(f"missing {name!r}")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"the client may not use {self.GRANT_TYPE!r}")
        self.request.client = client

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Check the refresh token and the proof, record the key, revoke the old credentials, issue."""
        form = self.request.form
        identity = self.server.identity
        rec = identity.db.refresh(hashing.digest(form["refresh_token"]))
        if rec is not None:
            _tell_stolen(identity, rec.kind, rec.subject)
        if rec is None or rec.revoked is not None or rec.expires <= time.time() or rec.kind != "gateway":
            raise InvalidGrantError("the refresh token is not valid (unknown, expired or revoked)")
        if rec.used is not None:
            identity.reuse_detected(rec)
            raise InvalidGrantError("the refresh token was used already")
        gw = identity.db.gateway(rec.subject)
        if gw is None or gw.revoked is not None:
            raise InvalidGrantError("the gateway's enrollment was revoked: enroll it again")
        public_key = form["public_key"]
        message = keyproof.rotation_message(gw.id, self.request.issuer, form["refresh_token"])
        problem = _check_proof(public_key, form["proof"], message)
        if problem:
            raise InvalidRequestError(f"the key proof does not hold: {problem}")
        if not identity.db.use_refresh(rec.token_hash, time.time()):
            identity.reuse_detected(rec)
            raise InvalidGrantError("the refresh token was used already")
        identity.rotate_gateway_key(gw.id, public_key)
        subject = Subject("gateway", gw.id, gw.tenant, ("gateway",))
        token = self.generate_token(user=subject, scope=GATEWAY_SCOPE, include_refresh_token=True)
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _check_proof(public_key_pem: str, proof: str, message: bytes) -> str:
    """'' when ``proof`` is the EC P-256 key's signature over ``message``, else what is wrong."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if len(public_key_pem) > 4096 or len(proof) > 512:
        return "the public key or the proof is too long"
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
    except (ValueError, TypeError) as exc:
        return f"public_key is not a PEM public key ({exc})"
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return "public_key must be an EC P-256 key"
    try:
        signature = base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4))
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return "the signature is not the new key's over the rotation message"
    return ""


# -- endpoints -------------------------------------------------------------------------------------------------


class RoostDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """RFC 8628 §3.1-3.2 for the gateways' public client; records the hardware id and public key."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def create_endpoint_response(self, request: RoostRequest) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """device_code, user_code (XXXX-XXXX), verification URIs, expires_in, interval."""
        identity: IdentityService = self.server.identity
        client = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("the client may not use the device flow")
        scope = request.payload.scope or GATEWAY_SCOPE
        if scope != GATEWAY_SCOPE:
            raise InvalidScopeError(f"the device flow grants the scope {GATEWAY_SCOPE!r} only")
        settings = identity.settings
        hardware_id = _field(request.form, "hardware_id", 256)
        if hardware_id and identity.db.hardware_blocked(hardware_id):
            raise AccessDeniedError(BLOCKED_MESSAGE)
        now = time.time()
        device_code = hashing.new_token()
        for _attempt in range(5):
            user_code = hashing.new_user_code()
            try:
                identity.db.add_device(
                    DeviceRecord(
                        code_hash=hashing.digest(device_code),
                        user_code=user_code,
                        client_id=client.client_id,
                        scope=scope,
                        hardware_id=hardware_id,
                        public_key=_field(request.form, "public_key", 4096),
                        created=now,
                        expires=now + settings.device_code_ttl_s,
                        interval_s=settings.device_poll_interval_s,
                        last_poll=None,
                        status="pending",
                        tenant=None,
                        gateway_id=None,
                    )
                )
                break
            except Conflict:
                continue
        else:  # pragma: no cover - 20^8 codes
            raise InvalidRequestError("could not allocate a user code; try again")
        verification_uri = f"{request.issuer}/enroll"
        data = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": settings.device_code_ttl_s,
            "interval": settings.device_poll_interval_s,
        }
        return 200, data, [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def _field(form: Mapping[str, str], name: str, limit: int) -> str | None:
    value = form.get(name) or None
    if value is not None and len(value) > limit:
        raise InvalidRequestError(f"{name!r} is longer than {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class TokenView:
    """A presented token (access or refresh) as revocation and introspection see it."""

    type: Literal["access_token", "refresh_token"]
    client_id: str
    subject: str
    tenant: str
    scope: str
    expires: float
    revoked: bool
    access: AccessRecord | None = None
    refresh: RefreshRecord | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


def _query_token(identity: IdentityService, token: str, hint: str | None) -> TokenView | None:
    if hint != "refresh_token" and token.count(".") == 2:
        try:
            claims = identity.verifier.verify(token)
        except InvalidToken:
            return None
        rec = identity.db.access(claims.jti)
        return TokenView(
            "access_token",
            claims.client_id,
            claims.subject,
            claims.tenant,
            " ".join(claims.scope),
            claims.expires,
            False,
            access=rec
            or AccessRecord(claims.jti, None, claims.client_id, claims.subject, claims.tenant, claims.expires),
            claims=claims.claims,
        )
    ref = identity.db.refresh(hashing.digest(token))
    if ref is None:
        return None
    return TokenView(
        "refresh_token",
        ref.client_id,
        ref.subject,
        ref.tenant,
        ref.scope,
        ref.expires,
        ref.used is not None or ref.revoked is not None,
        refresh=ref,
    )


class RoostRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a client revokes its own token; a refresh token takes its whole family with it."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        """The token, access (a valid JWT) or refresh (by hash)."""
        return _query_token(self.server.identity, token_string, token_type_hint)

    def revoke_token(self, token: TokenView, request: RoostRequest) -> None:
        """Revoke the refresh token's family, or the access token's jti."""
        self.server.identity.revoke(token)


class RoostIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 for API clients: tokens of their own tenant only (any other is reported inactive)."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenView | None:
        """The token, access (a valid JWT) or refresh (by hash)."""
        return _query_token(self.server.identity, token_string, token_type_hint)

    def check_permission(self, token: TokenView, client: Client, request: RoostRequest) -> bool:
        """Only a confidential client of the token's tenant."""
        return not client.public and client.tenant == token.tenant

    def introspect_token(self, token: TokenView) -> dict[str, Any]:
        """RFC 7662 §2.2 members, plus Roost's tenant and roles for access tokens."""
        body: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer" if token.type == "access_token" else "refresh_token",
            "client_id": token.client_id,
            "sub": token.subject,
            "scope": token.scope,
            "exp": int(token.expires),
            "tenant": token.tenant,
        }
        if token.claims:
            for key in ("iss", "aud", "iat", "jti", "roles"):
                body[key] = token.claims[key]
        return body


# -- the server ------------------------------------------------------------------------------------------------


class RoostAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server over the identity service; answers are (status, body, headers)."""

    def __init__(self, identity: IdentityService) -> None:
        super().__init__(scopes_supported=None)
        self.identity = identity
        self.more_clients: Callable[[str], ClientMixin | None] | None = None
        """Clients registered elsewhere (OpenID Connect's, :mod:`cloud.identity.oidc`), asked first."""
        self.family_check: Callable[[str], str | None] | None = None
        """Why an operator's refresh-token family may refresh no more (its sign-in session ended), or None."""
        self.register_grant(RoostDeviceCodeGrant)
        self.register_grant(RoostRefreshTokenGrant)
        self.register_grant(RoostClientCredentialsGrant)
        self.register_grant(ClaimTokenGrant)
        self.register_grant(RotateKeyGrant)
        self.register_endpoint(RoostDeviceAuthorizationEndpoint)
        self.register_endpoint(RoostRevocationEndpoint)
        self.register_endpoint(RoostIntrospectionEndpoint)

    def query_client(self, client_id: str) -> Any:
        """The gateways' public client, a registered OpenID client (see ``more_clients``), or an API client."""
        if client_id == GATEWAY_CLIENT_ID:
            return GATEWAY_CLIENT
        if self.more_clients is not None:
            found = self.more_clients(client_id)
            if found is not None:
                return found
        rec = self.identity.db.client(client_id)
        if rec is None or rec.disabled is not None:
            return None
        return Client.of(rec)

    def save_token(self, token: dict[str, Any], request: RoostRequest) -> None:
        """Nothing: the service stores what it issues as it issues it."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    def create_oauth2_request(self, request: FormRequest | RoostRequest) -> RoostRequest:
        """Authlib's request over the router's FormRequest."""
        return request if isinstance(request, RoostRequest) else RoostRequest(request)

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        """The answer as (status, JSON body, headers) for the router."""
        return status, body, list(headers)

    def token(self, req: FormRequest) -> tuple[int, Any, list[tuple[str, str]]]:
        """``POST /oauth/token``."""
        try:
            result: tuple[int, Any, list[tuple[str, str]]] = self.create_token_response(req)
        except InsecureTransportError as error:
            return self.handle_error_response(None, error)  # type: ignore[no-any-return]
        return result

    def endpoint(self, name: str, req: FormRequest) -> tuple[int, Any, list[tuple[str, str]]]:
        """``device_authorization``, ``revocation`` or ``introspection``."""
        try:
            result: tuple[int, Any, list[tuple[str, str]]] = self.create_endpoint_response(name, req)
        except InsecureTransportError as error:
            return self.handle_error_response(None, error)  # type: ignore[no-any-return]
        return result


def new_gateway_id() -> str:
    """A gateway id for hardware without a usable serial."""
    return f"gw-{uuid.uuid4().hex[:16]}"


__all__ = [
    "CLAIM_GRANT_TYPE",
    "DEVICE_CODE_GRANT_TYPE",
    "GATEWAY_CLIENT_ID",
    "GRANT_TYPES",
    "Client",
    "FormRequest",
    "GatewayRecord",
    "RoostAuthorizationServer",
    "Subject",
    "TokenView",
]
