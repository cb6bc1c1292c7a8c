"""A day's figures per series, per hour and per gateway, computed with DuckDB SQL over the day's Parquet export.

A *series* is one (gateway, sensor, metric). Its completeness compares the readings received with the
readings expected at the series' own typical interval that day: the median of the gaps between its
consecutive readings. ``expected = round(86400 s / median gap)`` and ``completeness = min(1, received /
expected)``; a series with fewer than two readings has no interval, so no completeness (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.reports.traffic import SLOT_S

DAY_S = 86_400

_SERIES = """
WITH r AS (
    SELECT gateway, sensor, metric, epoch_us("time") AS t, value, value_bool, value_text, unit
    FROM read_parquet($path)
),
gaps AS (
    SELECT gateway, sensor, metric, t - lag(t) OVER (PARTITION BY gateway, sensor, metric ORDER BY t) AS gap FROM r
)
SELECT s.gateway, s.sensor, s.metric, s.n, s.numbers, s.vmin, s.vmax, s.vavg, s.unit, m.median_gap_us
FROM (
    SELECT gateway, sensor, metric, count(*) AS n, count(value) AS numbers,
           min(value) AS vmin, max(value) AS vmax, avg(value) AS vavg, max(unit) AS unit
    FROM r GROUP BY gateway, sensor, metric
) s
LEFT JOIN (
    SELECT gateway, sensor, metric, median(gap) AS median_gap_us FROM gaps WHERE gap > 0
    GROUP BY gateway, sensor, metric
) m USING (gateway, sensor, metric)
ORDER BY s.gateway, s.sensor, s.metric
"""

_HOURLY = """
SELECT gateway, sensor, metric, CAST((epoch_us("time") - $day_us) // 3600000000 AS INTEGER) AS hour,
       min(value), avg(value), max(value)
FROM read_parquet($path) WHERE value IS NOT NULL
GROUP BY ALL ORDER BY gateway, sensor, metric, hour
"""

_SLOTS = f"""
SELECT DISTINCT gateway, CAST((epoch_us("time") - $day_us) // {SLOT_S * 1_000_000} AS INTEGER) AS slot
FROM read_parquet($path) ORDER BY gateway, slot
"""


@dataclass(frozen=True, slots=True)
class SeriesFigures:
    """One series' day: readings received, numeric min/max/avg, typical interval and completeness."""

    gateway: str
    sensor: str
    metric: str
    unit: str | None
    readings: int
    numbers: int
    min: float | None
    max: float | None
    avg: float | None
    interval_s: float | None
    expected: int | None
    completeness: float | None


@dataclass(frozen=True, slots=True)
class HourFigures:
    """One hour (0-23 of the day) of a numeric series: min, avg, max."""

    hour: int
    min: float
    avg: float
    max: float


@dataclass(frozen=True, slots=True)
class DayFigures:
    """What DuckDB computed from the day's export."""

    series: list[SeriesFigures]
    hourly: dict[tuple[str, str, str], list[HourFigures]]
    reading_slots: dict[str, set[int]]
    """Per gateway, the 5-minute slots of the day that hold at least one of its readings."""


def _series(row: tuple[Any, ...]) -> SeriesFigures:
    gateway, sensor, metric, n, numbers, vmin, vmax, vavg, unit, gap_us = row
    interval = float(gap_us) / 1e6 if gap_us is not None else None
    expected = max(1, round(DAY_S / interval)) if interval else None
    done = min(1.0, n / expected) if expected else None
    return SeriesFigures(gateway, sensor, metric, unit, n, numbers, vmin, vmax, vavg, interval, expected, done)


def compute(parquet: Path, day_start_us: int) -> DayFigures:
    """The figures of the export at ``parquet`` (the readings of one day starting at ``day_start_us``)."""
    import duckdb  # about 27 MB: loaded by the first report, not at start

    db = duckdb.connect()
    try:
        params = {"path": str(parquet)}
        series = [_series(r) for r in db.execute(_SERIES, params).fetchall()]
        hourly: dict[tuple[str, str, str], list[HourFigures]] = {}
        for g, s, m, hour, lo, mean, hi in db.execute(_HOURLY, params | {"day_us": day_start_us}).fetchall():
            hourly.setdefault((g, s, m), []).append(HourFigures(hour, lo, mean, hi))
        slots: dict[str, set[int]] = {}
        for g, slot in db.execute(_SLOTS, params | {"day_us": day_start_us}).fetchall():
            slots.setdefault(g, set()).add(slot)
    finally:
        db.close()
    return DayFigures(series, hourly, slots)
