"""How fast the readings API's month chart is answered from PostgreSQL holding 10 million readings.

    .venv/bin/python bench/query.py [--rows 10000000] [--queries 300]

A real PostgreSQL 15 server is started here (tests/pg.py, fsync on) with the store's own schema (``PgStore.open``:
partitions of 7 days, BRIN on time). 1,000 sensors on 50 gateways get ``rows / 1000`` readings each, spread evenly
over 30 days, loaded with ``COPY`` into the partitioned ``readings`` table. Their rollups are then built by a bulk
backfill (documented in docs/storage.md: one ``INSERT ... SELECT ... GROUP BY`` per resolution, the same numbers
the store's commit path folds in), and the tables are vacuumed and analyzed as autovacuum would have by then.

Measured: the call behind ``GET /api/v1/readings?sensor=..&metric=..&resolution=1m&since=..&until=..`` (one page of
the API's largest size, 10,000 buckets: ``PgStore.rollups`` with limit 10,001, buckets of all gateways folded),
over a month of a different sensor each time; then the same month at 1 hour, and a first page of 1,000 raw
readings. Ceiling: p95 under 100 ms for the month at 1 minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.pgstore import PgStore
from cloud.rollups import RollupQuery
from cloud.store import ReadingQuery
from tests.pg import PgServer, postgres_missing

SENSORS = 1000
GATEWAYS = 50
MONTH_S = 30 * 86_400
T0 = 1_790_000_000 // 3600 * 3600  # the start of an hour
P95_CEILING_MS = 100.0
BACKFILL_1M = """
INSERT INTO rollups_1m (tenant, sensor, metric, gateway, bucket_us, vmin, vmax, vsum, n, vlast, last_us)
SELECT tenant, sensor, metric, gateway, ts_us - ts_us % 60000000, min(vnum), max(vnum), sum(vnum), count(*),
       (max(ARRAY[ts_us::float8, vnum]))[2], max(ts_us)
