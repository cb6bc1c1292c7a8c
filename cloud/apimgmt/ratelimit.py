"""Token buckets per (caller, plan) in memory, and the IETF RateLimit header fields that describe them.

The cloud is one process, so the buckets live in its memory: several cloud workers behind a load balancer
would each hold their own (a caller would get up to N times its plan); a shared limiter (Redis, the
gateway in front) is the scale-out answer, see docs/developers.md.

Header fields follow draft-ietf-httpapi-ratelimit-headers-10/-11 (September 2025 / May 2026,
https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/; the "RateLimit-Policy" and "RateLimit"
Structured Field lists: a quoted policy name with ``q`` (quota) and ``w`` (window, seconds) parameters, and
the same name with ``r`` (remaining quota) and ``t`` (seconds until the quota is restored)). A token bucket
is shown as its size (``q`` = burst) and the time an empty bucket takes to fill (``w``); ``r`` is the
whole requests left in the bucket and ``t`` the seconds until it is full again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud.apimgmt.plans import Plan

MAX_BUCKETS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's answer: allowed or not, what is left, and the header fields to send (empty: none)."""

    allowed: bool
    remaining: int
    reset_s: int
    retry_after_s: int
    policy_field: str
    limit_field: str


def policy_field(plan: Plan) -> str:
    """The ``RateLimit-Policy`` field value of a plan, e.g. ``"standard";q=100;w=2``."""
    return f'"{plan.name}";q={plan.burst};w={plan.window_s}'


class RateLimiter:
    """Token buckets keyed by (caller key, plan name); a plan's current rate and burst apply on every take."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, plan: Plan) -> Verdict:
        """Take one request from ``key``'s bucket under ``plan`` (an unlimited plan takes nothing)."""
        if plan.unlimited:  # no quota to describe: no header fields
            return Verdict(True, 0, 0, 0, "", "")
        now = self._clock()
        slot = (key, plan.name)
        bucket = self._buckets.get(slot)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._evict()
            bucket = self._buckets[slot] = _Bucket(float(plan.burst), now)
        else:
            bucket.tokens = min(float(plan.burst), bucket.tokens + (now - bucket.last) * plan.rate_per_s)
            bucket.last = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        remaining = int(bucket.tokens)
        reset_s = math.ceil((plan.burst - bucket.tokens) / plan.rate_per_s)
        retry = 0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / plan.rate_per_s))
        limit = f'"{plan.name}";r={remaining};t={retry if not allowed else reset_s}'
        return Verdict(allowed, remaining, reset_s, retry, policy_field(plan), limit)

    def _evict(self) -> None:
        """Forget the oldest half of the buckets (a forgotten bucket starts full again: the caller gains a burst)."""
        for slot in list(self._buckets)[: max(1, len(self._buckets) // 2)]:
            del self._buckets[slot]

    def forget(self, key: str) -> None:
        """Drop every bucket of ``key`` (a deleted application)."""
        for slot in [s for s in self._buckets if s[0] == key]:
            del self._buckets[slot]
