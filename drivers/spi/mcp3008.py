"""Microchip MCP3008 8-channel 10-bit ADC on SPI, from the datasheet (DS21295).

Public API::

    Mcp3008(spi: SpiDevice, *, vref: float = 3.3, inputs: Sequence[str] = ("ch0", ..., "ch7"),
            speed_hz: int = 1_000_000, bus: int = 0, device: int = 0)
    Mcp3008.read() -> list[Measurement]          # one per input: "ch3" or "ch0-ch1", in V
    Mcp3008.read_code(name: str) -> int          # the raw 10-bit code of one input
    Mcp3008.sensor_id(channel: int) -> str       # "spi0.0-ch3" (drivers.bus.spi_sensor_id)
    request(inp: Input) -> list[int]             # the 3 bytes sent
    decode_reply(reply: Sequence[int]) -> int    # the 10-bit code; ValueError if the null bit is not 0

One conversion is one 3-byte transfer with chip select held low (section 6.1, figure 6-1):
``0x01`` (the start bit, leading zeros are ignored), then SGL/DIFF and D2..D0 in the top nibble,
then a don't-care byte. The chip answers a null bit (0) and B9..B0 MSB first, so the code is
``(reply[1] & 0x03) << 8 | reply[2]``; the bits before the null bit are not driven and are
masked. Inputs (table 5-2): ``ch0``..``ch7`` single-ended against VSS, and the pseudo-differential
pairs ``ch0-ch1``, ``ch1-ch0``, ..., ``ch7-ch6`` (IN+ first; IN- within ±100 mV of VSS; a code of 0
when IN+ <= IN-). Volts = code * VREF / 1024 (equation 4-2 solved for VIN). SPI mode 0 (mode 3
works too); the clock at most 1.35 MHz at VDD = 2.7 V, 3.6 MHz at 5 V (table 1).

A floating or stuck-high MISO line makes the null bit read 1: that raises
:class:`drivers.errors.DeviceError` rather than reporting full scale. A bus ``OSError`` becomes
:class:`drivers.errors.BusError`; the errors' ``address`` is ``"spi{bus}.{device}"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drivers.bus import SpiDevice, spi_sensor_id, translated
from drivers.errors import BusError, DeviceError
from drivers.measurement import Measurement

CHIP = "MCP3008"
RESOLUTION = 1024
START = 0x01
NULL_BIT = 0x04  # in reply byte 1, just above B9 B8
SPI_MODE = 0
MAX_SPEED_HZ = 3_600_000


@dataclass(frozen=True, slots=True)
class Input:
    """One input configuration (table 5-2): the SGL/DIFF bit, D2..D0, and which channels it reads."""

    name: str
    single_ended: bool
    select: int
    """D2..D0."""
    positive: int
    negative: int | None
    """IN- channel, or None for VSS (single-ended)."""


INPUTS = tuple(Input(f"ch{n}", True, n, n, None) for n in range(8)) + tuple(
    Input(f"ch{p}-ch{m}", False, d, p, m)
    for d in range(8)
    for p, m in [(d & 0b110, (d & 0b110) + 1) if d % 2 == 0 else ((d & 0b110) + 1, d & 0b110)]
)
INPUT_BY_NAME = {i.name: i for i in INPUTS}
SINGLE_ENDED = tuple(f"ch{n}" for n in range(8))


def request(inp: Input) -> list[int]:
    """The three bytes that select ``inp`` and clock the result out (figure 6-1)."""
    return [START, (int(inp.single_ended) << 7) | (inp.select << 4), 0x00]


def decode_reply(reply: Sequence[int]) -> int:
    """The 10-bit code from the three reply bytes; ValueError when the null bit is not 0 or the length is wrong."""
    if len(reply) != 3:
        raise ValueError(f"expected 3 reply bytes, got {len(reply)}")
    if reply[1] & NULL_BIT:
        raise ValueError(f"null bit is 1 (reply {bytes(b & 0xFF for b in reply).hex(' ')})")
    return ((reply[1] & 0x03) << 8) | (reply[2] & 0xFF)


class Mcp3008:
    """An MCP3008 on an opened ``spidev.SpiDev`` (or an emulator): construct, then :meth:`read`."""

    def __init__(
        self,
        spi: SpiDevice,
        *,
        vref: float = 3.3,
        inputs: Sequence[str] = SINGLE_ENDED,
        speed_hz: int = 1_000_000,
        bus: int = 0,
        device: int = 0,
    ) -> None:
        unknown = [name for name in inputs if name not in INPUT_BY_NAME]
        if unknown or not inputs:
            raise ValueError(f"inputs: {unknown or 'none'}; each must be ch0..ch7 or a pair like ch0-ch1")
        if not 0.25 <= vref <= 5.5:
            raise ValueError("vref: must be between 0.25 V and VDD (at most 5.5 V)")
        if not 10_000 <= speed_hz <= MAX_SPEED_HZ:
            raise ValueError(f"speed_hz: must be 10 kHz .. {MAX_SPEED_HZ} Hz (1.35 MHz at VDD = 2.7 V)")
        self.spi = spi
        self.vref = vref
        self.inputs = tuple(INPUT_BY_NAME[name] for name in inputs)
        self.bus = bus
        self.device = device
        self.address = f"spi{bus}.{device}"
        with translated(CHIP, self.address):
            spi.mode = SPI_MODE
            spi.max_speed_hz = speed_hz

    def sensor_id(self, channel: int) -> str:
        """The sensor id of one channel of this chip."""
        return spi_sensor_id(self.bus, self.device, channel)

    def read_code(self, name: str) -> int:
        """One conversion of input ``name``: the 10-bit code."""
        inp = INPUT_BY_NAME.get(name)
        if inp is None:
            raise ValueError(f"unknown input {name!r}")
        with translated(CHIP, self.address):
            reply = self.spi.xfer2(request(inp))
        if len(reply) != 3 or any(not 0 <= b <= 0xFF for b in reply):
            raise BusError(CHIP, self.address, f"transfer returned {len(reply)} bytes, not 3")
        try:
            return decode_reply(reply)
        except ValueError as exc:
            raise DeviceError(
                CHIP, self.address, f"{exc}: no chip answering (MISO floating or stuck high, CS wired?)"
            ) from None

    def read(self) -> list[Measurement]:
        """One conversion per configured input, in volts (rounded to 0.1 mV)."""
        return [
            Measurement(i.name, round(self.read_code(i.name) * self.vref / RESOLUTION, 4), "V") for i in self.inputs
        ]
