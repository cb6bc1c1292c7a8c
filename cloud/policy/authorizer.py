"""``PolicyAuthorizer``: cloud.authz's Authorizer seam answered by the policy decision point.

Authentication stays with the wrapped authorizer (today the allow-list, later the token validator);
every publish, subscribe and API action is decided by the DecisionPoint's policies.
"""

from __future__ import annotations

from cloud.authz import Authorizer, Principal
from cloud.policy.decision import DecisionPoint
from cloud.policy.model import RequestContext, Subject


def subject_of(principal: Principal) -> Subject:
    """The policy subject of an authenticated principal (its ``role`` and ``scopes`` when it carries them)."""
    role = getattr(principal, "role", None)
    scopes = getattr(principal, "scopes", None) or ()
    return Subject(principal.kind, principal.id, principal.tenant, role, frozenset(scopes))


class PolicyAuthorizer:
    """Authenticates through ``authenticator``; authorizes by asking ``decision_point``."""

    def __init__(self, decision_point: DecisionPoint, authenticator: Authorizer, *, transport: str = "mqtt-ws") -> None:
        self._decisions = decision_point
        self._authenticator = authenticator
        self._context = RequestContext(transport=transport)

    @property
    def decision_point(self) -> DecisionPoint:
        """The decision point asked."""
        return self._decisions

    @property
    def api_requires_token(self) -> bool:
        """As the wrapped authorizer says."""
        return self._authenticator.api_requires_token

    def authenticate(self, client_id: str, username: str | None, password: str | None) -> Principal | None:
        """The wrapped authorizer's answer."""
        return self._authenticator.authenticate(client_id, username, password)

    def authenticate_bearer(self, token: str) -> Principal | None:
        """The wrapped authorizer's answer."""
        return self._authenticator.authenticate_bearer(token)

    def may_publish(self, principal: Principal, topic: str, *, context: RequestContext | None = None) -> bool:
        """Whether the policies let ``principal`` publish on ``topic``."""
        return self._decisions.decide_publish(subject_of(principal), topic, context or self._context).allowed

    def may_subscribe(self, principal: Principal, topic_filter: str, *, context: RequestContext | None = None) -> bool:
        """Whether the policies let ``principal`` subscribe to ``topic_filter``."""
        return self._decisions.decide_subscribe(subject_of(principal), topic_filter, context or self._context).allowed

    def allowed_api(
        self, principal: Principal, action: str, tenant: str, *, context: RequestContext | None = None
    ) -> bool:
        """Whether the policies let ``principal`` do the API ``action`` (read_readings, ...) in ``tenant``."""
        ctx = context or RequestContext(transport="http")
        return self._decisions.decide_api(subject_of(principal), action, tenant, ctx).allowed
