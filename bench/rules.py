"""Rules engine throughput: events per second on one core through 1, 10 and 100 mixed rules, with the
added latency per batch (p50/p99), and a hand-written Python loop doing the same work as the ceiling.

    .venv/bin/python bench/rules.py [--readings N] [--batch B]

The workload is a site of freezers, rooms, power meters, motion sensors and doors reporting in event
time (timestamps advance 1 ms per reading, so windows close and timers fire during the run). The
10-rule set holds one rule of each kind: threshold with hysteresis and "for at least", absence,
tumbling average (derived), sliding maximum, count window, session window, change, sequence, and
the two uplink shaping rules (deadband, downsample). The 100-rule set is ten of each, each over a
tenth of the sensors, so every reading meets about as many rules as in the 10-rule set. Each batch
goes through ``engine.push`` (processing rules) and ``engine.shape`` (shaping rules), as the gateway
does. One process, one thread: the figures are per core.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# this file is bench/rules.py: drop bench/ from the path so that `rules` is the package, not this script
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from rules import Engine, load_text  # noqa: E402
from wire.reading import Reading  # noqa: E402

GROUPS = 10
PER_GROUP = {"freezer": 20, "room": 10, "meter": 10, "motion": 5, "door": 5}


def workload(n: int, seed: int = 7) -> list[Reading]:
    """``n`` readings of a site, in event-time order (1 ms apart)."""
    rnd = random.Random(seed)
    kinds: list[tuple[str, str, str | None]] = []
    for g in range(GROUPS):
        kinds += [(f"freezer-{g}-{i}", "temperature", "Cel") for i in range(PER_GROUP["freezer"])]
        kinds += [(f"room-{g}-{i}", "temperature", "Cel") for i in range(PER_GROUP["room"])]
        kinds += [(f"room-{g}-{i}", "humidity", "%RH") for i in range(PER_GROUP["room"])]
        kinds += [(f"meter-{g}-{i}", "power", "W") for i in range(PER_GROUP["meter"])]
        kinds += [(f"motion-{g}-{i}", "occupancy", None) for i in range(PER_GROUP["motion"])]
        kinds += [(f"door-{g}-{i}", "open", None) for i in range(PER_GROUP["door"])]
    t0 = 1_736_928_000.0
    out = []
    for j in range(n):
        sensor, metric, unit = kinds[rnd.randrange(len(kinds))]
        value: float | bool
        if metric == "temperature":
            base = -18.0 if sensor.startswith("freezer") else 21.0
            value = round(base + rnd.gauss(0, 1.5), 2)
        elif metric == "humidity":
            value = round(45 + rnd.gauss(0, 3), 1)
        elif metric == "power":
            value = round(450 + rnd.gauss(0, 200), 1)
        else:
            value = rnd.random() < 0.3
        out.append(Reading(sensor, metric, value, t0 + j * 0.001, unit))
    return out


RULE_KINDS = [
    """[[rule]]
name = "freezer-warm{g}"
[rule.select]
sensor = "freezer-{p}*"
metric = "temperature"
[rule.condition]
kind = "threshold"
above = -15.0
clear_below = -17.0
for = "2s"
[[rule.action]]
kind = "alert"
severity = "critical"
message = "{{sensor}} at {{value}}"
""",
    """[[rule]]
name = "freezer-silent{g}"
[rule.select]
sensor = "freezer-{p}*"
metric = "temperature"
[rule.condition]
kind = "absence"
for = "5s"
[[rule.action]]
kind = "alert"
""",
    """[[rule]]
name = "room-avg{g}"
[rule.select]
sensor = "room-{p}*"
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "10s"
allowed_lateness = "1s"
[rule.aggregate]
fn = "avg"
[[rule.action]]
kind = "derive"
metric = "temperature_avg"
""",
    """[[rule]]
name = "meter-max{g}"
[rule.select]
sensor = "meter-{p}*"
metric = "power"
[rule.window]
kind = "sliding"
size = "10s"
every = "2s"
[rule.aggregate]
fn = "max"
[rule.condition]
kind = "threshold"
above = 1200.0
clear_below = 1000.0
[[rule.action]]
kind = "alert"
""",
    """[[rule]]
name = "humidity-p90{g}"
[rule.select]
sensor = "room-{p}*"
metric = "humidity"
[rule.window]
kind = "count"
count = 20
[rule.aggregate]
fn = "percentile"
q = 90
[[rule.action]]
kind = "derive"
metric = "humidity_p90"
""",
    """[[rule]]
name = "motion-session{g}"
[rule.select]
sensor = "motion-{p}*"
metric = "occupancy"
[rule.window]
kind = "session"
gap = "1s"
[rule.aggregate]
fn = "count"
[[rule.action]]
kind = "derive"
metric = "motion_events"
""",
    """[[rule]]
name = "meter-jump{g}"
[rule.select]
sensor = "meter-{p}*"
metric = "power"
[rule.condition]
kind = "change"
by = 700.0
[[rule.action]]
kind = "annotate"
message = "{{sensor}} jumped to {{value}}"
""",
    """[[rule]]
