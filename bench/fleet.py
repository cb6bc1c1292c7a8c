"""Fleet benchmark: how many gateways one broker keeps connected, each with a heartbeat and a reading every 10 s.

One process simulates the whole fleet cheaply: asyncio protocols speaking a minimal MQTT 3.1.1 client
written here (CONNECT with credentials and a last will, SUBSCRIBE to its ``ack`` and ``cmd/+`` topics,
PUBLISH at QoS 1 waiting for each PUBACK, PINGREQ when idle, PUBACK to what the broker delivers). Each
simulated gateway publishes a ``health`` report and a real SenML pack (``wire.senml``, one reading) on
``telemetry/{batch}`` every interval, at its own phase, so the load is spread evenly over the interval.

The fleet grows in steps. After each step it holds for a little more than one interval and checks that
every gateway is still connected, every publish of that window was PUBACKed within the timeout, and the
PUBACK p99 stays under ``--max-p99-ms`` (a broker that is not yet dropping but is saturated): a step that
holds is "kept". The ramp goes on past the target to find the ceiling (the first step that does not
hold, and why), within ``--*-max``. Figures per step: broker RSS, memory per connection ((RSS - idle RSS)
/ connections), broker CPU (cores, and per 1,000 gateways), PUBACK latency, the generator's own CPU.

Two brokers, in one run:
  * embedded: a real ``roost cloud serve`` subprocess (amqtt broker, plain MQTT over TCP, ingest into
    SQLite, the cloud's ``ack`` back to each gateway), ``allow_any_gateway = true``; its RSS and CPU are
    the whole cloud process's. amqtt PUBACKs from memory, so a gateway deletes a pack only on the cloud's
    ``ack``: the bench times that too and says up to which step every pack was acknowledged with a p99
    under the bound (the ramp itself goes on while the connections and PUBACKs hold);
  * rabbitmq: three real RabbitMQ nodes clustered on this machine (tests/rabbitmq_cluster.py), gateways
    spread over the nodes' MQTT listeners, telemetry and health routed to a quorum queue (so a PUBACK
    means a quorum of nodes holds the message); authentication by RabbitMQ's internal user database (one
    bench user), not the cloud's HTTP backend; no cloud consuming: the queue is capped at 5,000 messages, oldest
    dropped, standing in for ingest workers that keep it short (its backlog would count as memory per connection).

Usage: python bench/fleet.py [--embedded 2000] [--rabbitmq 10000] [--skip-embedded] [--skip-rabbitmq]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rabbitmq_cluster import RabbitCluster, free_port, missing  # noqa: E402
from wire import senml, topics  # noqa: E402
from wire.envelopes import Health, decode_ack, encode_health  # noqa: E402
from wire.errors import PayloadError  # noqa: E402
from wire.reading import Reading  # noqa: E402

TARGET_EMBEDDED = 2_000
TARGET_RABBITMQ = 10_000
TENANT = "default"
CONNECT_TIMEOUT_S = 15.0
CONNECT_ATTEMPTS = 4
"""A simulated gateway tries this many times (with backoff) before its connect counts as failed."""
NOFILE = 200_000

# ---------------------------------------------------------------- minimal MQTT 3.1.1 client

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP = 1, 2, 3, 4, 8, 9, 12, 13


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, will_topic: str, keepalive: int) -> bytes:
    """CONNECT: clean session, username and password, a retained QoS 1 last will."""
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body += _str(client_id) + _str(will_topic) + _str(b"offline") + _str(username) + _str(password)
    return _packet(CONNECT << 4, body)


def subscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    """SUBSCRIBE to ``filters`` at QoS 1."""
    body = struct.pack("!H", packet_id) + b"".join(_str(f) + b"\x01" for f in filters)
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH at QoS 1 (``topic`` already length-prefixed)."""
    return _packet(PUBLISH << 4 | 0x02, topic + struct.pack("!H", packet_id) + payload)


PINGREQ_PACKET = bytes([PINGREQ << 4, 0])


