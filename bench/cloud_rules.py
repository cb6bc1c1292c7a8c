"""Cloud rules throughput: readings per second through the cloud rules runner, 10 rules spanning 1,000 gateways.

    .venv/bin/python bench/cloud_rules.py [--readings N] [--gateways G] [--pack P]

The fleet: G gateways (default 1,000) in sites of ten, every fifth tagged ``cold-chain``, each in one
of four regions (``region=...``), each with two freezers, a room and a power meter. The stream: packs
of P readings (default 20) from one gateway at a time, in event time (1 ms apart), with an
online/offline status now and then (1 in 200 packs). The 10 rules group by site, region, gateway or
the whole fleet: a site's freezers' average, its rooms' maximum over a sliding window, its freezers'
95th percentile, gateways of a site offline (count_distinct), a cold-chain gateway gone quiet
(absence), a region's power (sum, derived), a gateway's coldest freezer, the fleet's average
temperature, readings per site, and one per-freezer threshold.

Figures from the same run and workload:

- **engine**: the plain :class:`rules.Engine` with the cloud's tags, fed the readings already named
  ``{gateway}/{sensor}``, one push per pack, and one push per 1,000 packs (as the runner hands over
  what queued up while the rules were busy): the ceiling;
- **runner**: :class:`cloud.cloudrules.runner.CloudRules` as ingest drives it: ``stored(tenant,
  gateway, readings)`` per pack from the event loop, its bounded queue, the naming of each reading,
  the rules thread, the outputs stored (into a store that only counts them: storage is not measured
  here, bench/ingest.py does that), tags read from a real fleet registry (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from cloud.cloudrules.naming import cloud_readings, presence_reading, sensor_tags, tags_by_gateway  # noqa: E402
from cloud.cloudrules.runner import DRAIN, CloudRules  # noqa: E402
from cloud.config import RulesSection  # noqa: E402
from cloud.fleet.registry import FleetRegistry  # noqa: E402
from rules import Engine, load_text  # noqa: E402
from wire.reading import Reading  # noqa: E402

T0 = 1_767_261_600.0
TENANT = "default"

RULES = """
[[rule]]
name = "site-freezers-warm"
group_by = "tag:site"
[rule.select]
sensor = "*/freezer-*"
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "1m"
[rule.aggregate]
fn = "avg"
[rule.condition]
kind = "threshold"
above = -15.0
clear_below = -17.0
[[rule.action]]
kind = "alert"
message = "freezers of {subject}: {value:.1f}"

[[rule]]
name = "site-rooms-hot"
group_by = "tag:site"
[rule.select]
sensor = "*/room-*"
metric = "temperature"
[rule.window]
kind = "sliding"
size = "5m"
every = "1m"
[rule.aggregate]
fn = "max"
[rule.condition]
kind = "threshold"
above = 30.0
[[rule.action]]
kind = "alert"

[[rule]]
name = "site-freezers-p95"
group_by = "tag:site"
[rule.select]
sensor = "*/freezer-*"
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "5m"
[rule.aggregate]
fn = "percentile"
q = 95
[[rule.action]]
kind = "derive"
sensor = "site/{subject}"
metric = "freezer_p95"

[[rule]]
name = "site-gateways-offline"
group_by = "tag:site"
[rule.select]
metric = "online"
tags = { kind = "gateway" }
value = false
[rule.window]
kind = "sliding"
size = "10m"
every = "1m"
[rule.aggregate]
fn = "count_distinct"
[rule.condition]
kind = "threshold"
above = 3.0
[[rule.action]]
kind = "alert"

[[rule]]
name = "cold-chain-silent"
group_by = "tag:gateway"
[rule.select]
metric = "temperature"
tags = { cold-chain = "true" }
[rule.condition]
kind = "absence"
for = "15m"
[[rule.action]]
kind = "alert"

