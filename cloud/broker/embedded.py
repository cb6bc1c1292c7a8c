"""The embedded MQTT broker: amqtt 0.12 with the cloud's own listeners, plugins and a CONNECT gate.

Connections come from the HTTP server's ``/mqtt`` WebSocket route and, optionally, a plain TCP listener; both
are amqtt "external" listeners. Before a connection reaches amqtt, a gate reads its CONNECT and asks the
Authorizer: amqtt itself deletes (clean session) or takes over an existing session of the same client id
before it authenticates, so without the gate an anonymous CONNECT could knock a gateway offline.

The gate hands what it decided (principal, request context) to the auth plugin, so a token is verified once
per CONNECT. Connections opened by an access token are checked every ``check_interval_s`` with
``session_check``: one whose token expired or was revoked is closed.

A broker that follows a decision point (:meth:`EmbeddedBroker.follow_policy`) asks it again about every
existing subscription when the policy set is replaced, and removes (audits, counts) those now denied: the
client stays connected and keeps its other subscriptions, but receives nothing more on the removed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amqtt.adapters import BufferReader, WriterAdapter
from amqtt.mqtt.connect import ConnectPacket
from starlette.websockets import WebSocket

from cloud.authz import Authorizer, Principal
from cloud.broker import plugins
from cloud.broker.adapters import (
    BufferedReader,
    StreamReader,
    StreamWriter,
    WebSocketReader,
    WebSocketWriter,
    read_first_packet,
)
from cloud.broker.base import BrokerEvent, Presence, Received
from cloud.broker.fanout import IndexedBroker
from cloud.errors import BrokerError
from cloud.policy.model import RequestContext
from cloud.stats import Stats
from cloud.tokenauth import looks_like_jwt

if TYPE_CHECKING:
    from cloud.policy.audit import AuditLog
    from cloud.policy.decision import DecisionPoint, PolicyVersion

_LOGGER = logging.getLogger(__name__)

MQTT_311 = 4
# CONNACK return codes (MQTT 3.1.1, 3.2.2.3)
IDENTIFIER_REJECTED = 0x02
BAD_USERNAME_PASSWORD = 0x04
NOT_AUTHORIZED = 0x05
WS_SUBPROTOCOLS = ("mqtt", "mqttv3.1")
TRANSPORTS = {"default": "mqtt-ws", "tcp": "mqtt-tcp"}
_STOP = object()


@dataclass(frozen=True, slots=True)
class RemovedSubscription:
    """A subscription the broker removed because the policies no longer allow it."""

    client_id: str
    principal: Principal | None
    topic_filter: str


def request_context(writer: WriterAdapter, listener: str) -> RequestContext:
    """The policy context of a connection: its peer address (when it is an IP address) and transport."""
    peer = writer.get_peer_info()
    address = peer[0] if peer else None
    try:
        source_ip = str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        source_ip = None
    return RequestContext(source_ip=source_ip, transport=TRANSPORTS.get(listener, "unknown"))


class EmbeddedBroker:
    """amqtt in this process; implements :class:`cloud.broker.base.MessageBroker`."""

    def __init__(
        self,
        authorizer: Authorizer,
        stats: Stats,
        *,
        tcp_listen: tuple[str, int] | None = None,
        connect_timeout_s: float = 10.0,
        queue_max: int = 10_000,
        session_check: Callable[[Principal], bool] | None = None,
        check_interval_s: float = 1.0,
    ) -> None:
        self._authorizer = authorizer
        self._stats = stats
        self._tcp_listen = tcp_listen
        self._connect_timeout_s = connect_timeout_s
        self._queue: asyncio.Queue[BrokerEvent | object] = asyncio.Queue(maxsize=queue_max + 1)
        self._queue_max = queue_max
        self._key = f"broker-{uuid.uuid4().hex}"
        self._broker: Any = None
        self._tcp_server: asyncio.Server | None = None
        self._running = False
        self._live: dict[str, tuple[Principal, int]] = {}
        self._writers: set[WriterAdapter] = set()
        self._admitted: dict[plugins.AdmissionKey, tuple[Principal, RequestContext]] = {}
        self._token_conns: dict[WriterAdapter, Principal] = {}
        self._session_check = session_check
        self._check_interval_s = check_interval_s
        self._checker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._audit: AuditLog | None = None
        self.tcp_port: int | None = None
        """The TCP listener's bound port (when it is on)."""

    # -- MessageBroker ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start amqtt and the optional TCP listener."""
        plugins.register(
            self._key, plugins.Hooks(self._authorizer, self._stats, self._on_message, admitted=self._admitted)
        )
        cfg = {"broker_key": self._key}
        config = {
            "listeners": {"default": {"type": "external"}, "tcp": {"type": "external"}},
            "plugins": {
                "cloud.broker.plugins.AuthPlugin": cfg,
                "cloud.broker.plugins.TopicPlugin": cfg,
                "cloud.broker.plugins.EventPlugin": cfg,
            },
            "session_expiry_interval": 86_400,
        }
        try:
            self._broker = IndexedBroker(config)
            await self._broker.start()
            if self._tcp_listen is not None:
                host, port = self._tcp_listen
                self._tcp_server = await asyncio.start_server(self._tcp_connected, host, port)
                self.tcp_port = self._tcp_server.sockets[0].getsockname()[1]
                _LOGGER.info("MQTT over TCP on %s:%d", host, self.tcp_port)
        except Exception as exc:
            if self._broker is not None and self._broker.transitions.state == "started":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._broker.shutdown(), timeout=5)
            plugins.unregister(self._key)
            raise BrokerError(f"the embedded MQTT broker cannot start: {exc}") from exc
        self._running = True
        self._loop = asyncio.get_running_loop()
        if self._session_check is not None:
            self._checker = asyncio.create_task(self._check_sessions(), name="broker-token-check")

    async def stop(self) -> None:
        """Close the listeners and every connection, stop amqtt, end :meth:`events`."""
        if not self._running:
            return
        self._running = False
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._tcp_server is not None:
            self._tcp_server.close()
        try:
            await asyncio.wait_for(self._broker.shutdown(), timeout=5)
        except (TimeoutError, Exception) as exc:  # amqtt's shutdown must not stop ours
            _LOGGER.warning("the embedded broker did not shut down cleanly: %r", exc)
        for writer in list(self._writers):  # connections still at the gate
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.close(), timeout=1)
        if self._tcp_server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tcp_server.wait_closed(), timeout=2)
        plugins.unregister(self._key)
        if self._queue.full():
            self._queue.get_nowait()  # not acked: the gateway sends it again
        self._queue.put_nowait(_STOP)

    async def events(self) -> AsyncIterator[BrokerEvent]:
        """Received publishes and presence changes, until the broker stops."""
        while True:
            item = await self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Received | Presence)
            yield item

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish as the cloud; dropped (debug log) when the broker is not running."""
        if not self._running:
            _LOGGER.debug("not running: dropped publish on %s", topic)
            return
        await self._broker.internal_message_broadcast(topic, payload, qos)
        if retain:
            await self._broker.retain_message(None, topic, payload, qos)

    @property
    def healthy(self) -> bool:
        """Whether amqtt runs."""
        return self._running and self._broker is not None and self._broker.transitions.state == "started"

    # -- policy changes -----------------------------------------------------------------------------------------

    def follow_policy(self, decisions: DecisionPoint) -> None:
        """Re-check every live subscription when ``decisions`` gets a new policy set (removals go to its audit)."""
        self._audit = decisions.audit
        decisions.add_listener(self._policy_replaced)

    def _policy_replaced(self, version: PolicyVersion) -> None:
        loop = self._loop
        if loop is None or not self._running:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # the API's PUT: done before it answers
            self.recheck_subscriptions(version.version)
        else:
            loop.call_soon_threadsafe(self.recheck_subscriptions, version.version)

    def recheck_subscriptions(self, version: int | None = None) -> list[RemovedSubscription]:
        """Ask the Authorizer again about every subscription; remove, audit and count those it now denies.

        Runs on the event loop. amqtt keeps subscriptions as ``{filter: [(session, qos), ...]}``; a filter's
        list is replaced by a new one (never changed in place, never deleted), so a broadcast that is going
        through the old list meanwhile is not disturbed.
        """
        if not self._running or self._broker is None:
            return []
        removed: list[RemovedSubscription] = []
        subscriptions: dict[str, list[tuple[Any, int]]] = self._broker.subscriptions
        for topic_filter, subs in list(subscriptions.items()):
            keep: list[tuple[Any, int]] = []
            for session, qos in subs:
                principal = plugins.principal_of(session)
                context = plugins.context_of(session)
                if principal is not None and self._authorizer.may_subscribe(principal, topic_filter, context=context):
                    keep.append((session, qos))
                else:
                    removed.append(RemovedSubscription(session.client_id or "", principal, topic_filter))
            if len(keep) != len(subs):
                subscriptions[topic_filter] = keep
        for gone in removed:
            self._stats.removed_subscriptions += 1
            who = gone.principal
            _LOGGER.warning(
                "policy version %s: removed the subscription of client %r (%s) to %r",
                version if version is not None else "?",
                gone.client_id[:40],
                f"{who.kind}:{who.tenant}/{who.id}" if who is not None else "unauthenticated",
                gone.topic_filter[:200],
            )
            if self._audit is not None:
                self._audit.record(
                    "subscription_removed",
                    who=f"{who.kind}:{who.tenant}/{who.id}" if who is not None else "unauthenticated",
                    what={"action": "subscribe", "resource": gone.topic_filter, "client": gone.client_id},
                    why=f"policy version {version} no longer allows it" if version is not None else "re-check",
                    version=version,
                )
        return removed

    # -- connections -------------------------------------------------------------------------------------------

    @staticmethod
    def websocket_subprotocol(ws: WebSocket) -> str | None:
        """The MQTT subprotocol to accept from those the client offers (None: it offered none we know)."""
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        return next((p for p in WS_SUBPROTOCOLS if p in offered), None)

    async def serve_websocket(self, ws: WebSocket) -> None:
        """Serve one MQTT-over-WebSocket connection (the HTTP server's ``/mqtt`` route) until it ends."""
        await ws.accept(subprotocol=self.websocket_subprotocol(ws))
        await self._serve(WebSocketReader(ws), WebSocketWriter(ws), "default")

    async def _tcp_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(StreamReader(reader), StreamWriter(writer), "tcp")

    async def _serve(self, reader: BufferedReader, writer: WriterAdapter, listener: str) -> None:
        if not self._running:
            await writer.close()
            return
        self._writers.add(writer)
        key: plugins.AdmissionKey | None = None
        try:
            admitted = await self._gate(reader, writer, listener)
            if admitted is None:
                await writer.close()
                return
            client_id, principal, key = admitted
            self._opened(client_id, principal)
            if principal is not None and principal.token_id is not None:
                self._token_conns[writer] = principal
            try:
                await self._broker.external_connected(reader, writer, listener)
            finally:
                self._closed(client_id, principal)
        except Exception:  # one connection's failure must never reach the server
            _LOGGER.exception("MQTT connection on %s failed", listener)
            with contextlib.suppress(Exception):
                await writer.close()
        finally:
            self._writers.discard(writer)
            self._token_conns.pop(writer, None)
            if key is not None:
                self._admitted.pop(key, None)

    async def _check_sessions(self) -> None:
        """Close, every ``check_interval_s``, the connections whose access token expired or was revoked."""
        check = self._session_check
        assert check is not None
        while True:
            await asyncio.sleep(self._check_interval_s)
            for writer, principal in list(self._token_conns.items()):
                try:
                    valid = check(principal)
                except Exception:  # a failing check must not stop the others
                    _LOGGER.exception("token check of %s %r failed", principal.kind, principal.id)
                    continue
                if valid:
                    continue
                self._token_conns.pop(writer, None)
                self._stats.closed_connections += 1
                _LOGGER.warning(
                    "closing the connection of %s %r (tenant %s): its token expired or was revoked",
                    principal.kind,
                    principal.id,
                    principal.tenant,
                )
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.close(), timeout=1)

    async def _gate(
        self, reader: BufferedReader, writer: WriterAdapter, listener: str
    ) -> tuple[str, Principal | None, plugins.AdmissionKey | None] | None:
        """Read the CONNECT and decide; (client id, principal, admission) to admit, None to refuse (CONNACK sent)."""
        try:
            raw = await asyncio.wait_for(read_first_packet(reader), timeout=self._connect_timeout_s)
        except TimeoutError:
            _LOGGER.info(
                "connection from %s sent no CONNECT in %.0f s", writer.get_peer_info(), self._connect_timeout_s
            )
            return None
        if raw is None or raw[0] >> 4 != 1:
            return None
        try:
            connect = await ConnectPacket.from_stream(BufferReader(raw))
        except Exception:  # amqtt reads it again and answers for itself
            return "", None, None
        if connect.proto_level != MQTT_311:
            return "", None, None  # amqtt answers "unacceptable protocol version"
        client_id = connect.client_id or ""
        principal = self._authorizer.authenticate(client_id, connect.username, connect.password)
        if principal is None:
            self._stats.denied_connects += 1
            anonymous = not connect.username and not connect.password
            code = NOT_AUTHORIZED if anonymous or looks_like_jwt(connect.password) else BAD_USERNAME_PASSWORD
            _LOGGER.warning(
                "CONNECT refused (0x%02x): client %r, username %r", code, client_id[:40], (connect.username or "")[:40]
            )
            await self._connack(writer, code)
            return None
        live = self._live.get(client_id)
        if client_id and live is not None and live[0] != principal:
            self._stats.denied_connects += 1
            _LOGGER.warning("CONNECT refused: client id %r is in use by another principal", client_id[:40])
            await self._connack(writer, IDENTIFIER_REJECTED)
            return None
        key = (client_id, connect.username, connect.password)
        self._admitted[key] = (principal, request_context(writer, listener))
        return client_id, principal, key

    @staticmethod
    async def _connack(writer: WriterAdapter, code: int) -> None:
        with contextlib.suppress(Exception):
            writer.write(bytes([0x20, 0x02, 0x00, code]))
            await writer.drain()

    def _opened(self, client_id: str, principal: Principal | None) -> None:
        if principal is None or not client_id:
            return
        _, count = self._live.get(client_id, (principal, 0))
        self._live[client_id] = (principal, count + 1)
        if count == 0:
            self._put(Presence(client_id, principal, online=True))

    def _closed(self, client_id: str, principal: Principal | None) -> None:
        if principal is None or client_id not in self._live:
            return
        owner, count = self._live[client_id]
        if count > 1:
            self._live[client_id] = (owner, count - 1)
            return
        del self._live[client_id]
        self._put(Presence(client_id, owner, online=False))

    def _on_message(self, topic: str, payload: bytes, client_id: str, principal: Principal | None) -> None:
        self._put(Received(topic, payload, client_id, principal))

    def _put(self, event: BrokerEvent) -> None:
        if self._queue.qsize() >= self._queue_max:
            self._stats.overflow_dropped += 1
            _LOGGER.warning(
                "ingest queue full (%d): dropped %s from %r",
                self._queue_max,
                getattr(event, "topic", "presence"),
                event.client_id[:40],
            )
            return
        self._queue.put_nowait(event)
