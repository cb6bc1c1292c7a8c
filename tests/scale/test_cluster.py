"""The scale-out cloud survives losing an ingest worker and a RabbitMQ node mid-stream (issue 11, docs/deploy.md).

Real everything on loopback: three RabbitMQ 3.10 nodes clustered (tests/rabbitmq_cluster.py), PostgreSQL 15
(tests/pg.py), two ingest workers and two API workers as ``roost cloud serve --config`` subprocesses, haproxy
in front of the API workers with the shipped deploy/haproxy.cfg. RabbitMQ authenticates the gateways through
the cloud's HTTP auth backend (an API worker behind haproxy answers; allow-listed gateway passwords).

Several simulated gateways (tests/scale/simgateway.py) publish QoS 1 SenML packs to different nodes and count a
reading acknowledged only when the cloud's ``ack`` named its batch. Mid-stream one ingest worker and then one
RabbitMQ node are SIGKILLed; gateways on that node reconnect to another and send unacknowledged batches again.

Then, queried straight from PostgreSQL: every acknowledged reading is stored, and exactly once (the per-gateway
reading counters, which count only new rows, add up to the rows). The API is polled through haproxy all along;
the rule: **no failed request at all** (no API worker is killed; haproxy retries a connection failure on the
other worker, and a worker that loses its RabbitMQ node reconnects well within haproxy's three failed checks).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import rabbitmq_cluster
from tests.e2e.harness import ROOT, Proc, free_port
from tests.pg import PgServer, postgres_missing
from tests.rabbitmq_cluster import RabbitCluster
from tests.scale.simgateway import SimGateway

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
_missing = rabbitmq_cluster.missing() or postgres_missing() or (None if HAPROXY else "haproxy is not installed")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(_missing is not None, reason=f"{_missing} (make deps installs it)"),
    pytest.mark.timeout(300),
]

GATEWAYS = 8
STREAM_S = 24.0
KILL_INGEST_AT_S = 6.0
KILL_NODE_AT_S = 12.0
DRAIN_S = 60.0
WORKER_START_S = 30.0
OBSERVER_TOKEN = secrets.token_urlsafe(24)


@dataclass
class Deployment:
    """What the test started, to stop in reverse order."""

    tmp: Path
    cluster: RabbitCluster
    pg: PgServer
    http_port: int = field(default_factory=free_port)
    workers: dict[str, tuple[Proc, int]] = field(default_factory=dict)
    haproxy: subprocess.Popen[bytes] | None = None
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self, name: str, role: str, port: int, first_node: int) -> Path:
        """A worker's cloud.toml: its role and port, the shared state folder, its own order of RabbitMQ nodes."""
        urls = self.cluster.amqp_urls
        urls = urls[first_node:] + urls[:first_node]  # workers spread over the nodes
        gateways = "".join(
            f'[[auth.gateways]]\nid = "{gw}"\ntenant = "default"\npassword = "{pw}"\n'
            for gw, pw in self.passwords.items()
        )
        path = self.tmp / f"cloud-{name}.toml"
        path.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
