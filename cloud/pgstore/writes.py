"""A batch of packs into PostgreSQL: COPY into a staging table, insert each reading once, fold the new numbers.

One statement does the work after the COPY: the ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` names the readings
that were new, and two more inserts in the same ``WITH`` fold only those into the 1-minute and 1-hour rollups
(``ON CONFLICT DO UPDATE``, the same arithmetic as :mod:`cloud.rollups`): a reading sent again changes nothing, a
late one corrects its bucket. The caller runs it inside the commit's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from cloud.store import PackWrite

STAGING = """CREATE TEMP TABLE IF NOT EXISTS roost_staging (
    pack    INTEGER NOT NULL,
    tenant  TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    sensor  TEXT COLLATE "C" NOT NULL,
    metric  TEXT COLLATE "C" NOT NULL,
    ts_us   BIGINT NOT NULL,
    vnum    DOUBLE PRECISION,
    vbool   BOOLEAN,
    vstr    TEXT,
    unit    TEXT
) ON COMMIT DELETE ROWS"""
_COPY = (
    "COPY roost_staging (pack, tenant, gateway, sensor, metric, ts_us, vnum, vbool, vstr, unit)"
    " FROM STDIN (FORMAT BINARY)"
)
_TYPES = ["int4", "text", "text", "text", "text", "int8", "float8", "bool", "text", "text"]

_MINUTE = 60_000_000
_HOUR = 3_600_000_000


def _floor(column: str, width: int) -> str:
    return f"{column} - (({column} %% {width}) + {width}) %% {width}"  # floored, also before 1970 (%%: a literal %)


_UPDATE = """ON CONFLICT (tenant, sensor, metric, gateway, bucket_us) DO UPDATE SET
        vmin = least(r.vmin, excluded.vmin), vmax = greatest(r.vmax, excluded.vmax),
        vsum = r.vsum + excluded.vsum, n = r.n + excluded.n,
        vlast = CASE WHEN excluded.last_us > r.last_us THEN excluded.vlast ELSE r.vlast END,
        last_us = greatest(r.last_us, excluded.last_us)"""
_ROLLUP_COLUMNS = "(tenant, sensor, metric, gateway, bucket_us, vmin, vmax, vsum, n, vlast, last_us)"
# The new numbers summed per minute; the hours are summed from the minutes (a minute lies in one hour). The last
# value of a bucket is the one of its latest time: max() of [time, value] pairs needs no sort (times of one series
# are distinct; µs since the epoch are exact in a double until the year 2255).
_FOLDS = f"""
, mins AS (
    SELECT tenant, sensor, metric, gateway, {_floor("ts_us", _MINUTE)} AS bucket_us, min(vnum) AS vmin,
           max(vnum) AS vmax, sum(vnum) AS vsum, count(*) AS n, (max(ARRAY[ts_us::float8, vnum]))[2] AS vlast,
           max(ts_us) AS last_us
    FROM ins WHERE vnum IS NOT NULL GROUP BY 1, 2, 3, 4, 5
), m AS (
    INSERT INTO rollups_1m AS r {_ROLLUP_COLUMNS} SELECT * FROM mins {_UPDATE}
), h AS (
    INSERT INTO rollups_1h AS r {_ROLLUP_COLUMNS}
    SELECT tenant, sensor, metric, gateway, {_floor("bucket_us", _HOUR)}, min(vmin), max(vmax), sum(vsum),
           sum(n)::bigint, (max(ARRAY[last_us::float8, vlast]))[2], max(last_us)
    FROM mins GROUP BY 1, 2, 3, 4, 5 {_UPDATE}
)"""
# How many readings were new: the total, and only when some were not (a duplicate), which pack each new one came
# from (the first that carried it). The condition holds no column, so PostgreSQL skips the join when it is false.
_COUNT = """
, total AS (SELECT count(*) AS n FROM ins)
SELECT -1, n FROM total
UNION ALL
SELECT pack, count(*) FROM (
    SELECT min(s.pack) AS pack FROM ins JOIN roost_staging s USING (tenant, gateway, sensor, metric, ts_us)
    WHERE (SELECT n FROM total) < %s
    GROUP BY ins.tenant, ins.gateway, ins.sensor, ins.metric, ins.ts_us
) firsts GROUP BY pack"""
_INSERT = (
    "WITH ins AS (INSERT INTO readings (tenant, gateway, sensor, metric, ts_us, vnum, vbool, vstr, unit)"
    " SELECT tenant, gateway, sensor, metric, ts_us, vnum, vbool, vstr, unit FROM roost_staging"
    " ON CONFLICT DO NOTHING RETURNING tenant, gateway, sensor, metric, ts_us, vnum)"
)
SQL = {True: _INSERT + _FOLDS + _COUNT, False: _INSERT + _COUNT}
"""The statement after the COPY, with and without the rollups."""


def row_values(value: Any) -> tuple[float | None, bool | None, str | None]:
    """(vnum, vbool, vstr) of a reading's value: exactly one is set."""
    if type(value) is float:
        return value, None, None
    if type(value) is bool:
        return None, value, None
    if isinstance(value, str):
        return None, None, value
    if isinstance(value, int):
        return float(value), None, None
    raise TypeError(f"a reading's value must be a number, true/false or a string, not {type(value).__name__}")


def times(packs: Sequence[PackWrite]) -> tuple[int, int] | None:
    """The earliest and latest reading time of a batch (None: no readings)."""
    lo = hi = None
    for pack in packs:
        for r in pack.readings:
            ts = r.ts_us
            if lo is None or ts < lo:
                lo = ts
            if hi is None or ts > hi:
                hi = ts
    return None if lo is None or hi is None else (lo, hi)


async def insert(cur: psycopg.AsyncCursor[tuple[Any, ...]], packs: Sequence[PackWrite], *, rollups: bool) -> list[int]:
    """Insert the packs' readings (in the caller's transaction); how many were new in each pack."""
    inserted = [0] * len(packs)
    if not any(p.readings for p in packs):
        return inserted
    async with cur.copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for i, pack in enumerate(packs):
            t, g = pack.tenant, pack.gateway
            for r in pack.readings:
                v = r.value
                if type(v) is float:
                    await copy.write_row((i, t, g, r.sensor, r.metric, round(r.ts * 1_000_000), v, None, None, r.unit))
                else:
                    num, flag, text = row_values(v)
                    await copy.write_row((i, t, g, r.sensor, r.metric, r.ts_us, num, flag, text, r.unit))
    staged = sum(len(p.readings) for p in packs)
    await cur.execute(SQL[rollups], (staged,))
    counts = dict(await cur.fetchall())
    if counts.pop(-1) == staged:
        return [len(p.readings) for p in packs]  # all new (the usual case)
    for pack_index, n in counts.items():
        inserted[pack_index] = n
    return inserted