name = "door-then-warm{g}"
group_by = "all"
[rule.select]
sensor = ["door-{p}*", "freezer-{p}*"]
metric = ["open", "temperature"]
[rule.condition]
kind = "sequence"
within = "1s"
first = {{ metric = "open", equals = true }}
then = {{ metric = "temperature", above = -14.0 }}
[[rule.action]]
kind = "alert"
""",
    """[[rule]]
name = "temperature-deadband{g}"
[rule.select]
sensor = ["freezer-{p}*", "room-{p}*"]
metric = "temperature"
[rule.shape]
kind = "deadband"
delta = 2.0
""",
    """[[rule]]
name = "power-downsample{g}"
[rule.select]
sensor = "meter-{p}*"
metric = "power"
[rule.shape]
kind = "downsample"
every = "5s"
""",
]


def ruleset_text(count: int) -> str:
    """0: none (dispatch only); 1: the freezer threshold; 10: one of each kind; 100: ten of each over a tenth each."""
    if count == 1:
        return RULE_KINDS[0].format(g="", p="")
    if count == 10:
        return "\n".join(k.format(g="", p="") for k in RULE_KINDS)
    return "\n".join(k.format(g=f"-{g}", p=f"{g}-") for g in range(count // 10) for k in RULE_KINDS)


def run_engine(text: str, readings: Sequence[Reading], batch: int) -> tuple[float, list[float], int]:
    """(events/s, per-batch latencies in ms, outputs)."""
    outputs = 0

    def sink(outs: Sequence[Any]) -> None:
        nonlocal outputs
        outputs += len(outs)

    engine = Engine(load_text(text, name="bench.toml"), sink=sink)
    batches = [readings[i : i + batch] for i in range(0, len(readings), batch)]
    lat: list[float] = []
    gc.collect()
    start = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        engine.push(b)
        engine.shape(b)
        lat.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    errors = sum(s.errors for s in engine.stats().values())
    assert errors == 0, engine.stats()
    return len(readings) / total, lat, outputs


def hand_loop(readings: Sequence[Reading], batch: int) -> tuple[float, list[float], int]:
    """The 10-rule set's work written by hand: one loop, dict state, no generality (the ceiling)."""
    outputs: list[Any] = []
    out = outputs.append
    st_thr: dict[str, list[Any]] = {}
    st_abs: dict[str, float] = {}
    absent: set[str] = set()
    st_avg: dict[tuple[str, int], list[float]] = {}
    st_max: dict[tuple[str, int], float] = {}
    max_on: set[str] = set()
    st_cnt: dict[str, list[float]] = {}
    st_ses: dict[str, list[float]] = {}
    st_chg: dict[str, list[Any]] = {}
    door_at = -math.inf
    seq_on = False
    dead: dict[str, float] = {}
    down: dict[tuple[str, int], list[float]] = {}
    next_tick = -math.inf

    def process(b: Sequence[Reading]) -> list[Reading]:
        nonlocal door_at, seq_on, next_tick
        keep = []
        clock = b[-1][3]
        for r in b:
            sensor, metric, v, ts, _u = r
            if metric == "temperature":
                if sensor[0] == "f":
                    e = st_thr.get(sensor)
                    if e is None:
                        e = st_thr[sensor] = [False, None]
                    if e[0]:
                        if v < -17.0:
                            e[0] = False
                            out(("clear", sensor, ts))
                    elif v > -15.0:
                        if e[1] is None:
                            e[1] = ts
                        elif ts - e[1] >= 2.0:
                            e[0] = True
                            e[1] = None
                            out(("raise", sensor, ts))
                    else:
                        e[1] = None
                    if sensor in absent:
                        absent.discard(sensor)
                        out(("clear", sensor, ts))
                    st_abs[sensor] = ts
                    if v > -14.0 and ts - door_at <= 1.0 and not seq_on:
                        seq_on = True
                        door_at = -math.inf
                        out(("raise", "seq", ts))
                else:
                    k = (sensor, int(ts // 10))
                    acc = st_avg.get(k)
                    if acc is None:
                        st_avg[k] = [v, 1.0]
                    else:
                        acc[0] += v
                        acc[1] += 1
                last = dead.get(sensor)
                if last is None or abs(v - last) > 2.0:
                    dead[sensor] = v
                    keep.append(r)
            elif metric == "power":
                for p in range(int(ts // 2), int(ts // 2) + 5):
                    k2 = (sensor, p)
                    m = st_max.get(k2)
                    if m is None or v > m:
                        st_max[k2] = v
                c = st_chg.get(sensor)
                if c is None:
                    st_chg[sensor] = [False, v]
                else:
                    hit = abs(v - c[1]) > 700.0
                    c[1] = v
                    if hit != c[0]:
                        c[0] = hit
                        out(("change", sensor, ts))
                k3 = (sensor, int(ts // 5))
                d = down.get(k3)
                if d is None:
                    down[k3] = [1.0, v, v, v]
                else:
                    d[0] += 1
                    d[1] += v
                    if v < d[2]:
                        d[2] = v
                    if v > d[3]:
                        d[3] = v
            elif metric == "humidity":
                lst = st_cnt.get(sensor)
                if lst is None:
                    lst = st_cnt[sensor] = []
                lst.append(v)
                if len(lst) >= 20:
                    lst.sort()
                    out(("p90", sensor, lst[17]))
                    lst.clear()
            elif metric == "occupancy":
                s = st_ses.get(sensor)
                if s is None or ts - s[1] >= 1.0:
                    if s is not None:
                        out(("session", sensor, s[2]))
                    st_ses[sensor] = [ts, ts, 1.0]
                else:
                    s[1] = ts
                    s[2] += 1
            elif v is True:
                door_at = ts
                if seq_on:
                    seq_on = False
                    out(("clear", "seq", ts))
        if clock >= next_tick:  # the timers: windows closing, absences, once per second of event time
            next_tick = clock + 1.0
            for k in [k for k in st_avg if (k[1] + 1) * 10 + 1 <= clock]:
                acc = st_avg.pop(k)
                out(("avg", k[0], acc[0] / acc[1]))
            for k2 in [k for k in st_max if (k[1] + 1) * 2 <= clock]:
                m = st_max.pop(k2)
                if m > 1200.0 and k2[0] not in max_on:
                    max_on.add(k2[0])
                    out(("max", k2[0], m))
                elif m < 1000.0 and k2[0] in max_on:
                    max_on.discard(k2[0])
                    out(("max-clear", k2[0], m))
            for k3 in [k for k in down if (k[1] + 1) * 5 <= clock]:
                d = down.pop(k3)
                out(("down", k3[0], d[1] / d[0], d[2], d[3]))
            for sensor, last in st_abs.items():
                if sensor not in absent and last + 5.0 <= clock:
                    absent.add(sensor)
                    out(("absent", sensor, last))
            for sensor, s in list(st_ses.items()):
                if s[1] + 1.0 <= clock:
                    out(("session", sensor, s[2]))
                    del st_ses[sensor]
        return keep

    batches = [readings[i : i + batch] for i in range(0, len(readings), batch)]
    lat: list[float] = []
    gc.collect()
    start = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        process(b)
        lat.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    return len(readings) / total, lat, len(outputs)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    """Run and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=300_000)
    ap.add_argument(
        "--batch", type=int, default=256, help="readings per push (the gateway pushes what one publish carries)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="runs per figure; the best is shown")
    args = ap.parse_args()
    readings = workload(args.readings)
    # the pre-built workload (hundreds of thousands of live tuples) is a bench artifact: keep the
    # collector from re-scanning it in every full collection, which would show up as latency
    # spikes a gateway (whose readings live for one batch) does not have
    gc.freeze()
    print(f"rules engine: {args.readings} readings in batches of {args.batch}, one core (best of {args.rounds})")
    print(f"{'rule set':<22}{'events/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'outputs':>10}")
    rows: dict[str, float] = {}
    cases: list[tuple[str, Callable[[], tuple[float, list[float], int]]]] = [
        (f"engine, {n} rules", lambda n=n: run_engine(ruleset_text(n), readings, args.batch))
        for n in (0, 1, 10, 100)  # type: ignore[misc]
    ]
    cases.append(("hand loop (10 rules)", lambda: hand_loop(readings, args.batch)))
    for label, fn in cases:
        best: tuple[float, list[float], int] | None = None
        for _ in range(args.rounds):
            res = fn()
            if best is None or res[0] > best[0]:
                best = res
        assert best is not None
        rate, lat, outs = best
        rows[label] = rate
        print(f"{label:<22}{rate:>12,.0f}{statistics.median(lat):>10.3f}{pct(lat, 99):>10.3f}{outs:>10}")
    ratio = rows["hand loop (10 rules)"] / rows["engine, 10 rules"]
    print(f"the hand loop is {ratio:.1f}x the engine on the 10-rule set; target 400,000 events/s, p99 < 5 ms")
    per_event = 1e6 / rows["engine, 10 rules"]
    dispatch = 1e6 / rows["engine, 0 rules"]
    hand = 1e6 / rows["hand loop (10 rules)"]
    print(
        f"where the time goes, per reading on the 10-rule set: {per_event:.2f} us in the engine, of which "
        f"{dispatch:.2f} us is dispatch\n  and clock (the 0-rule row: a dict lookup per reading, a max over the batch);"
        f" the hand loop needs {hand:.2f} us in all.\n  The rest is generality: each selecting rule's batch goes"
        " through one reactivex map (paid per rule and batch,\n  so it grows with 100 small rules), stages written"
        " for any subject, window and aggregate (values kept in\n  lists rather than running sums, signal tuples"
        " between stages), and full outputs (wire Events with uuid ids,\n  Readings) where the hand loop appends"
        " bare tuples (it also emits fewer: its semantics are simplified)."
    )


if __name__ == "__main__":
    main()
