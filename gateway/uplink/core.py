"""The uplink: buffered readings to the cloud as SenML packs over MQTT (QoS 1), deleted once acknowledged.

One connection at a time, in a reconnect loop with capped exponential backoff and full jitter. With
several broker URLs (``cloud.mqtt_urls``, or a discovery document listing every node) the uplink
starts at a random one, so a fleet spreads over the nodes, and moves to the next one in the list
when a connection fails or drops: the next node is tried at once (a short jittered pause), and the
backoff grows only once every node has failed in turn. It stays on the node that works and does not
go back to the one it started on when that returns (no herd of gateways moving back at once; a
restart picks a random node again). On
each connection the uplink subscribes to its ``ack`` topic, publishes ``online`` (retained; the
last will says ``offline``), a health report, every pack still unacknowledged, and then new packs
as the buffer fills, up to ``uplink.inflight`` packs unacknowledged at once.

A pack lives in memory until acknowledged: in ack mode ``cloud`` (Roost's cloud; amqtt PUBACKs
from memory) when its batch id arrives on ``ack``, in mode ``puback`` (a broker that persists
before PUBACK) when the PUBACK arrives. Only then are its rows deleted from the buffer. A pack not
acknowledged within ``ack_timeout_s`` is published again with the same id and readings; so is
every pack after a reconnect. Re-sends are harmless: the cloud's ingest is idempotent.

Events (rule alerts, annotations, device events) go the same way from the buffer's event queue, as
event packs (:mod:`wire.events`) on ``events/{batch}`` with ``ev-`` batch ids, interleaved with the
telemetry: they have up to ``EVENT_INFLIGHT`` packs of their own in flight, so a telemetry backlog
never holds an alert back. The same ``ack`` topic acknowledges (or refuses) both kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import aiomqtt

from gateway.buffer import Batch, BufferStats, EventBatch
from gateway.config import CloudSection, UplinkSection
from gateway.errors import BufferError_, UplinkError
from gateway.uplink import _wsfix, discovery
from gateway.uplink.auth import Credentials, CredentialsProvider, StaticCredentials
from gateway.uplink.endpoint import Endpoint, parse_url
from wire import events, senml, topics
from wire.envelopes import OFFLINE, ONLINE, Counters, EventCounters, Health, decode_ack, encode_health
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)

_wsfix.apply()

EVENT_INFLIGHT = 4
"""Event packs published and not yet acknowledged, at most (on top of ``uplink.inflight`` telemetry packs)."""
EVENT_BATCH = 100
"""Most events in one pack."""


class CredentialsRenewed(UplinkError):
    """The credentials in use were superseded (a refreshed or revoked token): reconnect now."""


class ReadingSource(Protocol):
    """What the uplink needs of the buffer (:class:`gateway.buffer.DurableBuffer`)."""

    @property
    def pending(self) -> int:
        """Readings buffered and not in flight."""

    async def wait(self, min_readings: int = 1, timeout: float | None = None) -> bool:
        """Wait for pending readings."""

    async def take(self, max_readings: int) -> Batch | None:
        """Take the oldest pending readings as a batch."""

    async def delete(self, batch_ids: Iterable[str]) -> int:
        """Delete acknowledged batches."""

    def release(self, batch_ids: Iterable[str]) -> None:
        """Give batches back unacknowledged."""

    def stats(self) -> BufferStats:
        """Buffer counters."""


@runtime_checkable
class EventSource(Protocol):
    """What the uplink needs of the buffer to send events too (a ReadingSource without it sends none)."""

    async def wait_events(self, timeout: float | None = None) -> bool:
        """Wait for pending events."""

    async def take_events(self, max_events: int) -> EventBatch | None:
        """Take the oldest pending events as a batch."""


@dataclass(slots=True)
class _Pack:
    batch_id: str
    payload: bytes
    count: int
    sent_at: float = 0.0
    """Monotonic time of the last publish on the current connection; 0 = not published on it yet."""
    attempts: int = 0
    kind: Literal["telemetry", "events"] = "telemetry"


CommandHandler = Callable[[str, bytes], Awaitable[bytes | None]]
"""Takes a command's request id and payload, returns the result payload (None: no answer)."""


