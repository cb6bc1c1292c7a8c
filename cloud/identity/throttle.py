"""Token buckets that slow down guessing at the token endpoint (per client id and per source address).

Only failed attempts (a wrong secret, an unknown code or token) take from a bucket, so a fleet behind one
NAT address that refreshes normally is never throttled, while a guesser runs dry after ``burst`` failures
and then gets ``rate`` attempts per second.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

MAX_BUCKETS = 10_000


class Throttle:
    """Token buckets by key (``ip:...``, ``client:...``), at most ``MAX_BUCKETS`` of them (least recent go)."""

    def __init__(self, *, burst: int, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = float(burst)
        self._rate = rate_per_s
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, level + (now - at) * self._rate)

    def retry_after(self, keys: Iterable[str]) -> float:
        """0 when every bucket has an attempt left, else the seconds until they all have."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key in keys:
                level = self._level(key, now)
                if level < 1.0:
                    wait = max(wait, (1.0 - level) / self._rate)
            return wait

    def charge(self, keys: Iterable[str]) -> None:
        """Take one attempt from each bucket (a failed request)."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._buckets[key] = (max(0.0, self._level(key, now) - 1.0), now)
                self._buckets.move_to_end(key)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
