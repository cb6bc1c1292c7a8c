"""RabbitMQ's HTTP auth backend answered by the cloud's Authorizer: the scale-out broker's enforcement point.

RabbitMQ's ``rabbitmq_auth_backend_http`` (with ``rabbitmq_auth_backend_cache`` in front) asks four questions,
as form-encoded POSTs (or GET query strings), and reads ``allow`` / ``deny`` as the plain-text answer:

    POST /rabbitmq/auth/user      username, password, client_id (MQTT)      who is it?
    POST /rabbitmq/auth/vhost     username, vhost, ip, client_id           may it use this virtual host?
    POST /rabbitmq/auth/resource  username, vhost, resource, name, permission, client_id
    POST /rabbitmq/auth/topic     username, vhost, name (exchange), permission, routing_key, variable_map.client_id

``user`` asks the same :class:`cloud.authz.Authorizer` the embedded broker's CONNECT does (access tokens: signature,
expiry, audience, issuer, revocation; then the allow-list) and remembers the principal per (username, client id):
the later questions carry no password. ``topic`` maps the routing key back to MQTT topics and asks the same
``may_publish`` (write) / ``may_subscribe`` (read) as the embedded broker's topic plugin, so the policy decision
point decides and audits. ``resource`` allows what RabbitMQ's MQTT plugin needs and nothing else: read and write
on the configured exchange, and configure, read and write on the connection's own ``mqtt-subscription-*`` queues.

RabbitMQ cannot send a secret with these requests, so they are answered only from ``allowed_networks``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from cloud.authz import Authorizer, Principal
from cloud.config import RabbitMQSection
from cloud.policy.audit import AuditLog
from cloud.policy.model import RequestContext
from cloud.stats import Stats

_LOGGER = logging.getLogger(__name__)

PREFIX = "/rabbitmq/auth"
MAX_FORM_BYTES = 16 * 1024
MAX_CONNECTIONS = 100_000
"""Principals remembered per (username, client id), at most; the least recently asked about go first."""
_WARNED_MAX = 1024
# RabbitMQ's MQTT plugin names a client's subscription queues mqtt-subscription-{client id}qos{0,1}.
SUBSCRIPTION_QUEUES = ("mqtt-subscription-{client_id}qos0", "mqtt-subscription-{client_id}qos1")

Answer = Literal["allow", "deny"]
Endpoint = Literal["user", "vhost", "resource", "topic"]
ENDPOINTS: tuple[Endpoint, ...] = ("user", "vhost", "resource", "topic")


class _Asked(NamedTuple):
    endpoint: str
    username: str
    client_id: str


@dataclass(frozen=True, slots=True)
class Connection:
    """What the ``user`` answer proved about one (username, client id): its principal and, once known, its address."""

    principal: Principal
    source_ip: str | None = None


def routing_key_topic(routing_key: str) -> str:
    """The MQTT topic (or filter) a routing key of RabbitMQ's MQTT plugin stands for.

    The plugin turns '/' into '.' and '+' into '*' and leaves a '.' inside a level alone, so the way back
    is exact only when no id holds a '.'. Tenant ids and kinds never do, and gateways whose id does are
    refused at ``user``; so every key a connected gateway publishes or subscribes to reads back as the
    topic it routes to. A '.' in a batch or request id becomes a level of the tail, which decides nothing.
    """
    return "/".join("+" if word == "*" else word for word in routing_key.split("."))


class RabbitMQAuth:
    """Answers RabbitMQ's four questions from the cloud's Authorizer; counts every answer, audits every deny."""

    def __init__(
        self,
        settings: RabbitMQSection,
        authorizer: Authorizer,
        stats: Stats,
        *,
        audit: AuditLog | None = None,
        still_valid: Callable[[Principal], bool] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self._authorizer = authorizer
        self._stats = stats
        self._audit = audit
        self._still_valid = still_valid
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks]
        self._connections: OrderedDict[tuple[str, str], Connection] = OrderedDict()
        self._max_connections = max_connections
        self._warned: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self.counts: Counter[tuple[str, str]] = Counter()
        """Answers given, by (endpoint, "allow"/"deny")."""
        self.refused_sources = 0
        """Requests refused (403) because they came from outside ``allowed_networks``."""

    # -- what the other parts of the cloud ask -------------------------------------------------------------------

    def source_allowed(self, host: str | None) -> bool:
        """Whether a request from ``host`` may be answered (it is inside ``allowed_networks``)."""
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def connections(self) -> list[tuple[str, str, Principal]]:
        """The (username, client id, principal) of every connection the ``user`` answer admitted and still known."""
        return [(user, client, conn.principal) for (user, client), conn in self._connections.items()]

    def forget(self, username: str, client_id: str) -> None:
        """Forget a connection (it was closed): its next question is denied until it proves itself again."""
        self._connections.pop((username, client_id), None)

    def counters(self) -> dict[str, int]:
        """The answer counts as ``{"user.allow": n, ...}``, every endpoint and answer listed."""
        out = {f"{e}.{a}": self.counts[(e, a)] for e in ENDPOINTS for a in ("allow", "deny")}
        out["refused_sources"] = self.refused_sources
        return out

    # -- the four questions --------------------------------------------------------------------------------------

    def answer(self, endpoint: Endpoint, form: dict[str, str]) -> Answer:
        """The answer to one question; counted (and, when it is a deny, audited and logged)."""
        handler = {"user": self._user, "vhost": self._vhost, "resource": self._resource, "topic": self._topic}[endpoint]
        answer = handler(form)
        self.counts[(endpoint, answer)] += 1
        return answer

    def _user(self, form: dict[str, str]) -> Answer:
        username = form.get("username", "")
        client_id = form.get("client_id", "")
        if not client_id:
            # Only MQTT connections name a client id: AMQP, STOMP and management logins are not Roost's.
            return self._deny(
                _Asked("user", username, client_id), "connect", "", "only MQTT connections are admitted (no client id)"
            )
        principal = self._authorizer.authenticate(client_id, username or None, form.get("password") or None)
        if principal is None:
            self._stats.denied_connects += 1
            return self._deny(_Asked("user", username, client_id), "connect", "", "credentials refused")
        if principal.kind == "gateway" and "." in principal.id:
            # The MQTT plugin turns '/' into '.': this gateway's topics would reach subscribers under other names.
            self._stats.denied_connects += 1
            return self._deny(
                _Asked("user", username, client_id),
                "connect",
                "",
                "a gateway id with '.' cannot use RabbitMQ's MQTT plugin",
            )
        key = (username, client_id)
        self._connections[key] = Connection(principal)
        self._connections.move_to_end(key)
        if len(self._connections) > self._max_connections:
            self._connections.popitem(last=False)
        _LOGGER.debug(
            "RabbitMQ user: client %r as %s %r (tenant %s)",
            client_id[:40],
            principal.kind,
            principal.id,
            principal.tenant,
        )
        return "allow"

    def _known(self, form: dict[str, str], client_id: str) -> Connection | None:
        """The connection's principal, when ``user`` admitted it and its token is still valid."""
        key = (form.get("username", ""), client_id)
        conn = self._connections.get(key)
        if conn is None:
            return None
        self._connections.move_to_end(key)
        if self._still_valid is not None and not self._still_valid(conn.principal):
            return None
        return conn

    def _vhost(self, form: dict[str, str]) -> Answer:
        username, client_id, vhost = form.get("username", ""), form.get("client_id", ""), form.get("vhost", "")
        if vhost != self.settings.vhost:
            return self._deny(
                _Asked("vhost", username, client_id), "use_vhost", vhost, "not the configured virtual host"
            )
        conn = self._known(form, client_id)
        if conn is None:
            return self._deny(
                _Asked("vhost", username, client_id), "use_vhost", vhost, "unknown connection or token invalid"
            )
        source_ip = _ip(form.get("ip"))
        if source_ip != conn.source_ip:
            self._connections[(username, client_id)] = Connection(conn.principal, source_ip)
        return "allow"

    def _resource(self, form: dict[str, str]) -> Answer:
        username, client_id = form.get("username", ""), form.get("client_id", "")
        kind, name, permission = form.get("resource", ""), form.get("name", ""), form.get("permission", "")
        what = f"{kind}:{name}"
        if form.get("vhost", "") != self.settings.vhost:
            return self._deny(
                _Asked("resource", username, client_id), permission, what, "not the configured virtual host"
            )
        if self._known(form, client_id) is None:
            return self._deny(
                _Asked("resource", username, client_id), permission, what, "unknown connection or token invalid"
            )
        if kind == "exchange" and name == self.settings.exchange and permission in ("read", "write"):
            return "allow"
        own_queues = {q.format(client_id=client_id) for q in SUBSCRIPTION_QUEUES}
        if kind == "queue" and name in own_queues and permission in ("configure", "read", "write"):
            return "allow"
        return self._deny(_Asked("resource", username, client_id), permission, what, "not a resource MQTT needs")

    def _topic(self, form: dict[str, str]) -> Answer:
        username = form.get("username", "")
        client_id = form.get("variable_map.client_id") or form.get("client_id", "")
        permission, routing_key = form.get("permission", ""), form.get("routing_key", "")
        action = {"read": "subscribe", "write": "publish"}.get(permission, permission or "?")
        if form.get("vhost", "") != self.settings.vhost or form.get("name", "") != self.settings.exchange:
            return self._deny(
                _Asked("topic", username, client_id), action, routing_key, "not the configured vhost and exchange"
            )
        if permission not in ("read", "write"):
            return self._deny(_Asked("topic", username, client_id), action, routing_key, "unknown permission")
        conn = self._known(form, client_id)
        if conn is None:
            return self._deny(
                _Asked("topic", username, client_id), action, routing_key, "unknown connection or token invalid"
            )
        if self._topic_allowed(conn, routing_key, subscribe=permission == "read"):
            return "allow"
        if permission == "read":
            self._stats.denied_subscribes += 1
        else:
            self._stats.denied_publishes += 1
        # The decision point audited the deny already; only warn (once per client and key) here.
        self._warn(
            ("topic", action, client_id, routing_key),
            "%s denied: client %r, routing key %r",
            action.upper(),
            client_id[:40],
            routing_key[:200],
        )
        return "deny"

    def _topic_allowed(self, conn: Connection, routing_key: str, *, subscribe: bool) -> bool:
        """The Authorizer's answer for the topic the routing key stands for (the decision point audits a deny)."""
        context = RequestContext(source_ip=conn.source_ip, transport="unknown")
        topic = routing_key_topic(routing_key)
        if subscribe:
            return self._authorizer.may_subscribe(conn.principal, topic, context=context)
        return self._authorizer.may_publish(conn.principal, topic, context=context)

    # -- denials -------------------------------------------------------------------------------------------------

    def _deny(self, asked: _Asked, action: str, target: str, why: str) -> Answer:
        endpoint, username, client_id = asked
        if self._audit is not None:
            self._audit.record(
                "deny",
                who=f"rabbitmq:{username[:128]}",
                what={"action": action, "resource": target[:200], "client_id": client_id[:128]},
                why=why,
                transport="rabbitmq",
            )
        self._warn(
            (endpoint, client_id, username, target),
            "RabbitMQ %s denied: user %r, client %r, %s %r: %s",
            endpoint,
            username[:40],
            client_id[:40],
            action,
            target[:200],
            why,
        )
        return "deny"

    def _warn(self, key: tuple[str, ...], message: str, *args: Any) -> None:
        """WARNING the first time, DEBUG for repeats (the counters keep the total); bounded memory."""
        if key in self._warned:
            _LOGGER.debug(message + " (again)", *args)
            return
        self._warned[key] = None
        if len(self._warned) > _WARNED_MAX:
            self._warned.popitem(last=False)
        _LOGGER.warning(message + " (repeats are counted, logged at DEBUG)", *args)