@dataclass
class Counts:
    """What the fleet saw since the counters were last reset (one step's window)."""

    published: int = 0
    acked: int = 0
    received: int = 0
    latencies: list[float] = field(default_factory=list)
    batches: int = 0
    """Telemetry packs published whose ``ack`` from the cloud is awaited (ack mode ``cloud``)."""
    cloud_acked: int = 0
    cloud_latencies: list[float] = field(default_factory=list)


class SimGateway(asyncio.Protocol):
    """One simulated gateway: an MQTT connection as a protocol object (no task of its own)."""

    __slots__ = ("batches", "buf", "fleet", "gw", "last_sent", "next_pid", "pending", "phase", "ready", "seq",
                 "state", "t_ack", "t_health", "t_tele", "transport")  # fmt: skip

    def __init__(self, fleet: Fleet, gw: str, phase: int) -> None:
        self.fleet = fleet
        self.gw = gw
        self.phase = phase
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: dict[int, tuple[float, Counts]] = {}
        """Publishes awaiting their PUBACK: when sent, and the window they count in."""
        self.batches: dict[str, tuple[float, Counts]] = {}
        """Telemetry batches awaiting the cloud's ``ack`` (ack mode ``cloud``)."""
        self.t_ack = topics.topic(TENANT, gw, "ack").encode()
        self.next_pid = 1
        self.seq = 0
        self.state = "connecting"
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_sent = 0.0
        self.t_health = _str(topics.topic(TENANT, gw, "health"))
        self.t_tele = topics.telemetry(TENANT, gw, "b").removesuffix("b")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send CONNECT."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        f = self.fleet
        will = topics.topic(TENANT, self.gw, "status")
        transport.write(connect_packet(self.gw, f.username(self.gw), f.password, will, f.keepalive))
        self.last_sent = time.monotonic()

    def data_received(self, data: bytes) -> None:
        """Cut complete packets out of the stream and handle each."""
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
            if len(buf) < i + length:
                return
            first, body = buf[0], bytes(buf[i : i + length])
            del buf[: i + length]
            self._packet(first >> 4, first & 0x0F, body)

    def _packet(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PUBACK:
            entry = self.pending.pop(struct.unpack_from("!H", body)[0], None)
            if entry is not None:
                sent, window = entry
                window.acked += 1
                window.latencies.append(time.monotonic() - sent)
        elif kind == PUBLISH:
            self.fleet.counts.received += 1
            (tlen,) = struct.unpack_from("!H", body)
            start = 2 + tlen
            if (flags >> 1) & 3:
                assert self.transport is not None
                self.transport.write(bytes([PUBACK << 4, 2]) + body[start : start + 2])
                start += 2
            if body[2 : 2 + tlen] == self.t_ack:
                self._cloud_ack(body[start:])
        elif kind == CONNACK:
            if body[1] != 0:
                self._fail(f"CONNACK refused (code {body[1]})")
                return
            assert self.transport is not None
            acks = (topics.topic(TENANT, self.gw, "ack"), topics.topic(TENANT, self.gw, "cmd", "x")[:-1] + "+")
            self.transport.write(subscribe_packet(self._pid(), list(acks)))
        elif kind == SUBACK:
            if any(code == 0x80 for code in body[2:]):
                self._fail("SUBSCRIBE refused")
                return
            self.state = "up"
            if not self.ready.done():
                self.ready.set_result(None)

    def _cloud_ack(self, payload: bytes) -> None:
        try:
            ack = decode_ack(payload)
        except PayloadError:
            self.fleet.bad_acks += 1
            return
        now = time.monotonic()
        for batch in ack["batches"]:
            entry = self.batches.pop(batch, None)
            if entry is not None:
                sent, window = entry
                window.cloud_acked += 1
                window.cloud_latencies.append(now - sent)

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def _pid(self) -> int:
        pid = self.next_pid
        self.next_pid = pid % 65535 + 1
        return pid

    def connection_lost(self, exc: Exception | None) -> None:
        """Count a drop (unless the bench closed it)."""
        if self.state == "up":
            self.fleet.dropped += 1
            self.fleet.last_drop = str(exc) if exc else "closed by the broker"
        self.state = "closed"
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(str(exc) if exc else "closed by the broker"))

    def send_cycle(self, now: float) -> None:
        """The interval's heartbeat and reading, QoS 1."""
        t = self.transport
        if self.state != "up" or t is None:
            return
        self.seq += 1
        c = self.fleet.counts
        pid = self._pid()
        self.pending[pid] = (now, c)
        t.write(publish_packet(self.t_health, pid, self.fleet.health_payload(self.seq)))
        pid = self._pid()
        self.pending[pid] = (now, c)
        batch = f"{self.fleet.run_id}{self.seq}"
        topic = _str(self.t_tele + batch)
        if self.fleet.ack_mode == "cloud":
            self.batches[batch] = (now, c)
            c.batches += 1
        t.write(publish_packet(topic, pid, self.fleet.reading_payload(self.gw, self.seq)))
        c.published += 2
        self.last_sent = now

    def ping_if_idle(self, now: float) -> None:
        """PINGREQ when nothing was sent for half the keep-alive."""
        if self.state == "up" and self.transport is not None and now - self.last_sent > self.fleet.keepalive / 2:
            self.transport.write(PINGREQ_PACKET)
            self.last_sent = now

    def expire(self, now: float, timeout: float) -> None:
        """Forget publishes unacknowledged for ``timeout`` s (their window counts them as not acknowledged)."""
        for pid in [pid for pid, (sent, _w) in self.pending.items() if now - sent > timeout]:
            del self.pending[pid]
        ack_timeout = self.fleet.ack_timeout
        for batch in [b for b, (sent, _w) in self.batches.items() if now - sent > ack_timeout]:
            del self.batches[batch]


