"""Conditions: per subject, a truth that changes over time; its changes become *signals*.

A condition stage takes samples (readings, or window aggregates) and emits signals
``(kind, subject key, sample)`` where kind is

- ``"raise"`` when the condition becomes true for that subject (once: a de-duplicated alert),
- ``"clear"`` when it becomes false again (once),
- ``"sample"`` for every sample it evaluated (only when an action asked for samples).

Kinds: threshold (above / below with a separate clear level, or equals; optionally "for at least
T"), change (by more than X since the previous sample, or within T), absence (no reading for T)
and sequence (a reading matching ``first``, then one matching ``then`` within T). Absence and
"for at least T" fire from the clock alone, without a new reading: they set :attr:`Stage.due`.

State: one small list per subject, capped by ``Limits.max_subjects`` (the oldest subject is
evicted; an alert it had raised is then forgotten, counted as ``overflow``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from rules import model
from rules.patterns import matcher
from rules.stage import Stage
from rules.subjects import KeyFn, Limits
from wire.reading import Reading

Signal = tuple[str, Hashable, Reading]


class ConditionStage(Stage):
    """Common state handling: ``state[key][0]`` is whether the condition is true (the alert raised)."""

    def __init__(self, key: KeyFn, limits: Limits, samples: bool) -> None:
        super().__init__()
        self.key = key
        self.limits = limits
        self.samples = samples
        self.state: dict[Hashable, list[Any]] = {}

    def _entry(self, k: Hashable, fresh: list[Any]) -> list[Any]:
        if len(self.state) >= self.limits.max_subjects:
            del self.state[next(iter(self.state))]
            self.overflow += 1
        self.state[k] = fresh
        return fresh

    def active(self) -> list[tuple[Hashable, Reading]]:
        """The subjects whose condition is true now, with their last sample (to clear them on removal)."""
        return [(k, e[-1]) for k, e in self.state.items() if e[0] and isinstance(e[-1], Reading)]


class Passthrough(Stage):
    """No condition: every sample is a ``sample`` signal."""

    def __init__(self, key: KeyFn) -> None:
        super().__init__()
        self.key = key

    def process(self, items: list[Reading], clock: float) -> list[Signal]:
        key = self.key
        return [("sample", key(s), s) for s in items]


class ThresholdStage(ConditionStage):
    """above / below with hysteresis, or equals; raised only after holding for ``for_`` seconds."""

    def __init__(self, cond: model.Threshold, key: KeyFn, limits: Limits, samples: bool) -> None:
        super().__init__(key, limits, samples)
        self.for_ = cond.for_
        if cond.above is not None:
            self.mode = 0
            self.hi = cond.above
            self.lo = cond.clear_below if cond.clear_below is not None else cond.above
        elif cond.below is not None:
            self.mode = 1
            self.lo = cond.below
            self.hi = cond.clear_above if cond.clear_above is not None else cond.below
        else:
            self.mode = 2
            self.equals = cond.equals
            self.hi = self.lo = 0.0

    def process(self, items: list[Reading], clock: float) -> list[Signal]:
        out: list[Signal] = []
        state, key, mode, hi, lo, for_ = self.state, self.key, self.mode, self.hi, self.lo, self.for_
        samples = self.samples
        for s in items:
            v: Any = s[2]
            if mode != 2 and v.__class__ is str:
                self.skipped += 1
                continue
            k = key(s)
            e = state.get(k)
            if e is None:
                e = self._entry(k, [False, None, s])
            else:
                e[2] = s
            if mode == 0:
                hit, release = v > hi, v < lo
            elif mode == 1:
                hit, release = v < lo, v > hi
            else:
                hit = v == self.equals
                release = not hit
            if e[0]:
                if release:
                    e[0] = False
                    out.append(("clear", k, s))
            elif hit:
                if for_ <= 0:
                    e[0] = True
                    out.append(("raise", k, s))
                elif e[1] is None:
                    e[1] = s[3]
                    self.due = min(self.due, s[3] + for_)
                elif s[3] - e[1] >= for_:
                    e[0] = True
                    e[1] = None
                    out.append(("raise", k, s))
            else:
                e[1] = None
            if samples:
                out.append(("sample", k, s))
        if clock >= self.due:
            self._tick(clock, out)
        return out

    def _tick(self, clock: float, out: list[Signal]) -> None:
        # "for at least T" with no new reading: the condition still holds, so it has held long enough
        for_, due = self.for_, math.inf
        for k, e in self.state.items():
            since = e[1]
            if since is None or e[0]:
                continue
            if since + for_ <= clock:
                e[0] = True
                e[1] = None
                out.append(("raise", k, e[2]._replace(ts=since + for_)))
            elif since + for_ < due:
                due = since + for_
        self.due = due


class ChangeStage(ConditionStage):
    """True when a sample differs by more than ``by`` from the previous one (or from any within ``within``)."""

    def __init__(self, cond: model.Change, key: KeyFn, limits: Limits, samples: bool) -> None:
        super().__init__(key, limits, samples)
        self.by = cond.by
        self.within = cond.within
        self.up = cond.direction in ("up", "any")
        self.down = cond.direction in ("down", "any")

    def process(self, items: list[Reading], clock: float) -> list[Signal]:
        out: list[Signal] = []
        state, key, by, up, down = self.state, self.key, self.by, self.up, self.down
        within, cap = self.within, self.limits.max_change_points
        for s in items:
            v = s[2]
            if v.__class__ is str:
                self.skipped += 1
                continue
            k = key(s)
            e = state.get(k)
            if not within:
                if e is None:
                    self._entry(k, [False, v, s])
                    continue
                d = v - e[1]
                hit = (up and d > by) or (down and -d > by)
                e[1] = v
            else:
                ts = s[3]
                if e is None:
                    e = self._entry(k, [False, deque(), deque(), s])
                lows, highs = e[1], e[2]
                horizon = ts - within
                while lows and lows[0][0] < horizon:
                    lows.popleft()
                while highs and highs[0][0] < horizon:
                    highs.popleft()
                hit = bool(lows) and ((up and v - lows[0][1] > by) or (down and highs[0][1] - v > by))
                # monotonic deques: the window's minimum and maximum in O(1) amortized per sample
                while lows and lows[-1][1] >= v:
                    lows.pop()
                lows.append((ts, v))
                while highs and highs[-1][1] <= v:
                    highs.pop()
                highs.append((ts, v))
                if len(lows) > cap:
                    lows.popleft()
                    self.overflow += 1
                if len(highs) > cap:
                    highs.popleft()
                    self.overflow += 1
            e[-1] = s
            if hit and not e[0]:
                e[0] = True
                out.append(("raise", k, s))
            elif not hit and e[0]:
                e[0] = False
                out.append(("clear", k, s))
            if self.samples:
                out.append(("sample", k, s))
        return out


class AbsenceStage(ConditionStage):
    """True when a subject has sent nothing for ``for_`` seconds; cleared by its next reading.

    Subjects are known from their first reading; a rule that names its sensors exactly also expects
    them from the start (``expected``), so a sensor that never reports is noticed too.
    """

    def __init__(
        self, cond: model.Absence, key: KeyFn, limits: Limits, samples: bool, expected: list[tuple[Hashable, Reading]]
    ) -> None:
        super().__init__(key, limits, samples)
        self.for_ = cond.for_
        self.expected = expected
        self.started = False

    def process(self, items: list[Reading], clock: float) -> list[Signal]:
        out: list[Signal] = []
        if not self.started:
            self.started = True
            start = min([clock, *(s[3] for s in items)]) if items else clock
            for k, template in self.expected:
                self._entry(k, [False, start, template._replace(ts=start)])
            if self.expected:
                self.due = min(self.due, start + self.for_)
        state, key, for_ = self.state, self.key, self.for_
        for s in items:
            k = key(s)
            e = state.get(k)
            ts = s[3]
            if e is None:
                self._entry(k, [False, ts, s])
                self.due = min(self.due, ts + for_)
            else:
                if e[0]:
                    e[0] = False
                    out.append(("clear", k, s))
                    self.due = min(self.due, ts + for_)
                elif ts - e[1] > for_:  # a silence inside this batch (a replay, or a late flush)
                    out.append(("raise", k, e[2]._replace(ts=e[1] + for_)))
                    out.append(("clear", k, s))
                if ts >= e[1]:
                    e[1] = ts
                    e[2] = s
            if self.samples:
                out.append(("sample", k, s))
        if clock >= self.due:
            self._tick(clock, out)
        return out

    def _tick(self, clock: float, out: list[Signal]) -> None:
        for_, due = self.for_, math.inf
        for k, e in self.state.items():
            if e[0]:
                continue
            deadline = e[1] + for_
            if deadline <= clock:
                e[0] = True
                out.append(("raise", k, e[2]._replace(ts=deadline)))
            elif deadline < due:
                due = deadline
        self.due = due


def _step(m: model.Matcher) -> Callable[[Reading], bool]:
    sensor_ok, metric_ok = matcher(m.sensors), matcher(m.metrics)
    equals, above, below = m.equals, m.above, m.below

    def test(s: Reading) -> bool:
        if not (sensor_ok(s[0]) and metric_ok(s[1])):
            return False
        v = s[2]
        if equals is not None and v != equals:
            return False
        if above is not None or below is not None:
            if v.__class__ is str:
                return False
            if above is not None and not v > above:  # type: ignore[operator]
                return False
            if below is not None and not v < below:  # type: ignore[operator]
                return False
        return True

    return test


class SequenceStage(ConditionStage):
    """True when ``then`` follows ``first`` within ``within`` seconds (same subject); cleared by the next ``first``."""

    def __init__(self, cond: model.SequenceCondition, key: KeyFn, limits: Limits, samples: bool) -> None:
        super().__init__(key, limits, samples)
        self.first = _step(cond.first)
        self.then = _step(cond.then)
        self.within = cond.within

    def process(self, items: list[Reading], clock: float) -> list[Signal]:
        out: list[Signal] = []
        state, key, first, then, within = self.state, self.key, self.first, self.then, self.within
        for s in items:
            is_then, is_first = then(s), first(s)
            if not (is_then or is_first):
                continue
            k = key(s)
            e = state.get(k)
            if e is None:
                e = self._entry(k, [False, None, s])
            e[2] = s
            started = e[1]
            if is_then and started is not None and 0 <= s[3] - started <= within:
                e[1] = None
                if not e[0]:
                    e[0] = True
                    out.append(("raise", k, s))
            elif is_first:
                e[1] = s[3]
                if e[0]:
                    e[0] = False
                    out.append(("clear", k, s))
            if self.samples:
                out.append(("sample", k, s))
        return out


def condition_stage(
    cond: model.Condition | None,
    key: KeyFn,
    limits: Limits,
    *,
    samples: bool,
    expected: list[tuple[Hashable, Reading]] | None = None,
) -> Stage:
    """The stage testing ``cond`` (a pass-through when there is none)."""
    if cond is None:
        return Passthrough(key)
    if isinstance(cond, model.Threshold):
        return ThresholdStage(cond, key, limits, samples)
    if isinstance(cond, model.Change):
        return ChangeStage(cond, key, limits, samples)
    if isinstance(cond, model.Absence):
        return AbsenceStage(cond, key, limits, samples, expected or [])
    return SequenceStage(cond, key, limits, samples)