class Uplink:
    """Sends the buffer's readings to the cloud and deletes them once the cloud holds them."""

    def __init__(
        self,
        *,
        gateway_id: str,
        tenant: str,
        cloud: CloudSection,
        uplink: UplinkSection,
        buffer: ReadingSource,
        state_dir: Path,
        extra_counters: Callable[[], Mapping[str, int]] | None = None,
        credentials: CredentialsProvider | None = None,
        commands: CommandHandler | None = None,
        extra_health: Callable[[], Mapping[str, Any]] | None = None,
        desired: Callable[[bytes], Awaitable[None]] | None = None,
        reported: Callable[[], bytes] | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self._desired = desired
        """Takes each ``state/desired`` message (the DM agent's desired state)."""
        self._reported = reported
        """Gives the ``state/reported`` payload, published retained on each connection and on request."""
        self._commands = commands
        self._extra_health = extra_health
        self.tenant = tenant
        self._credentials: CredentialsProvider = credentials or StaticCredentials(cloud, gateway_id, tenant)
        self._cloud = cloud
        self._cfg = uplink
        self._buffer = buffer
        self._state_dir = state_dir
        self._extra_counters = extra_counters
        self._set_names(gateway_id, tenant)
        self._packs: dict[str, _Pack] = {}
        self._event_packs = 0
        self._event_limit = EVENT_BATCH
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._client: aiomqtt.Client | None = None
        self._target: discovery.Target | None = None
        self._broker: str | None = None
        """The broker URL in use, or tried last."""
        self._outage_moves = 0
        self._batch_limit = uplink.batch_max_readings
        self._started = time.monotonic()
        self._stopping = False
        self._outage_since: float | None = None
        self._connected = False
        self._connects = 0
        self._creds: Credentials | None = None
        self._token_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._token_subscribed: aiomqtt.Client | None = None
        self.reconnects = 0
        """Connections made after the first one (each one follows an outage)."""
        self.connect_failures = 0
        """Attempts to connect that failed."""
        self.sent = 0
        """Readings the cloud acknowledged since start."""
        self.sent_packs = 0
        """Packs acknowledged since start."""
        self.rejected = 0
        """Readings in packs the cloud refused for good (dropped, never sent again)."""
        self.resent = 0
        """Packs published again (ack timeout or reconnect)."""
        self.events_sent = 0
        """Events the cloud acknowledged since start."""
        self.events_rejected = 0
        """Events in packs the cloud refused for good (dropped, never sent again)."""
        self.last_error: str | None = None
        """What went wrong last (connection, discovery, TLS), or None."""

    def _set_names(self, gateway_id: str, tenant: str) -> None:
        self.gateway_id = gateway_id
        self.tenant = tenant
        self._status_topic = topics.topic(tenant, gateway_id, "status")
        self._ack_topic = topics.topic(tenant, gateway_id, "ack")
        self._health_topic = topics.topic(tenant, gateway_id, "health")
        self._token_topic = topics.topic(tenant, gateway_id, "token")
        self._token_result_topic = topics.topic(tenant, gateway_id, "token-result")
        self._cmd_prefix = topics.topic(tenant, gateway_id, "cmd", "x")[:-1]
        self._desired_topic = topics.topic(tenant, gateway_id, "state", "desired")
        self._reported_topic = topics.topic(tenant, gateway_id, "state", "reported")

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        """Whether a connection to the broker is up now."""
        return self._connected

    @property
    def inflight(self) -> int:
        """Packs published (or waiting to be) and not acknowledged."""
        return len(self._packs)

    @property
    def broker(self) -> str | None:
        """The broker URL in use now (or tried last), without credentials."""
        if self._broker is None:
            return None
        try:
            return parse_url(self._broker).url
        except UplinkError:
            return self._broker.partition("@")[2] or self._broker  # a URL the uplink refused: never its password

    @property
    def target(self) -> discovery.Target | None:
        """The endpoint and pack options in use (after the first discovery)."""
        return self._target

    def counters(self) -> Counters:
        """The counters reported on ``health``; ``rejected`` adds the adapters' refusals to the cloud's."""
        st = self._buffer.stats()
        extra = self._extra_counters() if self._extra_counters is not None else {}
        return {
            "buffered": st["buffered"],
            "received": st["received"],
            "sent": self.sent,
            "dropped": st["dropped"] + int(extra.get("dropped", 0)),
            "dropped_full": st["dropped_full"],
            "dropped_age": st["dropped_age"],
            "rejected": self.rejected + int(extra.get("rejected", 0)),
            "reconnects": self.reconnects,
        }

    def event_counters(self) -> EventCounters:
        """The event counters reported on ``health`` under ``events``."""
        st = self._buffer.stats()
        return {
            "buffered": st.get("events_buffered", 0),
            "received": st.get("events_received", 0),
            "sent": self.events_sent,
            "dropped": st.get("events_dropped", 0),
            "rejected": self.events_rejected,
        }

    def health(self) -> Health:
        """A health report as of now (with the DM agent's heartbeat figures, when it gives them)."""
        report: Health = {
            "ts": time.time(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "counters": self.counters(),
            "events": self.event_counters(),
        }
        if self._extra_health is not None:
            try:
                extra = self._extra_health()
            except Exception:  # a failing figure must not cost the counters their report
                _LOGGER.exception("uplink: the heartbeat figures failed")
            else:
                report.update(extra)  # type: ignore[typeddict-item]
        return report

    # ----------------------------------------------------------------- life cycle

    async def run(self) -> None:
        """Connect, send and reconnect until cancelled; packs not yet acknowledged go back to the buffer."""
        attempt = 0
        tried = 0
        try:
            while True:
                connects_before = self._connects
                error = "the connection ended"
                try:
                    await self._connect_and_serve()
                except CredentialsRenewed as exc:
                    # Not an outage: reconnect at once; packs in flight are sent again on the new connection.
                    self._connected = False
                    self._client = None
                    _LOGGER.info("uplink: %s: reconnecting", exc)
                    attempt = 0
                    continue
                except (aiomqtt.MqttError, OSError, UplinkError, BufferError_) as exc:
                    error = _describe(exc, self.broker, dropped=self._connects > connects_before)
                    if _refused(exc) and self._creds is not None:
                        self._credentials.refused(self._creds)
                finally:
                    self._connected = False
                    self._client = None
                if self._connects > connects_before:
                    attempt = 0  # the connection was up: start the backoff afresh
                    tried = 0
                else:
                    self.connect_failures += 1
                self.last_error = error
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    self._outage_moves = 0
                    _LOGGER.warning("uplink: %s; buffering and retrying", error)
                else:
                    _LOGGER.debug("uplink: still failing: %s", error)
                tried += 1
                urls = self._target.urls if self._target is not None else ()
                self._next_broker(urls)
                if tried < len(urls):
                    # Another node has not been tried since the last connection: try it at once.
                    delay = random.uniform(0, self._cloud.backoff_initial_s)
                else:
                    tried = 0
                    delay = random.uniform(
                        0, min(self._cloud.backoff_max_s, self._cloud.backoff_initial_s * 2**attempt)
                    )
                    attempt = min(attempt + 1, 32)  # 2**attempt stays a float-sized number
                await asyncio.sleep(delay)
        finally:
            self._connected = False
            self._buffer.release(list(self._packs))
            self._packs.clear()
            self._event_packs = 0

    async def flush(self, timeout: float) -> None:
        """Stop taking new readings and wait up to ``timeout`` s for in-flight packs to be acknowledged."""
        self._stopping = True
        self._changed.set()
        deadline = time.monotonic() + timeout
        while self._packs and self._connected and time.monotonic() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - time.monotonic()):
                    await self._changed.wait()
        if self._background:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await asyncio.gather(*self._background, return_exceptions=True)
        if self._packs:
            _LOGGER.info("uplink: %d packs still unacknowledged at shutdown; they stay buffered", len(self._packs))
        client = self._client
        if client is not None and self._connected:
            # A clean disconnect suppresses the last will: say offline ourselves.
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.publish(
                    self._status_topic,
                    OFFLINE,
                    qos=1,
                    retain=True,
                    timeout=max(0.2, min(2.0, deadline - time.monotonic())),
                )

    # ----------------------------------------------------------------- brokers

    def _pick_broker(self, urls: tuple[str, ...]) -> str:
        """The broker to connect to: the one in use if still listed, else a random one (a fleet spreads)."""
        if self._broker not in urls:
            self._broker = urls[random.randrange(len(urls))]
        assert self._broker is not None
        return self._broker

    def _next_broker(self, urls: tuple[str, ...]) -> None:
        """Move to the next broker in the list after a failure (nothing to do with one broker)."""
        if len(urls) < 2 or self._broker not in urls:
            return
        previous = self.broker
        self._broker = urls[(urls.index(self._broker) + 1) % len(urls)]
        self._outage_moves += 1
        log = _LOGGER.info if self._outage_moves <= len(urls) else _LOGGER.debug
        log("uplink: moving from broker %s to %s (%d of %d)", previous, self.broker, urls.index(self._broker) + 1,
            len(urls))  # fmt: skip

    # ----------------------------------------------------------------- one connection

    async def _connect_and_serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._creds = None
        creds = await self._credentials.get()
        self._creds = creds
        if (creds.gateway_id, creds.tenant) != (self.gateway_id, self.tenant):
            _LOGGER.info("uplink: connecting as gateway %s of tenant %s", creds.gateway_id, creds.tenant)
            self._set_names(creds.gateway_id, creds.tenant)
        if self._cloud.broker_urls:
            doc, source = None, "config"
        else:
            doc, source = await loop.run_in_executor(None, discovery.discover, self._cloud, self._state_dir)
        target = discovery.target(self._cloud, self._cfg, doc, source)
        self._target = target
        endpoint = parse_url(self._pick_broker(target.urls))
        urls = target.urls
        where = (
            f"{endpoint.url} (broker {urls.index(self._broker) + 1} of {len(urls)})" if len(urls) > 1 else endpoint.url
        )
        tls = await loop.run_in_executor(None, self._tls, endpoint)
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            username=creds.username,
            password=creds.password,
            identifier=creds.gateway_id,
            will=aiomqtt.Will(self._status_topic, OFFLINE, qos=1, retain=True),
            clean_session=True,
            transport=endpoint.transport,
            websocket_path=endpoint.websocket_path,
            tls_context=tls,
            keepalive=self._cloud.keepalive_s,
            timeout=self._cloud.connect_timeout_s,
            max_inflight_messages=self._cfg.inflight + 4,
            logger=logging.getLogger("gateway.uplink.mqtt"),
        )
        client.pending_calls_threshold = self._cfg.inflight + 8
        async with client:
            qos = target.subscribe_qos
            await client.subscribe(self._ack_topic, qos=qos)
            if self._commands is not None:
                await client.subscribe(self._cmd_prefix + "+", qos=qos)
            if self._desired is not None:
                await client.subscribe(self._desired_topic, qos=qos)
            await client.publish(self._status_topic, ONLINE, qos=1, retain=True)
            if self._reported is not None:
                await client.publish(self._reported_topic, self._reported(), qos=1, retain=True)
            self._client = client
            self._connected = True
            self._connects += 1
            if self._connects > 1:
                self.reconnects += 1
            if self._outage_since is not None:
                _LOGGER.info("uplink: connected to %s again after %.1f s", where, time.monotonic() - self._outage_since)
                self._outage_since = None
            else:
                _LOGGER.info(
                    "uplink: connected to %s (ack mode %s, %s%s)",
                    where,
                    target.ack,
                    target.encoding,
                    "+zlib" if target.compress else "",
                )
            self.last_error = None
            for pack in self._packs.values():
                pack.sent_at = 0.0
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name="uplink-receive")
                    tg.create_task(self._health_loop(client), name="uplink-health")
                    tg.create_task(self._send_loop(client, tg, target), name="uplink-send")
                    if isinstance(self._buffer, EventSource):
                        tg.create_task(self._event_loop(client, tg, target, self._buffer), name="uplink-events")
                    if target.ack == "cloud":
                        tg.create_task(self._watchdog(client, tg, target), name="uplink-watchdog")
                    tg.create_task(self._watch_credentials(creds), name="uplink-credentials")
            except BaseExceptionGroup as group:
                # One failure (the connection dropped) cancels the others: report the first cause.
                raise _first_leaf(group) from None

    def _tls(self, endpoint: Endpoint) -> ssl.SSLContext | None:
        try:
            return endpoint.tls_context(self._cloud.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UplinkError(f"cannot load the CA file {self._cloud.ca_file}: {exc}") from exc

    async def _watch_credentials(self, creds: Credentials) -> None:
        await self._credentials.renewed(creds)
        raise CredentialsRenewed("the credentials were renewed")

    async def _send_loop(self, client: aiomqtt.Client, tg: asyncio.TaskGroup, target: discovery.Target) -> None:
        for pack in list(self._packs.values()):
            self.resent += 1
            self._publish(client, tg, pack, target)
        delay = self._cfg.batch_max_delay_ms / 1000
        while True:
            while self._stopping or len(self._packs) - self._event_packs >= self._cfg.inflight:
                self._changed.clear()
                await self._changed.wait()
            await self._buffer.wait(1)
            if delay and self._buffer.pending < self._batch_limit:
                await self._buffer.wait(self._batch_limit, timeout=delay)
            if self._stopping:
                continue
            batch = await self._buffer.take(self._batch_limit)
            if batch is None:
                continue
            payload = senml.encode(batch.readings, encoding=target.encoding, compress=target.compress)
            if len(payload) > target.max_pack_bytes and len(batch.readings) > 1:
                self._buffer.release([batch.id])
                self._batch_limit = max(1, len(batch.readings) // 2)
                _LOGGER.info(
                    "uplink: a pack of %d readings is %d bytes, over the cloud's %d: sending %d at most",
                    len(batch.readings),
                    len(payload),
                    target.max_pack_bytes,
                    self._batch_limit,
                )
                continue
            pack = _Pack(batch.id, payload, len(batch.readings))
            self._packs[batch.id] = pack
            self._publish(client, tg, pack, target)

    async def _event_loop(
        self, client: aiomqtt.Client, tg: asyncio.TaskGroup, target: discovery.Target, source: EventSource
    ) -> None:
        while True:
            while self._stopping or self._event_packs >= EVENT_INFLIGHT:
                self._changed.clear()
                await self._changed.wait()
            await source.wait_events()
            if self._stopping:
                continue
            batch = await source.take_events(self._event_limit)
            if batch is None:
                continue
            if not batch.events:  # only rows no version of Roost can read: nothing to send
                await self._buffer.delete([batch.id])
                continue
            payload = events.encode(batch.events)
            if len(payload) > target.max_pack_bytes and len(batch.events) > 1:
                self._buffer.release([batch.id])
                self._event_limit = max(1, len(batch.events) // 2)
                continue
            pack = _Pack(batch.id, payload, len(batch.events), kind="events")
            self._packs[batch.id] = pack
            self._event_packs += 1
            self._publish(client, tg, pack, target)

    def _publish(self, client: aiomqtt.Client, tg: asyncio.TaskGroup, pack: _Pack, target: discovery.Target) -> None:
        pack.sent_at = time.monotonic()
        pack.attempts += 1
        tg.create_task(self._publish_one(client, pack, target), name=f"uplink-publish-{pack.batch_id}")

    async def _publish_one(self, client: aiomqtt.Client, pack: _Pack, target: discovery.Target) -> None:
        # A PUBACK missing for ack_timeout_s on a live connection means the connection is not live.
        # The topic is named at publish time: a pack buffered before enrollment goes out under the id enrolled.
        if pack.kind == "events":
            topic = topics.events(self.tenant, self.gateway_id, pack.batch_id)
        else:
            topic = topics.telemetry(self.tenant, self.gateway_id, pack.batch_id)
        await client.publish(topic, pack.payload, qos=1, timeout=self._cfg.ack_timeout_s)
        _LOGGER.debug(
            "uplink: pack %s (%d %s, %d bytes) PUBACKed", pack.batch_id, pack.count, pack.kind, len(pack.payload)
        )
        if target.ack == "puback":
            self._acknowledge([pack.batch_id], [])

    async def _watchdog(self, client: aiomqtt.Client, tg: asyncio.TaskGroup, target: discovery.Target) -> None:
        period = min(1.0, self._cfg.ack_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for pack in list(self._packs.values()):
                if pack.sent_at and now - pack.sent_at >= self._cfg.ack_timeout_s:
                    _LOGGER.debug(
                        "uplink: pack %s not acknowledged within %.1f s: sending it again",
                        pack.batch_id,
                        self._cfg.ack_timeout_s,
                    )
                    self.resent += 1
                    self._publish(client, tg, pack, target)

    async def request_token(self, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Publish a token request on ``token`` and return the answer on ``token-result`` (token refresh over MQTT).

        A random ``request_id`` is added to ``body``. UplinkError when the connection is down, drops, or no
        answer arrives within ``timeout`` seconds. Neither the request nor the answer is logged.
        """
        client = self._client
        if client is None or not self._connected:
            raise UplinkError("the MQTT connection is down")
        request_id = secrets.token_hex(16)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._token_waiters[request_id] = answer
        try:
            async with asyncio.timeout(timeout):
                if self._token_subscribed is not client:
                    await client.subscribe(self._token_result_topic, qos=1)
                    self._token_subscribed = client
                payload = json.dumps({**body, "request_id": request_id}).encode()
                await client.publish(self._token_topic, payload, qos=1, timeout=timeout)
                return await answer
        except TimeoutError:
            raise UplinkError(f"no answer on {self._token_result_topic} within {timeout:.0f} s") from None
        except aiomqtt.MqttError as exc:
            raise UplinkError(f"the token request over MQTT failed: {exc}") from None
        finally:
            self._token_waiters.pop(request_id, None)

    def _token_result(self, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            _LOGGER.warning("uplink: ignoring a malformed token result")
            return
        waiter = self._token_waiters.get(str(body.get("request_id", "")))
        if waiter is None or waiter.done():
            _LOGGER.debug("uplink: ignoring a token result nobody waits for")
            return
        waiter.set_result(body)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            if topic.startswith(self._cmd_prefix) and self._commands is not None:
                self._spawn(self._command(topic[len(self._cmd_prefix) :], bytes(payload)))
                continue
            if topic == self._desired_topic and self._desired is not None:
                self._spawn(self._on_desired(bytes(payload)))
                continue
            if topic not in (self._ack_topic, self._token_result_topic):
                continue
            if topic == self._token_result_topic:
                self._token_result(bytes(payload))
                continue
            try:
                ack = decode_ack(bytes(payload))
            except PayloadError as exc:
                _LOGGER.warning("uplink: ignoring a malformed ack: %s", exc)
                continue
            self._acknowledge(ack["batches"], ack["rejected"])

    def _acknowledge(self, batches: list[str], rejected: list[str]) -> None:
        done: list[str] = []
        for batch_id in batches:
            pack = self._packs.pop(batch_id, None)
            if pack is None:
                continue
            done.append(batch_id)
            if pack.kind == "events":
                self._event_packs -= 1
                self.events_sent += pack.count
                continue
            self.sent += pack.count
            self.sent_packs += 1
        for batch_id in rejected:
            pack = self._packs.pop(batch_id, None)
            if pack is None:
                continue
            done.append(batch_id)
            if pack.kind == "events":
                self._event_packs -= 1
                self.events_rejected += pack.count
            else:
                self.rejected += pack.count
            _LOGGER.warning(
                "uplink: the cloud refused pack %s (%d %s) for good: dropping it", batch_id, pack.count, pack.kind
            )
        if done:
            self._changed.set()
            # Not part of the connection's task group: a delete queued must finish even if the connection drops.
            self._spawn(self._delete(done))

    async def _delete(self, batch_ids: list[str]) -> None:
        try:
            await self._buffer.delete(batch_ids)
        except BufferError_ as exc:
            _LOGGER.error("uplink: cannot delete acknowledged batches (they will be sent again): %s", exc)

    async def _health_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await client.publish(
                self._health_topic, encode_health(self.health()), qos=1, timeout=self._cloud.connect_timeout_s
            )
            await asyncio.sleep(self._cfg.health_interval_s)

    async def _on_desired(self, payload: bytes) -> None:
        assert self._desired is not None
        try:
            await self._desired(payload)
        except Exception:  # the handler reports its own failures; this is a bug, logged, never the uplink's end
            _LOGGER.exception("uplink: the desired-state handler failed")

    def publish_reported(self) -> None:
        """Publish ``state/reported`` (retained) now, if connected; it goes out again on every connection."""
        client = self._client
        if self._reported is None or client is None or not self._connected:
            return
        payload = self._reported()

        async def _send() -> None:
            try:
                await client.publish(self._reported_topic, payload, qos=1, retain=True,
                                     timeout=self._cloud.connect_timeout_s)  # fmt: skip
            except (aiomqtt.MqttError, OSError) as exc:
                _LOGGER.debug("uplink: reported state not sent now (%s): it goes out on the next connection", exc)

        self._spawn(_send())

    async def _command(self, request_id: str, payload: bytes) -> None:
        """Run one command (the DM agent's handler) and publish its result on ``cmd-result/{request_id}``."""
        assert self._commands is not None
        try:
            result = await self._commands(request_id, payload)
        except Exception:  # the handler answers failures itself; this is a bug, logged, never the uplink's end
            _LOGGER.exception("uplink: the command handler failed on request %s", request_id)
            return
        if result is None:
            return
        try:
            topic = topics.topic(self.tenant, self.gateway_id, "cmd-result", request_id)
        except ValueError as exc:
            _LOGGER.warning("uplink: cannot answer command %s: %s", request_id, exc)
            return
        # On the connection up now: a command may have replaced it (new credentials), so try a few times.
        deadline = time.monotonic() + self._cloud.connect_timeout_s * 2
        problem: Exception | None = None
        while time.monotonic() < deadline:
            current = self._client if self._connected else None
            if current is not None:
                try:
                    await current.publish(topic, result, qos=1, timeout=self._cloud.connect_timeout_s)
                    return
                except aiomqtt.MqttError as exc:
                    problem = exc
            await asyncio.sleep(0.5)
        # The cloud sends the command again when it sees no result; the repeat gets the stored answer.
        _LOGGER.warning("uplink: could not send the result of command %s: %s", request_id, problem or "not connected")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _refused(exc: BaseException) -> bool:
    """Whether the broker refused the CONNECT's credentials (MQTT 3.1.1 codes 4 and 5, MQTT 5 134 and 135)."""
    return isinstance(exc, aiomqtt.MqttCodeError) and exc.rc in (4, 5, 134, 135)


def _describe(exc: BaseException, url: str | None, *, dropped: bool = False) -> str:
    where = f" {url}" if url is not None else ""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    if isinstance(exc, UplinkError):
        return text
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the certificate of{where} is not trusted ({text}); pin the cloud's CA with cloud.ca_file"
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        return f"MQTT{where}: {text}"
    if dropped:
        return f"the connection to{where} dropped ({text})"
    return f"cannot reach{where}: {text}"