class Fleet:
    """Many SimGateways on one event loop: connects them in steps and drives their publishes."""

    def __init__(self, name: str, addresses: list[tuple[str, int]], *, password: str, shared_user: str | None,
                 interval: float, puback_timeout: float, ack_mode: str, ack_timeout: float,
                 keepalive: int = 60) -> None:  # fmt: skip
        self.name = name
        self.addresses = addresses
        self.password = password
        self.shared_user = shared_user
        self.interval = interval
        self.puback_timeout = puback_timeout
        self.keepalive = keepalive
        self.ack_mode = ack_mode
        """``cloud``: a telemetry pack counts once the cloud's ``ack`` names it; ``puback``: on its PUBACK."""
        self.ack_timeout = ack_timeout
        self.bad_acks = 0
        self.slots = 100
        self.gateways: list[SimGateway] = []
        self.counts = Counts()
        self.dropped = 0
        self.last_drop = ""
        self.connect_failures = 0
        """Gateways that could not connect in CONNECT_ATTEMPTS attempts."""
        self.connect_retries = 0
        self._next_index = 0
        self.last_connect_error = ""
        self.run_id = secrets.token_hex(3)
        self._health_cache: dict[int, bytes] = {}
        self._started = time.time()
        self._task: asyncio.Task[None] | None = None

    def username(self, gw: str) -> str:
        """The gateway id (the embedded cloud), or the one bench user (RabbitMQ's internal database)."""
        return self.shared_user or gw

    def health_payload(self, seq: int) -> bytes:
        """A realistic heartbeat (counters as a gateway reports them)."""
        health: Health = {
            "ts": time.time(),
            "uptime_s": round(time.time() - self._started, 3),
            "counters": {
                "buffered": 0,
                "received": seq,
                "sent": seq - 1,
                "dropped": 0,
                "dropped_full": 0,
                "dropped_age": 0,
                "rejected": 0,
                "reconnects": 0,
            },
            "events": {"buffered": 0, "received": 0, "sent": 0, "dropped": 0, "rejected": 0},
        }
        return encode_health(health)

    def reading_payload(self, gw: str, seq: int) -> bytes:
        """One reading as a SenML pack (CBOR), as the uplink sends it."""
        return senml.encode([Reading("probe-1", "temperature", 4.0 + (seq % 10) / 10, time.time(), "Cel")])

    @property
    def up(self) -> int:
        """Gateways connected now."""
        return sum(1 for g in self.gateways if g.state == "up")

    async def grow(self, to: int, concurrency: int = 64) -> float:
        """Connect gateways until there are ``to``; the seconds it took."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            gw = f"fleet-{self.run_id}-{i:06d}"
            host, port = self.addresses[i % len(self.addresses)]
            for attempt in range(CONNECT_ATTEMPTS):
                if attempt:
                    self.connect_retries += 1
                    await asyncio.sleep(random.uniform(0, 2.0**attempt))  # a gateway's backoff with jitter
                async with sem:
                    proto = SimGateway(self, gw, i % self.slots)
                    try:
                        async with asyncio.timeout(CONNECT_TIMEOUT_S):
                            await loop.create_connection(lambda p=proto: p, host, port)  # type: ignore[misc]
                            await proto.ready
                    except (OSError, TimeoutError, ConnectionError) as exc:
                        self.last_connect_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                        if proto.transport is not None:
                            proto.state = "closed"
                            proto.transport.abort()
                        continue
                    self.gateways.append(proto)
                    return
            self.connect_failures += 1

        start = self._next_index
        self._next_index += to - len(self.gateways)
        async with asyncio.TaskGroup() as tg:
            for i in range(start, self._next_index):
                tg.create_task(one(i))
        return time.monotonic() - started

    def start(self) -> None:
        """Start the publishing clock."""
        self._task = asyncio.get_running_loop().create_task(self._clock())

    async def _clock(self) -> None:
        tick = self.interval / self.slots
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        by_slot: dict[int, list[SimGateway]] = {}
        known = 0
        while True:
            if known != len(self.gateways):
                by_slot = {}
                for g in self.gateways:
                    by_slot.setdefault(g.phase, []).append(g)
                known = len(self.gateways)
            now = time.monotonic()
            for g in by_slot.get(k % self.slots, ()):
                g.send_cycle(now)
            if k % 10 == 0:
                for g in self.gateways:
                    g.expire(now, self.puback_timeout)
                    g.ping_if_idle(now)
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * tick - loop.time()))

    async def close(self) -> None:
        """Stop publishing and close every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for g in self.gateways:
            g.state = "closed"
            if g.transport is not None:
                g.transport.abort()
        self.gateways.clear()
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------- brokers under test


