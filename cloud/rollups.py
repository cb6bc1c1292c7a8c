"""Rollups of numeric readings at 1 minute and 1 hour: min, max, sum and count (for the average), last value and time.

The store's insert folds each row SQLite actually inserts (``RETURNING``) into its two buckets, in the same
transaction as the raw insert: a reading sent again is ignored by ``INSERT OR IGNORE`` and so never counted twice,
and a late reading corrects the bucket it belongs to. Only REAL values are numbers (booleans are stored as
INTEGER 0/1, strings as TEXT).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wire.reading import Reading

Resolution = Literal["raw", "1m", "1h", "auto"]
WIDTH_US: dict[str, int] = {"1h": 3_600_000_000, "1m": 60_000_000}
"""Bucket widths, coarsest first (``auto`` tries them in this order)."""

_FOLD = """
ON CONFLICT (tenant, sensor, metric, gateway, bucket_us) DO UPDATE SET
    vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
    vsum = vsum + excluded.vsum, n = n + excluded.n,
    vlast = CASE WHEN excluded.last_us > last_us THEN excluded.vlast ELSE vlast END,
    last_us = max(last_us, excluded.last_us)
"""


def _table(name: str) -> str:
    return f"""CREATE TABLE {name} (
    tenant    TEXT NOT NULL,
    sensor    TEXT NOT NULL,
    metric    TEXT NOT NULL,
    gateway   TEXT NOT NULL,
    bucket_us INTEGER NOT NULL,
    vmin      REAL NOT NULL,
    vmax      REAL NOT NULL,
    vsum      REAL NOT NULL,
    n         INTEGER NOT NULL,
    vlast     REAL NOT NULL,
    last_us   INTEGER NOT NULL,
    PRIMARY KEY (tenant, sensor, metric, gateway, bucket_us)
) WITHOUT ROWID"""


def _bucket(ts: str, width: int) -> str:
    """The start of the bucket of ``ts`` (floored, also before 1970)."""
    return f"({ts} - (({ts} % {width}) + {width}) % {width})"


def _backfill(name: str, width: int) -> str:
    return (
        f"INSERT INTO {name} (tenant, sensor, metric, gateway, bucket_us, vmin, vmax, vsum, n, vlast, last_us)"
        f" SELECT tenant, sensor, metric, gateway, {_bucket('ts_us', width)}, value, value, value, 1, value, ts_us"
        " FROM readings WHERE typeof(value) = 'real'" + _FOLD
    )


def table_name(resolution: str) -> str:
    """The table of a resolution (``1m`` or ``1h``)."""
    return {"1m": "rollups_1m", "1h": "rollups_1h"}[resolution]


_INSERT = "INSERT OR IGNORE INTO readings (tenant, gateway, sensor, metric, ts_us, value, unit) VALUES "
_ROWS_PER_INSERT = 4000  # 7 variables a row, under SQLite's 32,766


def create(conn: sqlite3.Connection, *, backfill: bool) -> None:
    """Create the rollup tables (inside the caller's transaction), computed from the stored readings if asked."""
    for resolution, width in WIDTH_US.items():
        conn.execute(_table(table_name(resolution)))
        if backfill:
            conn.execute(_backfill(table_name(resolution), width))


_MINUTE = WIDTH_US["1m"]
_HOUR = WIDTH_US["1h"]


def _merge(
    acc: dict[tuple[str, str, str, str, int], list[Any]], key: tuple[str, str, str, str, int], x: list[Any]
) -> None:
    """Fold ``x`` = [min, max, sum, count, last, last_us] into the bucket ``key`` of ``acc``."""
    a = acc.get(key)
    if a is None:
        acc[key] = list(x)
        return
    a[0] = min(a[0], x[0])
    a[1] = max(a[1], x[1])
    a[2] += x[2]
    a[3] += x[3]
    if x[5] > a[5]:
        a[4], a[5] = x[4], x[5]


class Folds:
    """The new numbers of one commit summed per bucket, to upsert each bucket once at the end of the commit.

    Rows are summed per minute; the hours are then summed from the minutes (a minute lies in one hour).
    """

    def __init__(self) -> None:
        self._minutes: dict[tuple[str, str, str, str, int], list[Any]] = {}

    def add(self, tenant: str, gateway: str, rows: list[tuple[str, str, int, object]]) -> None:
        """Fold rows (sensor, metric, ts_us, value) just inserted; only floats are numbers (booleans come back int)."""
        acc = self._minutes
        for s, m, ts, v in rows:
            if type(v) is not float:
                continue
            key = (tenant, s, m, gateway, ts - ts % _MINUTE)
            a = acc.get(key)
            if a is None:
                acc[key] = [v, v, v, 1, v, ts]
                continue
            # _merge inlined: this runs once a reading (a sixth of the SQLite commit's time otherwise)
            a[0] = min(a[0], v)
            a[1] = max(a[1], v)
            a[2] += v
            a[3] += 1
            if ts > a[5]:
                a[4], a[5] = v, ts

    def write(self, conn: sqlite3.Connection) -> None:
        """Upsert every bucket touched (inside the commit's transaction)."""
        if not self._minutes:
            return
        hours: dict[tuple[str, str, str, str, int], list[Any]] = {}
        for (t, s, m, g, b), x in self._minutes.items():
            _merge(hours, (t, s, m, g, b - b % _HOUR), x)
        for resolution, acc in (("1m", self._minutes), ("1h", hours)):
            conn.executemany(
                f"INSERT INTO {table_name(resolution)}"
                " (tenant, sensor, metric, gateway, bucket_us, vmin, vmax, vsum, n, vlast, last_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _FOLD,
                [(*key, *a) for key, a in acc.items()],
            )


def insert(
    conn: sqlite3.Connection, tenant: str, gateway: str, readings: Sequence[Reading], folds: Folds | None
) -> int:
    """Insert a pack's readings once each, the ones actually inserted added to ``folds``; how many were new.

    ``RETURNING`` names the rows SQLite inserted: a duplicate is ignored, so never counted twice.
    """
    inserted = 0
    for i in range(0, len(readings), _ROWS_PER_INSERT):
        chunk = readings[i : i + _ROWS_PER_INSERT]
        args: list[object] = []
        for r in chunk:
            args += (tenant, gateway, r.sensor, r.metric, r.ts_us, r.value, r.unit)
        sql = _INSERT + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)) + " RETURNING sensor, metric, ts_us, value"
        new = conn.execute(sql, args).fetchall()
        inserted += len(new)
        if folds is not None and new:
            folds.add(tenant, gateway, new)
    return inserted


