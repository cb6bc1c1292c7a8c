"""A command-level SHT3x: single-shot measurements, status register, soft reset, heater, timing.

The environment is set with ``temperature`` (°C, -40..125) and ``humidity`` (%RH); a measurement
returns the 16-bit words the datasheet's conversion (section 4.13) turns back into them, each
followed by its CRC-8. With clock stretching disabled the chip NACKs a read until the measurement
is done (typical duration of table 4, on the injected clock) and NACKs reads when it has nothing
to send; a stretched command's data are there at once (the stretching itself is invisible here).

Faults: ``faults`` (NACK, stuck bus, see :class:`drivers.i2c.emulated_bus.Faults`), ``bad_crc``
(the temperature word's CRC is wrong), ``never_ready`` (a measurement never finishes).
"""

from __future__ import annotations

import time

from drivers.i2c import sht3x as chip
from drivers.i2c.emulated_bus import ChipModel, Clock, Faults

_STRETCHED = {c.code for c in chip.SINGLE_SHOT_STRETCHED}
_SINGLE_SHOT = {r.value.code: r.value for r in chip.Repeatability}
_STATUS_CLEARABLE = 0x8000 | 0x0800 | 0x0400 | 0x0010  # bits 15, 11, 10, 4 (table 19)
_STATUS_HEATER = 0x2000
_STATUS_COMMAND_FAILED = 0x0002


def raw_temperature(celsius: float) -> int:
    """The temperature word for ``celsius``, clipped to the 16-bit range."""
    return max(0, min(0xFFFF, round((celsius + 45.0) * 65535.0 / 175.0)))


def raw_humidity(percent: float) -> int:
    """The humidity word for ``percent``, clipped to the 16-bit range."""
    return max(0, min(0xFFFF, round(percent * 65535.0 / 100.0)))


class Sht3xEmulator(ChipModel):
    """An SHT3x behind :class:`drivers.i2c.emulated_bus.EmulatedI2cBus`."""

    def __init__(
        self,
        *,
        temperature: float = 22.0,
        humidity: float = 50.0,
        faults: Faults | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(faults=faults, clock=clock)
        self.temperature = temperature
        self.humidity = humidity
        self.bad_crc = False
        self.never_ready = False
        self.status = chip.STATUS_AFTER_RESET
        self._reply: bytes | None = None
        self._ready_at = 0.0

    def _measurement(self) -> bytes:
        t = chip.word_with_crc(raw_temperature(self.temperature))
        if self.bad_crc:
            t = t[:2] + bytes([t[2] ^ 0x5A])
        return t + chip.word_with_crc(raw_humidity(self.humidity))

    def acknowledges_read(self) -> bool:
        """NACK while measuring (no clock stretching) and when there is nothing to read."""
        return self._reply is not None and not self.never_ready and self.clock() >= self._ready_at

    def on_write(self, data: bytes) -> None:
        """A 16-bit command (an empty write is just an address probe)."""
        if not data:
            return
        now = self.clock()
        self._reply = None
        code = int.from_bytes(data[:2], "big") if len(data) == 2 else -1
        if code != chip.READ_STATUS.code:  # reading the status reports on the command before it
            self.status &= ~_STATUS_COMMAND_FAILED
        if code in _SINGLE_SHOT:
            self._reply, self._ready_at = self._measurement(), now + _SINGLE_SHOT[code].busy_typ_s
        elif code in _STRETCHED:
            self._reply, self._ready_at = self._measurement(), now
        elif code == chip.READ_STATUS.code:
            self._reply, self._ready_at = chip.word_with_crc(self.status), now
        elif code == chip.CLEAR_STATUS.code:
            self.status &= ~_STATUS_CLEARABLE
        elif code == chip.SOFT_RESET.code:
            self.status = chip.STATUS_AFTER_RESET
        elif code == chip.HEATER_ON.code:
            self.status |= _STATUS_HEATER
        elif code == chip.HEATER_OFF.code:
            self.status &= ~_STATUS_HEATER
        else:
            self.status |= _STATUS_COMMAND_FAILED  # invalid command (table 18, bit 1)

    def on_read(self, length: int) -> bytes:
        """The pending reply (read once); past its end the chip sends 0xFF."""
        reply, self._reply = self._reply or b"", None
        return (reply + b"\xff" * length)[:length]