role = "{role}"
shutdown_timeout_s = 5.0
[store]
path = "state/cloud.sqlite"
backend = "postgresql"
dsn = "{self.pg.dsn}"
[identity]
enabled = false
[broker]
kind = "rabbitmq"
amqp_urls = [{", ".join(f'"{u}"' for u in urls)}]
amqp_prefetch = 200
[rabbitmq]
enabled = {"true" if role == "api" else "false"}
vhost = "{rabbitmq_cluster.VHOST}"
[[auth.observers]]
token = "{OBSERVER_TOKEN}"
tenant = "default"
name = "test-poller"
{gateways}""")
        return path

    def start_worker(self, name: str, role: str, first_node: int) -> None:
        port = free_port()
        config = self.config(name, role, port, first_node)
        argv = [sys.executable, "-m", "roost.cli", "cloud", "serve", "--config", str(config)]
        proc = Proc(name, argv, self.tmp / f"{name}.log")
        proc.start()
        self.workers[name] = (proc, port)

    def wait_healthy(self, names: list[str], timeout: float = WORKER_START_S) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            proc, port = self.workers[name]
            while True:
                assert proc.alive, f"worker {name} exited:\n{proc.tail()}"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"worker {name} is not healthy after {timeout} s:\n{proc.tail()}"
                time.sleep(0.2)

    def start_haproxy(self) -> None:
        assert HAPROXY is not None
        env = dict(
            os.environ,
            ROOST_HTTP_BIND=f"127.0.0.1:{self.http_port}",
            ROOST_API_1=f"127.0.0.1:{self.workers['api-1'][1]}",
            ROOST_API_2=f"127.0.0.1:{self.workers['api-2'][1]}",
        )
        with (self.tmp / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(ROOT / "deploy/haproxy.cfg")], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.haproxy.poll() is None, (self.tmp / "haproxy.log").read_text()
            assert time.monotonic() < deadline, "haproxy does not answer"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        for proc, _port in self.workers.values():
            proc.stop(timeout=15)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Three RabbitMQ nodes, PostgreSQL, two ingest and two API workers, haproxy: started, then stopped."""
    (tmp_path / "state").mkdir()
    with PgServer(tmp_path / "pg") as pg:
        cluster = RabbitCluster(tmp_path / "rabbitmq", size=3)
        dep = Deployment(tmp_path, cluster, pg)
        dep.passwords = {f"gw-{i}": secrets.token_urlsafe(12) for i in range(GATEWAYS)}
        # RabbitMQ asks the cloud (through haproxy) who the gateways are; internal users (the workers) first.
        for node in cluster.nodes:
            node.auth_url = f"{dep.base_url}/rabbitmq/auth"
        try:
            cluster.start()
            # One worker first: it creates the PostgreSQL schema and the quorum queue (with all three nodes).
            dep.start_worker("ingest-1", "ingest", first_node=0)
            dep.wait_healthy(["ingest-1"])
            dep.start_worker("ingest-2", "ingest", first_node=1)
            dep.start_worker("api-1", "api", first_node=2)
            dep.start_worker("api-2", "api", first_node=0)
            dep.wait_healthy(["ingest-2", "api-1", "api-2"])
            dep.start_haproxy()
            yield dep
        finally:
            dep.stop()
            cluster.stop()


