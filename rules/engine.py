"""The engine: routes batches of readings to the rules that select them, drives time, collects outputs.

Dispatch. For each (sensor, metric) pair the engine asks every rule once whether it selects it
(exact ids, glob patterns, sensor tags) and caches the answer; a reading then costs one dict
lookup plus one ``append`` per rule that selects it. Rules that select nothing in a batch cost
nothing. The cache holds at most ``Limits.max_routes`` pairs and starts over when full.

Time. The clock is event time: the latest reading timestamp seen, or the scheduler's (or ``now``'s)
time when that is later, so a window closes and an absence fires even when no reading comes. With a
reactivex scheduler the engine keeps one timer armed at the earliest time a rule is due (a
``TestScheduler`` or ``HistoricalScheduler`` in tests and replays, an ``AsyncIOScheduler`` on the
gateway). ``max_future`` keeps a sensor with a clock far ahead from closing everyone's windows.

Isolation. A rule that raises at run time is caught, counted (:meth:`Engine.stats`) and reported
(a warning in the log, an annotation event on its first error); the other rules go on. After
``Limits.disable_after`` errors it is disabled and its open alerts are cleared.

Not thread-safe: call it from one thread (the gateway's event loop), timers included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from reactivex import Observable
from reactivex.abc import DisposableBase, SchedulerBase
from reactivex.subject import Subject

from rules import model
from rules.actions import new_id
from rules.compile import CompiledRule, RuleStats, ShapingRule
from rules.outputs import AnnotationOut, Output
from rules.patterns import matcher
from rules.subjects import Limits, alert_key
from wire.events import MAX_TEXT, Event
from wire.reading import Reading

_ts = itemgetter(3)


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What :meth:`Engine.reload` did, by rule name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


Sink = Callable[[Sequence[Output]], None]
TagMap = Mapping[str, Mapping[str, str]]
TagSource = Callable[[str], Mapping[str, str]]
"""A sensor's tags, asked once per sensor (then cached until :meth:`Engine.refresh_tags`)."""


