"""PostgreSQL answers page for page what SQLite answers (the API's cursors depend on it), on awkward names."""

from __future__ import annotations

import random

from cloud.eventstore import EventQuery
from cloud.pgstore import PgStore
from cloud.rollups import RollupQuery
from cloud.store import EventWrite, PackWrite, ReadingQuery, ReadingRow, Store
from tests.pg import needs_postgres
from wire.events import Event
from wire.reading import Reading

pytestmark = needs_postgres
T0 = 1_794_999_600.0
# Byte order differs from most locales' order here: upper before lower case, '-' < '.' < '/' < digits < ':' < '_'.
SENSORS = ["S1", "a", "a-1", "a.1", "a/1", "a1", "a:b", "a_1", "b", "Zeta"]
GATEWAYS = ["gw-1", "GW-2", "gw_3"]


def _packs(seed: int) -> list[list[PackWrite]]:
    rng = random.Random(seed)
    commits = []
    for _ in range(6):
        packs = []
        for _ in range(5):
            tenant = rng.choice(["default", "acme"])
            readings = []
            for _ in range(40):
                sensor, metric = rng.choice(SENSORS), rng.choice(["temp", "Temp", "t_2"])
                ts = T0 + rng.randrange(0, 3 * 3600) + rng.choice([0.0, 0.5, 0.000001])  # many equal times
                value = rng.choice([rng.uniform(-5, 30), True, "on"]) if metric != "temp" else rng.uniform(-5, 30)
                readings.append(Reading(sensor, metric, value, ts, rng.choice([None, "Cel"])))
            packs.append(PackWrite(tenant, rng.choice(GATEWAYS), readings))
        commits.append(packs)
    return commits


async def _pages(store: Store | PgStore, query: ReadingQuery) -> list[list[ReadingRow]]:
    pages: list[list[ReadingRow]] = []
    after = None
    for _ in range(1000):
        page = await store.readings(ReadingQuery(**{**_fields(query), "after": after}))  # type: ignore[arg-type]
        if not page:
            return pages
        pages.append(page)
        last = page[-1]
        after = (last.ts_us, last.tenant, last.gateway, last.sensor, last.metric)
    raise AssertionError("paging did not end")


def _fields(q: ReadingQuery) -> dict[str, object]:
    return {k: getattr(q, k) for k in ("tenant", "gateway", "sensor", "metric", "since_us", "until_us", "limit")}


async def test_readings_rollups_and_events_page_identically(both: tuple[Store, PgStore]) -> None:
    lite, pg = both
    for packs in _packs(11):
        assert await lite.commit(packs, now=T0) == await pg.commit(packs, now=T0)
    since = round((T0 + 1800) * 1e6)
    queries = [
        ReadingQuery(limit=7),
        ReadingQuery(tenant="acme", limit=13),
        ReadingQuery(tenant="default", gateway="GW-2", limit=5),
        ReadingQuery(sensor="a", metric="temp", limit=3),
        ReadingQuery(since_us=since, until_us=since + 3_600_000_000, limit=11),
    ]
    for q in queries:
        lite_pages, pg_pages = await _pages(lite, q), await _pages(pg, q)
        assert lite_pages == pg_pages, q
        assert lite_pages, q
    for resolution in ("1m", "1h"):
        for sensor in SENSORS:
            for tenant, gateway in ((None, None), ("default", None), ("acme", "gw_3")):
                q = RollupQuery(tenant=tenant, sensor=sensor, metric="temp", resolution=resolution, gateway=gateway,
                                since_us=since, limit=4)  # fmt: skip
                a, b = await lite.rollups(q), await pg.rollups(q)
                assert [(x.start_us, x.count, x.min, x.max, x.last_us) for x in a] == [
                    (x.start_us, x.count, x.min, x.max, x.last_us) for x in b
                ], q
                assert [round(x.sum, 6) for x in a] == [round(x.sum, 6) for x in b]
    assert await lite.gateways() == await pg.gateways()


async def test_events_page_identically(both: tuple[Store, PgStore]) -> None:
    lite, pg = both
    writes = [
        EventWrite(t, g, [Event(id=f"{t}{g}{i}", kind="device", ts=T0 + i % 3, key=f"k{i}", message="m", value=i * 0.5)
                          for i in range(9)])
        for t in ("default", "acme") for g in GATEWAYS
    ]  # fmt: skip
    assert (await lite.commit_all([], writes, now=T0))[1] == (await pg.commit_all([], writes, now=T0))[1]
    after = None
    for _ in range(20):
        a = await lite.events(EventQuery(after=after, limit=4))
        b = await pg.events(EventQuery(after=after, limit=4))
        assert a == b
        if not a:
            break
        after = (a[-1].ts_us, a[-1].tenant, a[-1].gateway, a[-1].id)
    else:
        raise AssertionError("paging did not end")
