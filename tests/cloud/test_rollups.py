"""Rollups of numeric readings (1 minute, 1 hour): kept in the ingest's transaction, read through the readings API."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.config import loads
from cloud.server import CloudServer
from cloud.store import PackWrite, Store
from tests.cloud.helpers import BASE_CONFIG, http
from wire.reading import Reading

HOUR0 = 1_795_003_200.0  # 2026-11-18T12:00:00Z, the start of an hour
T_HOUR0 = "2026-11-18T12:00:00Z"


def _at(offset_s: float, value: float | bool | str, sensor: str = "s1", metric: str = "temp") -> Reading:
    return Reading(sensor, metric, value, HOUR0 + offset_s, "Cel")


async def _commit(store: Store, *readings: Reading, gateway: str = "gw-1") -> list[int]:
    return await store.commit([PackWrite("default", gateway, list(readings))], now=time.time())


def _t(text: str) -> str:
    """An RFC 3339 time of the API without its zero microseconds."""
    return text.replace(".000000Z", "Z")


async def _buckets(server: CloudServer, **params: Any) -> dict[str, Any]:
    query = {"sensor": "s1", "metric": "temp", **params}
    async with http(server) as api:
        resp = await api.get("/api/v1/readings", params=query)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# A known series: minute 0 holds 1, 5, 3 (last 3 at 0:40); minute 1 holds 10; minute 61 (the next hour) holds -2.
SERIES = [_at(0, 1.0), _at(20, 5.0), _at(40, 3.0), _at(61, 10.0), _at(3_661, -2.0)]


async def test_buckets_of_a_known_series(cloud: CloudServer) -> None:
    # Booleans and strings are not numbers: they stay raw readings only.
    assert await _commit(cloud.store, *SERIES, _at(5, True), _at(6, "on", metric="state")) == [7]
    minutes = (await _buckets(cloud, resolution="1m"))["items"]
    assert [(_t(b["t"]), b["min"], b["max"], b["avg"], b["count"], b["last"]) for b in minutes] == [
        ("2026-11-18T12:00:00Z", 1.0, 5.0, 3.0, 3, 3.0),
        ("2026-11-18T12:01:00Z", 10.0, 10.0, 10.0, 1, 10.0),
        ("2026-11-18T13:01:00Z", -2.0, -2.0, -2.0, 1, -2.0),
    ]
    assert _t(minutes[0]["last_ts"]) == "2026-11-18T12:00:40Z"
    body = await _buckets(cloud, resolution="1h")
    assert body["resolution"] == "1h"
    assert [(_t(b["t"]), b["min"], b["max"], b["avg"], b["count"], b["last"]) for b in body["items"]] == [
        ("2026-11-18T12:00:00Z", 1.0, 10.0, 19.0 / 4, 4, 10.0),
        ("2026-11-18T13:00:00Z", -2.0, -2.0, -2.0, 1, -2.0),
    ]
    # The range picks buckets by their start; a bucket holding ``since`` is in it.
    part = await _buckets(cloud, resolution="1m", since="2026-11-18T12:00:30Z", until="2026-11-18T12:02:00Z")
    assert [_t(b["t"]) for b in part["items"]] == ["2026-11-18T12:00:00Z", "2026-11-18T12:01:00Z"]
    # Paging: one bucket a page, then the cursor.
    first = await _buckets(cloud, resolution="1m", limit=1)
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = await _buckets(cloud, resolution="1m", limit=1, cursor=first["next_cursor"])
    assert _t(second["items"][0]["t"]) == "2026-11-18T12:01:00Z"
    # Without a resolution the answer is the raw readings, as before.
    raw = await _buckets(cloud)
    assert "resolution" not in raw and len(raw["items"]) == 6 and "value" in raw["items"][0]


async def test_late_data_corrects_its_bucket(cloud: CloudServer) -> None:
    await _commit(cloud.store, *SERIES)
    await _commit(cloud.store, _at(3_700, 7.0))  # a later reading first
    await _commit(cloud.store, _at(10, -4.0), _at(30, 8.0))  # then late readings of the first minute
    minute = (await _buckets(cloud, resolution="1m"))["items"][0]
    assert (minute["min"], minute["max"], minute["count"], minute["last"]) == (-4.0, 8.0, 5, 3.0)
    assert minute["avg"] == pytest.approx((1 + 5 + 3 - 4 + 8) / 5)
    hours = (await _buckets(cloud, resolution="1h"))["items"]
    assert [(h["count"], h["min"], h["last"]) for h in hours] == [(6, -4.0, 10.0), (2, -2.0, 7.0)]


async def test_duplicates_are_not_counted_twice(cloud: CloudServer) -> None:
    assert await _commit(cloud.store, *SERIES) == [5]
    # The same pack again, and a pack mixing a duplicate with a new reading: only the new one counts.
    assert await _commit(cloud.store, *SERIES) == [0]
    assert await _commit(cloud.store, SERIES[0], _at(50, 100.0)) == [1]
    minute = (await _buckets(cloud, resolution="1m"))["items"][0]
    assert (minute["count"], minute["max"], minute["last"]) == (4, 100.0, 100.0)
    assert minute["avg"] == pytest.approx((1 + 5 + 3 + 100) / 4)
    # The same series from another gateway is another series: the API sums them per bucket.
    await _commit(cloud.store, *SERIES, gateway="gw-2")
    both = (await _buckets(cloud, resolution="1h"))["items"][0]
    assert both["count"] == 5 + 4
    only = (await _buckets(cloud, resolution="1h", gateway="gw-2"))["items"][0]
    assert only["count"] == 4


async def test_rollups_survive_a_restart_and_are_built_for_an_older_store(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        await _commit(server.store, *SERIES)
        path = config.store.path
    async with CloudServer(config) as server:
        assert [b["count"] for b in (await _buckets(server, resolution="1h"))["items"]] == [4, 1]
        await _commit(server.store, _at(1, 2.0))  # still kept after the restart
        assert [b["count"] for b in (await _buckets(server, resolution="1h"))["items"]] == [5, 1]
    # A store of schema 2 (before rollups) gets them computed from its readings when opened.
    raw = sqlite3.connect(path)
    raw.executescript("DROP TABLE rollups_1m; DROP TABLE rollups_1h;")
    raw.execute("PRAGMA user_version = 2")
    raw.close()
    async with CloudServer(config) as server:
        minutes = (await _buckets(server, resolution="1m"))["items"]
        assert (minutes[0]["count"], minutes[0]["min"], minutes[0]["last"]) == (4, 1.0, 3.0)
        assert [b["count"] for b in (await _buckets(server, resolution="1h"))["items"]] == [5, 1]


@pytest.mark.parametrize(
    ("since", "until", "points", "expected"),
    [
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 500, "1h"),  # a month: 720 hours
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 2000, "1m"),  # 720 hours are too few for 2000 points
        ("2026-11-18T12:00:00Z", "2026-11-18T13:00:00Z", 60, "1m"),  # an hour
        ("2026-11-18T12:00:00Z", "2026-11-18T13:00:00Z", 300, "raw"),  # 60 minutes are too few for 300 points
    ],
)
async def test_auto_picks_the_coarsest_resolution_with_enough_points(
    cloud: CloudServer, since: str, until: str, points: int, expected: str
) -> None:
    await _commit(cloud.store, *SERIES)
    body = await _buckets(cloud, resolution="auto", since=since, until=until, points=points)
    assert body.get("resolution", "raw") == expected
    assert ("value" in body["items"][0]) == (expected == "raw")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"resolution": "5m"}, "resolution"),
        ({"resolution": "auto", "until": T_HOUR0}, "since"),
        ({"resolution": "auto", "since": T_HOUR0}, "until"),
        ({"resolution": "auto", "since": T_HOUR0, "until": T_HOUR0}, "until"),
        ({"resolution": "auto", "since": "2026-11-01T00:00:00Z", "until": T_HOUR0, "points": 0}, "points"),
        ({"resolution": "1m", "sensor": None}, "sensor"),
        ({"resolution": "1h", "metric": None}, "metric"),
    ],
)
async def test_bad_parameters_are_named(cloud: CloudServer, params: dict[str, Any], parameter: str) -> None:
    query = {k: v for k, v in {"sensor": "s1", "metric": "temp", **params}.items() if v is not None}
    async with http(cloud) as api:
        resp = await api.get("/api/v1/readings", params=query)
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["error"]["parameter"] == parameter
