"""A real RabbitMQ 3.10 node (Debian's rabbitmq-server) asks the cloud who may connect, publish and subscribe.

The node is this module's own (tests/rabbitmq_cluster.py, a cluster of one): its node name,
AMQP/MQTT/Web-MQTT/management/distribution ports, epmd, data and log directories, config and enabled-plugins
files and cookie, all on 127.0.0.1 under a temporary directory. It authenticates through
``rabbitmq_auth_backend_cache`` in front of ``rabbitmq_auth_backend_http`` pointed at a cloud on a fixed free
port (each test starts its own cloud there); its management user is in
RabbitMQ's internal database, which is asked first.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import load
from cloud.identity import admin
from cloud.server import CloudServer
from tests.cloud.identity.conftest import enroll_by_device, identity_of, operator_token
from tests.e2e.harness import ROOT, free_port
from tests.rabbitmq_cluster import ADMIN_USER, SBIN, VHOST, RabbitCluster, RabbitNode, missing

pytestmark = pytest.mark.slow

_LOGGER = logging.getLogger(__name__)

CACHE_TTL_MS = 2000
WAIT = 10.0

if missing() is not None:
    pytest.skip(str(missing()), allow_module_level=True)


@dataclass
class Node:
    """The module's RabbitMQ node (a cluster of one, tests/rabbitmq_cluster.py) and the cloud port it asks."""

    cluster: RabbitCluster
    cloud_port: int

    @property
    def rabbit(self) -> RabbitNode:
        return self.cluster.nodes[0]

    @property
    def password(self) -> str:
        return self.cluster.password

    @property
    def management_url(self) -> str:
        return self.rabbit.management_url

    @property
    def mqtt(self) -> int:
        return self.rabbit.mqtt

    @property
    def web_mqtt(self) -> int:
        return self.rabbit.web_mqtt

    async def publish(self, routing_key: str, payload: str, *, must_route: bool = True) -> bool:
        """Publish as the cloud does (the internal administrator), through the management API; whether it was routed."""
        async with httpx.AsyncClient(auth=(ADMIN_USER, self.password), timeout=WAIT) as http:
            r = await http.post(
                f"{self.management_url}/api/exchanges/{quote(VHOST, safe='')}/amq.topic/publish",
                json={"properties": {}, "routing_key": routing_key, "payload": payload, "payload_encoding": "string"},
            )
        assert r.status_code == 200, r.text
        routed: bool = r.json()["routed"]
        assert routed or not must_route, f"nobody subscribes to {routing_key}"
        return routed

    async def connections(self, user: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(auth=(ADMIN_USER, self.password), timeout=WAIT) as http:
            r = await http.get(f"{self.management_url}/api/connections/username/{quote(user, safe='')}")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()
        return items


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One RabbitMQ node for the module (it takes about 10 s to start), asking a cloud on a fixed free port."""
    cloud_port = free_port()
    auth = f"http://127.0.0.1:{cloud_port}/rabbitmq/auth"
    base = tmp_path_factory.mktemp("rabbitmq")
    with RabbitCluster(base, size=1, auth_url=auth, cache_ttl_ms=CACHE_TTL_MS, stats_interval_ms=1000) as cluster:
        yield Node(cluster, cloud_port)


@pytest.fixture
async def cloud(node: Node, tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A cloud on the port the node asks, serving the auth endpoints and closing revoked connections."""
    (tmp_path / "rabbitmq-password").write_text(node.password)
    config_file = tmp_path / "cloud.toml"
    config_file.write_text(f"""
[server]
port = {node.cloud_port}

[rabbitmq]
enabled = true
vhost = "{VHOST}"
management_url = "{node.management_url}"
management_user = "{ADMIN_USER}"
management_password_file = "rabbitmq-password"
""")
    async with CloudServer(load(config_file)) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        yield server


class Client:
    """A paho MQTT client on its own thread (as a gateway's would be), recording what happens to it."""

    def __init__(self, node: Node, client_id: str, username: str, password: str, *, websocket: bool = False) -> None:
        transport: Literal["tcp", "websockets"] = "websockets" if websocket else "tcp"
        self.paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, transport=transport)
        if websocket:
            self.paho.ws_set_options(path="/ws")
        self.paho.username_pw_set(username, password)
        self.paho.reconnect_delay_set(1, 1)
        self.port = node.web_mqtt if websocket else node.mqtt
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connects: queue.Queue[str] = queue.Queue()
        self.disconnected = threading.Event()
        self.disconnected_at = 0.0
        self.subscribed: queue.Queue[list[Any]] = queue.Queue()
        self.paho.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.paho.on_connect = lambda _c, _u, _f, rc, _p: self.connects.put(str(rc))
        self.paho.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subscribed.put(list(rcs))
        self.paho.on_disconnect = self._on_disconnect

    def _on_disconnect(self, *_args: Any) -> None:
        if not self.disconnected.is_set():
            self.disconnected_at = time.monotonic()
        self.disconnected.set()

    async def connect(self) -> str:
        """Connect (paho reconnects by itself from now on); the first CONNACK's reason."""
        self.paho.connect("127.0.0.1", self.port, keepalive=30)
        self.paho.loop_start()
        return await asyncio.to_thread(self.connects.get, True, WAIT)

    async def subscribe(self, topic: str, qos: int = 1) -> list[Any]:
        self.paho.subscribe(topic, qos)
        return await asyncio.to_thread(self.subscribed.get, True, WAIT)

    async def next_message(self, timeout: float = WAIT) -> tuple[str, bytes]:
        return await asyncio.to_thread(self.messages.get, True, timeout)

    async def no_message(self, within: float) -> None:
        with pytest.raises(queue.Empty):
            await asyncio.to_thread(self.messages.get, True, within)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def test_the_node_is_debian_310(node: Node) -> None:
    assert "rabbitmq_server-3.10." in SBIN[-1]
    print(f"RabbitMQ node answered after {node.rabbit.started_in_s:.1f} s, {node.rabbit.rss_mb():.0f} MB RSS")


