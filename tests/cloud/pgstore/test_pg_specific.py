"""What only the PostgreSQL store has: partitions made ahead and on demand, its schema version, its errors."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from cloud.errors import SchemaTooNew, StoreError
from cloud.pgstore import PgStore
from cloud.retention import Keep, RetentionPolicy
from cloud.store import PackWrite, ReadingQuery
from tests.pg import PgServer, needs_postgres
from wire.reading import Reading

pytestmark = needs_postgres
T0 = 1_794_999_600.0  # 2026-11-18T11:00:00Z
DAY = 86_400.0


def _partitions(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


async def test_partitions_are_made_ahead_and_for_a_reading_outside_them(pg_dsn: str) -> None:
    store = PgStore(pg_dsn, partition_days=1, partitions_ahead=2)
    await store.open()
    try:
        await store.maintain(now=T0)
        assert {"readings_p20261118", "readings_p20261119", "readings_p20261120"} <= set(
            _partitions(pg_dsn, "readings")
        )
        assert _partitions(pg_dsn, "rollups_1m")  # four-week partitions of the 1-minute rollups
        far = [Reading("s1", "temp", 1.5, 946_684_800.25), Reading("s1", "temp", 2.5, 4_102_444_800.0)]  # 2000, 2100
        assert await store.commit([PackWrite("default", "gw-1", far)], now=T0) == [2]
        assert {"readings_p20000101", "readings_p21000101"} <= set(_partitions(pg_dsn, "readings"))
        rows = await store.readings(ReadingQuery())
        assert [(r.ts_us, r.value) for r in rows] == [(946_684_800_250_000, 1.5), (4_102_444_800_000_000, 2.5)]
    finally:
        await store.close()


async def test_partitions_made_by_another_worker_or_a_changed_period_never_overlap(pg_dsn: str) -> None:
    weekly = PgStore(pg_dsn, partition_days=7, partitions_ahead=0)
    daily = PgStore(pg_dsn, partition_days=1, partitions_ahead=0)
    await weekly.open()
    await daily.open()
    try:
        week = [Reading("s1", "temp", float(i), T0 + i * DAY) for i in range(10)]
        assert await weekly.commit([PackWrite("default", "gw-1", week[:3])], now=T0) == [3]
        # The daily store's cache knows nothing of the weekly partitions: it reads the catalog and fits in.
        assert await daily.commit([PackWrite("default", "gw-1", week)], now=T0) == [7]
        assert len(await daily.readings(ReadingQuery())) == 10
    finally:
        await weekly.close()
        await daily.close()


async def test_a_store_reopened_keeps_its_data_and_a_newer_schema_is_refused(pg_dsn: str) -> None:
    store = PgStore(pg_dsn)
    await store.open()
    await store.commit([PackWrite("default", "gw-1", [Reading("s1", "temp", 1.0, T0)])], now=T0)
    await store.set_online("default", "gw-1", True, now=T0)
    await store.close()
    store = PgStore(pg_dsn)
    await store.open()
    assert len(await store.readings(ReadingQuery())) == 1
    assert [g.online for g in await store.gateways()] == [False]  # nobody is connected to a fresh start
    await store.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(SchemaTooNew, match=r"schema version 99 is newer than the supported 1"):
        await PgStore(pg_dsn).open()


async def test_an_unreachable_server_is_a_store_error_without_the_password(pg_server: PgServer) -> None:
    dsn = f"postgresql://roost:s3cret-pw@127.0.0.1:{pg_server.port + 1}/roost?connect_timeout=2"
    store = PgStore(dsn)
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert message.startswith(f"postgresql://roost@127.0.0.1:{pg_server.port + 1}/roost: cannot open the store:")
    assert "s3cret" not in message
    assert "is PostgreSQL running and reachable there? check [store] dsn" in message  # what to do about it
    await store.close()


async def test_a_missing_database_is_named(pg_server: PgServer) -> None:
    store = PgStore(pg_server.dsn_for("no_such_db"))
    with pytest.raises(StoreError, match=r"/no_such_db: cannot open the store: .*does not exist"):
        await store.open()
    await store.close()
    assert await store.ping() is False


async def test_the_store_reconnects_after_the_server_dropped_it(pg_server: PgServer, pg_dsn: str) -> None:
    store = PgStore(pg_dsn, read_connections=1)
    await store.open()
    try:
        assert await store.ping()
        with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (pg_dsn.rsplit("/", 1)[1],),
            )
        # The first use of a dropped connection fails (the commit is not acknowledged); the next one reconnects.
        with pytest.raises(StoreError):
            await store.commit([PackWrite("default", "gw-1", [Reading("s1", "temp", 1.0, T0)])], now=T0)
        assert await store.commit([PackWrite("default", "gw-1", [Reading("s1", "temp", 1.0, T0)])], now=T0) == [1]
        # A reader finds its connection dropped on first use (a failed query), then reconnects.
        assert [await store.ping() for _ in range(2)][-1] is True
        assert len(await store.readings(ReadingQuery())) == 1
    finally:
        await store.close()


async def test_a_partition_dropped_under_a_worker_is_made_again_for_its_next_reading(pg_dsn: str) -> None:
    worker = PgStore(pg_dsn, partition_days=1, partitions_ahead=0)
    janitor = PgStore(pg_dsn, partition_days=1, partitions_ahead=0)
    await worker.open()
    await janitor.open()
    try:
        old = T0 - 10 * DAY
        assert await worker.commit([PackWrite("default", "gw-1", [Reading("s1", "temp", 1.0, old)])], now=T0) == [1]
        report = await janitor.apply_retention(RetentionPolicy(Keep(1, 1, 0)), now=T0)
        assert "readings_p20261108" in report.dropped
        assert worker.readings_partitions.covers(round(old * 1e6))  # the worker still believes in it
        # A late re-send of that old reading: stored again, in a partition made again (retention removes it later).
        late = [Reading("s1", "temp", 2.0, old + 1)]
        assert await worker.commit([PackWrite("default", "gw-1", late)], now=T0) == [1]
        assert worker.retried_commits == 1  # PostgreSQL found no partition; the worker read them again, made it
        assert "readings_p20261108" in _partitions(pg_dsn, "readings")
    finally:
        await worker.close()
        await janitor.close()


async def test_two_workers_storing_overlapping_batches_at_once_count_each_reading_once(pg_dsn: str) -> None:
    """Scale-out: two ingest workers get the same re-sent batches at the same time (RabbitMQ redelivery)."""
    workers = [PgStore(pg_dsn, partition_days=1, partitions_ahead=0) for _ in range(2)]
    for w in workers:
        await w.open()
    try:
        readings = [Reading(f"s{i % 7}", "temp", float(i % 11), T0 + i * 0.5) for i in range(4000)]
        batches = [
            [PackWrite("default", f"gw-{g}", readings[i : i + 100]) for g in range(3)]
            for i in range(0, len(readings), 100)
        ]

        async def run(worker: PgStore, order: list[list[PackWrite]]) -> int:
            return sum([sum(await worker.commit(b, now=T0)) for b in order])

        stored = await asyncio.gather(run(workers[0], batches), run(workers[1], batches[::-1]))
        assert sum(stored) == 3 * 4000  # each reading new for exactly one of the two
        assert len(await workers[0].readings(ReadingQuery(limit=100_000))) == 3 * 4000
        with psycopg.connect(pg_dsn) as conn:
            n, total = conn.execute("SELECT sum(n), sum(vsum) FROM rollups_1m").fetchone()  # type: ignore[misc]
            hours = conn.execute("SELECT sum(n) FROM rollups_1h").fetchone()
        assert n == 3 * 4000 and hours == (3 * 4000,)
        assert total == pytest.approx(3 * sum(r.value for r in readings))  # type: ignore[misc]
        counters = {g.id: g.counters for g in await workers[1].gateways()}
        assert all(c["readings"] == 4000 and c["duplicates"] == 4000 for c in counters.values())
    finally:
        for w in workers:
            await w.close()
