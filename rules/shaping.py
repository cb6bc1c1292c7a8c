"""Uplink shaping: what the buffer keeps of the readings a shaping rule selects.

- **deadband**: a reading of a series (sensor and metric) is kept when it differs from the last
  *kept* one by more than ``delta`` (or ``percent`` of it), when it is not a number and differs,
  or when ``max_interval`` has passed since the last kept one (a heartbeat, so the cloud can tell a
  steady value from a dead sensor). Everything else is dropped and counted as ``shaped_out``.
- **downsample**: every numeric reading is dropped (counted) and folded into its series' period of
  ``every`` seconds (aligned to the epoch); when the clock passes the period's end plus the
  allowed lateness, the period becomes derived readings, one per statistic: the first listed keeps
  the metric's own name (the series goes on at a lower rate), the others are ``{metric}_{stat}``.
  Readings that are not numbers pass unchanged.

Shaping runs only in :meth:`rules.engine.Engine.shape`, never in :meth:`~rules.engine.Engine.push`:
processing rules (alerts, commands) always see every raw reading, so shaping the uplink never
costs an alert. State: one small record per series, capped by ``Limits.max_subjects``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from rules import model
from rules.outputs import DerivedOut, Output
from rules.stage import Stage
from rules.subjects import Limits
from wire.reading import Reading


class DeadbandStage(Stage):
    """Keep a series' reading only when it moved enough since the last kept one."""

    def __init__(self, shape: model.Deadband, limits: Limits) -> None:
        super().__init__()
        self.delta = shape.delta
        self.ratio = shape.percent / 100.0
        self.max_interval = shape.max_interval
        self.limits = limits
        self.last: dict[Hashable, tuple[Any, float]] = {}  # series -> (last kept value, its ts)
        self.shaped_out = 0

    def keep(self, items: list[Reading], keep: list[Reading]) -> None:
        """Append to ``keep`` what passes; count the rest."""
        last, delta, ratio, hb = self.last, self.delta, self.ratio, self.max_interval
        dropped = 0
        for r in items:
            k = (r[0], r[1])
            prev = last.get(k)
            v = r[2]
            if prev is not None:
                pv, pts = prev
                if hb and r[3] - pts >= hb:
                    pass
                elif v.__class__ is str or pv.__class__ is str:
                    if v == pv:
                        dropped += 1
                        continue
                else:
                    band = abs(pv) * ratio if ratio else delta
                    if abs(v - pv) <= band:
                        dropped += 1
                        continue
            elif len(last) >= self.limits.max_subjects:
                del last[next(iter(last))]
                self.overflow += 1
            last[k] = (v, r[3])
            keep.append(r)
        self.shaped_out += dropped

    def process(self, items: list[Any], clock: float) -> list[Any]:
        return []


class DownsampleStage(Stage):
    """Fold each series' numeric readings into one record per period; emit the period's statistics."""

    def __init__(self, rule_name: str, shape: model.Downsample, limits: Limits) -> None:
        super().__init__()
        self.rule = rule_name
        self.every = shape.every
        self.lateness = shape.allowed_lateness
        self.stats = shape.stats
        self.limits = limits
        # (series, period) -> [count, sum, min, max, last ts, last value, unit]
        self.periods: dict[tuple[str, str, int], list[Any]] = {}
        self.closed = -math.inf  # periods up to this index have been emitted
        self.shaped_out = 0

    def keep(self, items: list[Reading], keep: list[Reading]) -> None:
        """Fold numeric readings into their periods (dropping them); keep the others."""
        periods, every, closed = self.periods, self.every, self.closed
        dropped = 0
        for r in items:
            v = r[2]
            if v.__class__ is str:
                keep.append(r)
                continue
            p = int(r[3] // every)
            dropped += 1
            if p <= closed:
                self.late += 1
                continue
            k = (r[0], r[1], p)
            acc = periods.get(k)
            if acc is None:
                if len(periods) >= self.limits.max_subjects:
                    self._emit(next(iter(periods)), [])  # the oldest period goes out early rather than being lost
                    self.overflow += 1
                periods[k] = [1, v, v, v, r[3], v, r[4]]
                due = (p + 1) * every + self.lateness
                self.due = min(self.due, due)
                continue
            acc[0] += 1
            acc[1] += v
            if v < acc[2]:  # noqa: PLR1730 - an if is twice as fast as min() per reading
                acc[2] = v
            if v > acc[3]:  # noqa: PLR1730
                acc[3] = v
            if r[3] >= acc[4]:
                acc[4] = r[3]
                acc[5] = v
        self.shaped_out += dropped

    def _emit(self, k: tuple[str, str, int], out: list[Output]) -> None:
        acc = self.periods.pop(k)
        sensor, metric, p = k
        n, total, lo, hi, _ts, last, unit = acc
        values = {"avg": total / n, "min": lo, "max": hi, "sum": total, "count": n, "last": last}
        ts = (p + 1) * self.every
        for i, stat in enumerate(self.stats):
            name = metric if i == 0 else f"{metric}_{stat}"
            reading = Reading(sensor, name, float(values[stat]), ts, None if stat == "count" else unit)
            out.append(DerivedOut(reading, self.rule))

    def process(self, items: list[Any], clock: float) -> list[Output]:
        out: list[Output] = []
        if clock < self.due:
            return out
        c = math.floor((clock - self.lateness) / self.every) - 1
        self.closed = max(self.closed, c)
        for k in [k for k in self.periods if k[2] <= self.closed]:
            self._emit(k, out)
        self.due = min(((p + 1) * self.every + self.lateness for _s, _m, p in self.periods), default=math.inf)
        return out

    def flush(self) -> list[Output]:
        """Emit every open period now (on shutdown or when the rule is replaced: its raw readings are gone)."""
        out: list[Output] = []
        for k in list(self.periods):
            self._emit(k, out)
        self.due = math.inf
        return out


def shape_stage(rule: model.Rule, limits: Limits) -> DeadbandStage | DownsampleStage:
    """The stage of shaping rule ``rule``."""
    assert rule.shape is not None
    if isinstance(rule.shape, model.Deadband):
        return DeadbandStage(rule.shape, limits)
    return DownsampleStage(rule.name, rule.shape, limits)
