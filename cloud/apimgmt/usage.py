"""Usage analytics: per-minute counters and a bounded latency histogram per (tenant, client, endpoint).

A request only adds to a counter in memory (:meth:`UsageRecorder.record`); a background task writes the
counters to SQLite every few seconds (:meth:`UsageRecorder.flush_forever`). Latency is kept as counts in
fixed log-spaced bins (each bin 25 % wider than the one before, from 50 µs to about 10 s, and one bin for
anything slower), so a minute costs the same memory however busy it is, and percentiles are read from the
bins: p50 and p95 are the upper edge of the bin they fall in (at most 25 % above the true value).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cloud.apimgmt.db import ManagedApiDB, UsageRow

_LOGGER = logging.getLogger(__name__)

BIN_EDGES_S: tuple[float, ...] = tuple(50e-6 * 1.25**i for i in range(56))  # 50 µs ... ~10.7 s
MAX_PENDING = 50_000  # (minute, tenant, client, endpoint) keys held between flushes; beyond: counted, dropped


def bin_of(seconds: float) -> int:
    """The histogram bin of a latency (the last bin holds everything above the last edge)."""
    return bisect.bisect_left(BIN_EDGES_S, seconds)


def bin_upper_ms(index: int) -> float:
    """The upper edge of a bin in milliseconds (the last, open bin: its lower edge)."""
    return BIN_EDGES_S[min(index, len(BIN_EDGES_S) - 1)] * 1000.0


def percentile_ms(hist: dict[int, int], fraction: float) -> float | None:
    """The latency below which ``fraction`` of the calls fall, from the bins; None without calls."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return round(bin_upper_ms(index), 3)
    return round(bin_upper_ms(max(hist)), 3)


@dataclass(slots=True)
class _Counts:
    calls: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    throttled: int = 0
    hist: dict[int, int] = field(default_factory=dict)


class UsageRecorder:
    """Counts calls in memory and flushes them to the database."""

    def __init__(self, db: ManagedApiDB, *, flush_s: float, retention_days: int) -> None:
        self._db = db
        self._flush_s = flush_s
        self._retention_min = retention_days * 1440
        self._pending: dict[tuple[int, str, str, str], _Counts] = {}
        self._flush_lock = asyncio.Lock()
        self.dropped = 0
        self.flush_failures = 0

    def record(self, tenant: str, client: str, endpoint: str, status: int, seconds: float) -> None:
        """Count one call (non-blocking: a dict update)."""
        key = (int(time.time() // 60), tenant, client, endpoint)
        counts = self._pending.get(key)
        if counts is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            counts = self._pending[key] = _Counts()
        counts.calls += 1
        if 400 <= status < 500:
            counts.errors_4xx += 1
            if status == 429:
                counts.throttled += 1
        elif status >= 500:
            counts.errors_5xx += 1
        index = bisect.bisect_left(BIN_EDGES_S, seconds)
        counts.hist[index] = counts.hist.get(index, 0) + 1

    async def flush(self) -> int:
        """Write what was counted since the last flush; how many rows (on failure they are kept for next time)."""
        async with self._flush_lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return 0
            rows = [
                UsageRow(m, t, c, e, n.calls, n.errors_4xx, n.errors_5xx, n.throttled, n.hist)
                for (m, t, c, e), n in pending.items()
            ]
            try:
                await asyncio.to_thread(self._db.add_usage, rows)
            except Exception:
                self.flush_failures += 1
                for key, counts in pending.items():  # put them back, merged with what came meanwhile
                    merged = self._pending.setdefault(key, _Counts())
                    merged.calls += counts.calls
                    merged.errors_4xx += counts.errors_4xx
                    merged.errors_5xx += counts.errors_5xx
                    merged.throttled += counts.throttled
                    for k, v in counts.hist.items():
                        merged.hist[k] = merged.hist.get(k, 0) + v
                raise
            return len(rows)

    async def flush_forever(self) -> None:
        """Flush every ``flush_s`` seconds, and purge old minutes hourly, until cancelled; then flush once more."""
        last_purge = 0.0
        try:
            while True:
                await asyncio.sleep(self._flush_s)
                try:
                    await self.flush()
                    if time.monotonic() - last_purge > 3600:
                        last_purge = time.monotonic()
                        cutoff = int(time.time() // 60) - self._retention_min
                        await asyncio.to_thread(self._db.purge_usage, cutoff)
                except Exception as exc:  # a full or locked disk must not stop the API: keep counting, retry
                    _LOGGER.warning("Writing the API usage counters failed (will retry): %s", exc)
        finally:
            try:
                await self.flush()
            except Exception as exc:
                _LOGGER.warning("The last API usage counters could not be written: %s", exc)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Calls of one client to one endpoint over a time range."""

    client: str
    endpoint: str
    calls: int
    errors_4xx: int
    errors_5xx: int
    throttled: int
    p50_ms: float | None
    p95_ms: float | None
    first_minute: int
    last_minute: int

    def as_json(self) -> dict[str, Any]:
        """The summary as the API shows it (minutes as RFC 3339)."""
        return {
            "client": self.client,
            "endpoint": self.endpoint,
            "calls": self.calls,
            "errors_4xx": self.errors_4xx,
            "errors_5xx": self.errors_5xx,
            "throttled": self.throttled,
            "latency_p50_ms": self.p50_ms,
            "latency_p95_ms": self.p95_ms,
            "first": _minute_text(self.first_minute),
            "last": _minute_text(self.last_minute),
        }


def _minute_text(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(minute * 60))


def summarize(rows: Iterable[UsageRow]) -> list[UsageSummary]:
    """Per (client, endpoint): the minutes' counters summed and their histograms merged."""
    groups: dict[tuple[str, str], list[UsageRow]] = {}
    for row in rows:
        groups.setdefault((row.client, row.endpoint), []).append(row)
    out = []
    for (client, endpoint), items in sorted(groups.items()):
        hist: dict[int, int] = {}
        for row in items:
            for k, v in row.hist.items():
                hist[k] = hist.get(k, 0) + v
        out.append(
            UsageSummary(
                client,
                endpoint,
                sum(r.calls for r in items),
                sum(r.errors_4xx for r in items),
                sum(r.errors_5xx for r in items),
                sum(r.throttled for r in items),
                percentile_ms(hist, 0.50),
                percentile_ms(hist, 0.95),
                min(r.minute for r in items),
                max(r.minute for r in items),
            )
        )
    return out


def per_minute(rows: Iterable[UsageRow]) -> list[tuple[int, int, int]]:
    """(minute, calls, errors) per minute, summed over clients and endpoints, by minute."""
    minutes: dict[int, list[int]] = {}
    for row in rows:
        slot = minutes.setdefault(row.minute, [0, 0])
        slot[0] += row.calls
        slot[1] += row.errors_4xx + row.errors_5xx
    return [(m, c, e) for m, (c, e) in sorted(minutes.items())]
