"""The HTTP API on loopback: bearer tokens, readings pages and filters, errors naming the parameter, discovery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.config import loads
from cloud.server import CloudServer
from cloud.store import PackWrite
from tests.cloud.helpers import OTHER_TOKEN, http, readings
from wire import discovery

T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z


async def _seed(server: CloudServer) -> None:
    await server.store.commit(
        [
            PackWrite("default", "gw-1", readings(10, sensor="a", t0=T0, step=1.0)),
            PackWrite("default", "gw-2", readings(10, sensor="b", t0=T0, step=1.0)),
            PackWrite("other", "gw-x", readings(5, sensor="x", t0=T0, step=1.0)),
        ],
        now=time.time(),
    )


@pytest.mark.parametrize("path", ["/api/v1/readings", "/api/v1/gateways", "/api/v1/stats"])
async def test_api_needs_a_bearer_token(cloud: CloudServer, path: str) -> None:
    for token in (None, "not-a-token"):
        async with http(cloud, token) as api:
            resp = await api.get(path)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["error"]["status"] == 401
    async with http(cloud) as api:
        assert (await api.get(path)).status_code == 200


async def test_open_endpoints(cloud: CloudServer) -> None:
    async with http(cloud, None) as api:
        health = await api.get("/healthz")
        assert health.status_code == 200
        assert health.json()["store"] == "ok" and health.json()["broker"] == "ok"
        assert (await api.get("/openapi.json")).json()["info"]["title"] == "Roost cloud"
        assert (await api.get("/.well-known/roost")).status_code == 200


async def test_readings_are_scoped_to_the_token_tenant(cloud: CloudServer) -> None:
    await _seed(cloud)
    async with http(cloud) as api:
        assert len((await api.get("/api/v1/readings")).json()["items"]) == 20
    async with http(cloud, OTHER_TOKEN) as api:
        items = (await api.get("/api/v1/readings")).json()["items"]
        assert {i["gateway"] for i in items} == {"gw-x"}
        assert [g["id"] for g in (await api.get("/api/v1/gateways")).json()["items"]] == ["gw-x"]


async def test_pages_with_a_cursor_cover_everything_once_in_order(cloud: CloudServer) -> None:
    await _seed(cloud)
    pages: list[list[dict[str, Any]]] = []
    async with http(cloud) as api:
        params: dict[str, Any] = {"limit": 7}
        while True:
            body = (await api.get("/api/v1/readings", params=params)).json()
            pages.append(body["items"])
            if body["next"] is None:
                break
            params["cursor"] = body["next"]
        everything = (await api.get("/api/v1/readings")).json()
    assert [len(p) for p in pages] == [7, 7, 6]
    flat = [item for page in pages for item in page]
    assert flat == everything["items"]
    assert [(i["ts"], i["gateway"]) for i in flat] == sorted((i["ts"], i["gateway"]) for i in flat)
    assert everything["next"] is None


async def test_filters_and_time_ranges(cloud: CloudServer) -> None:
    await _seed(cloud)
    async with http(cloud) as api:

        async def count(**params: Any) -> int:
            resp = await api.get("/api/v1/readings", params=params)
            assert resp.status_code == 200, resp.text
            return len(resp.json()["items"])

        assert await count(gateway="gw-1") == 10
        assert await count(sensor="b", metric="temp") == 10
        assert await count(metric="nothing") == 0
        assert await count(gateway="gw-1", since=T0 + 2, until=T0 + 5) == 3  # epoch seconds
        assert await count(gateway="gw-1", since="2026-11-18T11:06:42Z", until="2026-11-18T11:06:45Z") == 3
        assert await count(gateway="gw-1", since="2026-11-18T12:06:42+01:00") == 8  # offsets
        assert await count(gateway="gw-1", since="2026-11-18T11:06:42.000001Z") == 7  # µs resolution


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-18T11:06:42"}, "until"),  # no offset
        ({"since": "nan"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_bad_parameters_are_named(cloud: CloudServer, params: dict[str, Any], parameter: str) -> None:
    async with http(cloud) as api:
        resp = await api.get("/api/v1/readings", params=params)
    assert resp.status_code == 400
    assert resp.json()["error"]["parameter"] == parameter


async def test_discovery_document(cloud: CloudServer) -> None:
    async with httpx.AsyncClient(base_url=cloud.info.base_url, timeout=5) as api:
        doc = discovery.parse((await api.get("/.well-known/roost")).json())
        port = cloud.info.port
        assert doc["mqtt_ws_url"] == f"ws://127.0.0.1:{port}/mqtt"
        assert doc["api_url"] == f"http://127.0.0.1:{port}/api/v1"
        assert doc["ack"] == "cloud"
        assert doc["senml_encodings"] == ["cbor", "json"] and doc["senml_compression"] == ["zlib"]
        assert doc["max_pack_bytes"] == 1 << 20
        assert "mqtt_tcp_url" not in doc
        # Without public_url the Host header decides (as a reverse proxy would pass it).
        named = (await api.get("/.well-known/roost", headers={"Host": "cloud.example:8443"})).json()
        assert named["mqtt_ws_url"] == "ws://cloud.example:8443/mqtt"


async def test_discovery_with_public_url_and_tcp(tmp_path: Path) -> None:
    config = loads(
        '[server]\nport = 0\npublic_url = "https://roost.example.org"\n[broker]\ntcp_listen = "127.0.0.1:0"\n',
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server, httpx.AsyncClient(base_url=server.info.base_url, timeout=5) as api:
        doc = (await api.get("/.well-known/roost")).json()
    assert doc["mqtt_ws_url"] == "wss://roost.example.org/mqtt"
    assert doc["api_url"] == "https://roost.example.org/api/v1"
    assert doc["mqtt_tcp_url"] == f"mqtt://roost.example.org:{server.info.tcp_port}"