async def test_gateway_publishes_its_own_topics_only_and_a_forged_token_cannot_connect(
    node: Node, cloud: CloudServer
) -> None:
    tokens = await enroll_by_device(cloud, hardware_id="30000000feedbeef")
    gw, token = tokens["gateway_id"], tokens["access_token"]
    viewer = await operator_token(cloud, "acme", role="viewer", name="vera")
    # A subscriber with rights (an operator of the tenant), over Web MQTT.
    watcher = Client(node, "dash-1", "vera", viewer, websocket=True)
    gateway = Client(node, gw, gw, token)
    try:
        assert await watcher.connect() == "Success"
        assert (await watcher.subscribe("roost/acme/+/telemetry/#"))[0].value == 1
        assert await gateway.connect() == "Success"
        info = gateway.paho.publish(f"roost/acme/{gw}/telemetry/b-1", b"pack-1", qos=1)
        await asyncio.to_thread(info.wait_for_publish, WAIT)
        assert await watcher.next_message() == (f"roost/acme/{gw}/telemetry/b-1", b"pack-1")
        # Outside its prefix: refused (RabbitMQ closes a connection that publishes where it may not).
        gateway.paho.publish("roost/acme/gw-somebody/telemetry/b-2", b"pack-2", qos=1)
        await asyncio.to_thread(gateway.disconnected.wait, WAIT)
        await watcher.no_message(within=1.5)
        assert cloud.stats.denied_publishes >= 1
        # A subscription outside its tenant is refused too: RabbitMQ 3.10 closes the connection, no SUBACK.
        watcher.paho.subscribe("roost/other/+/telemetry/#", 1)
        assert await asyncio.to_thread(watcher.disconnected.wait, WAIT)
        assert watcher.subscribed.empty()
        assert cloud.stats.denied_subscribes >= 1
    finally:
        gateway.close()
        watcher.close()
    # Forged: the real claims and kid, signed by another key. CONNACK "not authorized".
    from joserfc import jwt
    from joserfc.jwk import ECKey

    claims = identity_of(cloud).verifier.verify(token).claims
    kid = identity_of(cloud).keys.current_kid
    forged = jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, ECKey.generate_key("P-256"))
    intruder = Client(node, gw, gw, forged)
    try:
        assert await intruder.connect() in ("Not authorized", "Bad user name or password")
    finally:
        intruder.close()
    assert cloud.rabbitmq_auth is not None and cloud.rabbitmq_auth.counts[("user", "deny")] >= 1


async def test_a_revoked_receive_only_gateway_stops_receiving(node: Node, cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, hardware_id="40000000feedbeef")
    gw, token = tokens["gateway_id"], tokens["access_token"]
    gateway = Client(node, gw, gw, token)
    try:
        assert await gateway.connect() == "Success"
        assert (await gateway.subscribe(f"roost/acme/{gw}/cmd/#"))[0].value == 1  # receive-only from here on
        for _ in range(120):  # RabbitMQ lists a connection in its management API a moment after it opened
            if await node.connections(gw):
                break
            await asyncio.sleep(0.25)
        assert await node.connections(gw), "RabbitMQ's management API does not list the gateway's connection"
        await node.publish(f"roost.acme.{gw}.cmd.r1", "reboot")
        assert await gateway.next_message() == (f"roost/acme/{gw}/cmd/r1", b"reboot")
        # Revoked by an operator with the admin command line: another process, the same identity database.
        started = time.monotonic()
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "roost.cli", "cloud", "admin", "--config", str(cloud_config(cloud)),
             "gateway-revoke", gw],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        # Its connection is closed through the management API within a few seconds ...
        assert await asyncio.to_thread(gateway.disconnected.wait, 8.0), "the revoked gateway is still connected"
        closed_after = gateway.disconnected_at - started
        print(f"revoked gateway disconnected {closed_after:.1f} s after the admin command started")
        for _ in range(40):  # the counter moves once the management API answered the DELETE
            if cloud.stats.closed_connections:
                break
            await asyncio.sleep(0.1)
        assert cloud.stats.closed_connections == 1
        # ... paho's reconnects are refused (the token is revoked) ...
        assert await asyncio.to_thread(gateway.connects.get, True, WAIT) != "Success"
        # ... and a command sent afterwards does not reach it.
        await asyncio.sleep(CACHE_TTL_MS / 1000)
        assert await node.connections(gw) == []
        assert await node.publish(f"roost.acme.{gw}.cmd.r2", "reboot again", must_route=False) is False
        await gateway.no_message(within=2.0)
    finally:
        gateway.close()


def cloud_config(server: CloudServer) -> Path:
    """The config file a test's cloud was loaded from (the admin command line reads the same one)."""
    path = server.config.store.path.parent.parent / "cloud.toml"
    assert path.exists(), path
    return path