FROM readings WHERE vnum IS NOT NULL AND ts_us >= 0 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""
BACKFILL_1H = """
INSERT INTO rollups_1h (tenant, sensor, metric, gateway, bucket_us, vmin, vmax, vsum, n, vlast, last_us)
SELECT tenant, sensor, metric, gateway, bucket_us - bucket_us % 3600000000, min(vmin), max(vmax), sum(vsum),
       sum(n)::bigint, (max(ARRAY[last_us::float8, vlast]))[2], max(last_us)
FROM rollups_1m GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""


def _sensor(i: int) -> tuple[str, str]:
    return f"gw-{i % GATEWAYS:03d}", f"s{i:04d}"


async def load(store: PgStore, dsn: str, rows: int) -> None:
    per_sensor = max(1, rows // SENSORS)
    step_us = MONTH_S * 1_000_000 // per_sensor
    t0_us = T0 * 1_000_000
    async with store._maintenance.use() as conn:  # the month's partitions, as ingest would have made them
        for parts in (store.readings_partitions, store.rollup_partitions):
            await parts.ensure(conn, range(t0_us, t0_us + MONTH_S * 1_000_000 + parts.period_us, parts.period_us))
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        with (
            conn.cursor() as cur,
            cur.copy("COPY readings (tenant, gateway, sensor, metric, ts_us, vnum, unit) FROM STDIN") as copy,
        ):
            for i in range(SENSORS):
                gw, sensor = _sensor(i)
                offset = (i * 7919) % step_us
                prefix = f"default\t{gw}\t{sensor}\ttemp\t"
                copy.write(
                    "".join(
                        f"{prefix}{t0_us + offset + k * step_us}\t{20 + (k * 37 + i) % 100 / 10}\tCel\n"
                        for k in range(per_sensor)
                    )
                )
        loaded = time.perf_counter()
        print(f"  loaded {per_sensor * SENSORS:,} readings with COPY in {loaded - start:.1f} s"
              f" ({per_sensor * SENSORS / (loaded - start):,.0f} readings/s)")  # fmt: skip
        conn.execute("SET work_mem = '256MB'")
        conn.execute(BACKFILL_1M)
        conn.execute(BACKFILL_1H)
        rolled = time.perf_counter()
        print(f"  rollups backfilled in {rolled - loaded:.1f} s")
        conn.execute("VACUUM ANALYZE readings")
        conn.execute("VACUUM ANALYZE rollups_1m")
        conn.execute("VACUUM ANALYZE rollups_1h")
        print(f"  vacuumed and analyzed in {time.perf_counter() - rolled:.1f} s")
        for table in ("readings", "rollups_1m", "rollups_1h"):
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)), count(*) FROM pg_inherits i JOIN pg_class c"
                " ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                (table,),
            ).fetchone()
            size, parts = row if row is not None and row[0] is not None else (None, 0)
            if not parts:
                size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()[0]  # type: ignore[index]
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            print(f"  {table:10}: {n:12,} rows, {int(size) / 2**20:8,.0f} MB with indexes"
                  f" ({int(size) / max(n, 1):5.0f} bytes a row){f', {parts} partitions' if parts else ''}")  # fmt: skip


async def measure(label: str, queries: int, job: Callable[[int], Awaitable[int]]) -> float:
    times, sizes = [], []
    rng = random.Random(7)
    for _ in range(3):  # warm the connections and the plan cache
        await job(rng.randrange(SENSORS))
    for _ in range(queries):
        i = rng.randrange(SENSORS)
        start = time.perf_counter()
        sizes.append(await job(i))
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=100)
    print(f"  {label:34} {statistics.median(sizes):7,.0f} rows: p50 {q[49]:6.1f} ms  p95 {q[94]:6.1f} ms"
          f"  p99 {q[98]:6.1f} ms")  # fmt: skip
    return q[94]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    missing = postgres_missing()
    if missing is not None:
        print(f"query bench: not run: {missing}")
        return
    print(f"query bench: {args.rows:,} readings of {SENSORS} sensors over 30 days in PostgreSQL")
    with tempfile.TemporaryDirectory(prefix="roost-bench-query-", dir="/var/tmp") as tmp:
        server = PgServer(Path(tmp), settings={"shared_buffers": "256MB", "max_wal_size": "4GB"})
        server.start()
        try:
            store = PgStore(server.dsn, partition_days=7, partitions_ahead=0)
            await store.open()
            await load(store, server.dsn, args.rows)
            since, until = T0 * 1_000_000, (T0 + MONTH_S) * 1_000_000

            def month(resolution: str) -> Callable[[int], Awaitable[int]]:
                async def job(i: int) -> int:
                    _, sensor = _sensor(i)
                    q = RollupQuery(tenant="default", sensor=sensor, metric="temp", resolution=resolution,
                                    since_us=since, until_us=until, limit=10_001)  # fmt: skip
                    return len(await store.rollups(q))

                return job

            async def raw(i: int) -> int:
                _, sensor = _sensor(i)
                q = ReadingQuery(tenant="default", sensor=sensor, metric="temp", since_us=since, until_us=until,
                                 limit=1001)  # fmt: skip
                return len(await store.readings(q))

            p95 = await measure("a month at 1 minute (one API page)", args.queries, month("1m"))
            await measure("a month at 1 hour", args.queries, month("1h"))
            await measure("a month raw, first page of 1,000", args.queries, raw)
            verdict = "PASS" if p95 < P95_CEILING_MS else "FALL SHORT"
            print(f"  month at 1 minute: p95 {p95:.1f} ms against the ceiling p95 < {P95_CEILING_MS:.0f} ms: {verdict}")
            print(f"  PostgreSQL server memory (PSS of all its processes): {server.rss_mb():.0f} MB")
            print(f"  load average at the end (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
            await store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