[[rule]]
name = "region-power"
group_by = "tag:region"
[rule.select]
metric = "power"
[rule.window]
kind = "tumbling"
size = "1m"
[rule.aggregate]
fn = "sum"
[[rule.action]]
kind = "derive"
sensor = "region/{subject}"
metric = "power_sum"

[[rule]]
name = "gateway-coldest"
group_by = "tag:gateway"
[rule.select]
sensor = "*/freezer-*"
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "1m"
[rule.aggregate]
fn = "min"
[rule.condition]
kind = "threshold"
above = -10.0
[[rule.action]]
kind = "alert"

[[rule]]
name = "fleet-temperature"
group_by = "all"
[rule.select]
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "1m"
[rule.aggregate]
fn = "avg"
[[rule.action]]
kind = "derive"
sensor = "fleet"
metric = "temperature_avg"

[[rule]]
name = "site-readings"
group_by = "tag:site"
[rule.select]
metric = ["temperature", "power"]
[rule.window]
kind = "tumbling"
size = "1m"
[rule.aggregate]
fn = "count"
[rule.condition]
kind = "threshold"
below = 1.0
[[rule.action]]
kind = "alert"

[[rule]]
name = "freezer-warm"
[rule.select]
sensor = "*/freezer-*"
metric = "temperature"
[rule.condition]
kind = "threshold"
above = -10.0
for = "5m"
[[rule.action]]
kind = "alert"
"""

SENSORS = (("freezer-1", "temperature", "Cel"), ("freezer-2", "temperature", "Cel"), ("room-1", "temperature", "Cel"),
           ("meter-1", "power", "W"))  # fmt: skip


def fleet(n: int) -> dict[str, tuple[str | None, list[str]]]:
    """Gateway id -> (site, operator tags)."""
    return {
        f"gw-{i:05d}": (f"site-{i // 10:04d}", (["cold-chain"] if i % 5 == 0 else []) + [f"region=r{i % 4}"])
        for i in range(n)
    }


Item = tuple[str, list[Reading] | None, bool, float]  # gateway, readings (None: presence), online, ts


def workload(n: int, gateways: Sequence[str], pack: int, seed: int = 11) -> list[Item]:
    """Packs of ``pack`` readings from one gateway each (and a status now and then), ``n`` readings in all."""
    rnd = random.Random(seed)
    out: list[Item] = []
    t = T0
    made = 0
    while made < n:
        gw = gateways[rnd.randrange(len(gateways))]
        if rnd.random() < 0.005:
            out.append((gw, None, rnd.random() < 0.5, t))
            continue
        readings = []
        for _ in range(min(pack, n - made)):
            sensor, metric, unit = SENSORS[rnd.randrange(len(SENSORS))]
            base = {"freezer-1": -18.0, "freezer-2": -18.0, "room-1": 21.0}.get(sensor, 400.0)
            readings.append(Reading(sensor, metric, round(base + rnd.gauss(0, 2.0), 2), t, unit))
            t += 0.001
        made += len(readings)
        out.append((gw, readings, True, t))
    return out


def run_engine(items: Sequence[Item], tags: dict[str, dict[str, str]], packs: int = 1) -> tuple[float, int]:
    """The plain engine, readings already named as the cloud names them, ``packs`` packs a push: seconds, outputs."""
    outputs: list[Any] = []
    engine = Engine(load_text(RULES, name="bench.toml"), sink=outputs.extend,
                    tag_source=lambda s: sensor_tags(s, tags))  # fmt: skip
    batches = [
        [presence_reading(gw, online, ts)] if readings is None else cloud_readings(gw, readings)
        for gw, readings, online, ts in items
    ]
    if packs > 1:
        batches = [[r for b in batches[i : i + packs] for r in b] for i in range(0, len(batches), packs)]
    gc.collect()
    start = time.perf_counter()
    for b in batches:
        engine.push(b)
    engine.close()
    return time.perf_counter() - start, len(outputs)


class CountingStore:
    """Stands in for the store: counts what the runner stores (storage is measured by bench/ingest.py)."""

    def __init__(self) -> None:
        self.events = 0
        self.readings = 0

    async def commit_all(self, packs: Sequence[Any], events: Sequence[Any] = (), *, now: float) -> tuple[Any, Any]:
        self.events += sum(len(e.events) for e in events)
        self.readings += sum(len(p.readings) for p in packs)
        return [len(p.readings) for p in packs], [len(e.events) for e in events]


async def run_runner(
    items: Sequence[Item], metas: dict[str, tuple[str | None, list[str]]], total: int
) -> dict[str, Any]:
    """CloudRules as ingest drives it: seconds until every reading went through the rules, and its counters."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "rules" / TENANT).mkdir(parents=True)
        (root / "rules" / TENANT / "bench.toml").write_text(RULES)
        registry = FleetRegistry(root / "fleet.sqlite")
        await registry.open()
        db = sqlite3.connect(root / "fleet.sqlite")
        with db:
            rows = [(TENANT, gw, json.dumps(tags), site) for gw, (site, tags) in metas.items()]
            db.executemany("INSERT INTO gateway_meta (tenant, gateway, tags, site) VALUES (?, ?, ?, ?)", rows)
        db.close()
        store = CountingStore()
        # time passes with the readings only, as in the plain engine run (the stream is replayed, not live)
        config = RulesSection(enabled=True, folder=root / "rules", queue_max=len(items) + 1, max_future_s=1e12)
        runner = CloudRules(config, store, registry=registry, now=lambda: 0.0)  # type: ignore[arg-type]
        await runner.start()
        status = await runner.status(TENANT)
        assert status["gateways_tagged"] == len(metas), status
        gc.collect()
        start = time.perf_counter()
        for i, (gw, readings, online, ts) in enumerate(items):
            if readings is None:
                runner.presence(TENANT, gw, online, ts)
            else:
                runner.stored(TENANT, gw, readings)
            if i % 50 == 0:
                await asyncio.sleep(0)  # ingest hands over one commit's packs at a time
        deadline = time.monotonic() + 600
        while runner.stats.readings_in < total or runner._queue.qsize():  # a bench may look inside
            if time.monotonic() > deadline:
                raise SystemExit("the runner did not catch up in 10 minutes")
            await asyncio.sleep(0.005)
        await runner._on_thread(lambda: None)  # the last batch handed over has been pushed
        elapsed = time.perf_counter() - start
        await runner.close()
        await registry.close()
        return {"seconds": elapsed, "stats": runner.stats, "events": store.events, "derived": store.readings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=400_000)
    ap.add_argument("--gateways", type=int, default=1000)
    ap.add_argument("--pack", type=int, default=20)
    args = ap.parse_args()
    metas = fleet(args.gateways)
    tags = tags_by_gateway(metas)
    items = workload(args.readings, sorted(metas), args.pack)
    presence = sum(1 for _g, r, _o, _t in items if r is None)
    print(f"cloud rules: 10 rules over {args.gateways} gateways in {args.gateways // 10} sites, {args.readings:,} "
          f"readings in packs of {args.pack} (+{presence} online/offline), one core for the rules")  # fmt: skip
    secs, outputs = run_engine(items, tags)
    line = "  {:<48} {:>10,.0f} readings/s  ({:.2f} s{})"
    print(line.format("engine, a push per pack", args.readings / secs, secs, f", {outputs} outputs"))
    secs, outputs = run_engine(items, tags, DRAIN)
    print(line.format(f"engine, {DRAIN} packs a push (the ceiling)", args.readings / secs, secs, ""))
    result = asyncio.run(run_runner(items, metas, args.readings))
    st, secs = result["stats"], result["seconds"]
    extra = f"; {result['events']} alerts, {result['derived']} derived readings stored; {st.batches_dropped} dropped"
    print(line.format("cloud runner: stored -> rules -> outputs stored", args.readings / secs, secs, extra))


if __name__ == "__main__":
    main()
