"""The whole cloud on PostgreSQL: a gateway publishes a pack over MQTT, is acked after the commit, the API reads it."""

from __future__ import annotations

from pathlib import Path

from cloud.config import loads
from cloud.pgstore import PgStore
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, http, mqtt, next_message
from tests.pg import needs_postgres
from wire import envelopes, senml
from wire.reading import Reading

pytestmark = needs_postgres


async def test_a_pack_is_acked_and_read_back_from_postgresql(tmp_path: Path, pg_dsn: str) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(pg_dsn + "\n")
    config = loads(BASE_CONFIG + f'\n[store]\nbackend = "postgresql"\ndsn_file = "{dsn_file}"\n', base_dir=tmp_path)
    sent = [
        Reading("s1", "temp", 21.5, 1_795_000_000.123456, "Cel"),
        Reading("aa:bb:cc:dd:ee:ff", "open", True, 1_795_000_001.000001),
        Reading("s2", "state", "idle", 1_795_000_002.5),
    ]
    async with CloudServer(config) as server:
        assert isinstance(server.store, PgStore)
        async with mqtt(server) as gw:
            await gw.subscribe("roost/default/gw-1/ack", qos=1)
            await gw.publish("roost/default/gw-1/telemetry/b1", senml.encode(sent), qos=1)
            ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
        assert ack == {"batches": ["b1"], "rejected": []}
        async with http(server) as api:
            resp = await api.get("/api/v1/readings", params={"limit": 100})
            assert resp.status_code == 200, resp.text
            items = resp.json()["items"]
            assert [(i["sensor"], i["value"], i["ts"]) for i in items] == [
                ("s1", 21.5, "2026-11-18T11:06:40.123456Z"),
                ("aa:bb:cc:dd:ee:ff", True, "2026-11-18T11:06:41.000001Z"),
                ("s2", "idle", "2026-11-18T11:06:42.500000Z"),
            ]
            resp = await api.get(
                "/api/v1/readings",
                params={"sensor": "s1", "metric": "temp", "resolution": "1m", "since": "2026-11-18T11:00:00Z"},
            )
            assert resp.status_code == 200, resp.text
            assert [(b["count"], b["last"]) for b in resp.json()["items"]] == [(1, 21.5)]
        assert server.retention is not None
