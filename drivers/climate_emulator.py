"""An emulated climate sensor node: temperature, humidity and pressure that drift like a real room.

Pure (no I/O): the demo and the tests post what it samples over CoAP with a real client.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from wire.reading import Reading


@dataclass(slots=True)
class ClimateSensor:
    """A random walk around a daily cycle, rounded to what a cheap sensor resolves."""

    sensor: str
    base_temperature: float = 21.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _drift: float = field(init=False, default=0.0)
    _humidity: float = field(init=False, default=45.0)
    _pressure: float = field(init=False, default=1013.2)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def sample(self, now: float) -> list[Reading]:
        """The readings this node would send at ``now``."""
        rng = self._rng
        self._drift = max(-3.0, min(3.0, self._drift + rng.gauss(0, 0.05)))
        daily = 1.5 * math.sin(2 * math.pi * ((now / 86400.0) % 1.0))
        temperature = round(self.base_temperature + daily + self._drift + rng.gauss(0, 0.05), 2)
        self._humidity = max(10.0, min(95.0, self._humidity + rng.gauss(0, 0.3)))
        self._pressure = max(950.0, min(1060.0, self._pressure + rng.gauss(0, 0.05)))
        ts = round(now, 6)
        return [
            Reading(self.sensor, "temperature", temperature, ts, "Cel"),
            Reading(self.sensor, "humidity", round(self._humidity, 1), ts, "%RH"),
            Reading(self.sensor, "pressure", round(self._pressure, 1), ts, "hPa"),
        ]

    def as_text(self, now: float) -> str:
        """The same sample in the plain ``metric=value`` form an 8-bit node posts."""
        return ",".join(f"{r.metric}={r.value}" for r in self.sample(now))