@dataclass(frozen=True, slots=True)
class Bucket:
    """One rollup bucket of one series (summed over the gateways asked for)."""

    start_us: int
    min: float
    max: float
    sum: float
    count: int
    last: float
    last_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RollupQuery:
    """Buckets of one sensor's metric at one resolution, starting in [since, until), after a bucket already seen."""

    tenant: str | None
    sensor: str
    metric: str
    resolution: str
    gateway: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    after_us: int | None = None
    limit: int = 1000


def select_sql(q: RollupQuery) -> tuple[str, list[object]]:
    """The query of ``q``'s rows in time order (``?`` placeholders) and its arguments; :func:`fold` makes buckets."""
    name = table_name(q.resolution)
    where = ["sensor = ?", "metric = ?"]
    args: list[object] = [q.sensor, q.metric]
    if q.tenant is not None:  # None: every tenant (an open API)
        where.insert(0, "tenant = ?")
        args.insert(0, q.tenant)
    if q.gateway is not None:
        where.append("gateway = ?")
        args.append(q.gateway)
    if q.since_us is not None:
        # A bucket that starts before ``since`` but holds readings after it is part of the range.
        where.append("bucket_us > ?")
        args.append(q.since_us - WIDTH_US[q.resolution])
    if q.until_us is not None:
        where.append("bucket_us < ?")
        args.append(q.until_us)
    if q.after_us is not None:
        where.append("bucket_us > ?")
        args.append(q.after_us)
    sql = (
        f"SELECT bucket_us, vmin, vmax, vsum, n, vlast, last_us FROM {name} WHERE {' AND '.join(where)}"
        " ORDER BY bucket_us"
    )
    return sql, args


def fold(rows: Iterable[Sequence[Any]], limit: int) -> list[Bucket]:
    """Buckets from rows in time order, those of several gateways folded; stops once ``limit`` are complete."""
    out: list[Bucket] = []
    for b, lo, hi, total, n, last, last_us in rows:
        if out and out[-1].start_us == b:
            p = out[-1]
            newer = last_us > p.last_us
            out[-1] = Bucket(
                b, min(p.min, lo), max(p.max, hi), p.sum + total, p.count + n,
                last if newer else p.last, last_us if newer else p.last_us,
            )  # fmt: skip
        elif len(out) == limit:
            break
        else:
            out.append(Bucket(b, lo, hi, total, n, last, last_us))
    return out


def select(conn: sqlite3.Connection, q: RollupQuery) -> list[Bucket]:
    """The buckets of ``q`` in time order."""
    sql, args = select_sql(q)
    return fold(conn.execute(sql, args), q.limit)


def choose(resolution: Resolution, span_us: int | None, points: int) -> str:
    """The resolution to answer with: ``auto`` is the coarsest that still gives ``points`` buckets over the span."""
    if resolution != "auto":
        return resolution
    assert span_us is not None
    for name, width in WIDTH_US.items():
        if span_us // width >= points:
            return name
    return "raw"
