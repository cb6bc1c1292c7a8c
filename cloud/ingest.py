"""Ingest: broker publishes in, batched durable commits to the store, then the cloud's ``ack`` to each gateway.

amqtt sends PUBACK before it routes a message, so a gateway may delete a batch only on the cloud's own
``ack``: it is published after the store's commit (``synchronous=FULL``) returned. A pack that cannot be
decoded is counted, logged and its batch id sent back as ``rejected`` so the gateway stops sending it.
Event packs (``events/{batch}``, :mod:`wire.events`) go the same way: decoded, stored once per event id in
the same commits as the telemetry (with the alert states they drive), then acknowledged or refused.

A broker that redelivers what is not settled (RabbitMQ's quorum queue, :mod:`cloud.broker.rabbitmq_amqp`) gets
each message settled only after the commit that stored it returned, or once it was counted as refused or
ignored; a failed commit hands its messages back to be delivered again (ingest is idempotent, so a
redelivery stores nothing twice).

After each successful commit the ``listener`` (the cloud rules, :mod:`cloud.cloudrules`) is told the packs that
stored new readings, and of every online/offline seen; it only queues them, so it never delays storage. The
gateway id ``cloud`` is the cloud's own (its rules' alerts): anything a client publishes under it is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud.authz import Principal
from cloud.broker.base import MessageBroker, Presence, Received, Settle
from cloud.cloudrules.naming import CLOUD_GATEWAY
from cloud.config import IngestSection
from cloud.errors import StoreError
from cloud.stats import Stats
from cloud.store import EventWrite, PackWrite
from cloud.store_api import ReadingStore
from wire import envelopes, senml, topics
from wire import events as wire_events
from wire.errors import PayloadError
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

INLINE_DECODE_BYTES = 64 * 1024
"""Packs larger than this are decoded on a worker thread, so the event loop keeps serving."""
QUEUE_ITEMS = 2000

STORE_RETRY_S = 1.0
"""Pause after a failed commit before its messages are handed back for redelivery (no hot loop on a down store)."""

TokenHandler = Callable[[topics.Topic, bytes, Principal | None], None]
"""Takes a publish on a gateway's ``token`` topic (token refresh over MQTT); must not block."""


class StoredListener(Protocol):
    """Told what ingest stored and the presence it saw (the cloud rules); must not block."""

    def stored(self, tenant: str, gateway: str, readings: Sequence[Reading]) -> None:
        """Readings a durable commit stored (a pack stored before, re-sent, is not told again)."""

    def presence(self, tenant: str, gateway: str, online: bool, ts: float) -> None:
        """A gateway went online or offline (its status, last will, connect or disconnect)."""


@dataclass(frozen=True, slots=True)
class _Pack:
    tenant: str
    gateway: str
    batch: str | None
    readings: Sequence[Reading] | None  # None: rejected
    settle: Settle | None = None


@dataclass(frozen=True, slots=True)
class _Event:
    tenant: str
    gateway: str
    batch: str | None
    events: Sequence[Event] | None  # None: rejected
    settle: Settle | None = None


@dataclass(frozen=True, slots=True)
class _GatewayUpdate:
    tenant: str
    gateway: str
    online: bool | None = None
    health: dict[str, Any] | None = None
    settle: Settle | None = None


_Item = _Pack | _Event | _GatewayUpdate
_STOP = object()


@dataclass(slots=True)
class _Acks:
    batches: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


