"""Readings stored per second through the store's real commit path, SQLite and PostgreSQL, next to each database's
raw batch-insert ceiling measured in the same run.

    .venv/bin/python bench/ingest.py [--readings 200000] [--rounds 2]

Packs as gateways send them: 50 gateways of 20 sensors each, a pack is one gateway's sensors over 5 seconds (100
readings, one in 20 a boolean, the rest numbers), 50 packs a commit (5,000 readings, the ingest's default batch).
Each commit goes through ``commit_all`` (idempotent insert, new numbers folded into 1-minute and 1-hour rollups,
gateway counters, one durable transaction). The ceilings store the same rows without any of that: SQLite
``executemany`` of a plain INSERT into a table without keys (WAL, synchronous=FULL, one transaction per 5,000), and
PostgreSQL ``COPY`` into a plain table without keys (one transaction per 5,000). PostgreSQL is a real server
started here (tests/pg.py) with fsync on, on the same disk as SQLite; the client is this one Python process.
Targets on the 2-core development machine: 100,000 readings/s for SQLite, 50,000 for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.pgstore import PgStore
from cloud.store import PackWrite, Store
from tests.pg import PgServer, postgres_missing
from wire.reading import Reading

T0 = 1_790_000_000.0
GATEWAYS = 50
SENSORS_PER_GATEWAY = 20
SECONDS_PER_PACK = 5
PACKS_PER_COMMIT = 50
TARGETS = {"SQLite": 100_000, "PostgreSQL": 50_000}


def commits(total: int) -> list[list[PackWrite]]:
    """Packs of one gateway's sensors over a few seconds, grouped into commits of the ingest's default size."""
    packs: list[PackWrite] = []
    per_pack = SENSORS_PER_GATEWAY * SECONDS_PER_PACK
    for p in range(total // per_pack):
        gw = p % GATEWAYS
        t = T0 + (p // GATEWAYS) * SECONDS_PER_PACK
        readings = []
        for i in range(per_pack):
            sensor = f"gw{gw}-s{i % SENSORS_PER_GATEWAY}"
            ts = t + i // SENSORS_PER_GATEWAY
            if i % SENSORS_PER_GATEWAY == 7:
                readings.append(Reading(sensor, "open", (p + i) % 3 == 0, ts))
            else:
                readings.append(Reading(sensor, "temp", 20.0 + ((p * 7 + i) % 50) / 10, ts, "Cel"))
        packs.append(PackWrite("default", f"gw-{gw:03d}", readings))
    return [packs[i : i + PACKS_PER_COMMIT] for i in range(0, len(packs), PACKS_PER_COMMIT)]


def rows_of(batch: list[PackWrite]) -> list[tuple[object, ...]]:
    return [(p.tenant, p.gateway, r.sensor, r.metric, r.ts_us, r.value, r.unit) for p in batch for r in p.readings]


async def through_store(store: Store | PgStore, batches: list[list[PackWrite]]) -> float:
    await store.open()
    stored = 0
    start = time.perf_counter()
    for batch in batches:
        stored += sum((await store.commit_all(batch, now=time.time()))[0])
    elapsed = time.perf_counter() - start
    await store.close()
    expected = sum(len(p.readings) for b in batches for p in b)
    assert stored == expected, (stored, expected)
    return stored / elapsed


def sqlite_ceiling(path: Path, batches: list[list[PackWrite]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE plain (tenant TEXT, gateway TEXT, sensor TEXT, metric TEXT, ts_us INTEGER, value, unit TEXT)"
    )
    prepared = [rows_of(b) for b in batches]
    start = time.perf_counter()
    for rows in prepared:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO plain VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return sum(len(r) for r in prepared) / elapsed


def pg_ceiling(dsn: str, batches: list[list[PackWrite]]) -> float:
    prepared = [
        [(t, g, s, m, ts, v if type(v) is float else None, v if type(v) is bool else None, u)
         for t, g, s, m, ts, v, u in rows_of(b)]
        for b in batches
    ]  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE plain (tenant TEXT, gateway TEXT, sensor TEXT, metric TEXT, ts_us BIGINT,"
            " vnum DOUBLE PRECISION, vbool BOOLEAN, unit TEXT)"
        )
        start = time.perf_counter()
        for rows in prepared:
            with conn.transaction(), conn.cursor() as cur, cur.copy("COPY plain FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "text", "text", "text", "int8", "float8", "bool", "text"])
                for row in rows:
                    copy.write_row(row)
        elapsed = time.perf_counter() - start
    return sum(len(r) for r in prepared) / elapsed


def verdict(name: str, rate: float) -> str:
    target = TARGETS[name]
    return f"{'PASS' if rate >= target else 'FALL SHORT'} (target {target:,} readings/s)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batches = commits(args.readings)
    n = sum(len(p.readings) for b in batches for p in b)
    print(f"ingest: {n:,} readings, {len(batches)} commits of {PACKS_PER_COMMIT} packs of "
          f"{SENSORS_PER_GATEWAY * SECONDS_PER_PACK} readings; best of {args.rounds} rounds")  # fmt: skip
    best = {"SQLite": 0.0, "PostgreSQL": 0.0, "SQLite ceiling": 0.0, "PostgreSQL ceiling": 0.0}
    with tempfile.TemporaryDirectory(prefix="roost-bench-ingest-", dir="/var/tmp") as tmp:
        directory = Path(tmp)
        missing = postgres_missing()
        server = PgServer(directory) if missing is None else None
        if server is not None:
            server.start()
        try:
            for r in range(args.rounds):
                best["SQLite ceiling"] = max(
                    best["SQLite ceiling"], sqlite_ceiling(directory / f"plain{r}.sqlite", batches)
                )
                best["SQLite"] = max(
                    best["SQLite"], await through_store(Store(directory / f"store{r}.sqlite"), batches)
                )
                if server is not None:
                    dsn = server.create_database(f"ceiling{r}")
                    best["PostgreSQL ceiling"] = max(best["PostgreSQL ceiling"], pg_ceiling(dsn, batches))
                    store = PgStore(server.create_database(f"store{r}"))
                    best["PostgreSQL"] = max(best["PostgreSQL"], await through_store(store, batches))
            pg_mb = server.rss_mb() if server is not None else 0.0
        finally:
            if server is not None:
                server.stop()
    for name in ("SQLite", "PostgreSQL"):
        if name == "PostgreSQL" and server is None:
            print(f"  PostgreSQL: not measured: {missing}")
            continue
        rate, ceiling = best[name], best[f"{name} ceiling"]
        print(f"  {name:10} store commit: {rate:9,.0f} readings/s = {rate / ceiling:5.1%} of its raw insert ceiling"
              f" {ceiling:9,.0f} readings/s: {verdict(name, rate)}")  # fmt: skip
    if server is not None:
        print(f"  PostgreSQL server memory after the run (PSS of all its processes): {pg_mb:.0f} MB")
    print(f"  load average at the end (1, 5, 15 min; 2 cores): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
