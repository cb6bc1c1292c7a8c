"""Token buckets, RateLimit fields, plans and latency histograms, on their own (a fake clock)."""

from __future__ import annotations

import pytest

from cloud.apimgmt.plans import BUILT_IN, Plan, plan_of_json, plan_set
from cloud.apimgmt.ratelimit import RateLimiter
from cloud.apimgmt.usage import BIN_EDGES_S, bin_of, percentile_ms


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    plan = Plan("standard", 50.0, 100)
    verdicts = [limiter.take("client:a/x", plan) for _ in range(101)]
    assert [v.allowed for v in verdicts] == [True] * 100 + [False]
    assert verdicts[0].policy_field == '"standard";q=100;w=2'
    assert verdicts[0].limit_field == '"standard";r=99;t=1'
    assert verdicts[-1].limit_field == '"standard";r=0;t=1' and verdicts[-1].retry_after_s == 1
    clock.now += 0.1001  # 5 requests refilled (and a little)
    assert [limiter.take("client:a/x", plan).allowed for _ in range(6)] == [True] * 5 + [False]
    assert limiter.take("client:a/y", plan).allowed  # another caller has its own bucket


def test_retry_after_is_the_time_one_request_takes_to_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    slow = Plan("slow", 0.1, 1)
    assert limiter.take("k", slow).allowed
    refused = limiter.take("k", slow)
    assert not refused.allowed and refused.retry_after_s == 10
    clock.now += 10
    assert limiter.take("k", slow).allowed


def test_a_changed_plan_applies_to_the_next_take_and_unlimited_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.take("k", Plan("free", 1.0, 2)).allowed for _ in range(3)] == [True, True, False]
    assert limiter.take("k", Plan("free", 1.0, 2000)).allowed is False  # the bucket does not jump to full ...
    clock.now += 1.0
    assert limiter.take("k", Plan("free", 1000.0, 2000)).allowed  # ... it refills at the new rate
    unlimited = Plan("unlimited", 1.0, 1, unlimited=True)
    assert all(limiter.take("k", unlimited).allowed for _ in range(1000))


def test_buckets_are_bounded() -> None:
    limiter = RateLimiter(clock=Clock(), max_buckets=10)
    plan = Plan("free", 1.0, 1)
    for i in range(100):
        limiter.take(f"ip:{i}", plan)
    assert len(limiter) <= 10


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"name": "a b", "rate_per_s": 1, "burst": 1}, "items[0].name"),
        ({"name": "x", "rate_per_s": -1, "burst": 1}, "items[0].rate_per_s"),
        ({"name": "x", "rate_per_s": 1, "burst": 0}, "items[0].burst"),
        ({"name": "x", "rate_per_s": True, "burst": 1}, "items[0].rate_per_s"),
        ({"name": "x", "rate_per_s": 1, "burst": 1, "colour": 1}, "items[0].colour"),
        ("free", "items[0]"),
    ],
)
def test_bad_plans_are_named(raw: object, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        plan_of_json(0, raw)
    assert str(caught.value).startswith(problem + ":"), caught.value


def test_a_plan_set_keeps_what_is_needed() -> None:
    assert list(plan_set(BUILT_IN)) == ["free", "standard", "unlimited", "operator", "anonymous"]
    with pytest.raises(ValueError, match="'operator' is needed"):
        plan_set([Plan("free", 1.0, 1)], required={"operator"})


def test_percentiles_come_from_the_bounded_histogram() -> None:
    hist: dict[int, int] = {}
    for ms in [1.0] * 90 + [40.0] * 10:
        index = bin_of(ms / 1000)
        hist[index] = hist.get(index, 0) + 1
    p50, p95 = percentile_ms(hist, 0.5), percentile_ms(hist, 0.95)
    assert p50 is not None and 1.0 <= p50 <= 1.25
    assert p95 is not None and 40.0 <= p95 <= 50.0
    assert percentile_ms({}, 0.5) is None
    assert bin_of(3600.0) == len(BIN_EDGES_S)  # anything slower than the last edge: the last, open bin
