"""Export of readings and rollups as CSV and Parquet: the API, the paging, the CLI, and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cloud.config import load
from cloud.export import export_chunks
from cloud.export_request import ExportFormat, ExportRequest
from cloud.server import CloudServer
from cloud.store import PackWrite
from cloud.store_api import ReadingStore
from tests.cloud.helpers import BASE_CONFIG, GW_PASSWORD, OTHER_TOKEN, TOKEN, eventually, http, mqtt
from wire import senml
from wire.reading import Reading

T0 = 1_795_003_200.0  # 2026-11-18T12:00:00Z
SINCE = "2026-11-18T12:00:00Z"
UNTIL = "2026-11-18T12:10:00Z"
ROOT = Path(__file__).resolve().parents[2]


def _day_readings() -> dict[str, list[Reading]]:
    """Readings of every kind on two gateways, some just outside [SINCE, UNTIL)."""
    return {
        "gw-1": [
            Reading("s1", "temp", 21.5, T0, "Cel"),  # at since: in
            Reading("s1", "temp", -0.1, T0 + 59.999999, "Cel"),
            Reading("s1", "temp", 1e-7, T0 + 599.999999, "Cel"),  # the last µs before until: in
            Reading("s1", "temp", 99.0, T0 + 600, "Cel"),  # at until: out
            Reading("s1", "temp", 5.0, T0 - 0.000001, "Cel"),  # just before since: out
            Reading("door", "open", True, T0 + 30, None),
            Reading("door", "open", False, T0 + 90, None),
            Reading("lbl", "name", 'say "hi", then\nbye', T0 + 120, None),
        ],
        "gw-2": [Reading("s1", "temp", 3.25, T0 + 30, "Cel"), Reading("s9:x", "volt", 230.0, T0 + 30, "V")],
    }


def _expected() -> list[tuple[Any, ...]]:
    """(time µs, tenant, gateway, sensor, metric, value, value_bool, value_text, unit) in export order."""
    rows = []
    for gw, readings in _day_readings().items():
        for r in readings:
            if T0 <= r.ts < T0 + 600:
                v = r.value
                rows.append(
                    (
                        round(r.ts * 1_000_000),
                        "default",
                        gw,
                        r.sensor,
                        r.metric,
                        None if isinstance(v, (bool, str)) else v,
                        v if isinstance(v, bool) else None,
                        v if isinstance(v, str) else None,
                        r.unit,
                    )
                )
    return sorted(rows, key=lambda r: r[:5])


async def _commit(store: ReadingStore) -> None:
    packs = [PackWrite("default", gw, rs) for gw, rs in _day_readings().items()]
    packs.append(PackWrite("other", "gw-x", [Reading("s1", "temp", 7.0, T0 + 1, "Cel")]))
    await store.commit(packs, now=time.time())


def _us(text: str) -> int:
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(dt.timestamp() * 1_000_000)


def _from_csv(text: str) -> list[tuple[Any, ...]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["time", "tenant", "gateway", "sensor", "metric", "value", "value_bool", "value_text", "unit"]
    out = []
    for t, tenant, gw, s, m, v, b, txt, unit in rows[1:]:
        kind = (v != "") + (b != "") + (txt != "")
        assert kind == 1 or (kind == 0 and txt == ""), "exactly one value column is set"
        out.append(
            (
                _us(t),
                tenant,
                gw,
                s,
                m,
                float(v) if v else None,
                {"true": True, "false": False}[b] if b else None,
                txt if v == "" and b == "" else None,
                unit or None,
            )
        )
    return out


def _from_parquet(data: bytes) -> list[tuple[Any, ...]]:
    table = pq.read_table(io.BytesIO(data))
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("value").type) == "double"
    assert str(table.schema.field("value_bool").type) == "bool"
    cols = table.to_pydict()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [((t - epoch) // timedelta(microseconds=1), *rest) for t, *rest in zip(*cols.values(), strict=True)]


async def test_csv_and_parquet_hold_exactly_what_was_stored(cloud: CloudServer) -> None:
    await _commit(cloud.store)
    params = {"since": SINCE, "until": UNTIL}
    async with http(cloud) as api:
        as_csv = await api.get("/api/v1/export", params=params | {"format": "csv"})
        as_parquet = await api.get("/api/v1/export", params=params | {"format": "parquet"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert (
        (as_csv.headers["content-disposition"])
        == 'attachment; filename="roost-default-20261118T120000Z-20261118T121000Z.csv"'
    )
    assert as_parquet.status_code == 200
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    expected = _expected()
    assert len(expected) == 8  # the two readings at the boundaries' wrong sides and the other tenant's are left out
    assert _from_csv(as_csv.text) == expected
    assert _from_parquet(as_parquet.content) == expected


async def test_filters_and_an_empty_range(cloud: CloudServer) -> None:
    await _commit(cloud.store)
    async with http(cloud) as api:
        one = await api.get("/api/v1/export", params={"gateway": "gw-2", "sensor": "s9:x", "format": "csv"})
        empty = await api.get(
            "/api/v1/export", params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}
        )
        nothing = await api.get("/api/v1/export", params={"until": "2000-01-02T00:00:00Z", "format": "parquet"})
    assert [r[3:6] for r in _from_csv(one.text)] == [("s9:x", "volt", 230.0)]
    assert _from_csv(empty.text) == []  # the header line only
    assert pq.read_table(io.BytesIO(nothing.content)).num_rows == 0


async def test_pages_and_row_groups_keep_every_row_once(cloud: CloudServer) -> None:
    await _commit(cloud.store)
    req = ExportRequest(tenant="default", format="parquet")
    chunks = [c async for c in export_chunks(cloud.store, req, page_rows=2, row_group_rows=3)]
    data = b"".join(chunks)
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 3  # 10 rows in pages of 2: groups of 4, 4 and 2
    assert len(chunks) > 2  # streamed as row groups were written, not at the end
    rows = _from_parquet(data)
    assert len(rows) == 10 and len(set(rows)) == 10
    text = b"".join([c async for c in export_chunks(cloud.store, ExportRequest(tenant="default"), page_rows=3)])
    assert sorted(_from_csv(text.decode())) == sorted(rows)


async def test_rollups_of_one_series(cloud: CloudServer) -> None:
    await _commit(cloud.store)
    async with http(cloud) as api:
        resp = await api.get(
            "/api/v1/export", params={"resolution": "1m", "sensor": "s1", "metric": "temp", "format": "csv"}
        )
        api_buckets = await api.get("/api/v1/readings", params={"resolution": "1m", "sensor": "s1", "metric": "temp"})
    rows = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    assert list(rows[0]) == [
        "time", "tenant", "gateway", "sensor", "metric", "min", "max", "avg", "count", "last", "last_time",
    ]  # fmt: skip
    items = api_buckets.json()["items"]
    assert [(_us(r["time"]), float(r["min"]), float(r["max"]), float(r["avg"]), int(r["count"])) for r in rows] == [
        (_us(b["t"]), b["min"], b["max"], b["avg"], b["count"]) for b in items
    ]
    first = rows[1]  # 12:00 of both gateways: 21.5, -0.1 (gw-1) and 3.25 (gw-2), summed over gateways
    assert (first["min"], first["max"], first["count"], first["gateway"]) == ("-0.1", "21.5", "3", "")


async def test_bad_requests_are_problems(cloud: CloudServer) -> None:
    async with http(cloud) as api:
        cases = {
            "format": {"format": "xlsx"},
            "until": {"since": UNTIL, "until": SINCE},
            "sensor": {"resolution": "1h"},
            "metric": {"resolution": "1h", "sensor": "s1"},
            "since": {"since": "yesterday"},
        }
        for parameter, params in cases.items():
            resp = await api.get("/api/v1/export", params=params)
            assert resp.status_code in (400, 422), (parameter, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            body = resp.json()
            assert parameter in (body.get("parameter") or "") + str(body.get("errors", "")), (parameter, body)


async def test_export_is_authorized_like_readings(cloud: CloudServer) -> None:
    await _commit(cloud.store)
    async with http(cloud, token=OTHER_TOKEN) as other, http(cloud, token=None) as nobody:
        refused = await other.get("/api/v1/export", params={"tenant": "default"})
        own = await other.get("/api/v1/export", params={"format": "csv"})
        anonymous = await nobody.get("/api/v1/export")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert own.status_code == 200
    assert [r[1:4] for r in _from_csv(own.text)] == [("other", "gw-x", "s1")]  # its own tenant, nothing else
    assert anonymous.status_code == 401


async def test_a_pack_published_over_mqtt_exports_as_sent(cloud: CloudServer) -> None:
    readings = [Reading("s1", "temp", 20.125, T0 + i, "Cel") for i in range(3)]
    async with mqtt(cloud, "gw-1", username="gw-1", password=GW_PASSWORD) as client:
        await client.publish("roost/default/gw-1/telemetry/b1", senml.encode(readings), qos=1)

    async def stored() -> bool:
        return cloud.stats.readings >= 3

    await eventually(stored)
    async with http(cloud) as api:
        resp = await api.get("/api/v1/export", params={"format": "parquet"})
    rows = _from_parquet(resp.content)
    assert [(r[0], r[2], r[5], r[8]) for r in rows] == [
        (round((T0 + i) * 1_000_000), "gw-1", 20.125, "Cel") for i in range(3)
    ]


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(BASE_CONFIG, encoding="utf-8")
    return path


async def _roost(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", *args, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_cli_exports_from_the_store_and_through_the_api(tmp_path: Path) -> None:
    cfg = _config_file(tmp_path)
    async with CloudServer(load(cfg)) as server:
        await _commit(server.store)
        local = tmp_path / "local.parquet"
        code, out, err = await _roost(
            "cloud", "export", "-c", str(cfg), "--tenant", "default", "--since", SINCE, "--until", UNTIL,
            "--format", "parquet", "-o", str(local),
        )  # fmt: skip
        assert code == 0, err
        assert '"bytes"' in out
        assert _from_parquet(local.read_bytes()) == _expected()
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n", encoding="utf-8")
        remote = tmp_path / "remote.csv"
        code, _, err = await _roost(
            "cloud", "export", "--url", server.info.base_url, "--token-file", str(token), "--tenant", "default",
            "--since", SINCE, "--until", UNTIL, "-o", str(remote),
        )  # fmt: skip
        assert code == 0, err
        assert _from_csv(remote.read_text(encoding="utf-8")) == _expected()
        token.write_text(OTHER_TOKEN, encoding="utf-8")
        code, _, err = await _roost(
            "cloud", "export", "--url", server.info.base_url, "--token-file", str(token), "--tenant", "default",
            "-o", str(tmp_path / "refused.csv"),
        )  # fmt: skip
        assert code == 1
        assert "403" in err and not (tmp_path / "refused.csv").exists()
        code, _, err = await _roost(
            "cloud", "export", "-c", str(cfg), "--tenant", "default", "--since", UNTIL, "--until", SINCE, "-o", "-"
        )
        assert code == 1 and "until must be after since" in err


@pytest.mark.slow
async def test_export_from_postgresql_is_the_same(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    try:
        dsn: str = request.getfixturevalue("pg_dsn")
    except pytest.FixtureLookupError:
        pytest.skip("no PostgreSQL fixture (tests/pg_fixtures.py) in this tree")
    from cloud.pgstore import PgStore

    store = PgStore(dsn)
    await store.open()
    try:
        await _commit(store)
        formats: tuple[ExportFormat, ...] = ("csv", "parquet")
        for fmt in formats:
            since_us, until_us = round(T0 * 1e6), round((T0 + 600) * 1e6)
            req = ExportRequest(tenant="default", format=fmt, since_us=since_us, until_us=until_us)
            data = b"".join([c async for c in export_chunks(store, req, page_rows=3)])
            rows = _from_csv(data.decode()) if fmt == "csv" else _from_parquet(data)
            assert rows == _expected(), fmt
    finally:
        await store.close()