async def _poll_api(base_url: str, stop: asyncio.Event, results: list[tuple[float, str]]) -> None:
    """GET the readings API through haproxy every 0.2 s until ``stop``; every answer that is not a 200 is kept."""
    headers = {"Authorization": f"Bearer {OBSERVER_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=5) as http:
        while not stop.is_set():
            at = time.monotonic()
            try:
                r = await http.get("/api/v1/readings", params={"gateway": "gw-0", "limit": "5"})
                results.append((at, "ok" if r.status_code == 200 else f"{r.status_code} {r.text[:120]}"))
            except httpx.HTTPError as exc:
                results.append((at, f"error {exc!r}"))
            await asyncio.sleep(0.2)


async def test_acknowledged_readings_survive_an_ingest_worker_and_a_broker_node_dying(deployment: Deployment) -> None:
    dep = deployment
    node_ports = [n.mqtt for n in dep.cluster.nodes]
    queue = dep.cluster.nodes[0].api("GET", f"/queues/{rabbitmq_cluster.VHOST}/roost.ingest")
    assert queue["type"] == "quorum" and len(queue["members"]) == 3, queue

    gateways = [SimGateway(gw, pw, node_ports, node=i % 3) for i, (gw, pw) in enumerate(dep.passwords.items())]
    started = time.monotonic()
    deadline = started + STREAM_S + DRAIN_S
    stop_polling = asyncio.Event()
    api_results: list[tuple[float, str]] = []
    poller = asyncio.create_task(_poll_api(dep.base_url, stop_polling, api_results))
    runs = [asyncio.create_task(g.run(deadline)) for g in gateways]

    await asyncio.sleep(KILL_INGEST_AT_S)
    dep.workers["ingest-1"][0].kill()
    killed_ingest_at = time.monotonic()
    await asyncio.sleep(KILL_NODE_AT_S - KILL_INGEST_AT_S)
    await asyncio.to_thread(dep.cluster.kill, 1)
    killed_node_at = time.monotonic()
    await asyncio.sleep(STREAM_S - KILL_NODE_AT_S)
    for g in gateways:
        g.producing = False
    async with asyncio.timeout(DRAIN_S + 10):
        await asyncio.gather(*runs)
    drained_at = time.monotonic()
    stop_polling.set()
    await poller

    # Every batch sent was acknowledged in the end, also those of the gateways whose node died.
    unacked = {g.id: len(g.unacked) for g in gateways if g.unacked}
    assert not unacked, f"batches never acknowledged: {unacked}"
    on_killed_node = [g for g in gateways if dep.cluster.nodes[1].mqtt in g.connected_ports[:1]]
    assert on_killed_node and all(g.connects >= 2 for g in on_killed_node), "gateways of the killed node reconnected"
    # The cloud kept acknowledging after both kills (the surviving ingest worker and the two surviving nodes).
    late = [t for g in gateways for t in g.acked_at.values() if t > killed_node_at + 2]
    assert len(late) >= GATEWAYS, "few batches were acknowledged after the node was killed"

    # PostgreSQL holds every acknowledged reading, exactly once.
    acked = set().union(*(g.acked for g in gateways))
    with psycopg.connect(dep.pg.dsn) as conn:
        rows = conn.execute("SELECT gateway, sensor, metric, ts_us FROM readings WHERE tenant = 'default'").fetchall()
        counted = conn.execute("SELECT COALESCE(sum(readings), 0) FROM gateways WHERE tenant = 'default'").fetchone()
    stored = [(g, s, m, int(ts)) for g, s, m, ts in rows]
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged readings are not in PostgreSQL, e.g. {sorted(missing)[:3]}"
    assert len(stored) == len(set(stored)), "a reading is stored twice"
    assert counted is not None and int(counted[0]) == len(stored), (
        "the gateways' reading counters count a reading twice"
    )

    # The API answered through haproxy all along (the rule in the module docstring: no failure at all).
    failures = [(round(at - started, 1), what) for at, what in api_results if what != "ok"]
    assert len(api_results) > STREAM_S * 2, "the API was hardly polled"
    assert not failures, f"the API failed {len(failures)} of {len(api_results)} times: {failures[:5]}"
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"{dep.base_url}/api/v1/gateways", headers={"Authorization": f"Bearer {OBSERVER_TOKEN}"})
        survivor = await http.get(f"http://127.0.0.1:{dep.workers['ingest-2'][1]}/healthz")
    listed = {g["id"]: g["online"] for g in r.json()["items"]}
    assert listed == {g.id: True for g in gateways}, listed

    redelivered = sum(g.resent for g in gateways)
    assert survivor.status_code == 200, survivor.text
    duplicates = survivor.json()["counters"]["duplicates"]
    redeliveries = survivor.json()["broker_details"]["redeliveries"]
    packs = sum(g.sent_batches for g in gateways)
    print(
        f"\n{len(acked)} readings acknowledged ({packs} packs, {redelivered} sent again) and {len(stored)} stored"
        f" ({duplicates} duplicates dropped and {redeliveries} RabbitMQ redeliveries at the surviving worker);"
        f" ingest worker killed at"
        f" {killed_ingest_at - started:.1f} s, node r2 at {killed_node_at - started:.1f} s, all acknowledged at"
        f" {drained_at - started:.1f} s; {len(api_results)} API requests through haproxy, none failed;"
        f" cluster formed in {dep.cluster.formed_in_s:.1f} s"
    )
