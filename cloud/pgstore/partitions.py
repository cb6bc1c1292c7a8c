"""Time partitions of ``readings`` and ``rollups_1m``: which exist, creating the ones a batch needs, dropping old ones.

Each partition covers ``[lo, hi)`` in µs since the epoch, aligned to its table's period (``partition_days`` for
readings, :data:`ROLLUP_1M_PERIOD_DAYS` for the 1-minute rollups) and named after its first day
(``readings_p20261126``). A range is clipped to its neighbours, so changing ``partition_days`` never makes two
partitions overlap. Creation runs in a transaction of its own under an advisory lock, so several workers may ask
for the same partition at once; a reading outside every partition gets one made before it is inserted.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

_LOGGER = logging.getLogger(__name__)
DAY_US = 86_400_000_000
ROLLUP_1M_PERIOD_DAYS = 28
"""The 1-minute rollups are ~1,440 rows per series a day: four weeks make a partition of a useful size."""
_LOCK = 0x526F6F7370  # pg_advisory_xact_lock key of partition changes
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: its table's name and its range [lo_us, hi_us)."""

    name: str
    lo_us: int
    hi_us: int


class PartitionSet:
    """The partitions of one table as last read from the catalog, and how to add one."""

    def __init__(self, table: str, column: str, period_days: int) -> None:
        self.table = table
        self.column = column
        self.period_us = period_days * DAY_US
        self._ranges: list[Partition] = []  # sorted by lo_us, never overlapping

    @property
    def partitions(self) -> list[Partition]:
        return list(self._ranges)

    def covers(self, ts_us: int) -> bool:
        """Whether a known partition holds ``ts_us``."""
        i = bisect.bisect_right([p.lo_us for p in self._ranges], ts_us) - 1
        return i >= 0 and ts_us < self._ranges[i].hi_us

    def missing(self, times: Iterable[int]) -> list[int]:
        """One time of each period that no known partition holds."""
        out: dict[int, int] = {}
        for ts in times:
            period = ts // self.period_us
            if period not in out and not self.covers(ts):
                out[period] = ts
        return list(out.values())

    async def load(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        """Read the partitions from the catalog."""
        cur = await conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            (self.table,),
        )
        ranges = []
        for name, bound in await cur.fetchall():
            m = _BOUND.search(str(bound))
            if m is not None:
                ranges.append(Partition(str(name), int(m.group(1)), int(m.group(2))))
        self._ranges = sorted(ranges, key=lambda p: p.lo_us)

    def _range_for(self, ts_us: int) -> tuple[int, int]:
        lo = ts_us // self.period_us * self.period_us
        hi = lo + self.period_us
        for p in self._ranges:  # clip to the neighbours made with another period
            if p.hi_us <= ts_us:
                lo = max(lo, p.hi_us)
            elif p.lo_us > ts_us:
                hi = min(hi, p.lo_us)
        return lo, hi

    def _name(self, lo_us: int) -> str:
        try:
            day = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=lo_us)
            suffix = day.strftime("%Y%m%d") + ("" if lo_us % DAY_US == 0 else f"_{lo_us % DAY_US // 1_000_000}")
        except OverflowError:
            suffix = f"us{lo_us}".replace("-", "m")
        return f"{self.table}_p{suffix}"

    async def ensure(self, conn: psycopg.AsyncConnection[tuple[object, ...]], times: Iterable[int]) -> list[str]:
        """Create a partition for each of ``times`` not yet held by one (in its own transaction); the new names."""
        wanted = self.missing(times)
        if not wanted:
            return []
        made: list[str] = []
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            await self.load(conn)  # another worker may have made some meanwhile
            for ts in sorted(wanted):
                if self.covers(ts):
                    continue
                lo, hi = self._range_for(ts)
                name = self._name(lo)
                await conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(name), sql.Identifier(self.table), sql.Literal(lo), sql.Literal(hi)
                    )
                )
                made.append(name)
                bisect.insort(self._ranges, Partition(name, lo, hi), key=lambda p: p.lo_us)
        return made

    async def drop_before(
        self, conn: psycopg.AsyncConnection[tuple[object, ...]], cutoff_us: int, *, lock_timeout_s: float = 5.0
    ) -> list[str]:
        """Drop every partition wholly before ``cutoff_us``, each in a transaction of its own; the names dropped.

        Dropping a partition locks its table for a moment, after the queries already running on it: a query that
        runs long would hold every insert up behind the waiting drop. So a drop waits ``lock_timeout_s`` at most;
        one that cannot get its lock is left for the next run (logged), the partitions dropped so far stay dropped.
        """
        dropped: list[str] = []
        await self.load(conn)
        for p in [p for p in self._ranges if p.hi_us <= cutoff_us]:
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                    await conn.execute(f"SET LOCAL lock_timeout = '{round(lock_timeout_s * 1000)}ms'")
                    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(p.name)))
            except pgerrors.LockNotAvailable:
                _LOGGER.warning("retention: %s is busy (a long query?); it is dropped at the next run", p.name)
                break
            dropped.append(p.name)
        self._ranges = [p for p in self._ranges if p.name not in dropped]
        return dropped
