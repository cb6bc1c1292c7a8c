"""The discovery document lists every broker node the operator names, and asks for QoS 0 subscriptions on RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cloud.config import ConfigError, loads
from cloud.server import CloudServer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink.discovery import target
from wire.discovery import parse as parse_discovery


async def test_the_cloud_lists_its_broker_nodes_in_the_discovery_document(tmp_path: Path) -> None:
    nodes = '["wss://mq1.example:15676/ws", "wss://mq2.example:15676/ws", "mqtts://mq1.example:8883"]'
    config = loads(f"[broker]\npublic_mqtt_urls = {nodes}\n[identity]\nenabled = false\n", base_dir=tmp_path)
    async with CloudServer(config) as cloud, httpx.AsyncClient() as http:
        doc = (await http.get(cloud.info.base_url + "/.well-known/roost")).json()
    assert doc["mqtt_ws_url"] == "wss://mq1.example:15676/ws"
    assert doc["mqtt_ws_urls"] == ["wss://mq1.example:15676/ws", "wss://mq2.example:15676/ws"]
    assert doc["mqtt_tcp_urls"] == ["mqtts://mq1.example:8883"]
    assert "subscribe_qos" not in doc  # the embedded broker keeps QoS 1 subscriptions
    t = target(CloudSection(), UplinkSection(), parse_discovery(doc), "discovery")
    assert t.urls == ("wss://mq1.example:15676/ws", "wss://mq2.example:15676/ws")


def test_a_bad_broker_node_url_in_the_cloud_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"public_mqtt_urls\[1\]"):
        loads('[broker]\npublic_mqtt_urls = ["wss://a/ws", "http://b/ws"]\n', base_dir=tmp_path)
