"""Access tokens of the authorization server as MQTT passwords and API bearer tokens, in front of the allow-list.

    authenticator = TokenAuthenticator(identity.verifier, AllowListAuthorizer(config.auth), leeway_s=60)
    authorizer = PolicyAuthorizer(decision_point, authenticator)

A credential that looks like a JWT (three dot-separated parts) is verified (signature by the key ring,
expiry with leeway, audience, issuer, revocation). A valid token proves its subject: a gateway (``roles``
holds ``gateway``), an API client (``sub`` is its ``client_id``) or an operator (its role), in the token's
tenant. At CONNECT the username must be that subject, and a gateway's client id its gateway id. Anything
that is not a valid token goes to the allow-list (gateway passwords, observer tokens), which refuses what
it does not know either. Publish and subscribe are not decided here: the wrapped allow-list answers them
only when no PolicyAuthorizer is in front.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloud.authz import Authorizer, Principal
from cloud.identity.errors import InvalidToken
from cloud.identity.verify import AccessClaims, TokenVerifier
from cloud.policy.model import ROLES, Subject

if TYPE_CHECKING:
    from cloud.policy.model import RequestContext

_LOGGER = logging.getLogger(__name__)


def looks_like_jwt(credential: str | None) -> bool:
    """Three non-empty dot-separated parts: what our access tokens look like (a password may too)."""
    if not credential or credential.count(".") != 2:
        return False
    return all(credential.split("."))


def principal_of_claims(claims: AccessClaims) -> Principal:
    """The principal a verified access token proves; InvalidToken when its claims name no Roost subject."""
    role = next((r for r in claims.roles if r in ROLES), None)
    if claims.is_gateway:
        kind = "gateway"
    elif claims.subject == claims.client_id:
        kind = "client"
    else:
        kind = "operator"
    principal = Principal(
        kind,  # type: ignore[arg-type]
        claims.subject,
        claims.tenant,
        role=None if kind == "gateway" else role,
        scopes=frozenset(claims.scope),
        expires=float(claims.expires),
        token_id=claims.jti,
    )
    try:  # what the decision point would refuse to build: a malformed gateway id, an operator without a role
        Subject(principal.kind, principal.id, principal.tenant, principal.role, principal.scopes)
    except ValueError as exc:
        raise InvalidToken("malformed", f"the token names no valid subject: {exc}") from None
    return principal


class TokenAuthenticator:
    """Authorizer (authentication side): access tokens first, the wrapped allow-list for everything else."""

    def __init__(
        self,
        verifier: TokenVerifier,
        fallback: Authorizer,
        *,
        leeway_s: float = 0.0,
        is_revoked: Callable[[str], bool] = lambda _jti: False,
        now: Callable[[], float] = time.time,
        on_invalid: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self._verifier = verifier
        self._fallback = fallback
        self._leeway = leeway_s
        self._is_revoked = is_revoked
        self._now = now
        self._on_invalid = on_invalid

    @property
    def api_requires_token(self) -> bool:
        """As the allow-list says: the API stays open when no observer token is configured (tokens still count)."""
        return self._fallback.api_requires_token

    def _token(self, credential: str, what: str) -> Principal | None:
        try:
            return principal_of_claims(self._verifier.verify(credential))
        except InvalidToken as exc:
            self._on_invalid(exc.reason)
            _LOGGER.info("%s: access token refused (%s)", what, exc.reason)
            return None

    def authenticate(self, client_id: str, username: str | None, password: str | None) -> Principal | None:
        """A valid access token whose subject is the username; else the allow-list's answer."""
        if password and looks_like_jwt(password):
            principal = self._token(password, "CONNECT")
            if principal is not None:
                if username != principal.id:
                    _LOGGER.warning("CONNECT: username %r is not the token's subject", (username or "")[:40])
                    return None
                if principal.kind == "gateway" and client_id != principal.id:
                    _LOGGER.warning("CONNECT: a gateway's client id must be its gateway id, not %r", client_id[:40])
                    return None
                return principal
        return self._fallback.authenticate(client_id, username, password)

    def authenticate_bearer(self, token: str) -> Principal | None:
        """A valid access token's principal; else the allow-list's (observer tokens)."""
        if looks_like_jwt(token):
            principal = self._token(token, "API")
            if principal is not None:
                return principal
        return self._fallback.authenticate_bearer(token)

    def still_valid(self, principal: Principal) -> bool:
        """Whether the token that proved ``principal`` is neither expired (past the leeway) nor revoked."""
        if principal.token_id is None:
            return True
        if principal.expires is not None and self._now() > principal.expires + self._leeway:
            return False
        return not self._is_revoked(principal.token_id)

    def may_publish(self, principal: Principal, topic: str, *, context: RequestContext | None = None) -> bool:
        """The allow-list's answer (a PolicyAuthorizer in front decides instead)."""
        return self._fallback.may_publish(principal, topic, context=context)

    def may_subscribe(self, principal: Principal, topic_filter: str, *, context: RequestContext | None = None) -> bool:
        """The allow-list's answer (a PolicyAuthorizer in front decides instead)."""
        return self._fallback.may_subscribe(principal, topic_filter, context=context)
