"""A bit-level MCP3008 behind the ``spidev.SpiDev`` interface (``xfer2``, ``mode``, ``max_speed_hz``).

Channel voltages go in ``voltages`` (CH0..CH7 against VSS, volts), the reference in ``vref``. Each
``xfer2`` is one chip-select-low frame, modelled bit by bit as in section 5 / figure 5-1: the first
1 clocked in is the start bit, then SGL/DIFF and D2..D0; the chip drives a null bit (0) on the
sixth clock after the start bit, then B9..B0 MSB first, then B1..B9 LSB first if clocking goes on,
then zeros. Bits it does not drive read as 1 here (a floating line), so a decoder must mask them.
The code is the integer part of 1024 * VIN / VREF, clipped to 0..1023; pseudo-differential pairs
read 0 when IN+ <= IN- (section 4.1).

Faults: ``miso_stuck_high`` (no chip, floating MISO: every bit 1), ``miso_stuck_low`` (every bit 0),
``io_error`` (``xfer2`` raises ``OSError`` EIO, as spidev does when the device vanishes), and a
wrong SPI mode (1 or 2) shifts the answer by one bit, as sampling on the wrong edge does.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence

from drivers.spi.mcp3008 import INPUTS, RESOLUTION

_BY_BITS = {(i.single_ended, i.select): i for i in INPUTS}


class Mcp3008Emulator:
    """An MCP3008 an :class:`drivers.spi.mcp3008.Mcp3008` can be given instead of a ``SpiDev``."""

    def __init__(self, *, vref: float = 3.3) -> None:
        self.vref = vref
        self.voltages = [0.0] * 8
        self.mode = 0
        self.max_speed_hz = 500_000
        self.miso_stuck_high = False
        self.miso_stuck_low = False
        self.io_error = False
        self.transfers = 0

    def code(self, single_ended: bool, select: int) -> int:
        """The conversion result for one input configuration."""
        inp = _BY_BITS[(single_ended, select)]
        negative = 0.0 if inp.negative is None else self.voltages[inp.negative]
        value = math.floor(RESOLUTION * (self.voltages[inp.positive] - negative) / self.vref)
        return max(0, min(RESOLUTION - 1, value))

    def xfer2(self, values: list[int]) -> list[int]:
        """One frame with chip select low: what comes back on MISO for what went out on MOSI."""
        if self.io_error:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.transfers += 1
        mosi = [(byte >> (7 - i)) & 1 for byte in values for i in range(8)]
        miso = [1] * len(mosi)  # not driven
        start = next((i for i, bit in enumerate(mosi) if bit), None)
        if start is not None and start + 4 < len(mosi):
            sgl, d2, d1, d0 = mosi[start + 1 : start + 5]
            result = self.code(bool(sgl), (d2 << 2) | (d1 << 1) | d0)
            msb_first = [(result >> (9 - i)) & 1 for i in range(10)]
            driven = [0, *msb_first, *msb_first[-2::-1]]  # null bit, B9..B0, B1..B9
            for k in range(start + 6, len(miso)):
                j = k - start - 6
                miso[k] = driven[j] if j < len(driven) else 0
        if self.mode in (1, 2):
            miso = [*miso[1:], 1]
        if self.miso_stuck_high or self.miso_stuck_low:
            miso = [1 if self.miso_stuck_high else 0] * len(miso)
        return _pack(miso)


def _pack(bits: Sequence[int]) -> list[int]:
    return [sum(bit << (7 - i) for i, bit in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8)]
