"""A simulated gateway for the scale-out tests: what the real uplink does, in a few lines of aiomqtt.

It publishes SenML packs on ``telemetry/{batch}`` at QoS 1, keeps every batch until the cloud's ``ack`` names
it, and counts a reading as acknowledged only then. When its broker node goes away it connects to the next
node of its list and sends every unacknowledged batch again (so does one whose ack is overdue), as
gateway/uplink does: the cloud must store each reading once however often it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiomqtt

from wire import envelopes, senml
from wire.errors import PayloadError
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

Key = tuple[str, str, str, int]
"""(gateway, sensor, metric, ts in µs): one reading as the store keys it."""


@dataclass
class SimGateway:
    """One gateway: its id and password, the MQTT ports of the nodes it may use, what it sent and what was acked."""

    id: str
    password: str
    ports: list[int]
    node: int = 0
    tenant: str = "default"
    sensors: int = 10
    interval_s: float = 0.1
    resend_after_s: float = 8.0
    t0: int = field(default_factory=lambda: int(time.time()))
    unacked: dict[str, tuple[bytes, list[Key], float]] = field(default_factory=dict)
    acked: set[Key] = field(default_factory=set)
    acked_at: dict[str, float] = field(default_factory=dict)
    """Batch id -> when its ack arrived (monotonic)."""
    sent_batches: int = 0
    resent: int = 0
    connects: int = 0
    connected_ports: list[int] = field(default_factory=list)
    producing: bool = True
    _seq: int = 0

    def topic(self, kind: str) -> str:
        return f"roost/{self.tenant}/{self.id}/{kind}"

    def _next_batch(self) -> tuple[str, bytes, list[Key]]:
        self._seq += 1
        ts = self.t0 + self._seq * 0.125  # exact in binary: the µs key on both sides is the same integer
        readings = [Reading(f"s{k}", "temp", 20.0 + k + self._seq / 1000, ts, "Cel") for k in range(self.sensors)]
        keys = [(self.id, r.sensor, r.metric, self.t0 * 1_000_000 + self._seq * 125_000) for r in readings]
        return f"b{self._seq}", senml.encode(readings), keys

    def _on_ack(self, payload: bytes) -> None:
        try:
            ack = envelopes.decode_ack(payload)
        except PayloadError:
            _LOGGER.warning("%s: bad ack %r", self.id, payload[:60])
            return
        for batch in ack["batches"]:
            sent = self.unacked.pop(batch, None)
            if sent is not None:
                self.acked.update(sent[1])
                self.acked_at[batch] = time.monotonic()

    async def run(self, deadline: float) -> None:
        """Produce until ``producing`` turns False, then until every batch is acked or ``deadline`` (monotonic)."""
        while time.monotonic() < deadline and (self.producing or self.unacked):
            port = self.ports[self.node % len(self.ports)]
            try:
                await self._session(port, deadline)
            except aiomqtt.MqttError as exc:
                _LOGGER.info("%s: lost node on port %d (%s); trying the next", self.id, port, exc)
                self.node += 1
                await asyncio.sleep(0.3)

    async def _session(self, port: int, deadline: float) -> None:
        will = aiomqtt.Will(self.topic("status"), envelopes.OFFLINE, qos=1, retain=True)
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=self.id, username=self.id, password=self.password,
            will=will, clean_session=True, keepalive=10, timeout=5,
        ) as client:  # fmt: skip
            self.connects += 1
            self.connected_ports.append(port)
            # QoS 0: RabbitMQ 3.10's MQTT plugin keeps a QoS 1 subscription in a durable queue on the node the
            # client was connected to; while that node is down, the same client id cannot subscribe anywhere
            # ("home node ... is down"). A QoS 0 subscription's queue is transient and goes with its node. A lost
            # ack costs a resend, which ingest stores once.
            await client.subscribe(self.topic("ack"), qos=0)
            await client.publish(self.topic("status"), envelopes.ONLINE, qos=1, retain=True)
            receiver = asyncio.create_task(self._receive(client))
            try:
                for batch, (payload, _keys, _at) in list(self.unacked.items()):  # a new session: send them again
                    self.unacked[batch] = (payload, _keys, time.monotonic())
                    await client.publish(f"{self.topic('telemetry')}/{batch}", payload, qos=1)
                    self.resent += 1
                while time.monotonic() < deadline and (self.producing or self.unacked):
                    if receiver.done():
                        receiver.result()  # raises the MqttError that ended it
                    if self.producing:
                        batch, payload, keys = self._next_batch()
                        self.unacked[batch] = (payload, keys, time.monotonic())
                        await client.publish(f"{self.topic('telemetry')}/{batch}", payload, qos=1)
                        self.sent_batches += 1
                    now = time.monotonic()
                    for batch, (payload, keys, at) in list(self.unacked.items()):
                        if now - at > self.resend_after_s:
                            self.unacked[batch] = (payload, keys, now)
                            await client.publish(f"{self.topic('telemetry')}/{batch}", payload, qos=1)
                            self.resent += 1
                    await asyncio.sleep(self.interval_s)
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await receiver

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if str(message.topic) == self.topic("ack") and isinstance(message.payload, bytes):
                self._on_ack(message.payload)
