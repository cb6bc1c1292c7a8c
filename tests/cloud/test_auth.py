"""Broker authorization on loopback: CONNECT by the allow-list, SUBSCRIBE and PUBLISH by the policy decision point."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest

from cloud.config import loads
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, GW_PASSWORD, TOKEN, WAIT, eventually, http, mqtt, next_message, readings
from wire import envelopes, senml


def _failed(granted: Any) -> bool:
    (code,) = granted
    return bool(getattr(code, "is_failure", False)) or code == 0x80


async def _counters(server: CloudServer) -> dict[str, int]:
    async with http(server) as api:
        counters: dict[str, int] = (await api.get("/api/v1/stats")).json()["counters"]
        return counters


@pytest.mark.parametrize(
    ("client_id", "username", "password"),
    [
        ("gw-1", None, None),  # anonymous
        ("gw-1", "gw-1", "wrong-password"),  # wrong password
        ("gw-1", "gw-1", None),  # no password where one is set
        ("gw-9", "gw-9", "anything"),  # not on the allow-list
        ("other-id", "gw-1", GW_PASSWORD),  # client id is not the gateway id
    ],
)
async def test_connect_refused(cloud: CloudServer, client_id: str, username: str | None, password: str | None) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt(cloud, client_id, username=username, password=password):
            pass
    assert (await _counters(cloud))["denied_connects"] == 1


async def test_refused_connect_does_not_knock_the_real_gateway_off(cloud: CloudServer) -> None:
    async with mqtt(cloud) as gw:
        await gw.subscribe("roost/default/gw-1/ack", qos=1)
        for password in (None, "wrong-password"):
            with pytest.raises(aiomqtt.MqttError):
                async with mqtt(cloud, "gw-1", username="gw-1" if password else None, password=password):
                    pass
        # An observer (valid credential, other principal) may not take the gateway's client id either.
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt(cloud, "gw-1", username="ops", password=TOKEN):
                pass
        await gw.publish("roost/default/gw-1/telemetry/still-here", senml.encode(readings(1)), qos=1)
        ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
        assert ack["batches"] == ["still-here"]


async def test_observer_reads_its_tenant_and_cannot_publish(cloud: CloudServer) -> None:
    async with mqtt(cloud, None, username="anyone", password=TOKEN) as observer, mqtt(cloud) as gw:
        assert not _failed(await observer.subscribe("roost/default/#", qos=1))
        assert _failed(await observer.subscribe("roost/other/#", qos=1))
        assert _failed(await observer.subscribe("#", qos=1))
        assert _failed(await observer.subscribe("roost/+/gw-1/telemetry/#", qos=1))
        await gw.publish("roost/default/gw-1/telemetry/b1", senml.encode(readings(1)), qos=1)
        seen = await next_message(observer)
        assert seen.topic.matches("roost/default/gw-1/#")
        await observer.publish("roost/default/gw-1/telemetry/forged", senml.encode(readings(5, sensor="forged")), qos=1)
        await observer.publish("roost/default/gw-1/cmd/x", b"{}", qos=1)

        async def denied() -> bool:
            return (await _counters(cloud))["denied_publishes"] == 2

        await eventually(denied)
    async with http(cloud) as api:
        assert (await api.get("/api/v1/readings", params={"sensor": "forged"})).json()["items"] == []
    counters = await _counters(cloud)
    assert counters["denied_subscribes"] == 3


async def test_gateway_publishes_only_as_itself(cloud: CloudServer) -> None:
    async with mqtt(cloud) as gw:
        await gw.subscribe("roost/default/gw-1/ack", qos=1)
        await gw.publish("roost/default/gw-2/telemetry/spoof", senml.encode(readings(1, sensor="spoof")), qos=1)
        await gw.publish("roost/other/gw-1/telemetry/spoof", senml.encode(readings(1, sensor="spoof")), qos=1)
        await gw.publish("roost/default/gw-1/ack", b'{"batches":[]}', qos=1)  # the cloud's topic
        await gw.publish("roost/default/gw-1/state/desired", b"{}", qos=1)  # the cloud's topic
        await gw.publish("roost/default/gw-1/telemetry/mine", senml.encode(readings(1)), qos=1)
        ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
        assert ack["batches"] == ["mine"]
    async with http(cloud) as api:
        assert (await api.get("/api/v1/readings", params={"sensor": "spoof"})).json()["items"] == []
    assert (await _counters(cloud))["denied_publishes"] == 4


async def test_gateway_subscribes_only_to_its_own_downlink(cloud: CloudServer) -> None:
    async with mqtt(cloud) as gw:
        for allowed in (
            "roost/default/gw-1/ack",
            "roost/default/gw-1/cmd/#",
            "roost/default/gw-1/state/desired",
            "roost/default/gw-1/token-result",
        ):
            assert not _failed(await gw.subscribe(allowed, qos=1)), allowed
        for denied in (
            "roost/default/gw-2/ack",
            "roost/default/+/ack",
            "roost/default/#",
            "roost/other/gw-1/ack",
            "roost/default/gw-1/telemetry/#",
        ):
            assert _failed(await gw.subscribe(denied, qos=1)), denied


async def test_allow_any_gateway_and_the_tcp_listener(tmp_path: Path) -> None:
    config = loads(
        '[server]\nport = 0\n[broker]\ntcp_listen = "127.0.0.1:0"\n[auth]\nallow_any_gateway = true\n',
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server:
        assert server.info.tcp_port
        async with aiomqtt.Client(
            "127.0.0.1", server.info.tcp_port, identifier="gw-new", username="gw-new", timeout=WAIT
        ) as gw:
            await gw.subscribe("roost/default/gw-new/ack", qos=1)
            await gw.publish("roost/default/gw-new/telemetry/t1", senml.encode(readings(1)), qos=1)
            assert envelopes.decode_ack((await next_message(gw)).payload)["batches"] == ["t1"]  # type: ignore[arg-type]
        with pytest.raises(aiomqtt.MqttError):  # still no anonymous clients
            async with aiomqtt.Client("127.0.0.1", server.info.tcp_port, timeout=WAIT):
                pass


async def test_paho_over_websockets_with_the_mqtt_subprotocol(tmp_path: Path) -> None:
    """paho's own WebSocket client (the gateway's library underneath aiomqtt) connects and gets its ack."""
    async with CloudServer(loads(BASE_CONFIG, base_dir=tmp_path)) as server:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="gw-1", transport="websockets", protocol=paho.MQTTv311
        )
        client.ws_set_options(path="/mqtt")
        client.username_pw_set("gw-1", GW_PASSWORD)

        def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            c.subscribe("roost/default/gw-1/ack", qos=1)

        def on_subscribe(c: paho.Client, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
            c.publish("roost/default/gw-1/telemetry/p1", senml.encode(readings(1)), qos=1)

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(lambda: got.done() or got.set_result(msg.payload))

        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        await asyncio.to_thread(client.connect, server.info.host, server.info.port)  # blocking: off the loop
        client.loop_start()
        try:
            payload = await asyncio.wait_for(got, WAIT)
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        assert envelopes.decode_ack(payload)["batches"] == ["p1"]
