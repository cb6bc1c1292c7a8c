"""Per request: which plan the caller falls under (the policies' ``use_plan`` decides), the throttle, the usage.

:meth:`ApiGate.check` runs inside the API's authentication dependency (cloud/api.py ``_caller``), once the
caller is known: an application is throttled under its own plan, an API client made outside the portal
under the client plan, an operator or observer under the operator plan, a request without credential under
the anonymous plan (per address); gateways are not throttled here (their traffic is MQTT). When the
policies do not permit the caller its plan, the request falls under the default plan instead. A refused
request is ``ApiError(429)`` with ``Retry-After`` and the RateLimit fields; an allowed one gets the
RateLimit fields added by :class:`UsageMiddleware`, which also counts every ``/api/`` request by caller
and route template once it is answered.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.apimgmt.plans import Plan, plan_resource
from cloud.apimgmt.ratelimit import RateLimiter
from cloud.apimgmt.usage import UsageRecorder
from cloud.authz import Principal
from cloud.errors import ApiError
from cloud.policy.authorizer import subject_of
from cloud.policy.decision import DecisionPoint
from cloud.policy.model import RequestContext
from wire.topics import DEFAULT_TENANT

_LOGGER = logging.getLogger(__name__)

STATE_KEY = "roost_api_gate"
_DECISION_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class GateInfo:
    """What the gate found for one request: whose it is (for usage), its plan, and the headers to add."""

    tenant: str
    client: str
    plan: str | None
    headers: tuple[tuple[bytes, bytes], ...] = ()


class ApiGate:
    """Plan resolution and throttling; the plans, applications and limits are read at every request."""

    def __init__(
        self,
        *,
        plan_of: Callable[[str, str], Plan | None],
        application_plan: Callable[[str], str | None],
        decision_point: DecisionPoint | None,
        limiter: RateLimiter,
        throttle: bool,
        default_plan: str,
        operator_plan: str,
        client_plan: str,
        anonymous_plan: str,
    ) -> None:
        self._plan_of = plan_of
        self._application_plan = application_plan
        self._decisions = decision_point
        self.limiter = limiter
        self.throttle = throttle
        self._default = default_plan
        self._operator = operator_plan
        self._client = client_plan
        self._anonymous = anonymous_plan
        self._allowed: dict[tuple[Any, ...], bool] = {}
        self.refused = 0

    def plan_for(self, principal: Principal, source_ip: str | None = None) -> Plan | None:
        """The plan ``principal``'s requests fall under now (None: not throttled)."""
        if principal.kind == "gateway":
            return None
        wanted = self._operator
        if principal.kind == "client":
            wanted = self._application_plan(principal.id) or self._client
        plan = self._plan_of(principal.tenant, wanted)
        if plan is not None and self.permits(principal, plan, source_ip):
            return plan
        return self._plan_of(principal.tenant, self._default)

    def permits(self, principal: Principal, plan: Plan, source_ip: str | None = None) -> bool:
        """Whether the policies let ``principal`` be throttled under ``plan`` (cached per policy version, minute)."""
        points = self._decisions
        if points is None:
            return True
        key = (
            principal,
            principal.tenant,
            plan.name,
            plan.unlimited,
            points.version,
            int(time.time() // 60),
            source_ip,
        )
        found = self._allowed.get(key)
        if found is None:
            try:
                ip = str(ipaddress.ip_address(source_ip)) if source_ip else None
            except ValueError:
                ip = None
            context = RequestContext(source_ip=ip, transport="http")
            decision = points.decide(subject_of(principal), "use_plan", plan_resource(principal.tenant, plan), context)
            found = decision.allowed
            if len(self._allowed) >= _DECISION_CACHE_MAX:
                self._allowed.clear()
            self._allowed[key] = found
        return found

    def check(self, request: Request, principal: Principal | None) -> None:
        """Throttle one request (once, however often the dependency runs); ApiError(429) past its plan."""
        state = request.scope.setdefault("state", {})
        if STATE_KEY in state:
            return
        host = request.client.host if request.client else None
        if principal is None:
            tenant, client, key = DEFAULT_TENANT, "anonymous", f"ip:{host}"
            plan = self._plan_of(DEFAULT_TENANT, self._anonymous)
        else:
            tenant, client, key = principal.tenant, principal.id, f"{principal.kind}:{principal.tenant}/{principal.id}"
            plan = self.plan_for(principal, host)
        if plan is None or not self.throttle:
            state[STATE_KEY] = GateInfo(tenant, client, plan.name if plan else None)
            return
        verdict = self.limiter.take(key, plan)
        fields = {"RateLimit-Policy": verdict.policy_field, "RateLimit": verdict.limit_field}
        if not verdict.allowed:
            state[STATE_KEY] = GateInfo(tenant, client, plan.name)
            self.refused += 1
            raise ApiError(
                429,
                f"{client} has used up plan {plan.name!r} ({plan.burst} requests at once, {plan.rate_per_s:g} a "
                f"second): retry in {verdict.retry_after_s} s",
                problem="too-many-requests",
                extensions={"plan": plan.name, "retry_after_s": verdict.retry_after_s},
                headers={**fields, "Retry-After": str(verdict.retry_after_s)},
            )
        headers = tuple((k.lower().encode(), v.encode()) for k, v in fields.items() if v)
        state[STATE_KEY] = GateInfo(tenant, client, plan.name, headers)


class UsageMiddleware:
    """ASGI middleware: adds the gate's RateLimit fields to an answer and counts every ``/api/`` request."""

    def __init__(self, app: ASGIApp, *, recorder: Callable[[], UsageRecorder | None]) -> None:
        self.app = app
        self._recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recorder = self._recorder()
        if scope["type"] != "http" or recorder is None or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def send_with_fields(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                info = state.get(STATE_KEY)
                if isinstance(info, GateInfo) and info.headers:
                    message = {**message, "headers": [*message.get("headers", ()), *info.headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_fields)
        finally:
            info = state.get(STATE_KEY)
            if isinstance(info, GateInfo):
                route = scope.get("route")
                template = getattr(route, "path", None) or "(unknown)"
                recorder.record(
                    info.tenant, info.client, f"{scope['method']} {template}", status, time.perf_counter() - start
                )