class Ingest:
    """Consumes a broker's events until they end; stores telemetry in batches and acknowledges it."""

    def __init__(
        self,
        broker: MessageBroker,
        store: ReadingStore,
        stats: Stats,
        config: IngestSection,
        *,
        on_token: TokenHandler | None = None,
        on_command_result: TokenHandler | None = None,
        on_reported: TokenHandler | None = None,
        on_online: Callable[[str, str], None] | None = None,
    ) -> None:
        self._broker = broker
        self._on_token = on_token
        self._on_command_result = on_command_result
        self._on_reported = on_reported
        """Takes each ``state/reported`` publish (the fleet registry); must not block."""
        self._on_online = on_online
        """Told (tenant, gateway) when a gateway says it is online (the fleet re-sends desired state); no blocking."""
        self.on_received: Callable[[topics.Topic, int], None] = lambda _topic, _size: None  # bytes per day (reports)
        self._store = store
        self._stats = stats
        self._config = config
        self.listener: StoredListener | None = None
        """Told after each successful commit, and of each presence (cloud rules); called on the ingest's loop."""
        self.reserved_refused = 0
        """Messages refused because they claimed the cloud's own gateway id (``cloud``)."""
        self._queue: asyncio.Queue[_Item | object] = asyncio.Queue(maxsize=QUEUE_ITEMS)
        self.last_store_error: str | None = None
        """The last commit failure, until a commit succeeds again."""

    async def run(self) -> None:
        """Run until the broker's event stream ends, then commit what is queued and return."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="ingest-consume")
            tg.create_task(self._write(), name="ingest-write")

    # -- decoding ------------------------------------------------------------------------------------------------

    async def _consume(self) -> None:
        try:
            async for event in self._broker.events():
                try:
                    item = await self._route(event)
                except Exception:  # one bad message must never stop the ingest
                    _LOGGER.exception("ingest failed on a message from %r", event.client_id[:40])
                    item = None
                if item is not None:
                    if isinstance(event, Received) and event.settle is not None:
                        item = dataclasses.replace(item, settle=event.settle)
                    await self._queue.put(item)
                elif isinstance(event, Received) and event.settle is not None:
                    await _settle(event.settle, True)  # ignored or handed over: counted, never redelivered
        finally:
            await self._queue.put(_STOP)

    async def _route(self, event: Received | Presence) -> _Item | None:
        if isinstance(event, Presence):
            p = event.principal
            if p.kind != "gateway" or p.id == CLOUD_GATEWAY:
                return None
            return _GatewayUpdate(p.tenant, p.id, online=event.online)
        try:
            topic = topics.parse(event.topic)
        except PayloadError as exc:
            _LOGGER.debug("ignored: %s", exc.reason)
            return None
        if topic.gateway == CLOUD_GATEWAY:  # the cloud's rules store their alerts under this id: no client may
            self.reserved_refused += 1
            _LOGGER.warning("refused %s from %s/%s: that gateway id is the cloud's own", topic.kind, topic.tenant,
                            CLOUD_GATEWAY)  # fmt: skip
            return None
        self.on_received(topic, len(event.payload))
        batch = event.topic.rsplit("/", 1)[1] if topic.tail else None
        if topic.kind == "telemetry":
            return await self._decode(topic, batch, event.payload)
        if topic.kind == "events":
            return await self._decode_events(topic, batch, event.payload)
        if topic.kind == "health":
            try:
                health = envelopes.decode_health(event.payload)
            except PayloadError as exc:
                self._stats.bad_envelopes += 1
                _LOGGER.warning("bad health report from %s/%s: %s", topic.tenant, topic.gateway, exc.reason)
                return None
            self._stats.health_reports += 1
            return _GatewayUpdate(topic.tenant, topic.gateway, health=dict(health))
        if topic.kind == "token" and self._on_token is not None:
            self._on_token(topic, event.payload, event.principal)
            return None
        if topic.kind == "cmd-result" and self._on_command_result is not None:
            self._on_command_result(topic, event.payload, event.principal)
            return None
        if topic.kind == "state" and topic.tail == "reported" and self._on_reported is not None:
            self._on_reported(topic, event.payload, event.principal)
            return None
        if topic.kind == "status":
            if event.payload == envelopes.ONLINE and self._on_online is not None:
                self._on_online(topic.tenant, topic.gateway)
            if event.payload in (envelopes.ONLINE, envelopes.OFFLINE):
                return _GatewayUpdate(topic.tenant, topic.gateway, online=event.payload == envelopes.ONLINE)
            self._stats.bad_envelopes += 1
            _LOGGER.warning("bad status from %s/%s: %r", topic.tenant, topic.gateway, event.payload[:40])
            return None
        _LOGGER.debug("%s from %s/%s: not ingested", topic.kind, topic.tenant, topic.gateway)
        return None

    async def _decode(self, topic: topics.Topic, batch: str | None, payload: bytes) -> _Pack:
        cfg = self._config
        try:
            if len(payload) > INLINE_DECODE_BYTES:
                readings = await asyncio.to_thread(
                    senml.decode, payload, max_bytes=cfg.max_pack_bytes, max_records=cfg.max_records
                )
            else:
                readings = senml.decode(payload, max_bytes=cfg.max_pack_bytes, max_records=cfg.max_records)
        except PayloadError as exc:
            self._stats.rejected_packs += 1
            _LOGGER.warning(
                "rejected pack %r from %s/%s (%d bytes): %s",
                batch,
                topic.tenant,
                topic.gateway,
                len(payload),
                exc.reason,
            )
            return _Pack(topic.tenant, topic.gateway, batch, None)
        return _Pack(topic.tenant, topic.gateway, batch, readings)

    async def _decode_events(self, topic: topics.Topic, batch: str | None, payload: bytes) -> _Event:
        try:
            if len(payload) > self._config.max_pack_bytes:
                raise PayloadError(f"an event pack of {len(payload)} bytes is over {self._config.max_pack_bytes}")
            if len(payload) > INLINE_DECODE_BYTES:
                decoded = await asyncio.to_thread(wire_events.decode, payload)
            else:
                decoded = wire_events.decode(payload)
        except PayloadError as exc:
            self._stats.rejected_event_packs += 1
            _LOGGER.warning(
                "rejected event pack %r from %s/%s (%d bytes): %s",
                batch,
                topic.tenant,
                topic.gateway,
                len(payload),
                exc.reason,
            )
            return _Event(topic.tenant, topic.gateway, batch, None)
        return _Event(topic.tenant, topic.gateway, batch, decoded)

    # -- batching and committing ---------------------------------------------------------------------------------

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._config.batch_max_delay_ms / 1000
        limit = self._config.batch_max_readings
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is _STOP:
                return
            items: list[_Item] = [first]  # type: ignore[list-item]
            size = _size(first)  # type: ignore[arg-type]
            deadline = loop.time() + delay
            while size < limit:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                        # arrives with an item, and the ingest would then never stop.
                        async with asyncio.timeout(remaining):
                            nxt = await self._queue.get()
                    except TimeoutError:
                        break
                if nxt is _STOP:
                    stop = True
                    break
                items.append(nxt)  # type: ignore[arg-type]
                size += _size(nxt)  # type: ignore[arg-type]
            await self._flush(items)

    async def _flush(self, items: list[_Item]) -> None:
        packs = [i for i in items if isinstance(i, _Pack)]
        events = [i for i in items if isinstance(i, _Event)]
        if packs or events:
            try:
                inserted, new_events = await self._store.commit_all(
                    [PackWrite(p.tenant, p.gateway, p.readings or (), rejected=p.readings is None) for p in packs],
                    [EventWrite(e.tenant, e.gateway, e.events or (), rejected=e.events is None) for e in events],
                    now=time.time(),
                )
            except StoreError as exc:
                # Nothing is acknowledged: the gateways send these batches again, a redelivering broker too.
                self.last_store_error = str(exc)
                _LOGGER.error("store commit failed, %d packs not acknowledged: %s", len(packs) + len(events), exc)
                if any(p.settle is not None for p in packs) or any(e.settle is not None for e in events):
                    await asyncio.sleep(STORE_RETRY_S)
                    await _settle_all([*packs, *events], False)
            else:
                self.last_store_error = None
                await self._acknowledge(packs, events, inserted, new_events)
                await _settle_all([*packs, *events], True)
                if self.listener is not None:
                    self._tell_stored(self.listener, packs, inserted)
        for update in (i for i in items if isinstance(i, _GatewayUpdate)):
            try:
                if update.online is not None:
                    await self._store.set_online(update.tenant, update.gateway, update.online, now=time.time())
                if update.health is not None:
                    await self._store.set_health(update.tenant, update.gateway, update.health, now=time.time())
            except StoreError as exc:
                _LOGGER.error("cannot record the state of gateway %s/%s: %s", update.tenant, update.gateway, exc)
            if update.online is not None and self.listener is not None:
                self.listener.presence(update.tenant, update.gateway, update.online, time.time())
            # Settled either way: a presence or health report is superseded by the next, not worth a redelivery loop.
            await _settle_all([update], True)

    @staticmethod
    def _tell_stored(listener: StoredListener, packs: list[_Pack], inserted: list[int]) -> None:
        # a pack with no new reading was stored before (a re-send): its readings were told then
        for pack, n in zip(packs, inserted, strict=True):
            if pack.readings and n:
                try:
                    listener.stored(pack.tenant, pack.gateway, pack.readings)
                except Exception:  # the listener must never cost storage
                    _LOGGER.exception("the stored-readings listener failed")

    async def _acknowledge(
        self, packs: list[_Pack], events: list[_Event], inserted: list[int], new_events: list[int]
    ) -> None:
        stats = self._stats
        stats.commits += 1
        acks: dict[tuple[str, str], _Acks] = {}
        for pack, n in zip(packs, inserted, strict=True):
            if pack.readings is not None:
                stats.packs += 1
                stats.readings += n
                stats.duplicates += len(pack.readings) - n
            if pack.batch is not None:
                ack = acks.setdefault((pack.tenant, pack.gateway), _Acks())
                (ack.batches if pack.readings is not None else ack.rejected).append(pack.batch)
        for pack_of_events, n in zip(events, new_events, strict=True):
            if pack_of_events.events is not None:
                stats.event_packs += 1
                stats.events += n
                stats.event_duplicates += len(pack_of_events.events) - n
            if pack_of_events.batch is not None:
                ack = acks.setdefault((pack_of_events.tenant, pack_of_events.gateway), _Acks())
                (ack.batches if pack_of_events.events is not None else ack.rejected).append(pack_of_events.batch)
        # Concurrently: a broker that confirms each publish (RabbitMQ) answers them all in about one round trip.
        await asyncio.gather(*(self._publish_ack(tenant, gateway, ack) for (tenant, gateway), ack in acks.items()))

    async def _publish_ack(self, tenant: str, gateway: str, ack: _Acks) -> None:
        try:
            await self._broker.publish(
                topics.topic(tenant, gateway, "ack"),
                envelopes.encode_ack(ack.batches, ack.rejected),
                qos=1,
                retain=False,
            )
        except Exception:  # an ack that cannot go out is sent again when the gateway re-sends the batch
            _LOGGER.exception("cannot publish the ack to %s/%s", tenant, gateway)
            return
        self._stats.acks_sent += 1


def _size(item: _Item) -> int:
    if isinstance(item, _Pack):
        return max(1, len(item.readings or ()))
    if isinstance(item, _Event):
        return max(1, len(item.events or ()))
    return 1


async def _settle(settle: Settle, done: bool) -> None:
    try:
        await settle(done)
    except Exception:  # the broker delivers an unsettled message again: a lost settle costs a duplicate
        _LOGGER.warning("cannot settle a message with the broker", exc_info=True)


async def _settle_all(items: Sequence[_Item], done: bool) -> None:
    for item in items:
        if item.settle is not None:
            await _settle(item.settle, done)
