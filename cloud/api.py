"""The HTTP API (FastAPI): readings, gateways, stats, policies, health, the discovery document and MQTT over WebSockets.

Bearer tokens: the authorization server's access tokens (API clients' client_credentials tokens, operators'
tokens) and the allow-list's observer tokens; or an operator's dashboard session cookie (``/auth/signin``; an
unsafe method also needs the session's CSRF token in ``X-Roost-CSRF``). Each request is scoped to a tenant
(the caller's own unless ``tenant`` names another) and the policy decision point decides the action there
(``read_readings``, ``read_gateways``, ``manage_policies``); a denial is a 403 whose JSON error names the
deciding policies.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud import api_models as models
from cloud import rollups_api
from cloud.authz import Authorizer, Principal
from cloud.broker.base import MessageBroker
from cloud.config import CloudConfig
from cloud.errors import ApiError
from cloud.identity.service import IdentityService
from cloud.openapi_doc import APP_PROBLEMS, install_openapi, operation_ids, problem_responses
from cloud.paging import CursorQuery, limit_query, page_body, position_page
from cloud.policy.authorizer import PolicyAuthorizer, subject_of
from cloud.policy.errors import PolicyInvalid
from cloud.policy.model import RequestContext
from cloud.problems import install_problem_handlers
from cloud.rollups import Resolution
from cloud.stats import Stats
from cloud.store import ReadingQuery, ReadingRow
from cloud.store_api import ReadingStore
from wire.discovery import WELL_KNOWN_PATH, Discovery

_LOGGER = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LIMIT = 10_000
_SPACED_OFFSET = re.compile(r" (\d\d:\d\d)$")  # a '+' in a query string arrives as a space
_FIRST_S, _LAST_S = -62_135_596_800, 253_402_300_800  # 0001-01-01 and 10000-01-01 in epoch seconds
_INT64 = 2**63 - 1  # what SQLite stores: a time or key beyond it is refused, not a 500


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the API reads from."""

    config: CloudConfig
    store: ReadingStore
    stats: Stats
    authorizer: Authorizer
    broker: MessageBroker
    serve_websocket: Callable[[WebSocket], Awaitable[None]] | None = None
    tcp_port: Callable[[], int | None] = lambda: None
    ingest_error: Callable[[], str | None] = lambda: None
    identity: IdentityService | None = None
    policy: PolicyAuthorizer | None = None
    """The decision point's authorizer; None: callers are held to their own tenant only, no policy API."""


class PolicyBody(BaseModel):
    """A new policy set for ``PUT /api/v1/policies``."""

    text: str = Field(min_length=1, max_length=1_000_000, description="The whole Cedar policy set")
    comment: str = Field(default="", max_length=1000, description="Why (kept in the history)")


