"""cloud.broker.rabbitmq_amqp against a real RabbitMQ 3.10 node: queue, routing, settling, redelivery, failover.

One node (tests/rabbitmq_cluster.py with ``size=1``, internal users only) for the module; MQTT clients are
aiomqtt as the administrator (authentication through the cloud is tests/scale/test_cluster.py's business).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud.broker.base import Received
from cloud.broker.rabbitmq_amqp import AmqpSettings, RabbitMQBroker, routing_key, topic_of
from tests import rabbitmq_cluster
from tests.rabbitmq_cluster import ADMIN_USER, VHOST, RabbitCluster, free_port

_missing = rabbitmq_cluster.missing()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing is not None, reason=str(_missing))]

WAIT = 10.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    with RabbitCluster(Path(tmp_path_factory.mktemp("rabbitmq")), size=1) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def running(settings: AmqpSettings) -> AsyncIterator[RabbitMQBroker]:
    broker = RabbitMQBroker(settings)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def gateway(cluster: RabbitCluster, client_id: str) -> AsyncIterator[aiomqtt.Client]:
    port = cluster.nodes[0].mqtt
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=client_id, username=ADMIN_USER, password=cluster.password
    ) as c:
        yield c


async def next_received(broker: RabbitMQBroker, timeout: float = WAIT) -> Received:
    async with asyncio.timeout(timeout):
        async for event in broker.events():
            assert isinstance(event, Received)
            return event
    raise AssertionError("the broker's event stream ended")


def test_routing_keys_swap_dots_and_slashes_as_the_mqtt_plugin_does() -> None:
    assert routing_key("roost/acme/gw.1/telemetry/b-7") == "roost.acme.gw/1.telemetry.b-7"
    assert topic_of(routing_key("roost/acme/gw.1/telemetry/b-7")) == "roost/acme/gw.1/telemetry/b-7"


async def test_consumes_what_ingest_handles_from_a_quorum_queue_and_publishes_to_gateways(
    node: RabbitCluster,
) -> None:
    dead = f"amqp://{ADMIN_USER}:x@127.0.0.1:{free_port()}/{VHOST}"  # nobody listens: the next URL is used
    settings = AmqpSettings(urls=[dead, node.amqp_urls[0]], queue="t.consume", prefetch=10, connect_timeout_s=WAIT)
    async with running(settings) as broker, gateway(node, "gw-1") as gw:
        assert broker.healthy and broker.node == f"127.0.0.1:{node.nodes[0].amqp}"
        queue = node.nodes[0].api("GET", f"/queues/{VHOST}/t.consume")
        assert queue["type"] == "quorum" and queue["durable"] is True
        await gw.publish("roost/default/gw-1/cmd-result/r1", b"not ingested here? yes: bound", qos=1)
        await gw.publish("roost/default/gw-1/state/desired", b"the cloud's own topic: not bound", qos=1)
        await gw.publish("roost/default/gw-1/telemetry/b1", b"pack", qos=1)
        first = await next_received(broker)
        second = await next_received(broker)
        assert (first.topic, second.topic) == ("roost/default/gw-1/cmd-result/r1", "roost/default/gw-1/telemetry/b1")
        assert second.payload == b"pack" and second.principal is not None
        assert (second.principal.kind, second.principal.tenant, second.principal.id) == ("gateway", "default", "gw-1")
        for received in (first, second):
            assert received.settle is not None
            await received.settle(True)
        # The cloud's publish reaches the gateway's MQTT subscription, as MQTT.
        await gw.subscribe("roost/default/gw-1/cmd/+", qos=1)
        await broker.publish("roost/default/gw-1/cmd/r2", b"reboot", qos=1)
        async with asyncio.timeout(WAIT):
            message = await anext(aiter(gw.messages))
        assert (str(message.topic), message.payload) == ("roost/default/gw-1/cmd/r2", b"reboot")


async def test_an_unsettled_message_is_delivered_again_and_a_settled_one_never(node: RabbitCluster) -> None:
    settings = AmqpSettings(urls=node.amqp_urls, queue="t.redeliver", prefetch=10, connect_timeout_s=WAIT)
    async with running(settings) as first:
        pass  # declares and binds the queue
    async with gateway(node, "gw-2") as gw:
        await gw.publish("roost/default/gw-2/telemetry/b1", b"pack-1", qos=1)
    async with running(settings) as worker:
        got = await next_received(worker)
        assert got.payload == b"pack-1" and worker.redeliveries == 0
        # The worker goes away without settling (a commit that never finished).
    async with running(settings) as other:
        again = await next_received(other)
        assert again.payload == b"pack-1" and other.redeliveries == 1
        assert again.settle is not None
        await again.settle(False)  # a failed commit: handed back at once
        third = await next_received(other)
        assert third.payload == b"pack-1"
        assert third.settle is not None
        await third.settle(True)
    async with running(settings) as last:
        with pytest.raises(TimeoutError):
            await next_received(last, timeout=1.5)
    assert first.connects == 1


async def test_reconnects_when_the_node_closes_its_connection(node: RabbitCluster) -> None:
    settings = AmqpSettings(urls=node.amqp_urls, queue="t.reconnect", prefetch=10, connect_timeout_s=WAIT)
    async with running(settings) as broker:
        admin = (ADMIN_USER, node.password)
        async with httpx.AsyncClient(base_url=node.nodes[0].management_url, auth=admin, timeout=WAIT) as http:
            deadline = time.monotonic() + WAIT
            names: list[str] = []
            while not names:  # the management API lists a connection a moment after it opened
                assert time.monotonic() < deadline, "the broker's connection is not listed"
                conns = (await http.get(f"/api/connections/username/{ADMIN_USER}")).json()
                names = [c["name"] for c in conns]  # only the broker's connection is open now
                await asyncio.sleep(0.2)
            r = await http.delete(f"/api/connections/{names[0]}", params={"disable_stats": "true"})
            assert r.status_code in (200, 204), r.text
        deadline = time.monotonic() + WAIT
        while broker.connects < 2:
            assert time.monotonic() < deadline, "the broker did not reconnect"
            await asyncio.sleep(0.1)
        async with gateway(node, "gw-3") as gw:
            await gw.publish("roost/default/gw-3/health", b"{}", qos=1)
        got = await next_received(broker)
        assert got.topic == "roost/default/gw-3/health"
        assert got.settle is not None
        await got.settle(True)
