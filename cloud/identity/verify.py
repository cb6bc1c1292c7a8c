"""Access-token verification for the enforcement points (the broker's CONNECT, the API's bearer tokens).

    verifier = TokenVerifier(keys, audience="roost", issuers={"https://cloud.example"}, is_revoked=revoked)
    claims = verifier.verify(token)        # AccessClaims, or InvalidToken with .reason

Signature (ES256, by ``kid`` among the published keys; an unknown kid reloads the keys at most every few
seconds, so a key rotated in by another process is picked up), ``typ`` ``at+jwt`` (RFC 9068), expiry and
issued-at with a leeway for a Pi whose clock was wrong at boot, audience, issuer, then revocation by ``jti``.
joserfc does the JOSE work; nothing here parses or checks a signature by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import GuestProtocol, Key, KeySet

from cloud.identity.errors import InvalidToken

ALGORITHMS = ["ES256"]
MAX_TOKEN_BYTES = 8192


class VerificationKeys(Protocol):
    """Where a verifier finds the public keys: the in-process key ring, or a JWKS fetched from the cloud."""

    def public_key_set(self) -> KeySet:
        """The keys that verify now."""
        ...

    def reload(self) -> None:
        """Look again (a token named a kid not in the set)."""
        ...


class StaticKeys:
    """Keys from a JWKS document (a verifier in another process; ``reload`` calls ``fetch`` when given)."""

    def __init__(self, jwks: dict[str, Any], fetch: Callable[[], dict[str, Any]] | None = None) -> None:
        self._set = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        self._fetch = fetch

    def public_key_set(self) -> KeySet:
        """The imported keys."""
        return self._set

    def reload(self) -> None:
        """Fetch the JWKS again, when a fetcher was given."""
        if self._fetch is not None:
            self._set = KeySet.import_key_set(self._fetch())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says (RFC 9068 claims plus Roost's ``tenant`` and ``roles``)."""

    subject: str
    """``sub``: the gateway id, or the API client's id."""
    tenant: str
    client_id: str
    roles: tuple[str, ...]
    scope: tuple[str, ...]
    jti: str
    issuer: str
    expires: int
    issued_at: int
    claims: dict[str, Any]

    @property
    def is_gateway(self) -> bool:
        """Whether the token was issued to a gateway."""
        return "gateway" in self.roles


def claims_of(raw: dict[str, Any]) -> AccessClaims:
    """AccessClaims from the checked claim set; InvalidToken(malformed) when Roost's claims are missing."""
    tenant, roles, scope, client_id = (
        raw.get("tenant"),
        raw.get("roles", []),
        raw.get("scope", ""),
        raw.get("client_id"),
    )
    if (
        not isinstance(tenant, str)
        or not isinstance(client_id, str)
        or not isinstance(scope, str)
        or not isinstance(roles, list)
        or not all(isinstance(r, str) for r in roles)
    ):
        raise InvalidToken("malformed", "the token lacks Roost's claims (tenant, client_id, roles, scope)")
    return AccessClaims(
        subject=raw["sub"],
        tenant=tenant,
        client_id=client_id,
        roles=tuple(roles),
        scope=tuple(scope.split()),
        jti=raw["jti"],
        issuer=raw["iss"],
        expires=int(raw["exp"]),
        issued_at=int(raw["iat"]),
        claims=raw,
    )


class TokenVerifier:
    """Validates Roost access tokens; thread-safe, about 10k validations/s on one core (``bench/auth.py``)."""

    def __init__(
        self,
        keys: VerificationKeys,
        *,
        audience: str,
        issuers: Collection[str] | Callable[[], Collection[str]],
        leeway_s: int = 60,
        is_revoked: Callable[[str], bool] = lambda _jti: False,
        now: Callable[[], float] = time.time,
        reload_interval_s: float = 5.0,
    ) -> None:
        self._keys = keys
        self._audience = audience
        self._issuers = issuers
        self._leeway = leeway_s
        self._is_revoked = is_revoked
        self._now = now
        self._reload_interval = reload_interval_s
        self._last_reload = float("-inf")
        self._lock = threading.Lock()
        self._registry_for: frozenset[str] | None = None
        self._registry: jwt.JWTClaimsRegistry | None = None

    def _claims_registry(self) -> jwt.JWTClaimsRegistry:
        issuers = frozenset(self._issuers() if callable(self._issuers) else self._issuers)
        registry = self._registry
        if registry is None or issuers != self._registry_for:
            registry = jwt.JWTClaimsRegistry(
                now=lambda: int(self._now()),
                leeway=self._leeway,
                iss={"essential": True, "values": sorted(issuers)},
                aud={"essential": True, "value": self._audience},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                jti={"essential": True},
            )
            self._registry, self._registry_for = registry, issuers
        return registry

    def _key(self, obj: GuestProtocol) -> Key:
        kid = obj.headers().get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("malformed", "the token names no key (kid)")
        try:
            return self._keys.public_key_set().get_by_kid(kid)
        except InvalidKeyIdError:
            pass
        with self._lock:
            if time.monotonic() - self._last_reload >= self._reload_interval:
                self._last_reload = time.monotonic()
                self._keys.reload()
        try:
            return self._keys.public_key_set().get_by_kid(kid)
        except InvalidKeyIdError:
            raise InvalidToken("signature", "the token was signed by an unknown key") from None

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; InvalidToken (``.reason``) otherwise."""
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken("malformed", "not a compact JWT")
        try:
            decoded = jwt.decode(token, self._key, algorithms=ALGORITHMS)
        except InvalidToken:
            raise
        except BadSignatureError:
            raise InvalidToken("signature", "the token's signature does not verify") from None
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise InvalidToken("malformed", f"not a valid JWT: {type(exc).__name__}") from None
        if decoded.header.get("typ") != "at+jwt":
            raise InvalidToken("malformed", "not an access token (typ must be at+jwt)")
        try:
            self._claims_registry().validate(decoded.claims)
        except ExpiredTokenError:
            raise InvalidToken("expired", "the token has expired") from None
        except MissingClaimError as exc:
            raise InvalidToken("malformed", f"the token lacks {exc.description}") from None
        except InvalidClaimError as exc:
            reason = {"aud": "audience", "iss": "issuer"}.get(exc.claim, "malformed")
            raise InvalidToken(reason, f"the token's {exc.claim!r} claim is not valid") from None
        claims = claims_of(decoded.claims)
        if self._is_revoked(claims.jti):
            raise InvalidToken("revoked", "the token has been revoked")
        return claims
