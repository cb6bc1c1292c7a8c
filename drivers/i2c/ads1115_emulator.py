"""A register-level ADS1115: pointer register, config, conversion, thresholds, conversion timing.

Input voltages go in ``voltages`` (AIN0..AIN3 against GND, volts). A conversion takes one period
of the configured data rate on the injected clock; meanwhile config's OS bit reads 0, then the
conversion register holds ``round((V+ - V-) / LSB)`` clipped to 0x7FFF / 0x8000 (LSB = FS / 32768),
with each input first limited to GND - 0.3 V .. VDD + 0.3 V, as the ESD diodes do. Single-shot and
continuous mode; the pointer register takes two bits, writes are 3 bytes, reads 2 (section 9.5).

Faults: ``faults`` (NACK, stuck bus, see :class:`drivers.i2c.emulated_bus.Faults`) and
``never_ready`` (a conversion never finishes).
"""

from __future__ import annotations

import math
import time

from drivers.i2c import ads1115 as chip
from drivers.i2c.emulated_bus import ChipModel, Clock, Faults


def volts_to_code(volts: float, full_scale: float) -> int:
    """The 16-bit two's-complement code for a differential input voltage."""
    signed = math.floor(volts * 32768.0 / full_scale + 0.5)
    return max(-32768, min(32767, signed)) & 0xFFFF


class Ads1115Emulator(ChipModel):
    """An ADS1115 behind :class:`drivers.i2c.emulated_bus.EmulatedI2cBus`."""

    def __init__(self, *, vdd: float = 3.3, faults: Faults | None = None, clock: Clock = time.monotonic) -> None:
        super().__init__(faults=faults, clock=clock)
        self.vdd = vdd
        self.voltages = [0.0, 0.0, 0.0, 0.0]
        self.never_ready = False
        self.conversions = 0
        self.regs = {
            chip.REG_CONVERSION: 0x0000,
            chip.REG_CONFIG: chip.CONFIG_RESET,
            chip.REG_LO_THRESH: chip.LO_THRESH_RESET,
            chip.REG_HI_THRESH: chip.HI_THRESH_RESET,
        }
        self._pointer = chip.REG_CONVERSION
        self._done_at: float | None = None

    def _period(self) -> float:
        return 1.0 / chip.DATA_RATES[(self.regs[chip.REG_CONFIG] >> 5) & 0x07]

    def _convert(self) -> None:
        config = self.regs[chip.REG_CONFIG]
        mux = chip.MUX_BY_CODE[(config >> 12) & 0x07]
        fs = chip.PGA_BY_CODE[(config >> 9) & 0x07].full_scale

        def pin(n: int) -> float:
            return max(-0.3, min(self.vdd + 0.3, self.voltages[n]))

        negative = 0.0 if mux.negative is None else pin(mux.negative)
        self.regs[chip.REG_CONVERSION] = volts_to_code(pin(mux.positive) - negative, fs)
        self.conversions += 1

    def _advance(self, now: float) -> None:
        if self._done_at is None or self.never_ready or now < self._done_at:
            return
        continuous = not self.regs[chip.REG_CONFIG] & chip.MODE_SINGLE_SHOT
        self._convert()
        if continuous:
            periods = math.floor((now - self._done_at) / self._period()) + 1
            self._done_at += periods * self._period()
        else:
            self._done_at = None  # idle again: OS reads 1

    def on_write(self, data: bytes) -> None:
        """Pointer byte, then optionally the register's 16 bits MSB first."""
        now = self.clock()
        self._advance(now)
        if not data:
            return
        self._pointer = data[0] & 0x03
        if len(data) < 3 or self._pointer == chip.REG_CONVERSION:
            return  # the conversion register is read-only
        value = (data[1] << 8) | data[2]
        if self._pointer != chip.REG_CONFIG:
            self.regs[self._pointer] = value
            return
        start = bool(value & chip.OS_BIT)
        single_shot = bool(value & chip.MODE_SINGLE_SHOT)
        self.regs[chip.REG_CONFIG] = value & ~chip.OS_BIT  # OS reads back as the conversion status
        if single_shot and start and self._done_at is None:
            self._done_at = now + self._period()
        elif not single_shot:
            self._done_at = now + self._period()  # continuous: the first result after one period

    def on_read(self, length: int) -> bytes:
        """The pointed register, MSB first (repeated if more is read)."""
        self._advance(self.clock())
        value = self.regs[self._pointer]
        if self._pointer == chip.REG_CONFIG:
            value = (value & ~chip.OS_BIT) | (0 if self._done_at is not None else chip.OS_BIT)
        word = value.to_bytes(2, "big")
        return (word * (length // 2 + 1))[:length]
