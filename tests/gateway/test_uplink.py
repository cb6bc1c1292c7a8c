"""Uplink against a real amqtt broker on loopback, with a test-side acker standing in for the cloud.

The acker is a real aiomqtt client subscribed to ``roost/+/+/telemetry/#``: it decodes each pack
and answers on ``roost/{tenant}/{gw}/ack`` (or holds, drops or rejects, as a test asks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from amqtt.broker import Broker

from gateway.buffer import DurableBuffer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink import Uplink, parse_url
from gateway.uplink.discovery import CACHE_NAME, target
from wire import senml
from wire.discovery import parse as parse_discovery
from wire.envelopes import decode_health, encode_ack
from wire.reading import Reading

ROOT = Path(__file__).resolve().parents[2]
TENANT = "default"
GW = "gw-test-1"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_config(
    tcp_port: int,
    ws_port: int,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> dict[str, Any]:
    """amqtt 0.12 config: a TCP and a WebSockets listener (TLS when given a cert), anonymous allowed."""
    ws: dict[str, Any] = {"type": "ws", "bind": f"127.0.0.1:{ws_port}"}
    if certfile is not None:
        ws |= {"ssl": True, "certfile": str(certfile), "keyfile": str(keyfile)}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{tcp_port}"}, "ws": ws},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class BrokerProc:
    """An amqtt broker in this event loop that can be stopped and started again on the same ports."""

    def __init__(self, **kwargs: Any) -> None:
        self.tcp_port = free_port()
        self.ws_port = free_port()
        self.kwargs = kwargs
        self.broker: Broker | None = None

    async def start(self) -> None:
        """Start listening."""
        self.broker = Broker(broker_config(self.tcp_port, self.ws_port, **self.kwargs))
        await asyncio.wait_for(self.broker.start(), 10)

    async def stop(self) -> None:
        """Shut down (closing every client connection)."""
        if self.broker is not None:
            broker, self.broker = self.broker, None
            await asyncio.wait_for(broker.shutdown(), 10)


@dataclass
class Acker:
    """Stands in for the cloud: collects the readings of each pack and acknowledges its batch id."""

    port: int
    mode: str = "ack"  # ack | hold | drop-first | reject-bad
    readings: list[Reading] = field(default_factory=list)
    packs: dict[str, bytes] = field(default_factory=dict)
    deliveries: int = 0
    held: list[tuple[str, str]] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _seen: set[str] = field(default_factory=set)

    async def run(self) -> None:
        """Serve until cancelled, reconnecting when the broker goes away."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"acker-{os.getpid()}", timeout=1
                ) as client:
                    self.client = client
                    await client.subscribe("roost/+/+/telemetry/#", qos=1)
                    async for msg in client.messages:
                        await self._handle(client, msg)
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.1)

    async def _handle(self, client: aiomqtt.Client, msg: aiomqtt.Message) -> None:
        parts = msg.topic.value.split("/")
        tenant, gw, batch = parts[1], parts[2], parts[4]
        payload = bytes(msg.payload)
        self.deliveries += 1
        readings = senml.decode(payload)
        ack_topic = f"roost/{tenant}/{gw}/ack"
        if self.mode == "drop-first" and batch not in self._seen:
            self._seen.add(batch)
            return
        if self.mode == "reject-bad" and any(r.sensor == "bad" for r in readings):
            await client.publish(ack_topic, encode_ack([], [batch]), qos=1)
            return
        if batch not in self.packs:
            self.readings.extend(readings)
        self.packs[batch] = payload
        if self.mode == "hold":
            self.held.append((ack_topic, batch))
            return
        await client.publish(ack_topic, encode_ack([batch]), qos=1)

    async def release_held(self) -> None:
        """Acknowledge every held batch at once and go back to acknowledging."""
        self.mode = "ack"
        assert self.client is not None
        by_topic: dict[str, list[str]] = {}
        for ack_topic, batch in self.held:
            by_topic.setdefault(ack_topic, []).append(batch)
        self.held.clear()
        for ack_topic, batches in by_topic.items():
            await self.client.publish(ack_topic, encode_ack(batches), qos=1)


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``cond`` every 20 ms; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def readings(n: int, sensor: str = "s1", start: int = 0) -> list[Reading]:
    """``n`` readings of every value kind with distinct µs timestamps."""
    base = 1_700_000_000.0
    out: list[Reading] = []
    for i in range(start, start + n):
        ts = round(base + i / 1000 + 0.000001 * (i % 7), 6)
        kind = i % 4
        value: float | bool | str = (
            i * 0.25 if kind == 0 else float(i) if kind == 1 else bool(i % 8) if kind == 2 else f"state-{i}"
        )
        out.append(Reading(sensor, f"m{kind}", value, ts, "Cel" if kind == 0 else None))
    return out


