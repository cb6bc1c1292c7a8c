"""Ingest end to end: a gateway publishes SenML over MQTT/WebSockets, gets the cloud's ack, the API reads it."""

from __future__ import annotations

import json
import time
from typing import Any

import cbor2

from cloud.server import CloudServer
from tests.cloud.helpers import eventually, http, mqtt, next_message, readings
from wire import envelopes, events, senml
from wire.reading import Reading

ACK = "roost/default/gw-1/ack"
TELEMETRY = "roost/default/gw-1/telemetry"


async def _items(server: CloudServer, **params: Any) -> list[dict[str, Any]]:
    async with http(server) as api:
        resp = await api.get("/api/v1/readings", params={"limit": 10_000, **params})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def _stats(server: CloudServer) -> dict[str, int]:
    async with http(server) as api:
        counters: dict[str, int] = (await api.get("/api/v1/stats")).json()["counters"]
        return counters


async def test_pack_is_acked_after_commit_and_read_back_exactly(cloud: CloudServer) -> None:
    sent = [
        Reading("s1", "temp", 21.5, 1_795_000_000.123456, "Cel"),
        Reading("s1", "humidity", 40.25, 1_795_000_000.123457, "%RH"),
        Reading("aa:bb:cc:dd:ee:ff", "open", True, 1_795_000_001.000001),
        Reading("s2", "state", "idle", 1_795_000_002.5),
    ]
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        await gw.publish(f"{TELEMETRY}/b1", senml.encode(sent), qos=1)
        ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
    assert ack == {"batches": ["b1"], "rejected": []}
    # The ack follows the commit: the readings are there now, no polling needed.
    items = await _items(cloud)
    assert items == [
        {
            "gateway": "gw-1",
            "sensor": "s1",
            "metric": "temp",
            "value": 21.5,
            "unit": "Cel",
            "ts": "2026-11-18T11:06:40.123456Z",
        },
        {
            "gateway": "gw-1",
            "sensor": "s1",
            "metric": "humidity",
            "value": 40.25,
            "unit": "%RH",
            "ts": "2026-11-18T11:06:40.123457Z",
        },
        {
            "gateway": "gw-1",
            "sensor": "aa:bb:cc:dd:ee:ff",
            "metric": "open",
            "value": True,
            "unit": None,
            "ts": "2026-11-18T11:06:41.000001Z",
        },
        {
            "gateway": "gw-1",
            "sensor": "s2",
            "metric": "state",
            "value": "idle",
            "unit": None,
            "ts": "2026-11-18T11:06:42.500000Z",
        },
    ]


async def test_resend_is_stored_once_and_acked_again(cloud: CloudServer) -> None:
    pack = senml.encode(readings(50))
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        for _ in range(3):
            await gw.publish(f"{TELEMETRY}/same", pack, qos=1)
            assert json.loads((await next_message(gw)).payload) == {"batches": ["same"], "rejected": []}  # type: ignore[arg-type]
    assert len(await _items(cloud)) == 50
    stats = await _stats(cloud)
    assert stats["readings"] == 50
    assert stats["duplicates"] == 100


async def test_malformed_pack_is_rejected_counted_and_the_server_goes_on(cloud: CloudServer) -> None:
    bad = [
        b"\xff\x00garbage",  # no SenML pack at all
        cbor2.dumps([{0: "nobasename", 2: 1.0}]),  # a name without ':'
        b"\x78\x9c\x00\x00",  # corrupt zlib
        b'[{"bn":"s1:","n":"t","v":1},',  # truncated JSON
    ]
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        for i, payload in enumerate(bad):
            await gw.publish(f"{TELEMETRY}/bad{i}", payload, qos=1)
            assert envelopes.decode_ack((await next_message(gw)).payload) == {  # type: ignore[arg-type]
                "batches": [],
                "rejected": [f"bad{i}"],
            }
        await gw.publish(f"{TELEMETRY}/good", senml.encode(readings(3)), qos=1)
        assert envelopes.decode_ack((await next_message(gw)).payload)["batches"] == ["good"]  # type: ignore[arg-type]
    assert len(await _items(cloud)) == 3
    stats = await _stats(cloud)
    assert stats["rejected_packs"] == len(bad)
    assert stats["packs"] == 1
    async with http(cloud) as api:
        assert (await api.get("/healthz")).json()["status"] == "ok"
        gateways = (await api.get("/api/v1/gateways")).json()["items"]
    assert gateways[0]["ingest"]["rejected_packs"] == len(bad)


async def test_json_and_zlib_packs_and_packs_without_a_batch_id(cloud: CloudServer) -> None:
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        await gw.publish(f"{TELEMETRY}/j", senml.encode(readings(2, sensor="json"), encoding="json"), qos=1)
        await gw.publish(f"{TELEMETRY}/z", senml.encode(readings(2, sensor="zlib"), compress=True), qos=1)
        acked: set[str] = set()
        while acked != {"j", "z"}:
            acked.update(envelopes.decode_ack((await next_message(gw)).payload)["batches"])  # type: ignore[arg-type]
        await gw.publish(TELEMETRY, senml.encode(readings(2, sensor="nobatch")), qos=1)  # stored, not acked

        async def stored() -> bool:
            return len(await _items(cloud, sensor="nobatch")) == 2

        await eventually(stored)
    assert {i["sensor"] for i in await _items(cloud)} == {"json", "zlib", "nobatch"}


async def test_health_and_presence_reach_the_gateways_list(cloud: CloudServer) -> None:
    health: envelopes.Health = {
        "ts": time.time(),
        "uptime_s": 12.5,
        "counters": {
            "buffered": 3,
            "received": 10,
            "sent": 7,
            "dropped": 2,
            "dropped_full": 2,
            "dropped_age": 0,
            "rejected": 1,
            "reconnects": 0,
        },
    }

    async def gateway() -> dict[str, Any]:
        async with http(cloud) as api:
            items = (await api.get("/api/v1/gateways")).json()["items"]
        return next((g for g in items if g["id"] == "gw-1"), {})

    async with mqtt(cloud) as gw:
        await gw.publish("roost/default/gw-1/health", envelopes.encode_health(health), qos=1)

        async def online_with_health() -> bool:
            g = await gateway()
            return bool(g.get("online")) and g.get("health") is not None

        await eventually(online_with_health)
    g = await gateway()
    assert g["tenant"] == "default"
    assert g["health"]["counters"]["dropped"] == 2
    assert g["last_seen"].endswith("Z")

    async def offline() -> bool:
        return (await gateway()).get("online") is False

    await eventually(offline)


async def test_events_are_stored_and_acked(cloud: CloudServer) -> None:
    """An event pack (wire.events) is acked like telemetry; more in test_events.py."""
    pack = events.encode([events.Event(id="e1", kind="annotation", ts=1.0, key="door/log")])
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        await gw.publish("roost/default/gw-1/events/e1", pack, qos=1)
        assert envelopes.decode_ack((await next_message(gw)).payload)["batches"] == ["e1"]  # type: ignore[arg-type]
        await gw.publish("roost/default/gw-1/events/e2", b'[{"bn":"s1:","n":"alert","vs":"hot"}]', qos=1)
        assert envelopes.decode_ack((await next_message(gw)).payload)["rejected"] == ["e2"]  # type: ignore[arg-type]
    assert (await _stats(cloud))["events"] == 1
