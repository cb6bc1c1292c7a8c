"""The rules worker (``server.role = "rules"``) sees every gateway's readings from a queue of its own.

With several ingest workers each one stores a share of the stream; rules that span gateways run in one
rules worker instead, which consumes its own quorum queue bound to telemetry and status. A real RabbitMQ
node (tests/rabbitmq_cluster.py, one node, internal users), a real CloudServer in the rules role, and MQTT
publishes: a reading over the threshold raises a cloud alert, stored; a pack sent again is not counted
twice; a gateway's offline status reaches the rules as presence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from cloud.config import loads
from cloud.eventstore import AlertQuery
from cloud.server import CloudServer
from tests import rabbitmq_cluster
from tests.cloud.helpers import eventually
from tests.rabbitmq_cluster import ADMIN_USER, VHOST, RabbitCluster
from wire import envelopes, senml
from wire.reading import Reading

_missing = rabbitmq_cluster.missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing is not None, reason=str(_missing))]

HOT = """
[[rule]]
name = "too-hot"
[rule.select]
sensor = "*/oven"
metric = "temperature"
[rule.condition]
kind = "threshold"
above = 30.0
clear_below = 25.0
[[rule.action]]
kind = "alert"
severity = "warning"
message = "{sensor} is at {value:.1f}"
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    with RabbitCluster(Path(tmp_path_factory.mktemp("rabbitmq")), size=1) as cluster:
        yield cluster


@pytest.fixture
async def rules_worker(node: RabbitCluster, tmp_path: Path) -> AsyncIterator[CloudServer]:
    (tmp_path / "rules" / "default").mkdir(parents=True)
    (tmp_path / "rules" / "default" / "hot.toml").write_text(HOT)
    config = loads(
        f"""
[server]
port = 0
role = "rules"
[broker]
kind = "rabbitmq"
amqp_urls = ["{node.amqp_urls[0]}"]
[identity]
enabled = false
[rules]
enabled = true
folder = "rules"
tick_s = 0.05
watch_s = 0.2
amqp_queue = "t.rules"
""",
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server:
        yield server


async def _open_alerts(server: CloudServer, want: int) -> list[str]:
    keys: list[str] = []

    async def enough() -> bool:
        keys[:] = [r.key for r in await server.store.alerts(AlertQuery(tenant="default", gateway="cloud"))]
        return len(keys) >= want

    await eventually(enough, timeout=15)
    return keys


async def test_the_rules_worker_raises_alerts_from_its_own_queue(
    node: RabbitCluster, rules_worker: CloudServer
) -> None:
    queue = node.nodes[0].api("GET", f"/queues/{VHOST}/t.rules")
    assert queue["type"] == "quorum"
    assert rules_worker.rules_feed is not None and rules_worker.cloud_rules is not None
    pack = senml.encode([Reading("oven", "temperature", 35.0, 1_790_000_000.0, "Cel")], encoding="cbor")
    async with aiomqtt.Client(
        "127.0.0.1", node.nodes[0].mqtt, identifier="gw-1", username=ADMIN_USER, password=node.password
    ) as gw:
        await gw.publish("roost/default/gw-1/telemetry/b-1", pack, qos=1)
        await gw.publish("roost/default/gw-1/telemetry/b-1", pack, qos=1)  # its ack was lost: sent again
        await gw.publish("roost/default/gw-1/telemetry/b-2", b"\xff not senml", qos=1)
        await gw.publish("roost/default/gw-1/status", envelopes.OFFLINE, qos=1)
        keys = await _open_alerts(rules_worker, 1)
    assert keys == ["too-hot/gw-1/oven"]
    feed = rules_worker.rules_feed.stats

    async def seen_all() -> bool:
        return feed.presence >= 1 and feed.refused >= 1

    await eventually(seen_all, timeout=10)
    assert (feed.packs, feed.readings, feed.resent, feed.refused, feed.presence) == (1, 1, 1, 1, 1)
    # Every message was settled: nothing waits in the queue.

    async def queue_empty() -> bool:
        return bool(node.nodes[0].api("GET", f"/queues/{VHOST}/t.rules").get("messages", 1) == 0)

    await eventually(queue_empty, timeout=15)
