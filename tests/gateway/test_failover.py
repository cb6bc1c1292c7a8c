"""A gateway with several broker URLs moves to the next one when its broker goes away, losing nothing.

Two broker "nodes" are two TCP forwarding proxies started here in front of one real cloud (``roost
cloud serve`` with its embedded broker's plain MQTT listener). The real gateway (``roost gateway
run``) takes CoAP readings from a real aiocoap client and sends them through whichever proxy it
picked; the test cuts that proxy mid-stream (its connections closed, new ones refused), and every
reading the gateway acknowledged must reach the cloud's store exactly once, through the other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.buffer import DurableBuffer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink import Uplink
from gateway.uplink.discovery import target
from tests.e2e.harness import ROOT, Sensor, Site, assert_exactly_once, free_port, wait_for_readings
from wire.discovery import parse as parse_discovery


class Proxy:
    """A TCP forwarder on loopback standing in for one broker node; ``cut()`` takes the node down."""

    def __init__(self, name: str, upstream_port: int) -> None:
        self.name = name
        self.upstream_port = upstream_port
        self.port = free_port()
        self.open_connections = 0
        """Client connections being forwarded now."""
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The node's MQTT URL as a gateway config names it."""
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on ``self.port``."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._conns |= {writer, up_writer}
        self.open_connections += 1
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pipe(reader, up_writer, writer))
                tg.create_task(self._pipe(up_reader, writer, up_writer))
        finally:
            self.open_connections -= 1
            self._conns -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            # Either side ending ends both: the other pipe's read then sees the end too.
            writer.close()
            other.close()

    async def cut(self) -> None:
        """Refuse new connections and drop every open one (both directions), as a dead node does."""
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.transport.abort()
        self._conns.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None

    async def close(self) -> None:
        """Stop (as cut)."""
        await self.cut()


async def until(cond: Callable[[], bool], timeout: float, what: str, site: Site) -> None:
    """Poll ``cond`` every 0.1 s; fail naming ``what`` with the gateway's log when time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n--- gateway log ---\n{site.gateway.tail(60)}")


def gateway_toml(site: Site, urls: list[str]) -> str:
    """A gateway config that names its brokers itself (no discovery), with quick retries."""
    listed = ", ".join(f'"{u}"' for u in urls)
    return f"""
