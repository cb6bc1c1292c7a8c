"""The one authorization seam: every MQTT CONNECT, SUBSCRIBE and PUBLISH, and every API request, asks an Authorizer.

The allow-list from the config file (:class:`AllowListAuthorizer`) authenticates gateway passwords and observer
tokens; :class:`cloud.tokenauth.TokenAuthenticator` adds the authorization server's access tokens in front of
it, and :class:`cloud.policy.authorizer.PolicyAuthorizer` answers every publish, subscribe and API action from
the policy decision point. ``context`` (when, from where, over which transport) is what the broker and the API
know of a request; the allow-list ignores it.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from cloud.config import AuthSection
from wire import topics
from wire.errors import PayloadError
from wire.names import check_gateway

if TYPE_CHECKING:
    from cloud.policy.model import RequestContext

_LOGGER = logging.getLogger(__name__)

PrincipalKind = Literal["gateway", "observer", "operator", "client"]

# What a gateway may publish under roost/{tenant}/{its id}/: kind -> the last levels allowed (None: any).
_GATEWAY_PUBLISH: dict[str, set[str | None] | None] = {
    "telemetry": None,
    "events": None,
    "health": {None},
    "status": {None},
    "state": {"reported"},
    "cmd-result": None,
    "token": {None},
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end: a gateway (``id`` is its gateway id), an operator, an API client or an observer.

    ``role`` (operators, clients) and ``scopes`` (clients) come from an access token; ``expires`` (Unix
    seconds) and ``token_id`` (its jti) say which token proved it, and do not take part in equality: the
    same gateway reconnecting with a refreshed token is the same principal.
    """

    kind: PrincipalKind
    id: str
    tenant: str
    role: str | None = None
    scopes: frozenset[str] = frozenset()
    expires: float | None = field(default=None, compare=False)
    token_id: str | None = field(default=None, compare=False)


class Authorizer(Protocol):
    """The policy decision point the broker's plugins and the API ask."""

    @property
    def api_requires_token(self) -> bool:
        """Whether the HTTP API wants a bearer token."""
        ...

    def authenticate(self, client_id: str, username: str | None, password: str | None) -> Principal | None:
        """The principal an MQTT CONNECT proves, or None to refuse it."""
        ...

    def authenticate_bearer(self, token: str) -> Principal | None:
        """The principal an API bearer token proves, or None."""
        ...

    def may_publish(self, principal: Principal, topic: str, *, context: RequestContext | None = None) -> bool:
        """Whether ``principal`` may publish on ``topic`` (``context``: the request's environment, when known)."""
        ...

    def may_subscribe(self, principal: Principal, topic_filter: str, *, context: RequestContext | None = None) -> bool:
        """Whether ``principal`` may subscribe to ``topic_filter``."""
        ...


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AllowListAuthorizer:
    """Gateways and observer tokens from the config file's ``[auth]`` section."""

    def __init__(self, auth: AuthSection) -> None:
        self._gateways = {gw.id: gw for gw in auth.gateways}
        self._allow_any = auth.allow_any_gateway
        self._observers = [(obs.secret(), obs.tenant, obs.name) for obs in auth.observers]
        self._require_token = auth.require_token

    @property
    def api_requires_token(self) -> bool:
        """True when ``require_token`` is set or any observer token is configured."""
        return self._require_token or bool(self._observers)

    def _observer(self, token: str) -> Principal | None:
        found: Principal | None = None
        for secret, tenant, name in self._observers:  # compare with every token: no early exit on a match
            if _equal(token, secret) and found is None:
                found = Principal("observer", name, tenant)
        return found

    def authenticate(self, client_id: str, username: str | None, password: str | None) -> Principal | None:
        """Observers by token (any username); gateways by username = client id = an allowed gateway id."""
        if password:
            observer = self._observer(password)
            if observer is not None:
                return observer
        if not username or username != client_id:
            return None
        try:
            check_gateway(username)
        except ValueError:
            return None
        entry = self._gateways.get(username)
        if entry is not None:
            if entry.password and not _equal(password or "", entry.password):
                return None
            return Principal("gateway", entry.id, entry.tenant)
        if self._allow_any:
            return Principal("gateway", username, topics.DEFAULT_TENANT)
        return None

    def authenticate_bearer(self, token: str) -> Principal | None:
        """An observer token as an API bearer token."""
        return self._observer(token) if token else None

    def may_publish(self, principal: Principal, topic: str, *, context: RequestContext | None = None) -> bool:
        """Gateways publish their own telemetry, events, health, status, state/reported, cmd-result, token."""
        if principal.kind != "gateway":
            return False
        try:
            parsed = topics.parse(topic)
        except PayloadError:
            return False
        if parsed.tenant != principal.tenant or parsed.gateway != principal.id:
            return False
        if parsed.kind not in _GATEWAY_PUBLISH:
            return False
        tails = _GATEWAY_PUBLISH[parsed.kind]
        return tails is None or parsed.tail in tails

    def may_subscribe(self, principal: Principal, topic_filter: str, *, context: RequestContext | None = None) -> bool:
        """Observers: their tenant's topics; gateways: their own ack, cmd/#, state/desired, token-result."""
        levels = topic_filter.split("/")
        if len(levels) < 3 or levels[0] != topics.ROOT or levels[1] != principal.tenant:
            return False
        if principal.kind == "observer":
            return True
        if levels[2] != principal.id:
            return False
        rest = levels[3:]
        if rest in (["ack"], ["state", "desired"], ["token-result"]):
            return True
        return len(rest) == 2 and rest[0] == "cmd"
