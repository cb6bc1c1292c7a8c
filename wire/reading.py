"""The Reading: one value of one metric of one sensor at one time."""

from __future__ import annotations

from typing import NamedTuple

Value = float | bool | str
"""SenML value kinds: numeric (``v``), boolean (``vb``) and string (``vs``)."""


class Reading(NamedTuple):
    """One measured value. ``ts`` is seconds since the Unix epoch (UTC), resolution 1 µs.

    A NamedTuple rather than a frozen dataclass: it is just as immutable and typed, and four
    times cheaper to build (0.24 µs against 0.97 µs here), which matters on a path that builds
    every reading at least twice at 50,000 readings/s.
    """

    sensor: str
    metric: str
    value: Value
    ts: float
    unit: str | None = None

    @property
    def name(self) -> str:
        """The full SenML name, ``{sensor}:{metric}``."""
        return f"{self.sensor}:{self.metric}"

    @property
    def ts_us(self) -> int:
        """The timestamp in integer microseconds (the resolution Roost keeps end to end)."""
        return round(self.ts * 1_000_000)
