"""Driving an engine in virtual time: a reactivex TestScheduler advanced to each reading's timestamp."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reactivex.testing import TestScheduler

from rules import AlertOut, AnnotationOut, CommandOut, DerivedOut, Engine, Output, load_text
from wire.reading import Reading

T0 = 1_736_928_000.0  # 2025-01-15T08:00:00Z, a whole hour


class Rig:
    """An engine on a TestScheduler whose clock starts at ``start``; outputs collected in order."""

    def __init__(self, text: str, start: float = T0, **kwargs: Any) -> None:
        self.scheduler = TestScheduler()
        self.scheduler.advance_to(start)
        self.outputs: list[Output] = []
        self.engine = Engine(
            load_text(text, name="test.toml"), scheduler=self.scheduler, sink=self.outputs.extend, **kwargs
        )

    def feed(self, readings: Iterable[Reading]) -> None:
        """Push one reading at a time, the clock first advanced to its timestamp (never backwards)."""
        for r in readings:
            if r.ts > self.scheduler.clock:
                self.scheduler.advance_to(r.ts)
            self.engine.push([r])

    def wait_until(self, t: float) -> None:
        """Let virtual time pass with no reading: timers fire."""
        self.scheduler.advance_to(t)

    def alerts(self) -> list[tuple[str, str, float]]:
        """(state, key, ts) of every alert so far."""
        return [(o.event.state or "", o.event.key, o.event.ts) for o in self.outputs if isinstance(o, AlertOut)]

    def derived(self) -> list[Reading]:
        """Every derived reading so far."""
        return [o.reading for o in self.outputs if isinstance(o, DerivedOut)]

    def commands(self) -> list[CommandOut]:
        """Every command so far."""
        return [o for o in self.outputs if isinstance(o, CommandOut)]

    def annotations(self) -> list[AnnotationOut]:
        """Every annotation so far."""
        return [o for o in self.outputs if isinstance(o, AnnotationOut)]


def r(sensor: str, metric: str, value: float | bool | str, dt: float, unit: str | None = None) -> Reading:
    """A reading ``dt`` seconds after T0."""
    return Reading(sensor, metric, value, T0 + dt, unit)


def series(sensor: str, metric: str, values: Iterable[float], step: float = 1.0, start: float = 0.0) -> list[Reading]:
    """Readings of one series, ``step`` seconds apart from T0 + ``start``."""
    return [r(sensor, metric, v, start + i * step) for i, v in enumerate(values)]


def rule(select: str, body: str, name: str = "r1", extra: str = "") -> str:
    """A one-rule file: ``select`` is the select table's body, ``body`` the rest (window, condition, actions)."""
    return f'[[rule]]\nname = "{name}"\n{extra}\n[rule.select]\n{select}\n{body}\n'
