"""Retention: how long raw readings, 1-minute and 1-hour rollups are kept, per tenant, and the task that applies it.

A :class:`RetentionPolicy` turns ``[retention]`` into cutoffs: for each kind of data, the time before which a
tenant's rows go (None: kept forever). Each store applies them its own way (``apply_retention``): PostgreSQL drops a
whole partition once it lies before every tenant's cutoff and deletes rows otherwise; SQLite deletes in bounded
batches so ingest commits get in between. :class:`RetentionTask` runs it periodically in the cloud server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cloud.config import RetentionSection

_LOGGER = logging.getLogger(__name__)
DAY_US = 86_400_000_000
Kind = Literal["raw", "1m", "1h"]
KINDS: tuple[Kind, ...] = ("raw", "1m", "1h")
WIDTH_US: dict[Kind, int] = {"raw": 0, "1m": 60_000_000, "1h": 3_600_000_000}
"""A rollup bucket goes once all of it is before the cutoff."""


@dataclass(frozen=True, slots=True)
class Keep:
    """Days kept of each kind of data (0: forever)."""

    raw_days: int
    minute_days: int
    hour_days: int

    def days(self, kind: Kind) -> int:
        return {"raw": self.raw_days, "1m": self.minute_days, "1h": self.hour_days}[kind]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Of one kind of data: rows before ``default_us`` go for every tenant not in ``tenants``, which have their own
    cutoffs (None: kept forever). Times are what the table's time column holds (a rollup's bucket start)."""

    default_us: int | None
    tenants: Mapping[str, int | None]

    def drop_before(self) -> int | None:
        """Rows of every tenant before this time may go (a partition wholly before it can be dropped)."""
        cutoffs = [self.default_us, *self.tenants.values()]
        if any(c is None for c in cutoffs):
            return None
        return min(c for c in cutoffs if c is not None)

    def deletes(self) -> list[tuple[str | None, tuple[str, ...], int]]:
        """What to delete: (tenant or None for "every other tenant", tenants excluded, rows before this time)."""
        out: list[tuple[str | None, tuple[str, ...], int]] = []
        if self.default_us is not None:
            out.append((None, tuple(sorted(self.tenants)), self.default_us))
        out += [(t, (), c) for t, c in sorted(self.tenants.items()) if c is not None]
        return out


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days kept by default and per tenant."""

    default: Keep = field(default_factory=lambda: Keep(30, 365, 0))
    tenants: Mapping[str, Keep] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: RetentionSection) -> RetentionPolicy:
        default = Keep(section.raw_days, section.minute_days, section.hour_days)
        tenants = {
            t.name: Keep(
                default.raw_days if t.raw_days is None else t.raw_days,
                default.minute_days if t.minute_days is None else t.minute_days,
                default.hour_days if t.hour_days is None else t.hour_days,
            )
            for t in section.tenants
        }
        return cls(default, tenants)

    def cutoffs(self, kind: Kind, *, now: float) -> Cutoffs:
        """The cutoffs of ``kind`` at ``now`` (seconds since the epoch)."""
        now_us = round(now * 1_000_000)

        def cutoff(keep: Keep) -> int | None:
            days = keep.days(kind)
            if days == 0:
                return None
            width = WIDTH_US[kind]  # a bucket [b, b + width) goes when b + width <= now - days
            return now_us - days * DAY_US - width + (1 if width else 0)

        return Cutoffs(cutoff(self.default), {t: cutoff(k) for t, k in self.tenants.items()})


@dataclass(slots=True)
class RetentionReport:
    """What one run removed: partitions dropped (by name) and rows deleted (per table)."""

    dropped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = ", ".join(f"{n} from {t}" for t, n in self.deleted.items() if n) or "no rows"
        return f"{len(self.dropped)} partitions dropped, {rows} deleted"


class RetentionStore(Protocol):
    """A store that applies retention and keeps its own house (partitions ahead)."""

    async def apply_retention(self, policy: RetentionPolicy, *, now: float) -> RetentionReport: ...

    async def maintain(self, *, now: float) -> None: ...


class RetentionTask:
    """Runs the store's maintenance and retention every ``interval_s``; the first run after ``first_delay_s``
    (default: 10 minutes, or ``interval_s`` if shorter: late enough not to slow a start, soon enough that a cloud
    restarted often still runs it)."""

    def __init__(
        self,
        store: RetentionStore,
        policy: RetentionPolicy,
        *,
        interval_s: float,
        first_delay_s: float | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.interval_s = interval_s
        self.first_delay_s = min(600.0, interval_s) if first_delay_s is None else first_delay_s
        self.runs = 0
        self.failures = 0
        self.last: RetentionReport | None = None

    async def run_once(self) -> RetentionReport:
        now = time.time()
        await self.store.maintain(now=now)
        report = await self.store.apply_retention(self.policy, now=now)
        self.runs += 1
        self.last = report
        _LOGGER.info("retention: %s", report)
        return report

    async def run(self) -> None:
        """Forever (until cancelled); a failed run is logged and tried again at the next interval."""
        await asyncio.sleep(self.first_delay_s)
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the store is down or busy: try later, never stop
                self.failures += 1
                _LOGGER.error("retention run failed, trying again in %.0f s: %s", self.interval_s, exc)
            await asyncio.sleep(self.interval_s)