def rfc3339(ts_us: int) -> str:
    """``2026-11-25T20:01:02.123456Z`` for a time in integer µs since the epoch."""
    return (EPOCH + timedelta(microseconds=ts_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(parameter: str, text: str) -> int:
    """RFC 3339 (with an offset) or epoch seconds, as integer µs; ApiError(400) naming ``parameter``."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ApiError(400, f"{parameter} must be a finite number of seconds", parameter=parameter)
        if not _FIRST_S <= seconds < _LAST_S:
            raise ApiError(400, f"{parameter} must be a time between the years 1 and 9999", parameter=parameter)
        return round(seconds * 1_000_000)
    try:
        dt = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text.strip()))
    except ValueError:
        raise ApiError(
            400, f"{parameter} must be RFC 3339 (2026-11-25T20:01:02Z) or epoch seconds", parameter=parameter
        ) from None
    if dt.tzinfo is None:
        raise ApiError(400, f"{parameter} needs a UTC offset ('Z' or '+01:00')", parameter=parameter)
    return (dt - EPOCH) // timedelta(microseconds=1)


def encode_key(key: list[Any]) -> str:
    """An opaque cursor holding a row's ordering key (``[ts_us, str, ...]``)."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_key(text: str, length: int) -> tuple[Any, ...]:
    """The ordering key a cursor holds (an int, then ``length - 1`` strings); ApiError(400) when it is not ours."""
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != length
        or isinstance(key[0], bool)
        or not isinstance(key[0], int)
        or not -_INT64 <= key[0] <= _INT64
        or not all(isinstance(k, str) for k in key[1:])
    ):
        raise ApiError(400, "cursor is not valid: pass the next_cursor of the previous page", parameter="cursor")
    return tuple(key)


def encode_cursor(row: ReadingRow) -> str:
    """The opaque cursor after ``row``."""
    return encode_key([row.ts_us, row.tenant, row.gateway, row.sensor, row.metric])


def decode_cursor(text: str) -> tuple[int, str, str, str, str]:
    """The reading key a cursor holds; ApiError(400) when it is not one of ours."""
    return decode_key(text, 5)


async def _caller(request: Request) -> Principal | None:
    """The principal of the request's bearer token; None when the API is open and none is sent; ApiError(401).

    The managed API's gate (``app.state.api_gate``, cloud/apimgmt) then throttles it by its plan (ApiError(429)).
    """
    principal = await _authenticate(request)
    gate: Callable[[Request, Principal | None], None] | None = getattr(request.app.state, "api_gate", None)
    if gate is not None:
        gate(request, principal)
    return principal


async def _authenticate(request: Request) -> Principal | None:
    authorizer: Authorizer = request.app.state.ctx.authorizer
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        identity: IdentityService | None = request.app.state.ctx.identity
        if identity is not None:  # an operator's dashboard session (cookie, and CSRF token for unsafe methods)
            from cloud.identity.signin import session_caller

            operator = await session_caller(identity, request)
            if operator is not None:
                return operator
        if not authorizer.api_requires_token:
            return None
        raise ApiError(401, "this API needs 'Authorization: Bearer <token>'")
    found = authorizer.authenticate_bearer(token.strip())
    if found is None:
        raise ApiError(401, "the bearer token is not valid (unknown, forged, expired, revoked or for another audience)")
    return found


def _http_context(request: Request) -> RequestContext:
    host = request.client.host if request.client else None
    try:
        source_ip = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        source_ip = None
    return RequestContext(source_ip=source_ip, transport="http")


def _allow(request: Request, caller: Principal | None, action: str, tenant: str | None) -> str | None:
    """The tenant the request is about, once the decision point allowed ``action`` there; ApiError(403) if not.

    ``tenant`` None: the caller's own. An open API (no caller) is not asked about.
    """
    if caller is None:
        return tenant
    target = tenant or caller.tenant
    policy: PolicyAuthorizer | None = request.app.state.ctx.policy
    if policy is None:
        if target != caller.tenant:
            raise ApiError(
                403, f"{caller.kind} {caller.id!r} is of tenant {caller.tenant!r}, not {target!r}", parameter="tenant"
            )
        return target
    decision = policy.decision_point.decide_api(subject_of(caller), action, target, _http_context(request))
    if not decision.allowed:
        why = f"denied by {', '.join(decision.reasons)}" if decision.reasons else "no policy permits it"
        if decision.errors and not decision.reasons:
            why += f" ({decision.errors[0]})"
        raise ApiError(
            403,
            f"{caller.kind} {caller.id!r} of tenant {caller.tenant!r} may not {action} in tenant {target!r}: {why}",
            parameter="tenant" if target != caller.tenant else None,
            problem="policy-denied",
            extensions={"action": action, "tenant": target},
        )
    return target


Caller = Annotated[Principal | None, Depends(_caller)]


def create_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI application over ``ctx``."""
    app = FastAPI(
        title="Roost cloud",
        version="1",
        description="The cloud companion's HTTP API: conventions in docs/api.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        responses=APP_PROBLEMS,  # every error is an RFC 9457 problem (cloud/problems.py)
        generate_unique_id_function=operation_ids(),
    )
    app.state.ctx = ctx
    install_problem_handlers(app)
    install_openapi(app)

    @app.get("/api/v1/readings", response_model=models.ReadingsPage)
    async def readings(
        request: Request,
        caller: Caller,
        *,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
        gateway: str | None = None,
        sensor: str | None = None,
        metric: str | None = None,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, inclusive")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, exclusive")] = None,
        limit: Annotated[int, limit_query(1000, MAX_LIMIT)] = 1000,
        cursor: CursorQuery = None,
        resolution: Annotated[Resolution, Query(description="raw readings (default) or rollups: docs/api.md")] = "raw",
        points: Annotated[int, Query(ge=1, le=100_000, description="For resolution=auto: buckets wanted")] = 300,
    ) -> JSONResponse:
        """Readings ordered by time then key, one page at a time (``next_cursor``, alias ``next``, is the cursor
        of the next page); with ``resolution`` 1m, 1h or auto, one sensor's metric in time buckets."""
        query = ReadingQuery(
            tenant=_allow(request, caller, "read_readings", tenant),
            gateway=gateway,
            sensor=sensor,
            metric=metric,
            since_us=parse_time("since", since) if since is not None else None,
            until_us=parse_time("until", until) if until is not None else None,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
        )
        chosen = rollups_api.resolve(resolution, points, query.since_us, query.until_us)
        if chosen != "raw":
            buckets, last = await rollups_api.page(
                ctx.store,
                resolution=chosen,
                tenant=query.tenant,
                gateway=gateway,
                sensor=sensor,
                metric=metric,
                since_us=query.since_us,
                until_us=query.until_us,
                after=query.after,
                limit=limit,
                rfc3339=rfc3339,
            )
            following = encode_key(last) if last is not None else None
            return JSONResponse({"items": buckets, "resolution": chosen, "next_cursor": following, "next": following})
        rows = await ctx.store.readings(query)
        page = rows[:limit]
        items = [
            {
                "gateway": r.gateway,
                "sensor": r.sensor,
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "ts": rfc3339(r.ts_us),
            }
            for r in page
        ]
        after = encode_cursor(page[-1]) if len(rows) > limit else None
        # Sent as built (response_model documents it): validating and re-encoding 10,000 items took most of
        # a page's time, and the console draws a month of readings from these pages (bench/console.py).
        return JSONResponse({"items": items, "next_cursor": after, "next": after})

    @app.get("/api/v1/gateways", response_model=models.GatewaysPage)
    async def gateways(
        request: Request,
        caller: Caller,
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
        limit: Annotated[int, limit_query(1000, MAX_LIMIT)] = 1000,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """Gateways with presence, last contact, latest health report and ingest counters, by id."""
        everyone = await ctx.store.gateways(_allow(request, caller, "read_gateways", tenant))
        rows, after = position_page(everyone, cursor, limit)
        items = [
            {
                "id": g.id,
                "tenant": g.tenant,
                "online": g.online,
                "last_seen": rfc3339(round(g.last_seen * 1_000_000)) if g.last_seen is not None else None,
                "health": g.health,
                "ingest": g.counters,
            }
            for g in rows
        ]
        return page_body(items, after)

    @app.get("/api/v1/stats", response_model=models.Counters)
    async def stats(request: Request, caller: Caller) -> dict[str, Any]:
        """The cloud's counters since start (whoever may read its tenant's gateways)."""
        _allow(request, caller, "read_gateways", None)
        return {"counters": ctx.stats.as_dict()}

    def policy_admin(request: Request, caller: Principal | None) -> tuple[PolicyAuthorizer, Principal]:
        if ctx.policy is None:
            raise ApiError(404, "this cloud has no policy decision point")
        if caller is None:
            raise ApiError(401, "the policy API needs 'Authorization: Bearer <token>'")
        _allow(request, caller, "manage_policies", None)
        return ctx.policy, caller

    @app.get("/api/v1/policies", response_model=models.PolicySet, responses=problem_responses(404))
    async def policies(request: Request, caller: Caller) -> dict[str, Any]:
        """The active policy set: its version, whole text, and each policy's @id, effect and text.

        Needs ``manage_policies`` in the caller's tenant (admins and owners by the default policies).
        """
        policy, _ = policy_admin(request, caller)
        points = policy.decision_point
        items = [{"id": p.id, "effect": p.effect, "text": p.text} for p in points.list()]
        return {"version": points.version, "text": points.text(), "items": items}

    @app.put("/api/v1/policies", response_model=models.PolicyReplaced, responses=problem_responses(404))
    async def replace_policies(body: PolicyBody, request: Request, caller: Caller) -> JSONResponse:
        """Replace the whole policy set; the next broker and API decision follows it (no restart).

        There is one policy set for all tenants, so replacing it needs ``manage_policies`` *and* the role
        ``owner`` (an admin of one tenant must not change what every tenant may do). An invalid set is a 400
        whose ``problems`` name each policy (by its @id, or its position) and what is wrong with it.
        """
        policy, who = policy_admin(request, caller)
        if who.role != "owner":
            raise ApiError(403, f"{who.kind} {who.id!r} is not an owner: the policy set is shared by all tenants")
        by = f"{who.kind}:{who.tenant}/{who.id}"
        try:
            version = policy.decision_point.replace(body.text, by=by, comment=body.comment)
        except PolicyInvalid as exc:
            problems = [{"policy": p.policy, "problem": p.problem} for p in exc.problems]
            raise ApiError(
                400, str(exc), parameter="text", problem="policy-invalid", extensions={"problems": problems}
            ) from None
        _LOGGER.info("policy set replaced by %s: version %d", by, version.version)
        return JSONResponse({"version": version.version, "sha256": version.digest, "by": by})

    @app.get("/api/v1/policies/history", response_model=models.PolicyHistoryPage, responses=problem_responses(404))
    async def policy_history(
        request: Request,
        caller: Caller,
        limit: Annotated[int, limit_query(100, 1000)] = 100,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """Every version of the policy set, oldest first: number, who, when, why, SHA-256 and text."""
        policy, _ = policy_admin(request, caller)
        versions, after = position_page(policy.decision_point.history(), cursor, limit)
        items = [
            {
                "version": v.version,
                "by": v.by,
                "at": rfc3339(round(v.at * 1_000_000)),
                "comment": v.comment,
                "sha256": v.digest,
                "text": v.text,
            }
            for v in versions
        ]
        return page_body(items, after)

    @app.get(
        "/healthz",
        response_model=models.Health,
        responses={503: {"model": models.Health, "description": "The store or the broker is failing"}},
    )
    async def healthz() -> JSONResponse:
        """Whether the store and the broker work (503 when not), with the counters.

        An API worker (``server.role = "api"``) whose RabbitMQ nodes are all unreachable still answers every
        read: it says ``degraded`` with 200, so a load balancer keeps it (commands fail, saying why, meanwhile).
        """
        store_ok = await ctx.store.ping() and ctx.ingest_error() is None
        broker_ok = ctx.broker.healthy
        ok = store_ok and broker_ok
        degraded = store_ok and not broker_ok and ctx.config.server.role == "api"
        body = {
            "status": "ok" if ok else "degraded" if degraded else "failing",
            "store": "ok" if store_ok else (ctx.ingest_error() or "failing"),
            "broker": "ok" if broker_ok else "failing",
            "counters": ctx.stats.as_dict(),
        }
        return JSONResponse(body, status_code=200 if ok or degraded else 503)

    @app.get(WELL_KNOWN_PATH, response_model=models.DiscoveryDocument, response_model_exclude_none=True)
    async def discovery(request: Request) -> dict[str, Any]:
        """The discovery document: where MQTT and the API are, and what the ingest reads."""
        base = ctx.config.server.public_url.rstrip("/")
        if not base:
            host = request.headers.get("host") or request.url.netloc
            base = f"{request.url.scheme}://{host}"
        scheme, _, rest = base.partition("://")
        doc: Discovery = {
            "mqtt_ws_url": f"{'wss' if scheme == 'https' else 'ws'}://{rest}/mqtt",
            "api_url": f"{base}/api/v1",
            "ack": "cloud",
            "senml_encodings": ["cbor", "json"],
            "senml_compression": ["zlib"],
            "max_pack_bytes": ctx.config.ingest.max_pack_bytes,
        }
        tcp_port = ctx.tcp_port()
        if tcp_port is not None:
            hostname = urlsplit(base).hostname or "127.0.0.1"
            doc["mqtt_tcp_url"] = f"mqtt://{f'[{hostname}]' if ':' in hostname else hostname}:{tcp_port}"
        broker = ctx.config.broker
        ws = [u for u in broker.public_mqtt_urls if u.startswith(("ws://", "wss://"))]
        tcp = [u for u in broker.public_mqtt_urls if u.startswith(("mqtt://", "mqtts://"))]
        if ws:  # the broker nodes' own listeners replace this server's /mqtt
            doc["mqtt_ws_url"], doc["mqtt_ws_urls"] = ws[0], ws
        if tcp:
            doc["mqtt_tcp_url"], doc["mqtt_tcp_urls"] = tcp[0], tcp
        if broker.kind == "rabbitmq":  # a QoS 1 subscription cannot move between RabbitMQ 3.10 nodes
            doc["subscribe_qos"] = 0
        if ctx.identity is not None:
            doc["issuer"] = ctx.identity.issuer_for(base)
        return dict(doc)  # typed as wire's Discovery; FastAPI cannot read a typing.TypedDict on 3.11

    if ctx.identity is not None:
        from cloud.identity.routes import identity_router
        from cloud.identity.signin import signin_router

        app.include_router(identity_router(ctx.identity, authorizer=ctx.authorizer, policy=ctx.policy))
        app.include_router(signin_router(ctx.identity))
        from cloud.identity.oidc.routes import oidc_router

        app.include_router(oidc_router(ctx.identity, ctx.config.identity.oidc))

    @app.websocket("/mqtt")
    async def mqtt(ws: WebSocket) -> None:
        """MQTT over WebSockets (subprotocol ``mqtt``) into the embedded broker."""
        if ctx.serve_websocket is None:
            await ws.close(code=1011)
            return
        await ctx.serve_websocket(ws)

    return app