@dataclass
class Step:
    """One step of the ramp, as measured."""

    gateways: int
    kept: bool
    connect_s: float
    published: int
    acked: int
    timeouts: int
    dropped: int
    connect_failures: int
    rss_mb: float
    cpu_cores: float
    gen_cpu_cores: float
    p50_ms: float
    p99_ms: float
    why: str = ""
    ack_p50_ms: float = 0.0
    """Telemetry pack to the cloud's ``ack`` naming it (ack mode ``cloud``), median."""
    ack_p99_ms: float = 0.0
    ack_why: str = ""
    """Why the cloud's acks did not keep up (ack mode ``cloud``; the connections may still hold)."""

    @property
    def stored_in_time(self) -> bool:
        """Kept, and (ack mode ``cloud``) every pack acknowledged by the cloud with p99 under the bound."""
        return self.kept and not self.ack_why


class Probe:
    """Resident memory and CPU time of the broker's processes."""

    def __init__(self, procs: Callable[[], list[psutil.Process]]) -> None:
        self._procs = procs

    def rss_mb(self) -> float:
        """Total RSS, MB."""
        return float(sum(p.memory_info().rss for p in self._procs())) / (1 << 20)

    def cpu_s(self) -> float:
        """Total user+system CPU seconds."""
        total = 0.0
        for p in self._procs():
            t = p.cpu_times()
            total += t.user + t.system
        return total