def key(r: Reading) -> tuple[str, str, int]:
    """What the cloud's ingest is idempotent on (per gateway)."""
    return (r.sensor, r.metric, r.ts_us)


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


@contextlib.asynccontextmanager
async def running(*coros: Awaitable[None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run coroutines as tasks for the body; cancel them (bounded) afterwards."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


def make_uplink(
    buffer: DurableBuffer, state_dir: Path, mqtt_url: str, *, extra: dict[str, int] | None = None, **uplink_kwargs: Any
) -> Uplink:
    """An Uplink to ``mqtt_url`` with quick timeouts."""
    cloud = CloudSection(mqtt_url=mqtt_url, connect_timeout_s=3, backoff_initial_s=0.05, backoff_max_s=0.5)
    kwargs: dict[str, Any] = {"batch_max_readings": 500, "batch_max_delay_ms": 20} | uplink_kwargs
    return Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(**kwargs),
        buffer=buffer,
        state_dir=state_dir,
        extra_counters=(lambda: extra) if extra is not None else None,
    )


# ----------------------------------------------------------------------------------------- unit


def test_parse_url() -> None:
    e = parse_url("wss://cloud.example:8443/mqtt")
    assert (e.host, e.port, e.transport, e.websocket_path) == ("cloud.example", 8443, "websockets", "/mqtt")
    assert e.tls
    e = parse_url("ws://127.0.0.1/mqtt")
    assert (e.port, e.tls) == (80, False)
    e = parse_url("mqtt://h")
    assert (e.port, e.transport, e.websocket_path, e.tls) == (1883, "tcp", None, False)
    assert parse_url("mqtts://h").port == 8883
    with pytest.raises(Exception, match="scheme"):
        parse_url("http://h/mqtt")


def test_target_from_discovery_document() -> None:
    doc = parse_discovery(
        {
            "mqtt_ws_url": "wss://c/mqtt",
            "api_url": "https://c/api/v1",
            "mqtt_tcp_url": "mqtt://c:1883",
            "senml_compression": ["zlib"],
            "ack": "puback",
        }
    )
    t = target(CloudSection(), UplinkSection(), doc, "discovery")
    assert (t.mqtt_url, t.ack, t.compress, t.encoding) == ("wss://c/mqtt", "puback", True, "cbor")
    assert not target(CloudSection(), UplinkSection(compress="none"), doc).compress
    assert target(CloudSection(transport="tcp"), UplinkSection(), doc).mqtt_url == "mqtt://c:1883"
    t = target(CloudSection(mqtt_url="ws://x/mqtt"), UplinkSection(), None)
    assert (t.mqtt_url, t.ack, t.compress) == ("ws://x/mqtt", "cloud", False)


# ----------------------------------------------------------------------------------------- broker


async def test_readings_arrive_decoded_and_are_deleted_after_the_ack(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    sent = readings(2345)
    acker = Acker(broker.tcp_port)
    uplink = make_uplink(buffer, tmp_path, f"ws://127.0.0.1:{broker.ws_port}/mqtt")
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append(sent)
        await until(lambda: buffer.stats()["buffered"] == 0, what="every reading acknowledged and deleted")
        assert uplink.connected and uplink.sent == len(sent) and uplink.inflight == 0
    assert sorted(acker.readings, key=key) == sorted(sent, key=key)
    assert [r.ts_us for r in sorted(acker.readings, key=key)] == [r.ts_us for r in sorted(sent, key=key)]
    assert all(p[0] in range(0x80, 0xA0) for p in acker.packs.values()), "CBOR packs by default"
    assert max(len(senml.decode(p)) for p in acker.packs.values()) <= 500
    assert all(b.split("-")[0] == next(iter(acker.packs)).split("-")[0] for b in acker.packs)


async def test_puback_alone_does_not_delete(broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path) -> None:
    acker = Acker(broker.tcp_port, mode="hold")
    uplink = make_uplink(buffer, tmp_path, f"mqtt://127.0.0.1:{broker.tcp_port}", ack_timeout_s=60)
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append(readings(1200))
        await until(lambda: len(acker.readings) == 1200, what="the packs at the acker (so PUBACKed)")
        await asyncio.sleep(0.3)
        assert buffer.stats()["buffered"] == 1200, "rows must stay until the cloud's ack"
        assert uplink.inflight == 3 and uplink.sent == 0
        await acker.release_held()
        await until(lambda: buffer.stats()["buffered"] == 0, what="deletion after the ack")
        assert uplink.sent == 1200


async def test_pack_without_ack_is_sent_again(broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path) -> None:
    acker = Acker(broker.tcp_port, mode="drop-first")
    uplink = make_uplink(buffer, tmp_path, f"ws://127.0.0.1:{broker.ws_port}/mqtt", ack_timeout_s=0.5)
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append(readings(700))
        await until(lambda: buffer.stats()["buffered"] == 0, what="re-sent packs acknowledged")
    assert uplink.resent >= 2 and acker.deliveries >= 4
    assert sorted(acker.readings, key=key) == sorted(readings(700), key=key)


async def test_rejected_batches_are_dropped_and_counted(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    acker = Acker(broker.tcp_port, mode="reject-bad")
    uplink = make_uplink(
        buffer,
        tmp_path,
        f"mqtt://127.0.0.1:{broker.tcp_port}",
        batch_max_readings=100,
        batch_max_delay_ms=0,
        extra={"rejected": 7},
    )
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append(readings(100, sensor="good"))
        await until(lambda: buffer.stats()["buffered"] == 0, what="the good pack")
        await buffer.append(readings(60, sensor="bad"))
        await until(lambda: buffer.stats()["buffered"] == 0, what="the rejected pack gone")
        await asyncio.sleep(0.2)
    assert uplink.rejected == 60 and uplink.sent == 100
    assert uplink.counters()["rejected"] == 67
    assert acker.deliveries == 2, "a rejected pack is not sent again"
    assert any("refused" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_broker_restart_mid_stream_loses_nothing(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    acker = Acker(broker.tcp_port)
    # The acker is away too while the broker is down: packs sent meanwhile go unacknowledged and are re-sent.
    uplink = make_uplink(
        buffer, tmp_path, f"ws://127.0.0.1:{broker.ws_port}/mqtt", batch_max_readings=200, ack_timeout_s=1
    )
    total = 40 * 100

    async def produce() -> None:
        for i in range(40):
            await buffer.append(readings(100, start=i * 100))
            await asyncio.sleep(0.02)

    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None and uplink.connected, what="connections")
        producer = asyncio.ensure_future(produce())
        await until(lambda: len(acker.readings) >= 800, what="some readings through")
        await broker.stop()
        await until(lambda: not uplink.connected, timeout=10, what="the uplink to notice")
        await asyncio.sleep(0.5)  # readings keep arriving in the buffer meanwhile
        assert uplink.last_error
        await broker.start()
        await asyncio.wait_for(producer, 20)
        await until(lambda: buffer.stats()["buffered"] == 0, timeout=30, what="everything acknowledged")
    assert {key(r) for r in acker.readings} == {key(r) for r in readings(total)}, "at least once"
    assert uplink.reconnects >= 1 and uplink.counters()["reconnects"] == uplink.reconnects
    assert uplink.last_error is None


async def test_health_reports_carry_counters(broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path) -> None:
    acker = Acker(broker.tcp_port)
    uplink = make_uplink(
        buffer, tmp_path, f"mqtt://127.0.0.1:{broker.tcp_port}", health_interval_s=0.2, extra={"rejected": 3}
    )
    reports: list[dict[str, Any]] = []

    async def watch() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.tcp_port, identifier="health-watch") as c:
            await c.subscribe(f"roost/{TENANT}/{GW}/health", qos=1)
            async for msg in c.messages:
                reports.append(dict(decode_health(bytes(msg.payload))))

    async with running(acker.run(), watch()):
        await asyncio.sleep(0.3)
        async with running(uplink.run()):
            await until(lambda: len(reports) >= 1, what="the health report on connect")
            await buffer.append(readings(50))
            await until(lambda: any(r["counters"]["sent"] == 50 for r in reports), what="a report with sent=50")
    last = reports[-1]
    assert set(last["counters"]) == {
        "buffered",
        "received",
        "sent",
        "dropped",
        "dropped_full",
        "dropped_age",
        "rejected",
        "reconnects",
    }
    assert last["counters"]["received"] == 50 and last["counters"]["rejected"] == 3
    assert last["uptime_s"] > 0 and abs(last["ts"] - time.time()) < 60


LAST_WILL_CHILD = r"""
import asyncio, sys
from pathlib import Path
from gateway.buffer import DurableBuffer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink import Uplink

async def main():
    async with DurableBuffer(Path(sys.argv[2]) / "b.sqlite") as buf:
        up = Uplink(gateway_id="gw-will", tenant="default", cloud=CloudSection(mqtt_url=sys.argv[1], keepalive_s=5),
                    uplink=UplinkSection(), buffer=buf, state_dir=Path(sys.argv[2]))
        await up.run()

asyncio.run(main())
"""


async def test_killed_connection_leaves_offline_retained(broker: BrokerProc, tmp_path: Path) -> None:
    status = f"roost/{TENANT}/gw-will/status"
    seen: list[bytes] = []

    async def watch() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.tcp_port, identifier="status-watch") as c:
            await c.subscribe(status, qos=1)
            async for msg in c.messages:
                seen.append(bytes(msg.payload))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAST_WILL_CHILD,
        f"ws://127.0.0.1:{broker.ws_port}/mqtt",
        str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with running(watch()):
            await until(lambda: b"online" in seen, timeout=20, what="online")
            proc.send_signal(signal.SIGKILL)
            await until(lambda: seen[-1:] == [b"offline"], timeout=10, what="the last will")
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
    retained: list[tuple[bytes, bool]] = []
    async with aiomqtt.Client("127.0.0.1", broker.tcp_port, identifier="status-late") as c:
        await c.subscribe(status, qos=1)
        async with asyncio.timeout(5):
            async for msg in c.messages:
                retained.append((bytes(msg.payload), msg.retain))
                break
    assert retained == [(b"offline", True)]


async def test_flush_waits_for_in_flight_acks(broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path) -> None:
    acker = Acker(broker.tcp_port, mode="hold")
    uplink = make_uplink(buffer, tmp_path, f"mqtt://127.0.0.1:{broker.tcp_port}")
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None and uplink.connected, what="connections")
        await buffer.append(readings(300))
        await until(lambda: len(acker.readings) == 300, what="the pack at the acker")
        t = time.monotonic()
        await uplink.flush(0.3)
        assert 0.25 < time.monotonic() - t < 3 and uplink.inflight == 1, "held: flush gives up after its timeout"
        flushing = asyncio.ensure_future(uplink.flush(5))
        await acker.release_held()
        await asyncio.wait_for(flushing, 10)
        assert uplink.inflight == 0 and buffer.stats()["buffered"] == 0
        await buffer.append(readings(10, start=1000))
        await asyncio.sleep(0.3)
        assert buffer.stats()["buffered"] == 10, "no new packs after flush"
    # Leaving run(): the rows are still there for the next start.
    assert buffer.inflight_batches() == []


# ----------------------------------------------------------------------------------------- discovery


class DiscoveryServer:
    """A minimal HTTP server answering GET /.well-known/roost with a JSON document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.hits = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        self.hits += 1
        ok = request.startswith(b"GET /.well-known/roost ")
        body = json.dumps(self.doc).encode() if ok else b"{}"
        status = b"200 OK" if ok else b"404 Not Found"
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    async def start(self) -> None:
        """Listen on loopback."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_discovery_puback_mode_compression_and_cache(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    http = DiscoveryServer(
        {
            "mqtt_ws_url": f"ws://127.0.0.1:{broker.ws_port}/mqtt",
            "api_url": "http://127.0.0.1/api/v1",
            "ack": "puback",
            "senml_compression": ["zlib"],
            "senml_encodings": ["cbor", "json"],
        }
    )
    await http.start()
    acker = Acker(broker.tcp_port, mode="hold")  # never acks: puback mode must not need it
    cloud = CloudSection(
        url=f"http://127.0.0.1:{http.port}", connect_timeout_s=3, backoff_initial_s=0.05, backoff_max_s=0.3
    )
    state = tmp_path / "state"
    up = Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(batch_max_delay_ms=10),
        buffer=buffer,
        state_dir=state,
    )
    try:
        async with running(acker.run(), up.run()):
            await until(lambda: acker.client is not None, what="the acker")
            await buffer.append(readings(100))
            await until(lambda: buffer.stats()["buffered"] == 0, what="deletion on PUBACK")
        assert up.target is not None and up.target.source == "discovery" and up.target.ack == "puback"
        assert all(p[0] == 0x78 for p in acker.packs.values()), "zlib packs when the document allows them"
        assert json.loads((state / CACHE_NAME).read_text())["url"] == cloud.url
    finally:
        await http.stop()
    # The HTTP side is gone: a restarted gateway connects with the cached document.
    up2 = Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(batch_max_delay_ms=10),
        buffer=buffer,
        state_dir=state,
    )
    async with running(acker.run(), up2.run()):
        await buffer.append(readings(10, start=500))
        await until(lambda: buffer.stats()["buffered"] == 0, what="sending with the cached document")
    assert up2.target is not None and up2.target.source == "cache"