[gateway]
id = "{site.gateway_id}"
state_dir = "{site.gateway_state}"
shutdown_timeout_s = 5.0
[cloud]
url = "{site.base}"
mqtt_urls = [{listed}]
password_file = "gw.password"
backoff_initial_s = 0.2
backoff_max_s = 1.0
connect_timeout_s = 3.0
keepalive_s = 5
[uplink]
batch_max_delay_ms = 50
health_interval_s = 1.0
ack_timeout_s = 5.0
[adapters.coap]
host = "127.0.0.1"
port = {site.coap_port}
accept = "any"
"""


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Site, Proxy, Proxy]]:
    """A cloud with plain MQTT on a free port and two proxies ("nodes" A and B) in front of it."""
    tcp_port = free_port()
    site = Site(tmp_path, cloud_extra=f'[broker]\ntcp_listen = "127.0.0.1:{tcp_port}"\n')
    a, b = Proxy("A", tcp_port), Proxy("B", tcp_port)
    await a.start()
    await b.start()
    (tmp_path / "gateway.toml").write_text(gateway_toml(site, [a.url, b.url]))
    try:
        yield site, a, b
    finally:
        await asyncio.to_thread(site.stop_all)
        await a.close()
        await b.close()


@pytest.mark.slow
async def test_gateway_moves_to_the_other_broker_and_every_reading_arrives_once(
    nodes: tuple[Site, Proxy, Proxy],
) -> None:
    site, a, b = nodes
    await asyncio.to_thread(site.start_cloud)
    await site.start_gateway()
    await until(lambda: a.open_connections + b.open_connections == 1, 30, "the gateway's MQTT connection", site)
    first, other = (a, b) if a.open_connections else (b, a)
    stop = asyncio.Event()
    async with Sensor(site.coap_port, "freezer-1") as sensor:
        streaming = asyncio.create_task(sensor.stream(stop, every=0.02, n=5))
        try:
            await until(lambda: len(sensor.acked) >= 200, 30, "readings before the cut", site)
            stored_before = len(await asyncio.to_thread(site.readings, sensor="freezer-1"))
            assert stored_before > 0, "nothing reached the cloud through the first broker"
            await first.cut()
            acked_at_cut = len(sensor.acked)
            await until(lambda: other.open_connections == 1, 30, f"a connection through node {other.name}", site)
            await until(lambda: len(sensor.acked) >= acked_at_cut + 200, 30, "readings after the cut", site)
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await streaming
        items = await wait_for_readings(site, sensor, timeout=60)
    assert sensor.failed == 0, "the gateway refused readings while it moved"
    assert_exactly_once(sensor, items)
    assert len(sensor.acked) >= acked_at_cut + 200
    assert first.open_connections == 0 and other.open_connections == 1
    log = (site.tmp / "gateway.log").read_text(errors="replace")
    assert f"the connection to {first.url} dropped" in log, site.gateway.tail(60)
    assert f"moving from broker {first.url} to {other.url}" in log, site.gateway.tail(60)
    assert f"connected to {other.url} (broker " in log, site.gateway.tail(60)


def test_several_brokers_from_the_discovery_document() -> None:
    doc = parse_discovery(
        {
            "mqtt_ws_url": "wss://n1.example/mqtt",
            "mqtt_ws_urls": ["wss://n2.example/mqtt", "wss://n1.example/mqtt", "wss://n3.example/mqtt"],
            "mqtt_tcp_url": "mqtt://n1.example:1883",
            "mqtt_tcp_urls": ["mqtt://n1.example:1883", "mqtt://n2.example:1883"],
            "api_url": "https://c.example/api/v1",
        }
    )
    t = target(CloudSection(), UplinkSection(), doc, "discovery")
    assert t.urls == ("wss://n1.example/mqtt", "wss://n2.example/mqtt", "wss://n3.example/mqtt")
    assert t.mqtt_url == "wss://n1.example/mqtt"
    t = target(CloudSection(transport="tls"), UplinkSection(), doc, "discovery")
    assert t.urls == ("mqtts://n1.example:1883", "mqtts://n2.example:1883")
    one = parse_discovery({"mqtt_ws_url": "ws://c/mqtt", "api_url": "http://c/api/v1"})
    assert target(CloudSection(), UplinkSection(), one).urls == ("ws://c/mqtt",)
    configured = CloudSection(mqtt_urls=("mqtt://a:1883", "mqtt://b:1883"))
    assert target(configured, UplinkSection(), doc).urls == ("mqtt://a:1883", "mqtt://b:1883")
    assert target(CloudSection(mqtt_url="mqtt://a:1883"), UplinkSection(), doc).urls == ("mqtt://a:1883",)


def test_the_subscription_qos_comes_from_the_config_else_the_document() -> None:
    base = {"mqtt_ws_url": "ws://c/mqtt", "api_url": "http://c/api/v1"}
    cluster = parse_discovery({**base, "subscribe_qos": 0})
    assert target(CloudSection(), UplinkSection(), cluster).subscribe_qos == 0
    assert target(CloudSection(subscribe_qos=1), UplinkSection(), cluster).subscribe_qos == 1
    assert target(CloudSection(), UplinkSection(), parse_discovery(base)).subscribe_qos == 1
    assert target(CloudSection(mqtt_url="mqtt://a:1883"), UplinkSection(), None).subscribe_qos == 1
    # Anything but 0 or 1 in the document is ignored; in the config it is refused by name.
    assert "subscribe_qos" not in parse_discovery({**base, "subscribe_qos": 2})
    assert "subscribe_qos" not in parse_discovery({**base, "subscribe_qos": True})
    with pytest.raises(ValueError, match="subscribe_qos"):
        CloudSection(subscribe_qos=2)


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        (
            '["mqtt://a.example:1883", "http://b.example/mqtt"]',
            "cloud.mqtt_urls[1]: 'http://b.example/mqtt' must start with ws://, wss://, mqtt:// or mqtts://",
        ),
        (
            '["mqtt://a.example:1883", "mqtt://b.example:99999"]',
            "cloud.mqtt_urls[1]: 'mqtt://b.example:99999' is not a valid URL",
        ),
        ('["mqtt:///"]', "cloud.mqtt_urls[0]: 'mqtt:///' names no host"),
        ('["mqtt://a:1883", "mqtt://a:1883"]', "cloud.mqtt_urls[1]: 'mqtt://a:1883' is listed twice"),
        ('["mqtt://a:1883"]\nmqtt_url = "mqtt://b:1883"', "cloud.mqtt_urls: give mqtt_url (one broker) or mqtt_urls"),
    ],
)
def test_gateway_check_names_the_bad_broker_url(tmp_path: Path, urls: str, expected: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f"[cloud]\nmqtt_urls = {urls}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr


def test_gateway_check_accepts_several_broker_urls(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[cloud]\nmqtt_urls = ["mqtts://n1.example:8883", "wss://n2.example/mqtt"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(": OK")


def _uplink(tmp_path: Path, urls: tuple[str, ...], buffer: DurableBuffer) -> Uplink:
    cloud = CloudSection(mqtt_urls=urls, connect_timeout_s=1, backoff_initial_s=0.01, backoff_max_s=0.05)
    return Uplink(
        gateway_id="gw-spread", tenant="default", cloud=cloud, uplink=UplinkSection(), buffer=buffer, state_dir=tmp_path
    )


async def test_uplinks_start_at_random_brokers_and_go_round_the_list(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "buffer.sqlite", max_age_s=0) as buffer:
        await _spread_and_round(tmp_path, buffer)


async def _spread_and_round(tmp_path: Path, buffer: DurableBuffer) -> None:
    urls = tuple(f"mqtt://127.0.0.1:{free_port()}" for _ in range(4))  # nobody listens: every attempt fails
    firsts: set[str] = set()
    for _ in range(24):
        up = _uplink(tmp_path, urls, buffer)
        task = asyncio.create_task(up.run())
        try:
            async with asyncio.timeout(10):
                for _ in range(100_000):
                    if up.broker is not None:
                        break
                    await asyncio.sleep(0.001)
            assert up.broker is not None
            firsts.add(up.broker)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(firsts) >= 2, "every gateway started at the same broker: a fleet would not spread"

    up = _uplink(tmp_path, urls, buffer)
    visited: list[str] = []
    task = asyncio.create_task(up.run())
    try:
        async with asyncio.timeout(20):
            while len(visited) < 9:
                if up.broker is not None and (not visited or visited[-1] != up.broker):
                    visited.append(up.broker)
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    start = urls.index(visited[0])
    assert visited == [urls[(start + i) % len(urls)] for i in range(9)]
    assert up.connect_failures >= 8
