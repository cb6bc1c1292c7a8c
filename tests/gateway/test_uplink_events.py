"""Uplink events against a real amqtt broker on loopback, with test-side ackers standing in for the cloud.

The event acker subscribes to ``roost/+/+/events/#``, decodes each pack with wire.events and answers on
``ack`` (or holds, drops the first delivery, or refuses, as a test asks); the telemetry acker of
test_uplink answers for the readings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from gateway.buffer import DurableBuffer
from tests.gateway.test_uplink import GW, TENANT, Acker, BrokerProc, make_uplink, readings, running, until
from wire import events
from wire.envelopes import encode_ack
from wire.events import Event


def ev(i: int) -> Event:
    """An alert event numbered ``i``."""
    return Event(
        id=f"e{i}",
        kind="alert",
        ts=1_700_000_000.0 + i,
        key=f"rule/s{i % 3}",
        rule="rule",
        state="raised" if i % 2 == 0 else "cleared",
        severity="critical",
        message=f"event {i}",
    )


@dataclass
class EventAcker:
    """Collects event packs and acknowledges (or holds, drops, refuses) their batch ids."""

    port: int
    mode: str = "ack"  # ack | hold | drop-first | reject
    events: dict[str, Event] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    deliveries: int = 0
    held: list[str] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _seen: set[str] = field(default_factory=set)

    async def run(self) -> None:
        """Serve until cancelled, reconnecting when the broker goes away."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"ev-acker-{os.getpid()}", timeout=1
                ) as client:
                    self.client = client
                    await client.subscribe("roost/+/+/events/#", qos=1)
                    async for msg in client.messages:
                        await self._handle(client, msg)
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.1)

    async def _handle(self, client: aiomqtt.Client, msg: aiomqtt.Message) -> None:
        topic = msg.topic.value
        self.topics.append(topic)
        tenant, gw, batch = topic.split("/")[1], topic.split("/")[2], topic.split("/")[4]
        self.deliveries += 1
        ack_topic = f"roost/{tenant}/{gw}/ack"
        if self.mode == "reject":
            await client.publish(ack_topic, encode_ack([], [batch]), qos=1)
            return
        if self.mode == "drop-first" and batch not in self._seen:
            self._seen.add(batch)
            return
        for e in events.decode(bytes(msg.payload)):
            self.events[e.id] = e
        if self.mode == "hold":
            self.held.append(batch)
            return
        await client.publish(ack_topic, encode_ack([batch]), qos=1)

    async def release_held(self) -> None:
        """Acknowledge every held batch and go back to acknowledging."""
        self.mode = "ack"
        assert self.client is not None
        held, self.held = self.held, []
        await self.client.publish(f"roost/{TENANT}/{GW}/ack", encode_ack(held), qos=1)


@pytest.fixture
async def broker() -> AsyncIterator[BrokerProc]:
    """A running amqtt broker with TCP and WebSockets listeners."""
    b = BrokerProc()
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest.fixture
async def buffer(tmp_path: Path) -> AsyncIterator[DurableBuffer]:
    """An open buffer in a temporary folder."""
    async with DurableBuffer(tmp_path / "buffer.sqlite", max_age_s=0) as buf:
        yield buf


async def test_events_deleted_only_after_the_ack_and_not_held_back_by_telemetry(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    telemetry = Acker(broker.tcp_port, mode="hold")
    acker = EventAcker(broker.tcp_port, mode="hold")
    uplink = make_uplink(
        buffer, tmp_path, f"ws://127.0.0.1:{broker.ws_port}/mqtt", inflight=2, batch_max_readings=100, ack_timeout_s=60
    )
    async with running(telemetry.run(), acker.run(), uplink.run()):
        await until(lambda: telemetry.client is not None and acker.client is not None, what="the ackers")
        await buffer.append(readings(1000))
        await until(lambda: len(telemetry.held) == 2, what="the telemetry window full")
        sent = [ev(i) for i in range(250)]
        await buffer.append_events(sent)
        await until(lambda: len(acker.events) == 250, what="every event at the acker despite the telemetry backlog")
        await asyncio.sleep(0.3)
        assert buffer.stats()["events_buffered"] == 250, "a PUBACK alone deletes nothing"
        assert uplink.events_sent == 0
        await acker.release_held()
        await until(lambda: buffer.stats()["events_buffered"] == 0, what="deletion after the ack")
        assert uplink.events_sent == 250 and uplink.sent == 0
        assert uplink.health()["events"] == {"buffered": 0, "received": 250, "sent": 250, "dropped": 0, "rejected": 0}
        await telemetry.release_held()
        await until(lambda: buffer.stats()["buffered"] == 0, what="the readings after all")
    assert [acker.events[e.id] for e in sent] == sent
    assert all(t.startswith(f"roost/{TENANT}/{GW}/events/ev-") for t in acker.topics)
    assert len(acker.topics) == 3, "packs of at most 100 events"


async def test_event_pack_without_ack_is_sent_again(broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path) -> None:
    acker = EventAcker(broker.tcp_port, mode="drop-first")
    uplink = make_uplink(buffer, tmp_path, f"mqtt://127.0.0.1:{broker.tcp_port}", ack_timeout_s=0.5)
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append_events([ev(i) for i in range(150)])
        await until(lambda: buffer.stats()["events_buffered"] == 0, what="re-sent packs acknowledged")
    assert uplink.resent >= 2 and acker.deliveries >= 4
    assert sorted(acker.events) == sorted(f"e{i}" for i in range(150))
    assert uplink.events_sent == 150


async def test_refused_event_packs_are_dropped_and_counted(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    acker = EventAcker(broker.tcp_port, mode="reject")
    uplink = make_uplink(buffer, tmp_path, f"mqtt://127.0.0.1:{broker.tcp_port}")
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append_events([ev(i) for i in range(7)])
        await until(lambda: buffer.stats()["events_buffered"] == 0, what="the refused pack gone")
        await asyncio.sleep(0.3)
    assert uplink.events_rejected == 7 and uplink.events_sent == 0 and uplink.rejected == 0
    assert acker.deliveries == 1, "a refused pack is not sent again"


async def test_events_in_flight_across_a_broker_restart_are_sent_again(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    acker = EventAcker(broker.tcp_port, mode="hold")
    # The acker is away too while the broker is down: packs sent before it is back are sent again on timeout.
    uplink = make_uplink(buffer, tmp_path, f"ws://127.0.0.1:{broker.ws_port}/mqtt", ack_timeout_s=1)
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None and uplink.connected, what="connections")
        await buffer.append_events([ev(i) for i in range(20)])
        await until(lambda: len(acker.events) == 20, what="the events at the acker (unacknowledged)")
        acker.held.clear()
        acker.mode = "ack"
        await broker.stop()
        await until(lambda: not uplink.connected, timeout=10, what="the uplink to notice")
        await buffer.append_events([ev(i) for i in range(20, 30)])
        await broker.start()
        await until(lambda: buffer.stats()["events_buffered"] == 0, timeout=30, what="everything acknowledged")
    assert sorted(acker.events) == sorted(f"e{i}" for i in range(30))
    assert uplink.reconnects >= 1 and uplink.events_sent == 30