async def test_discovery_failure_without_cache_is_retried_and_reported(buffer: DurableBuffer, tmp_path: Path) -> None:
    cloud = CloudSection(
        url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=1, backoff_initial_s=0.05, backoff_max_s=0.1
    )
    up = Uplink(gateway_id=GW, tenant=TENANT, cloud=cloud, uplink=UplinkSection(), buffer=buffer, state_dir=tmp_path)
    async with running(up.run()):
        await until(lambda: up.connect_failures >= 3, what="retries")
    assert up.last_error is not None and "/.well-known/roost" in up.last_error
    assert not up.connected and up.reconnects == 0


def test_websocket_frames_are_always_masked() -> None:
    """paho answered pings with unmasked pongs, which amqtt's websockets server closes with 1002 (see _wsfix)."""
    from paho.mqtt.client import _WebsocketWrapper

    from gateway.uplink import _wsfix

    _wsfix.apply()
    for opcode, data in ((0xA, b"\x87\xc8\x5d\xec"), (0x2, bytes(range(256)) * 300), (0x8, b"")):
        frame = _WebsocketWrapper._create_frame(None, opcode, bytearray(data), 0)  # type: ignore[arg-type]
        assert frame[0] == 0x80 | opcode and frame[1] & 0x80, "FIN set and MASK set even when asked not to"
        n = frame[1] & 0x7F
        offset = 2 + {126: 2, 127: 8}.get(n, 0)
        key, body = bytes(frame[offset : offset + 4]), bytes(frame[offset + 4 :])
        assert _wsfix.mask(key, body) == data


