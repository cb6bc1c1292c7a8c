"""Policy decision benchmark: Cedar decisions through cloud.policy.DecisionPoint on one core.

Prints cached and uncached decisions/s, the p50/p99 latency of one uncached decision, and the targets
(issue 3: at least 50,000 cached and 5,000 uncached decisions/s on one core). Uncached decisions are
forced by a DecisionPoint whose cache holds nothing; cached ones repeat a working set of gateways
publishing telemetry (every batch id different, as on the wire).
Usage: python bench/policy.py [--seconds 3] [--gateways 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud.policy import DecisionPoint, RequestContext, Subject  # noqa: E402

TARGET_CACHED = 50_000
TARGET_UNCACHED = 5_000


def _requests(gateways: int) -> list[tuple[Subject, str]]:
    return [(Subject("gateway", f"gw-{n}", "default"), f"roost/default/gw-{n}/telemetry") for n in range(gateways)]


def cached_rate(seconds: float, gateways: int) -> float:
    """Decisions/s with a warm cache (every gateway already decided once)."""
    dp = DecisionPoint(cache_size=max(65_536, gateways))
    ctx = RequestContext(source_ip="192.0.2.10", transport="mqtt-ws")
    work = _requests(gateways)
    for subject, topic in work:
        assert dp.decide_publish(subject, topic, ctx).allowed
    done, batch = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for subject, topic in work:
            dp.decide_publish(subject, f"{topic}/b{batch}", ctx)
        done += len(work)
        batch += 1
    return done / (time.perf_counter() - start)


def uncached(seconds: float, *, fresh: bool) -> tuple[float, list[float]]:
    """Decisions/s and per-decision latencies (s) that the decision cache cannot answer.

    ``fresh``: every decision is about a subject and topic never seen (Cedar entities parsed too);
    otherwise 200 known gateways are decided again, as after a policy change or a new time bucket.
    """
    dp = DecisionPoint(cache_size=0)
    ctx = RequestContext(source_ip="192.0.2.10", transport="mqtt-ws")
    latencies: list[float] = []
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            gw = f"gw-{n}" if fresh else f"gw-{n % 200}"
            n += 1
            subject, topic = Subject("gateway", gw, "default"), f"roost/default/{gw}/telemetry"
            t0 = time.perf_counter()
            dp.decide_publish(subject, topic, ctx)
            latencies.append(time.perf_counter() - t0)
    return len(latencies) / (time.perf_counter() - start), latencies


def _percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--gateways", type=int, default=1000, help="distinct gateways in the cached working set")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    cached = cached_rate(args.seconds, args.gateways)
    print(f"policy decisions on one core ({args.seconds:g} s each)")
    verdict = "ok" if cached >= TARGET_CACHED else "MISSED"
    print(f"  cached:                       {cached:9,.0f}/s   target >= {TARGET_CACHED:,}/s   {verdict}")
    for label, fresh in (("uncached, known entities:", False), ("uncached, new subject+topic:", True)):
        rate, latencies = uncached(args.seconds, fresh=fresh)
        latencies.sort()
        verdict = "ok" if rate >= TARGET_UNCACHED else "MISSED"
        print(f"  {label:28} {rate:9,.0f}/s   target >= {TARGET_UNCACHED:,}/s   {verdict}")
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        print(f"    one decision: p50 {p50:.0f} us, p99 {p99:.0f} us ({len(latencies):,} samples)")


if __name__ == "__main__":
    main()
