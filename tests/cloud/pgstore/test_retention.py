"""Retention on both stores: raw data goes after its days, per-tenant overrides keep theirs, rollups outlive raw data;
PostgreSQL drops whole partitions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psycopg
import pytest

from cloud import store as sqlite_store
from cloud.config import RetentionSection, RetentionTenant
from cloud.pgstore import PgStore
from cloud.retention import Keep, RetentionPolicy, RetentionTask
from cloud.rollups import RollupQuery
from cloud.store import PackWrite, ReadingQuery, Store
from tests.cloud.helpers import eventually
from tests.cloud.pgstore.conftest import AnyStore
from tests.pg import free_port, needs_postgres
from wire.reading import Reading

T0 = 1_794_960_000.0  # 2026-11-18T00:00:00Z
DAY = 86_400.0
NOW = T0 + 60 * DAY
HOUR_US = 3_600_000_000


def _hourly(tenant: str, days: int = 60) -> PackWrite:
    return PackWrite(tenant, "gw-1", [Reading("s1", "temp", float(h % 24), T0 + h * 3600) for h in range(days * 24)])


async def _count(store: AnyStore, tenant: str) -> int:
    return len(await store.readings(ReadingQuery(tenant=tenant, limit=100_000)))


def test_cutoffs_and_what_may_be_dropped() -> None:
    section = RetentionSection(
        tenants=(RetentionTenant(name="acme", raw_days=400), RetentionTenant(name="keep", raw_days=0))
    )
    policy = RetentionPolicy.from_config(section)
    assert policy.tenants["acme"] == Keep(400, 365, 0)
    raw = policy.cutoffs("raw", now=NOW)
    assert raw.default_us == round((NOW - 30 * DAY) * 1e6)
    assert raw.drop_before() is None  # "keep" keeps its raw data forever: no partition can go
    assert raw.deletes() == [(None, ("acme", "keep"), raw.default_us), ("acme", (), round((NOW - 400 * DAY) * 1e6))]
    assert policy.cutoffs("1h", now=NOW).deletes() == []  # hours are kept forever by default
    minute = RetentionPolicy().cutoffs("1m", now=NOW)
    assert minute.drop_before() == round((NOW - 365 * DAY) * 1e6) - 60_000_000 + 1  # buckets wholly before it


async def test_old_raw_data_goes_the_overrides_stay_and_rollups_still_answer_a_month(store: AnyStore) -> None:
    assert await store.commit([_hourly("default"), _hourly("acme")], now=NOW) == [1440, 1440]
    policy = RetentionPolicy(Keep(30, 365, 0), {"acme": Keep(400, 365, 0)})
    report = await store.apply_retention(policy, now=NOW)
    assert report.deleted["readings"] == 30 * 24
    assert await _count(store, "default") == 30 * 24
    oldest = await store.readings(ReadingQuery(tenant="default", limit=1))
    assert oldest[0].ts_us >= round((NOW - 30 * DAY) * 1e6)
    assert await _count(store, "acme") == 60 * 24
    # The first month's readings are gone, its hours are not: a month chart still draws.
    month = RollupQuery(
        tenant="default", sensor="s1", metric="temp", resolution="1h",
        since_us=round(T0 * 1e6), until_us=round((T0 + 30 * DAY) * 1e6), limit=10_000,
    )  # fmt: skip
    buckets = await store.rollups(month)
    assert len(buckets) == 30 * 24 and all(b.count == 1 for b in buckets)
    assert len(await store.rollups(RollupQuery(**{**_fields(month), "resolution": "1m"}))) == 30 * 24
    # Run again: nothing more to do.
    again = await store.apply_retention(policy, now=NOW)
    assert again.dropped == [] and again.deleted["readings"] == 0


def _fields(q: RollupQuery) -> dict[str, object]:
    return {k: getattr(q, k) for k in ("tenant", "sensor", "metric", "resolution", "since_us", "until_us", "limit")}


async def test_sqlite_deletes_in_bounded_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "cloud.sqlite")
    await store.open()
    try:
        await store.commit([_hourly("default")], now=NOW)
        monkeypatch.setattr(sqlite_store, "RETENTION_BATCH", 100)
        batches: list[int] = []
        original = store._delete_batch

        def counted(*args: object) -> int:
            n = original(*args)  # type: ignore[arg-type]
            batches.append(n)
            return n

        monkeypatch.setattr(store, "_delete_batch", counted)
        report = await store.apply_retention(RetentionPolicy(Keep(30, 40, 50)), now=NOW)
        assert report.deleted == {"readings": 720, "rollups_1m": 480, "rollups_1h": 240}
        assert max(batches) == 100 and len(batches) >= 720 // 100
    finally:
        await store.close()


def _partitions(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


@needs_postgres
async def test_postgresql_drops_whole_partitions_past_every_cutoff(pg_dsn: str) -> None:
    store = PgStore(pg_dsn, partition_days=1, partitions_ahead=0)
    await store.open()
    try:
        await store.commit([_hourly("default"), _hourly("acme")], now=NOW)
        assert "readings_p20261118" in _partitions(pg_dsn, "readings")
        # acme keeps 40 days: partitions of days 0-19 go whole, days 20-29 lose only default's rows.
        policy = RetentionPolicy(Keep(30, 28, 0), {"acme": Keep(40, 28, 0)})
        report = await store.apply_retention(policy, now=NOW)
        parts = _partitions(pg_dsn, "readings")
        assert "readings_p20261118" not in parts and "readings_p20261207" not in parts  # days 0 and 19
        assert "readings_p20261208" in parts  # day 20: acme's rows are still in it
        assert len([p for p in report.dropped if p.startswith("readings_")]) == 20
        assert report.deleted["readings"] == 10 * 24  # default's days 20..29 (days 0..19 went with their partitions)
        assert await _count(store, "default") == 30 * 24
        assert await _count(store, "acme") == 40 * 24
        # The 1-minute rollups' four-week partitions: the one wholly before day 32 went.
        assert any(p.startswith("rollups_1m_") for p in report.dropped)
        month = RollupQuery(tenant="default", sensor="s1", metric="temp", resolution="1h", limit=10_000)
        assert len(await store.rollups(month)) == 60 * 24  # hours are kept forever
    finally:
        await store.close()


async def test_the_retention_task_makes_partitions_and_applies_the_policy(store: AnyStore) -> None:
    await store.commit([_hourly("default", days=3)], now=NOW)
    task = RetentionTask(store, RetentionPolicy(Keep(1, 0, 0)), interval_s=3600, first_delay_s=0)
    report = await task.run_once()
    assert task.runs == 1 and task.last is report
    assert await _count(store, "default") == 0  # all three days are older than a day before NOW


@needs_postgres
async def test_a_partition_busy_with_a_long_query_is_dropped_at_the_next_run(pg_dsn: str) -> None:
    store = PgStore(pg_dsn, partition_days=1, partitions_ahead=0)
    store.drop_lock_timeout_s = 0.2
    await store.open()
    try:
        await store.commit([_hourly("default", days=3)], now=NOW)
        policy = RetentionPolicy(Keep(1, 0, 0))
        with psycopg.connect(pg_dsn) as reader:  # a transaction still reading the readings (an export, say)
            reader.execute("SELECT count(*) FROM readings").fetchone()
            started = time.monotonic()
            busy = await store.apply_retention(policy, now=NOW)
            assert time.monotonic() - started < 5.0
            assert busy.dropped == []
            reader.rollback()
        done = await store.apply_retention(policy, now=NOW)
        assert {"readings_p20261118", "readings_p20261119", "readings_p20261120"} <= set(done.dropped)
        assert await _count(store, "default") == 0
    finally:
        await store.close()


async def test_a_failing_retention_run_is_counted_and_tried_again() -> None:
    unreachable = PgStore(f"postgresql://roost@127.0.0.1:{free_port()}/roost?connect_timeout=1", read_connections=1)
    task = RetentionTask(unreachable, RetentionPolicy(), interval_s=1, first_delay_s=0)
    assert RetentionTask(unreachable, RetentionPolicy(), interval_s=3600).first_delay_s == 600
    runner = asyncio.create_task(task.run())

    async def failed_twice() -> bool:
        return task.failures >= 2

    try:
        await eventually(failed_twice, timeout=10)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await unreachable.close()
    assert task.failures >= 2 and task.runs == 0