@contextlib.contextmanager
def embedded_cloud(tmp: Path) -> Iterator[tuple[list[tuple[str, int]], Probe]]:
    """A real ``roost cloud serve`` with plain MQTT over TCP and any gateway id allowed."""
    http, tcp = free_port(), free_port()
    (tmp / "cloud.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = {http}
log_level = "WARNING"
[store]
path = "cloud.sqlite"
[broker]
tcp_listen = "127.0.0.1:{tcp}"
queue_max = 100000
[auth]
allow_any_gateway = true
""")
    log = (tmp / "cloud.log").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "roost.cli", "cloud", "serve", "--config", str(tmp / "cloud.toml"),
         "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if popen.poll() is not None:
                raise SystemExit(f"fleet: the cloud exited:\n{(tmp / 'cloud.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("fleet: the cloud did not answer /healthz within 60 s")
            time.sleep(0.2)
        proc = psutil.Process(popen.pid)
        yield [("127.0.0.1", tcp)], Probe(lambda: [proc])
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)
        log.close()


@contextlib.contextmanager
def rabbit_cluster(tmp: Path, nodes: int) -> Iterator[tuple[list[tuple[str, int]], Probe, str, str, float]]:
    """Three (``nodes``) clustered RabbitMQ nodes, a quorum queue for telemetry and health, a bench user."""
    cluster = RabbitCluster(tmp / "rabbit", size=nodes, extra_config="mqtt.tcp_listen_options.backlog = 1024\n")
    with cluster:
        user, password = "fleet-bench", secrets.token_urlsafe(16)
        cluster.add_user(user, password)
        first = cluster.nodes[0]
        first.api("PUT", "/queues/roost/roost.fleet-bench", {
            "durable": True,
            "arguments": {"x-queue-type": "quorum", "x-max-length": 5_000, "x-overflow": "drop-head"},
        })  # fmt: skip
        for key in ("roost.*.*.telemetry.*", "roost.*.*.health"):
            first.api("POST", "/bindings/roost/e/amq.topic/q/roost.fleet-bench", {"routing_key": key})

        def beams() -> list[psutil.Process]:
            out = []
            for n in cluster.nodes:
                if n.alive and n.popen is not None:
                    out += [c for c in psutil.Process(n.popen.pid).children(recursive=True)
                            if c.name().startswith("beam")]  # fmt: skip
            return out

        yield [("127.0.0.1", n.mqtt) for n in cluster.nodes], Probe(beams), user, password, cluster.formed_in_s


# ---------------------------------------------------------------- the ramp


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def ramp(
    fleet: Fleet,
    probe: Probe,
    *,
    steps: list[int],
    target: int,
    hold: float,
    deadline: float,
    concurrency: int,
    max_p99_ms: float,
) -> tuple[float, list[Step]]:
    """Grow the fleet step by step, holding each; stop at the first step that does not hold.

    Steps up to ``target`` always run; steps past it (looking for the ceiling) only until ``deadline``.
    """
    me = psutil.Process()
    await asyncio.sleep(2)
    idle = probe.rss_mb()
    print(f"  {fleet.name}: idle broker RSS {idle:.0f} MB", flush=True)
    fleet.start()
    out: list[Step] = []
    for size in steps:
        if size > target and time.monotonic() > deadline:
            print(f"  {fleet.name}: out of the time budget: no step of {size:,}", flush=True)
            break
        failures_before, dropped_before, retries_before = fleet.connect_failures, fleet.dropped, fleet.connect_retries
        size_before = len(fleet.gateways)
        connect_s = await fleet.grow(size, concurrency)
        await asyncio.sleep(1.0)  # the new gateways' first publishes belong to this window
        fleet.counts = Counts()
        cpu0, gen0, t0 = probe.cpu_s(), sum(me.cpu_times()[:2]), time.monotonic()
        await asyncio.sleep(hold)
        cpu1, gen1, t1 = probe.cpu_s(), sum(me.cpu_times()[:2]), time.monotonic()
        window = fleet.counts
        fleet.counts = Counts()
        # The window's last publishes get the PUBACK timeout too: wait for them (acks count in ``window``).
        # In ack mode ``cloud`` so do the telemetry packs for the cloud's ``ack``.
        grace_end = time.monotonic() + max(fleet.puback_timeout, fleet.ack_timeout if fleet.ack_mode == "cloud" else 0)
        while (  # noqa: ASYNC110 (counters, not an event)
            window.acked < window.published or window.cloud_acked < window.batches
        ) and time.monotonic() < grace_end:
            await asyncio.sleep(0.2)
        acked = window.acked
        unacked = window.published - acked
        rss = probe.rss_mb()
        failures = fleet.connect_failures - failures_before
        dropped = fleet.dropped - dropped_before
        up = fleet.up
        why = []
        if failures:
            why.append(f"{failures} gateways failed to connect {CONNECT_ATTEMPTS} times ({fleet.last_connect_error})")
        if dropped:
            why.append(f"{dropped} connections dropped ({fleet.last_drop})")
        if unacked:
            why.append(f"{unacked} of {window.published} publishes not PUBACKed within {fleet.puback_timeout:.0f} s")
        p99 = _pct(window.latencies, 0.99)
        if p99 > max_p99_ms:
            why.append(f"saturated: PUBACK p99 {p99:.0f} ms, over {max_p99_ms:.0f} ms")
        if up < size and not failures and not dropped:
            why.append(f"only {up} connected")
        ack_p99 = _pct(window.cloud_latencies, 0.99)
        ack_why = []
        if fleet.ack_mode == "cloud":
            if window.cloud_acked < window.batches:
                ack_why.append(f"{window.batches - window.cloud_acked} of {window.batches} telemetry packs without "
                               f"the cloud's ack within {fleet.ack_timeout:.0f} s")  # fmt: skip
            if ack_p99 > max_p99_ms:
                ack_why.append(f"cloud ack p99 {ack_p99:.0f} ms, over {max_p99_ms:.0f} ms")
        step = Step(
            gateways=up, kept=not why, connect_s=connect_s, published=window.published, acked=acked,
            timeouts=unacked, dropped=dropped, connect_failures=failures, rss_mb=rss,
            cpu_cores=(cpu1 - cpu0) / (t1 - t0), gen_cpu_cores=(gen1 - gen0) / (t1 - t0),
            p50_ms=_pct(window.latencies, 0.5), p99_ms=_pct(window.latencies, 0.99), why="; ".join(why),
            ack_p50_ms=_pct(window.cloud_latencies, 0.5), ack_p99_ms=ack_p99, ack_why="; ".join(ack_why),
        )  # fmt: skip
        out.append(step)
        per_conn = (rss - idle) * 1024 / up if up else 0.0
        print(
            f"  {fleet.name}: {step.gateways:>6} gateways {'kept' if step.kept else 'NOT KEPT'}  "
            f"connect {connect_s:5.1f} s ({(up - size_before) / connect_s if connect_s else 0:4.0f}/s, "
            f"{fleet.connect_retries - retries_before} retries)  {window.published / (t1 - t0):6.0f} pub/s  "
            f"PUBACK p50 {step.p50_ms:6.1f} ms p99 {step.p99_ms:7.1f} ms  "
            + (
                f"cloud ack p50 {step.ack_p50_ms:6.1f} ms p99 {step.ack_p99_ms:7.1f} ms  "
                if fleet.ack_mode == "cloud"
                else ""
            )
            + f"RSS {rss:6.0f} MB "
            f"({per_conn:5.1f} KB/conn)  broker CPU {step.cpu_cores:4.2f} cores  generator {step.gen_cpu_cores:4.2f}"
            + (f"  [{step.why}]" if step.why else "")
            + (f"  [the cloud's acks fall behind: {step.ack_why}]" if step.ack_why else ""),
            flush=True,
        )
        if not step.kept:
            break
    await fleet.close()
    return idle, out


def summarize(name: str, target: int, idle: float, steps: list[Step], interval: float, notes: str) -> list[str]:
    """The figures for one broker: kept vs target, ceiling, memory per connection, CPU per 1,000 gateways."""
    kept = [s for s in steps if s.kept]
    best = kept[-1] if kept else None
    failed = next((s for s in steps if not s.kept), None)
    lines = [f"{name} ({notes})"]
    if best is None:
        lines.append(f"  kept: none  (target >= {target:,}: FAIL)  first step failed: {failed.why if failed else '?'}")
        return lines
    ok = "OK" if best.gateways >= target else "FAIL"
    lines.append(f"  gateways kept at once (connected, every publish PUBACKed, p99 under the bound): {best.gateways:,}"
                 f"  (target >= {target:,}: {ok})")  # fmt: skip
    if any(s.ack_p50_ms for s in steps):
        stored = [s for s in steps if s.stored_in_time]
        first_late = next((s for s in steps if s.ack_why), None)
        lines.append(
            f"  ... and every pack also acknowledged by the cloud (stored) with p99 under the bound: "
            f"{stored[-1].gateways if stored else 0:,}"
            + (f"; at {first_late.gateways:,}: {first_late.ack_why}" if first_late else "")
        )
    if failed is not None:
        lines.append(f"  ceiling: between {best.gateways:,} and {failed.gateways + failed.connect_failures:,} "
                     f"gateways: {failed.why}")  # fmt: skip
    else:
        lines.append(f"  ceiling: not reached up to {best.gateways:,} gateways (the last step the ramp or the time "
                     "budget allowed; --budget, --*-max to go further)")  # fmt: skip
    per_conn = (best.rss_mb - idle) * 1024 / best.gateways
    rate = best.gateways * 2 / interval
    lines += [
        f"  broker RSS: idle {idle:.0f} MB, {best.rss_mb:.0f} MB with {best.gateways:,}: "
        f"{per_conn:.1f} KB per connection",
        f"  broker CPU: {best.cpu_cores:.2f} cores for {best.gateways:,} gateways ({rate:,.0f} QoS 1 publishes/s): "
        f"{best.cpu_cores * 1000 / best.gateways:.3f} cores per 1,000 gateways",
        f"  PUBACK latency at {best.gateways:,}: p50 {best.p50_ms:.1f} ms, p99 {best.p99_ms:.1f} ms",
    ]
    if best.ack_p50_ms:
        lines.append(f"  the cloud's ack (pack stored) at {best.gateways:,}: p50 {best.ack_p50_ms:.1f} ms, "
                     f"p99 {best.ack_p99_ms:.1f} ms")  # fmt: skip
    return lines


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE as far as allowed (every connection is a file; the brokers started here inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (NOFILE, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _steps(step: int, top: int) -> list[int]:
    return list(range(step, top + 1, step)) or [top]


async def main() -> int:
    """Run the ramps and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--embedded", type=int, default=TARGET_EMBEDDED, help="target on the embedded broker")
    p.add_argument("--embedded-max", type=int, default=None, help="ramp up to this many (default: 2x the target)")
    p.add_argument("--embedded-step", type=int, default=None, help="gateways added per step (default: target/4)")
    p.add_argument("--rabbitmq", type=int, default=TARGET_RABBITMQ, help="target on the RabbitMQ cluster")
    p.add_argument("--rabbitmq-max", type=int, default=None, help="ramp up to this many (default: 1.5x the target)")
    p.add_argument("--rabbitmq-step", type=int, default=None, help="gateways added per step (default: target/4)")
    p.add_argument("--rabbitmq-nodes", type=int, default=3, help="nodes in the RabbitMQ cluster")
    p.add_argument("--skip-embedded", action="store_true")
    p.add_argument("--skip-rabbitmq", action="store_true")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between a gateway's heartbeats")
    p.add_argument("--hold", type=float, default=None, help="seconds each step is held (default: interval + 2)")
    p.add_argument("--puback-timeout", type=float, default=10.0, help="a publish not PUBACKed by then counts lost")
    p.add_argument(
        "--budget",
        type=float,
        default=480.0,
        help="seconds after which no step past a target starts (the targets' own steps always run)",
    )
    p.add_argument(
        "--ack-timeout",
        type=float,
        default=30.0,
        help="embedded: a pack without the cloud's ack by then counts lost (the gateway's ack_timeout_s)",
    )
    p.add_argument("--max-p99-ms", type=float, default=2000.0, help="a step whose PUBACK p99 is over this is not kept")
    p.add_argument("--connect-concurrency", type=int, default=50, help="connections being set up at once")
    args = p.parse_args()
    hold = args.hold or args.interval + 2
    deadline = time.monotonic() + args.budget
    nofile = raise_nofile()
    print(f"fleet: every gateway sends a heartbeat and a reading (QoS 1) every {args.interval:g} s; "
          f"steps held {hold:g} s; open-file limit {nofile}", flush=True)  # fmt: skip
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="roost-fleet-") as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_embedded:
            top = args.embedded_max or args.embedded * 2
            step = args.embedded_step or max(1, args.embedded // 4)
            print(f"embedded broker (roost cloud serve): target {args.embedded:,}, ramp to {top:,} by {step:,}")
            (tmp / "embedded").mkdir()
            with embedded_cloud(tmp / "embedded") as (addresses, probe):
                fleet = Fleet("embedded", addresses, password="bench", shared_user=None, interval=args.interval,
                              puback_timeout=args.puback_timeout, ack_mode="cloud",
                              ack_timeout=args.ack_timeout)  # fmt: skip
                embedded_deadline = time.monotonic() + (args.budget / 3 if not args.skip_rabbitmq else args.budget)
                idle, steps = await ramp(
                    fleet,
                    probe,
                    steps=_steps(step, top),
                    target=args.embedded,
                    hold=hold,
                    deadline=embedded_deadline,
                    concurrency=args.connect_concurrency,
                    max_p99_ms=args.max_p99_ms,
                )
            summary += summarize("embedded broker", args.embedded, idle, steps, args.interval,
                                 "one `roost cloud serve` process: amqtt, ingest into SQLite, acks; RSS and CPU "
                                 "are the whole process's")  # fmt: skip
        if not args.skip_rabbitmq:
            why = missing()
            if why:
                summary.append(f"rabbitmq: skipped: {why}")
            else:
                top = args.rabbitmq_max or args.rabbitmq * 3 // 2
                step = args.rabbitmq_step or max(1, args.rabbitmq // 4)
                n = args.rabbitmq_nodes
                print(f"RabbitMQ cluster ({n} nodes): target {args.rabbitmq:,}, ramp to {top:,} by {step:,}",
                      flush=True)  # fmt: skip
                with rabbit_cluster(tmp, n) as (addresses, probe, user, password, formed):
                    print(f"  rabbitmq: {n} nodes clustered in {formed:.0f} s", flush=True)
                    fleet = Fleet("rabbitmq", addresses, password=password, shared_user=user,
                                  interval=args.interval, puback_timeout=args.puback_timeout, ack_mode="puback",
                                  ack_timeout=args.ack_timeout)  # fmt: skip
                    idle, steps = await ramp(
                        fleet,
                        probe,
                        steps=_steps(step, top),
                        target=args.rabbitmq,
                        hold=hold,
                        deadline=deadline,
                        concurrency=args.connect_concurrency,
                        max_p99_ms=args.max_p99_ms,
                    )
                summary += summarize(
                    f"RabbitMQ cluster, {n} nodes", args.rabbitmq, idle, steps, args.interval,
                    f"RabbitMQ 3.10 on this machine, gateways spread over the nodes, telemetry and health into a "
                    f"quorum queue; internal-user auth (one bench user), not the cloud's HTTP auth backend; "
                    f"RSS and CPU are the {n} nodes' together",
                )  # fmt: skip
    print("\n".join(["", "fleet figures (2 cores, loopback; load generator in the same machine):", *summary]))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