class _Provider:
    """Credentials handed out by the test: none at first (enrollment), then renewed on demand."""

    def __init__(self) -> None:
        from gateway.uplink.auth import Credentials

        self.make = Credentials
        self.current: Any = None
        self.changed = asyncio.Event()
        self.asked = 0

    def give(self, gateway_id: str, password: str) -> None:
        self.current = self.make(gateway_id, password, gateway_id, TENANT, "token")
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    async def get(self) -> Any:
        self.asked += 1
        while self.current is None:
            await self.changed.wait()
        return self.current

    async def renewed(self, current: Any) -> None:
        while self.current is current:
            await self.changed.wait()

    def refused(self, current: Any) -> None:
        pass


async def test_renewed_credentials_reconnect_at_once_and_lose_nothing(
    broker: BrokerProc, buffer: DurableBuffer, tmp_path: Path
) -> None:
    acker = Acker(broker.tcp_port)
    provider = _Provider()
    cloud = CloudSection(
        mqtt_url=f"ws://127.0.0.1:{broker.ws_port}/mqtt", connect_timeout_s=3, backoff_initial_s=5, backoff_max_s=5
    )
    uplink = Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(batch_max_readings=100, batch_max_delay_ms=5),
        buffer=buffer,
        state_dir=tmp_path,
        credentials=provider,
    )
    async with running(acker.run(), uplink.run()):
        await until(lambda: acker.client is not None, what="the acker")
        await buffer.append(readings(300))  # buffered while there are no credentials (enrollment)
        await asyncio.sleep(0.3)
        assert not uplink.connected and buffer.stats()["buffered"] == 300
        provider.give("gw-enrolled", "token-1")
        await until(lambda: buffer.stats()["buffered"] == 0, what="the buffered readings after enrollment")
        assert uplink.gateway_id == "gw-enrolled"
        for i in range(2, 5):
            await buffer.append(readings(200, start=1000 * i))
            provider.give("gw-enrolled", f"token-{i}")
            await until(lambda: uplink.connected and buffer.stats()["buffered"] == 0, what="readings after renewal")
        assert uplink.reconnects >= 3 and uplink.connect_failures == 0  # no backoff (5 s) was waited
    assert len({key(r) for r in acker.readings}) == 900
    assert uplink.sent == 900
