"""The Reading: one value of one metric of one sensor at one time."""

from __future__ import annotations

from dataclasses import dataclass

Value = float | bool | str
"""SenML value kinds: numeric (``v``), boolean (``vb``) and string (``vs``)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value. ``ts`` is seconds since the Unix epoch (UTC), resolution 1 µs."""

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
