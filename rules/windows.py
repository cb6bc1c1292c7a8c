"""Windows: tumbling, sliding and session windows by event time with an allowed lateness; count windows.

Each window stage turns readings into *samples*: one Reading per closed window and subject, whose
value is the window's aggregate, whose timestamp is the window's end (the last reading's for count
and session windows) and whose sensor, metric and unit are those of the subject's last reading.

Event time. Readings carry ``ts``; the engine's clock is the latest timestamp seen (or the
scheduler's time when later). A time window ``[start, end)`` closes, and is emitted once, when the
clock reaches ``end + allowed_lateness``; until then a late reading still counts. A reading whose
windows have all closed is dropped and counted as ``late``.

Tumbling and sliding windows share one implementation: readings go into *panes* of ``every``
seconds (tumbling: ``every == size``), and a window is the ``size / every`` panes that end at its
end. Panes are aligned to the Unix epoch, so a 1 h window is an hour of the clock.

``count_distinct`` (tumbling and sliding windows only) keeps each reading's sensor id instead of its
value and counts the distinct ones. Unlike the other aggregates it also says when a subject's count
fell to nothing: the first window after the last one that held readings is emitted with 0, so a
condition on it ("more than three gateways offline") clears.

Memory: per subject, the open panes (or count window, or sessions) with at most
``Limits.max_window_items`` values each; subjects are capped by ``Limits.max_subjects`` (the
oldest is evicted and its open windows are lost, counted as ``overflow``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from typing import Any

from rules.aggregates import AggFn, counts_sensors, function, needs_ts
from rules.model import Aggregate, Window
from rules.stage import Stage
from rules.subjects import KeyFn, Limits
from wire.reading import Reading


class TimeWindows(Stage):
    """Tumbling (``k == 1``) and sliding (``k`` panes per window) windows by event time."""

    def __init__(self, window: Window, agg: Aggregate, key: KeyFn, limits: Limits) -> None:
        super().__init__()
        self.every = window.every
        self.k = round(window.size / window.every)
        self.lateness = window.allowed_lateness
        self.fn: AggFn = function(agg)
        self.with_ts = needs_ts(agg)
        self.distinct = counts_sensors(agg)
        self.pick = 0 if self.distinct else 2  # the field of a reading the window keeps: sensor id or value
        self.numeric = agg.fn not in ("count", "count_distinct")
        self.key = key
        self.limits = limits
        # count_distinct: subject -> (index of the first empty window after its readings, its last reading)
        self.zeros: dict[Hashable, tuple[int, Reading]] = {}
        # subject -> [panes: {pane index: values}, ts panes: {pane index: timestamps} or None, last reading]
        self.groups: dict[Hashable, list[Any]] = {}
        self.closed = -math.inf  # every window ending at or before this pane index has been emitted

    def process(self, items: list[Reading], clock: float) -> list[Reading]:
        if items:
            self._add(items)
        out: list[Reading] = []
        if clock >= self.due or (self.due == math.inf and self.groups):
            self._close(clock, out)
        return out

    def _add(self, items: list[Reading]) -> None:
        every, oldest_open, key = self.every, self.closed - self.k + 2, self.key
        groups, cap, numeric, with_ts = self.groups, self.limits.max_window_items, self.numeric, self.with_ts
        pick, zeros = self.pick, self.zeros
        for r in items:
            v = r[pick]
            if numeric and v.__class__ is str:
                self.skipped += 1
                continue
            p = int(r[3] // every)
            if p < oldest_open:
                self.late += 1
                continue
            k = key(r)
            g = groups.get(k)
            if g is None:
                if len(groups) >= self.limits.max_subjects:
                    del groups[next(iter(groups))]
                    self.overflow += 1
                g = groups[k] = [{}, {} if with_ts else None, r]
                if zeros and k in zeros and p <= zeros[k][0]:  # that window is not empty after all
                    del zeros[k]
            g[2] = r
            vals = g[0].get(p)
            if vals is None:
                vals = g[0][p] = []
                if with_ts:
                    g[1][p] = []
            if len(vals) >= cap:
                self.overflow += 1
                continue
            vals.append(v)
            if with_ts:
                g[1][p].append(r[3])

    def _close(self, clock: float, out: list[Reading]) -> None:
        c_new = math.floor((clock - self.lateness) / self.every) - 1
        c_old = self.closed
        if c_new > c_old:
            k1, every, fn = self.k - 1, self.every, self.fn
            empty: list[Hashable] = []
            for gk, g in self.groups.items():
                panes, tpanes, last = g
                if k1 == 0:
                    ends = sorted(q for q in panes if q <= c_new)
                else:
                    span: set[int] = set()
                    for q in panes:
                        lo = q if q > c_old else int(c_old) + 1
                        span.update(range(lo, min(q + k1, c_new) + 1))
                    ends = sorted(span)
                for p in ends:
                    if k1 == 0:
                        vals = panes[p]
                        stamps = tpanes[p] if tpanes is not None else vals
                    else:
                        vals, stamps = [], []
                        for q in range(p - k1, p + 1):
                            if q in panes:
                                vals.extend(panes[q])
                                if tpanes is not None:
                                    stamps.extend(tpanes[q])
                    if vals:
                        out.append(Reading(last[0], last[1], fn(vals, stamps), (p + 1) * every, last[4]))
                for q in [q for q in panes if q + k1 <= c_new]:
                    del panes[q]
                    if tpanes is not None:
                        del tpanes[q]
                if not panes:
                    empty.append(gk)
                    if self.distinct and ends:
                        self.zeros[gk] = (ends[-1] + 1, last)
            for gk in empty:
                del self.groups[gk]
            if self.zeros:
                self._zeros(c_new, out)
            self.closed = c_new
        # the next window end after the closed ones: nothing is due before it
        self.due = (self.closed + 2) * self.every + self.lateness if self.groups or self.zeros else math.inf

    def _zeros(self, c_new: int, out: list[Reading]) -> None:
        # count_distinct: the first empty window after a subject's readings counts 0, once
        every = self.every
        for gk, (p, last) in list(self.zeros.items()):
            if p <= c_new and gk not in self.groups:
                out.append(Reading(last[0], last[1], 0.0, (p + 1) * every, last[4]))
                del self.zeros[gk]
            elif p <= c_new:
                del self.zeros[gk]


class CountWindows(Stage):
    """Every ``count`` readings of a subject (in arrival order) make one window; the next starts ``step`` later."""

    def __init__(self, window: Window, agg: Aggregate, key: KeyFn, limits: Limits) -> None:
        super().__init__()
        self.count = window.count
        self.step = window.step or window.count
        self.fn = function(agg)
        self.numeric = agg.fn != "count"
        self.key = key
        self.limits = limits
        self.groups: dict[Hashable, tuple[list[Any], list[float]]] = {}

    def process(self, items: list[Reading], clock: float) -> list[Reading]:
        out: list[Reading] = []
        groups, key, count, numeric = self.groups, self.key, self.count, self.numeric
        for r in items:
            v = r[2]
            if numeric and v.__class__ is str:
                self.skipped += 1
                continue
            k = key(r)
            g = groups.get(k)
            if g is None:
                if len(groups) >= self.limits.max_subjects:
                    del groups[next(iter(groups))]
                    self.overflow += 1
                g = groups[k] = ([], [])
            vals, stamps = g
            vals.append(v)
            stamps.append(r[3])
            if len(vals) >= count:
                out.append(Reading(r[0], r[1], self.fn(vals, stamps), max(stamps), r[4]))
                del vals[: self.step]
                del stamps[: self.step]
        return out


class SessionWindows(Stage):
    """A session is a run of a subject's readings with gaps shorter than ``gap``; it closes after ``gap`` of silence.

    Each subject keeps its open sessions sorted by start (a late reading may open or extend an older
    one, and join two sessions it falls between). A session closes when the clock passes its last
    reading + gap + allowed lateness.
    """

    def __init__(self, window: Window, agg: Aggregate, key: KeyFn, limits: Limits) -> None:
        super().__init__()
        self.gap = window.gap
        self.lateness = window.allowed_lateness
        self.fn = function(agg)
        self.numeric = agg.fn != "count"
        self.key = key
        self.limits = limits
        # subject -> sessions sorted by start: [start, last, values, timestamps, last reading]
        self.groups: dict[Hashable, list[list[Any]]] = {}
        self.clock = -math.inf

    def process(self, items: list[Reading], clock: float) -> list[Reading]:
        out: list[Reading] = []
        if items:
            self._add(items, out)
        self.clock = max(self.clock, clock)
        if clock >= self.due:
            self._close(clock, out)
        return out

    def _emit(self, s: list[Any], out: list[Reading]) -> None:
        if not s[2]:  # every value was over the cap's limit or a string
            return
        last = s[4]
        out.append(Reading(last[0], last[1], self.fn(s[2], s[3]), s[1], last[4]))

    def _add(self, items: list[Reading], out: list[Reading]) -> None:
        gap, groups, key, cap = self.gap, self.groups, self.key, self.limits.max_window_items
        for r in items:
            v, ts = r[2], r[3]
            if self.numeric and v.__class__ is str:
                self.skipped += 1
                continue
            k = key(r)
            sessions = groups.get(k)
            if sessions is None:
                if len(groups) >= self.limits.max_subjects:
                    del groups[next(iter(groups))]
                    self.overflow += 1
                sessions = groups[k] = []
            s: list[Any] | None
            cur = sessions[-1] if sessions else None
            if cur is not None and cur[0] - gap < ts < cur[1] + gap:  # the common case: the latest session goes on
                s = cur
                i = len(sessions) - 1
            else:
                i = next((j for j, x in enumerate(sessions) if x[0] - gap < ts < x[1] + gap), -1)
                s = sessions[i] if i >= 0 else None
            if s is None:
                if ts + gap + self.lateness <= self.clock:
                    self.late += 1
                    continue
                s = [ts, ts, [], [], r]
                starts = [x[0] for x in sessions]
                sessions.insert(bisect.bisect(starts, ts), s)
                self.due = min(self.due, ts + gap + self.lateness)
            else:
                s[0] = min(s[0], ts)
                if ts >= s[1]:
                    s[1] = ts
                    s[4] = r
            if len(s[2]) >= cap:
                self.overflow += 1
            else:
                s[2].append(v)
                s[3].append(ts)
            if i >= 0:
                self._merge(sessions, i)
            elif len(sessions) > self.limits.max_sessions:
                self._emit(sessions.pop(0), out)  # the oldest goes out early rather than growing without bound
                self.overflow += 1

    def _merge(self, sessions: list[list[Any]], i: int) -> None:
        # a reading that filled the gap between two sessions makes them one
        gap = self.gap
        i = min(i, len(sessions) - 1)
        while i + 1 < len(sessions) and sessions[i + 1][0] - sessions[i][1] < gap:
            nxt = sessions.pop(i + 1)
            cur = sessions[i]
            cur[2].extend(nxt[2])
            cur[3].extend(nxt[3])
            if nxt[1] >= cur[1]:
                cur[1], cur[4] = nxt[1], nxt[4]
        while i > 0 and sessions[i][0] - sessions[i - 1][1] < gap:
            cur = sessions.pop(i)
            prev = sessions[i - 1]
            prev[2].extend(cur[2])
            prev[3].extend(cur[3])
            if cur[1] >= prev[1]:
                prev[1], prev[4] = cur[1], cur[4]
            i -= 1

    def _close(self, clock: float, out: list[Reading]) -> None:
        horizon = self.gap + self.lateness
        due = math.inf
        empty: list[Hashable] = []
        for k, sessions in self.groups.items():
            while sessions and sessions[0][1] + horizon <= clock:
                self._emit(sessions.pop(0), out)
            for s in sessions:
                due = min(due, s[1] + horizon)
            if not sessions:
                empty.append(k)
        for k in empty:
            del self.groups[k]
        self.due = due


def window_stage(window: Window, agg: Aggregate, key: KeyFn, limits: Limits) -> Stage:
    """The stage for ``window`` aggregating with ``agg``."""
    if window.kind in ("tumbling", "sliding"):
        return TimeWindows(window, agg, key, limits)
    if window.kind == "count":
        return CountWindows(window, agg, key, limits)
    return SessionWindows(window, agg, key, limits)
