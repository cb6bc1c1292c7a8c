"""What the rollups cost the ingest, and what they save a reader: the store's real commit call, with and without.

    .venv/bin/python bench/ingest_rollups.py [--readings 200000] [--rounds 2]

Ingest: fresh stores (SQLite WAL, synchronous=FULL, on the temporary directory's disk) take packs of 100 readings
of 20 sensors on 4 gateways, one reading a second per sensor, 50 packs (5,000 readings, the ingest's default batch)
a commit, through ``Store.commit``: once as shipped (each new number folded into its 1-minute and 1-hour buckets)
and once with ``rollups_enabled=False`` (the store before rollups). Rounds alternate; the best of each is
printed. Read: a month of one sensor at one reading a minute (43,200 readings), read at 1-minute resolution as
raw pages of 10,000 (``Store.readings``, what a chart had to fetch) and as rollup buckets (``Store.rollups``), then
the month at 1-hour resolution.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from cloud.rollups import RollupQuery
from cloud.store import PackWrite, ReadingQuery, Store
from wire.reading import Reading

T0 = 1_790_000_000.0
PACK = 100
PACKS_PER_COMMIT = 50
SENSORS = 20
GATEWAYS = 4
MONTH_MINUTES = 30 * 24 * 60  # 43,200


def _commits(total: int) -> list[list[PackWrite]]:
    """Packs of one gateway's sensors, one reading a second each, grouped into commits."""
    packs: list[PackWrite] = []
    per_gateway = SENSORS // GATEWAYS
    for p in range(total // PACK):
        gw = p % GATEWAYS
        base = (p // GATEWAYS) * (PACK // per_gateway)  # seconds since T0 of this pack's first row
        readings = [
            Reading(f"s{gw * per_gateway + i % per_gateway}", "temp", 20.0 + (i % 7) / 3, T0 + base + i // per_gateway)
            for i in range(PACK)
        ]
        packs.append(PackWrite("default", f"gw-{gw}", readings))
    return [packs[i : i + PACKS_PER_COMMIT] for i in range(0, len(packs), PACKS_PER_COMMIT)]


async def _ingest(directory: Path, commits: list[list[PackWrite]], *, with_rollups: bool) -> float:
    path = directory / f"ingest-{'with' if with_rollups else 'without'}-{time.monotonic_ns()}.sqlite"
    store = Store(path, rollups_enabled=with_rollups)
    await store.open()
    stored = 0
    start = time.perf_counter()
    for batch in commits:
        stored += sum(await store.commit(batch, now=time.time()))
    elapsed = time.perf_counter() - start
    await store.close()
    expected = sum(len(p.readings) for batch in commits for p in batch)
    assert stored == expected, (stored, expected)
    return stored / elapsed


async def _read_month(directory: Path) -> None:
    store = Store(directory / "month.sqlite")
    await store.open()
    month = [Reading("m1", "temp", 20.0 + (i % 97) / 10, T0 + 60 * i + 7, "Cel") for i in range(MONTH_MINUTES)]
    for i in range(0, len(month), 5000):
        await store.commit([PackWrite("default", "gw-0", month[i : i + 5000])], now=time.time())
    since, until = round(T0 * 1e6), round((T0 + 60 * MONTH_MINUTES) * 1e6)

    async def raw() -> int:
        count, after = 0, None
        while True:
            q = ReadingQuery(sensor="m1", metric="temp", since_us=since, until_us=until, after=after, limit=10_000)
            rows = await store.readings(q)
            count += len(rows)
            if len(rows) < 10_000:
                return count
            r = rows[-1]
            after = (r.ts_us, r.tenant, r.gateway, r.sensor, r.metric)

    async def rolled(resolution: str) -> int:
        q = RollupQuery(
            tenant="default",
            sensor="m1",
            metric="temp",
            resolution=resolution,
            since_us=since,
            until_us=until,
            limit=100_000,
        )
        return len(await store.rollups(q))

    for label, job in (("raw readings", raw), ("1m rollup", lambda: rolled("1m")), ("1h rollup", lambda: rolled("1h"))):
        best, n = float("inf"), 0
        for _ in range(3):
            start = time.perf_counter()
            n = await job()
            best = min(best, time.perf_counter() - start)
        print(f"  a month of one sensor, {label:12}: {n:6d} rows in {best * 1000:7.1f} ms")
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    commits = _commits(args.readings)
    best = {True: 0.0, False: 0.0}
    with tempfile.TemporaryDirectory(prefix="roost-bench-rollups-", dir="/var/tmp") as tmp:
        for _ in range(args.rounds):
            for with_rollups in (False, True):
                rate = await _ingest(Path(tmp), commits, with_rollups=with_rollups)
                best[with_rollups] = max(best[with_rollups], rate)
        print(f"store ingest, {args.readings} readings in commits of {PACK * PACKS_PER_COMMIT}:")
        print(f"  without rollups: {best[False]:9,.0f} readings/s")
        print(f"  with rollups:    {best[True]:9,.0f} readings/s ({best[True] / best[False] - 1:+.1%})")
        await _read_month(Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