class Engine:
    """Runs a :class:`~rules.model.RuleSet`; see the module docstring and ``rules/__init__.py``."""

    def __init__(
        self,
        ruleset: model.RuleSet,
        *,
        scheduler: SchedulerBase | None = None,
        now: Callable[[], float] | None = None,
        sink: Sink | None = None,
        tags: TagMap | None = None,
        limits: Limits | None = None,
        max_future: float | None = None,
        tag_source: TagSource | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._tag_source = tag_source
        self._scheduler = scheduler
        if now is None and scheduler is not None:
            sched = scheduler
            now = lambda: sched.now.timestamp()  # noqa: E731, PLW0108 - read the scheduler's clock on each call
        self._now = now
        self._sink = sink
        self._subject: Subject[list[Output]] = Subject()
        self.outputs: Observable[list[Output]] = self._subject
        """Every batch of outputs (one list per push, shape or timer that produced any)."""
        self._pending: list[Output] = []
        self._clock = -math.inf
        self._max_future = max_future
        self._extra_tags: dict[str, dict[str, str]] = {k: dict(v) for k, v in (tags or {}).items()}
        self._timer: DisposableBase | None = None
        self._timer_at = math.inf
        self.events_in = 0
        self.unrouted = 0
        self._disabled: dict[str, CompiledRule] = {}
        self._failed: list[CompiledRule] = []  # rules whose first error is not reported yet
        self._next_due = -math.inf  # no rule is due before this clock
        self._install(ruleset, {}, {})
        if self._now is not None:
            self.advance()  # absence rules expect their named sensors from now on: arm their timers

    # -- set-up ------------------------------------------------------------------------------------

    def _install(
        self, ruleset: model.RuleSet, keep_proc: dict[str, CompiledRule], keep_shape: dict[str, ShapingRule]
    ) -> None:
        self.ruleset = ruleset
        self._tag_rules = [(matcher([p]), dict(t)) for p, t in ruleset.tags]
        self._tag_cache: dict[str, dict[str, str]] = {}
        rules: list[CompiledRule] = []
        shaping: list[ShapingRule] = []
        for r in ruleset.rules:
            if not r.enabled:
                continue
            if r.is_shaping:
                shaping.append(keep_shape.get(r.name) or ShapingRule(r, self.limits))
            else:
                rules.append(keep_proc.get(r.name) or CompiledRule(r, self.limits, self._pending.extend, self._tags_of))
        by_name = ruleset.by_name()
        for c in rules:
            c.rule = by_name[c.name]  # a kept rule: same definition, maybe a new line or description
        for s in shaping:
            s.rule = by_name[s.name]
        for c in rules:
            c.on_error = self._failed.append
        self._rules = rules
        self._shaping = shaping
        self._next_due = -math.inf
        self._route: dict[tuple[str, str], tuple[Callable[[Reading], None], ...]] = {}
        self._shape_route: dict[tuple[str, str], ShapingRule | None] = {}

    def _tags_of(self, sensor: str) -> Mapping[str, str]:
        tags = self._tag_cache.get(sensor)
        if tags is None:
            tags = {}
            for test, t in self._tag_rules:
                if test(sensor):
                    tags.update(t)
            if self._tag_source is not None:
                tags.update(self._tag_source(sensor))
            tags.update(self._extra_tags.get(sensor, {}))
            if len(self._tag_cache) >= self.limits.max_routes:
                self._tag_cache.clear()
            self._tag_cache[sensor] = tags
        return tags

    def set_tags(self, tags: TagMap) -> None:
        """Replace the sensor tags the gateway knows (its paired-sensor registry); selection follows at once."""
        self._extra_tags = {k: dict(v) for k, v in tags.items()}
        self.refresh_tags()

    def refresh_tags(self) -> None:
        """Forget the tags looked up so far (``tag_source`` changed its answers): selection follows at once."""
        self._tag_cache.clear()
        self._route.clear()
        self._shape_route.clear()

    def _resolve(self, key: tuple[str, str]) -> tuple[Callable[[Reading], None], ...]:
        sensor, metric = key
        tags = self._tags_of(sensor)
        found = tuple(
            c.buf.append for c in self._rules if not c.stats.disabled and c.selection.matches(sensor, metric, tags)
        )
        if len(self._route) >= self.limits.max_routes:
            self._route.clear()
        self._route[key] = found
        return found

    # -- the hot path ------------------------------------------------------------------------------

    def push(self, readings: Sequence[Reading]) -> None:
        """Run processing rules on a batch of readings; outputs go to the sink and :attr:`outputs`."""
        if not readings:
            return
        route = self._route
        unrouted = 0
        for r in readings:
            key = (r[0], r[1])
            targets = route.get(key)
            if targets is None:
                targets = self._resolve(key)
            if not targets:
                unrouted += 1
            for add in targets:
                add(r)
        self.events_in += len(readings)
        self.unrouted += unrouted
        clock = self._advance_clock(max(map(_ts, readings)))
        next_due = self._next_due
        for c in self._rules:
            if c.buf:
                c.feed(clock)
                if c.due < next_due:  # noqa: PLR1730
                    next_due = c.due
        self._next_due = next_due
        self._run_due(clock)

    def shape(self, readings: Sequence[Reading]) -> list[Reading]:
        """What the uplink buffer should keep of ``readings`` (uplink shaping rules); see :mod:`rules.shaping`.

        Readings no shaping rule selects are kept as they are. The first shaping rule (in file order)
        that selects a reading decides for it. Downsampled periods come out later as derived readings.
        """
        if not self._shaping or not readings:
            return list(readings)
        keep: list[Reading] = []
        route = self._shape_route
        touched: list[ShapingRule] = []
        for r in readings:
            key = (r[0], r[1])
            target = route[key] if key in route else self._resolve_shape(key)
            if target is None:
                keep.append(r)
            else:
                if not target.buf:
                    touched.append(target)
                target.buf.append(r)
        for s in touched:
            s.keep(keep)
            self._next_due = min(self._next_due, s.due)
        self._run_due(self._advance_clock(max(map(_ts, readings))))
        return keep

    def _resolve_shape(self, key: tuple[str, str]) -> ShapingRule | None:
        sensor, metric = key
        tags = self._tags_of(sensor)
        found = next((s for s in self._shaping if s.selection.matches(sensor, metric, tags)), None)
        if len(self._shape_route) >= self.limits.max_routes:
            self._shape_route.clear()
        self._shape_route[key] = found
        return found

    # -- time --------------------------------------------------------------------------------------

    def _advance_clock(self, latest: float) -> float:
        now = self._now() if self._now is not None else None
        if self._max_future is not None and now is not None:
            latest = min(latest, now + self._max_future)
        clock = max(self._clock, latest, now if now is not None else -math.inf)
        self._clock = clock
        return clock

    @property
    def clock(self) -> float:
        """The engine's event-time clock (seconds since the epoch; -inf before anything happened)."""
        return self._clock

    def advance(self, now: float | None = None) -> None:
        """Let time pass to ``now`` (default: the scheduler's or ``now()``'s time): close windows, fire timers."""
        t = now if now is not None else self._now() if self._now is not None else self._clock
        self._clock = max(self._clock, t)
        self._run_due(self._clock)

    def _run_due(self, clock: float) -> None:
        if math.isfinite(clock) and clock >= self._next_due:
            next_due = math.inf
            for c in self._rules:
                if c.due <= clock:
                    c.feed(clock)
                next_due = min(next_due, c.due)
            for s in self._shaping:
                if s.due <= clock:
                    self._pending.extend(s.tick(clock))
                next_due = min(next_due, s.due)
            self._next_due = next_due
        if self._failed:
            self._report_failures(clock)
        self._flush()
        self._arm()

    def _report_failures(self, clock: float) -> None:
        # a rule's first error is reported once (an annotation); a rule past the limit is disabled
        for c in self._failed:
            if not c.reported:
                c.reported = True
                self._pending.append(self._note(c, f"rule {c.name} failed (it goes on): {c.stats.last_error}", clock))
            if c.stats.disabled and c.name not in self._disabled:
                self._pending.extend(c.retire("disabled after repeated errors", clock))
                text = f"rule {c.name} disabled after {c.stats.errors} errors: {c.stats.last_error}"
                self._pending.append(self._note(c, text, clock))
                self._disabled[c.name] = c
        self._failed.clear()
        if any(c.stats.disabled for c in self._rules):
            self._rules = [c for c in self._rules if not c.stats.disabled]
            self._route.clear()

    def _note(self, c: CompiledRule, message: str, clock: float) -> AnnotationOut:
        return AnnotationOut(
            Event(
                id=new_id(),
                kind="annotation",
                ts=clock if math.isfinite(clock) else 0.0,
                key=f"{c.name}/error",
                message=message[:MAX_TEXT],
                rule=c.name,
                data={"errors": c.stats.errors},
            )
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        out = self._pending.copy()
        self._pending.clear()  # the same list: the rules' pipelines hold its extend
        if self._sink is not None:
            self._sink(out)
        self._subject.on_next(out)

    def _arm(self) -> None:
        if self._scheduler is None:
            return
        due = self._next_due
        if not math.isfinite(due) or due >= self._timer_at:
            return
        # never at or before the clock: a timer that fires without moving time would fire forever
        due = max(due, self._clock + 0.001)
        if self._timer is not None:
            self._timer.dispose()
        self._timer_at = due
        self._timer = self._scheduler.schedule_absolute(datetime.fromtimestamp(due, UTC), self._on_timer)

    def _on_timer(self, _scheduler: Any, _state: Any = None) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.advance()

    # -- management --------------------------------------------------------------------------------

    def reload(self, ruleset: model.RuleSet) -> ReloadReport:
        """Replace the rule set; rules whose definition is unchanged keep their state (windows, alerts, timers)."""
        old_proc = {c.name: c for c in self._rules}
        old_shape = {s.name: s for s in self._shaping}
        old: dict[str, CompiledRule | ShapingRule] = {**old_proc, **old_shape}
        new = {r.name: r for r in ruleset.rules if r.enabled}
        added, removed, changed, kept = [], [], [], []
        keep_proc: dict[str, CompiledRule] = {}
        keep_shape: dict[str, ShapingRule] = {}
        for name, c in old.items():
            r = new.get(name)
            if r is None:
                removed.append(name)
                self._pending.extend(c.retire("removed", self._clock))
            elif r.digest() != c.digest:
                changed.append(name)
                self._pending.extend(c.retire("changed", self._clock))
            else:
                kept.append(name)
                if isinstance(c, CompiledRule):
                    keep_proc[name] = c
                elif isinstance(c, ShapingRule):
                    keep_shape[name] = c
        added = [n for n in new if n not in old]
        self._install(ruleset, keep_proc, keep_shape)
        self._run_due(self._clock)
        return ReloadReport(tuple(added), tuple(removed), tuple(changed), tuple(kept))

    def rule_names(self) -> list[str]:
        """The rules running now (processing, then shaping), in file order."""
        return [c.name for c in self._rules] + [s.name for s in self._shaping]

    def stats(self) -> dict[str, RuleStats]:
        """Counters per rule (processing and shaping), by name; disabled rules included."""
        out = {c.name: c.snapshot() for c in (*self._disabled.values(), *self._rules)}
        out.update({s.name: s.snapshot() for s in self._shaping})
        return out

    def active_alerts(self) -> list[str]:
        """The keys (``{rule}/{subject}``) of the subjects whose condition holds now."""
        return sorted(alert_key(c.name, k) for c in self._rules for k, _s in c.active())

    def close(self) -> None:
        """Stop the timer and flush downsample periods still open (their raw readings were shaped out)."""
        if self._timer is not None:
            self._timer.dispose()
            self._timer = None
            self._timer_at = math.inf
        for s in self._shaping:
            self._pending.extend(s.retire("closed", self._clock))
        out = self._pending.copy()
        self._pending.clear()
        if out:
            if self._sink is not None:
                self._sink(out)
            self._subject.on_next(out)