def _ip(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:
        return None


async def _params(request: Request) -> dict[str, str] | None:
    """The question's parameters: the query string (GET) or the urlencoded body (POST); None if unreadable."""
    pairs: Iterable[tuple[str, str]]
    if request.method == "GET":
        pairs = request.query_params.multi_items()
    else:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return None
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)  # a repeated parameter: the first one counts, as RabbitMQ sends each once
    return form


def rabbitmq_auth_router(auth: RabbitMQAuth) -> APIRouter:
    """The four endpoints (GET and POST) under /rabbitmq/auth, plus ``GET /rabbitmq/auth/counters``."""
    router = APIRouter(prefix=PREFIX)
    warned_sources: set[str] = set()

    def refused(request: Request) -> PlainTextResponse | None:
        host = request.client.host if request.client else None
        if auth.source_allowed(host):
            return None
        auth.refused_sources += 1
        if host not in warned_sources and len(warned_sources) < _WARNED_MAX:
            warned_sources.add(host or "")
            _LOGGER.warning(
                "RabbitMQ auth request from %s refused: not in rabbitmq.allowed_networks (%s)",
                host,
                ", ".join(auth.settings.allowed_networks),
            )
        return PlainTextResponse("deny", status_code=403)

    def endpoint(name: Endpoint) -> Callable[[Request], Any]:
        async def handle(request: Request) -> PlainTextResponse:
            denied = refused(request)
            if denied is not None:
                return denied
            form = await _params(request)
            if form is None:
                auth.counts[(name, "deny")] += 1
                return PlainTextResponse("deny", status_code=400)
            return PlainTextResponse(auth.answer(name, form))

        handle.__name__ = f"rabbitmq_auth_{name}"
        handle.__doc__ = f"RabbitMQ's {name} question: 'allow' or 'deny' as plain text."
        return handle

    for name in ENDPOINTS:
        router.add_api_route(f"/{name}", endpoint(name), methods=["GET", "POST"], include_in_schema=False)

    @router.get("/counters", include_in_schema=False)
    async def counters(request: Request) -> Any:
        """The answers given since start, by endpoint and answer."""
        denied = refused(request)
        if denied is not None:
            return denied
        return JSONResponse({"counters": auth.counters(), "connections": len(auth.connections()), "at": time.time()})

    return router
