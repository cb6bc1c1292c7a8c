"""The physical world the emulated chips measure: a room's climate and a few analog voltages that drift.

The demo and the tests put emulated chips on emulated buses; without this, every reading would be
the same number. :meth:`Environment.step` nudges each model's physical inputs by a bounded random
walk (before a poll), and the chip models turn them into register values as the real chips would.
Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from drivers.i2c.ads1115_emulator import Ads1115Emulator
from drivers.i2c.bme280_emulator import Bme280Emulator
from drivers.i2c.emulated_bus import ChipModel
from drivers.i2c.sht3x_emulator import Sht3xEmulator
from drivers.spi.mcp3008_emulator import Mcp3008Emulator


def _walk(rng: random.Random, value: float, sigma: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value + rng.gauss(0.0, sigma)))


@dataclass
class Environment:
    """Builds emulated chips and moves what they measure, reproducibly for a given seed."""

    seed: int | None = None
    models: list[ChipModel | Mcp3008Emulator] = field(default_factory=list)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def i2c_model(self, chip: str) -> ChipModel:
        """A new emulated I2C chip (``bme280``, ``sht3x``, ``ads1115``) with plausible starting values."""
        model: ChipModel
        if chip == "bme280":
            model = Bme280Emulator(temperature=21.0, pressure=101_325.0, humidity=45.0)
        elif chip == "sht3x":
            model = Sht3xEmulator(temperature=22.0, humidity=50.0)
        elif chip == "ads1115":
            ads = Ads1115Emulator()
            ads.voltages = [1.65, 0.5, 3.0, 0.0]
            model = ads
        else:
            raise ValueError(f"no emulator for I2C chip {chip!r}")
        self.models.append(model)
        return model

    def spi_model(self, chip: str) -> Mcp3008Emulator:
        """A new emulated SPI chip (``mcp3008``)."""
        if chip != "mcp3008":
            raise ValueError(f"no emulator for SPI chip {chip!r}")
        model = Mcp3008Emulator(vref=3.3)
        model.voltages = [0.4 * (i + 1) for i in range(8)]
        self.models.append(model)
        return model

    def step(self) -> None:
        """Move every model's physical inputs a little (called before each poll of an emulated chip)."""
        rng = self._rng
        for m in self.models:
            if isinstance(m, Bme280Emulator):
                m.temperature = _walk(rng, m.temperature, 0.05, -10.0, 45.0)
                m.pressure = _walk(rng, m.pressure, 5.0, 95_000.0, 106_000.0)
                m.humidity = _walk(rng, m.humidity, 0.3, 10.0, 95.0)
            elif isinstance(m, Sht3xEmulator):
                m.temperature = _walk(rng, m.temperature, 0.05, -10.0, 45.0)
                m.humidity = _walk(rng, m.humidity, 0.3, 10.0, 95.0)
            elif isinstance(m, Ads1115Emulator | Mcp3008Emulator):
                m.voltages = [_walk(rng, v, 0.01, 0.0, 3.3) for v in m.voltages]
