"""TI ADS1115 16-bit ADC on I2C (single-shot), from the datasheet (SBAS444).

Public API::

    Ads1115(bus: I2cBus, address: int = 0x48, *, inputs: Sequence[str] = ("AIN0", "AIN1", "AIN2", "AIN3"),
            full_scale: float = 4.096, data_rate: int = 128, sleep: Callable[[float], None] = time.sleep)
    Ads1115.read() -> list[Measurement]             # one per input: "ain0" ... or "ain0-ain1", in V
    Ads1115.read_input(name: str, full_scale: float | None = None) -> float   # volts
    config_word(mux, full_scale, data_rate) -> int  # the config register for one single-shot conversion
    code_to_volts(code: int, full_scale: float) -> float
    i2c_sensor_id(bus_number, address)              # "i2c-1-0x48" (drivers.bus)

Inputs (MUX, table 8): ``AIN0``..``AIN3`` against GND, and the differential pairs ``AIN0-AIN1``,
``AIN0-AIN3``, ``AIN1-AIN3``, ``AIN2-AIN3``. Full scale (PGA, table 8): ±6.144, ±4.096, ±2.048,
±1.024, ±0.512, ±0.256 V (no input may exceed VDD + 0.3 V whatever the range). Each conversion:
write the config register with OS=1 and MODE=1 (single-shot, comparator disabled), wait one
conversion period (1/DR, +10 % for the oscillator's tolerance), poll OS until it reads 1
(bounded), read the conversion register: a 16-bit two's-complement code, LSB = FS / 32768,
clipped at 0x7FFF / 0x8000 (section 9.3.3). The chip's registers are big-endian, so they are
read as 2-byte I2C blocks, not SMBus words (which are little-endian).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.bus import I2cBus, translated
from drivers.errors import BusError, NotReady
from drivers.measurement import Measurement

CHIP = "ADS1115"
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADDR to GND, VDD, SDA, SCL
REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03
CONFIG_RESET = 0x8583
LO_THRESH_RESET = 0x8000
HI_THRESH_RESET = 0x7FFF
OS_BIT = 0x8000
MODE_SINGLE_SHOT = 0x0100
COMPARATOR_DISABLED = 0x0003  # COMP_QUE = 11


@dataclass(frozen=True, slots=True)
class Mux:
    """One input multiplexer setting (config bits 14:12)."""

    name: str
    code: int
    positive: int
    negative: int | None
    """The negative input's AIN number, or None for GND (single-ended)."""

    @property
    def metric(self) -> str:
        """The metric name this input reads as: ``ain0``, ``ain0-ain1``."""
        return self.name.lower()


MUXES = (
    Mux("AIN0-AIN1", 0b000, 0, 1),
    Mux("AIN0-AIN3", 0b001, 0, 3),
    Mux("AIN1-AIN3", 0b010, 1, 3),
    Mux("AIN2-AIN3", 0b011, 2, 3),
    Mux("AIN0", 0b100, 0, None),
    Mux("AIN1", 0b101, 1, None),
    Mux("AIN2", 0b110, 2, None),
    Mux("AIN3", 0b111, 3, None),
)
MUX_BY_NAME = {m.name: m for m in MUXES}
MUX_BY_CODE = {m.code: m for m in MUXES}


@dataclass(frozen=True, slots=True)
class Pga:
    """One programmable-gain setting (config bits 11:9): the full-scale range ±volts."""

    code: int
    full_scale: float


PGAS = (
    Pga(0b000, 6.144),
    Pga(0b001, 4.096),
    Pga(0b010, 2.048),
    Pga(0b011, 1.024),
    Pga(0b100, 0.512),
    Pga(0b101, 0.256),
)
PGA_BY_FS = {p.full_scale: p for p in PGAS}
PGA_BY_CODE = {p.code: p for p in PGAS} | {0b110: PGAS[-1], 0b111: PGAS[-1]}  # 110 and 111 are ±0.256 V too

DATA_RATES = (8, 16, 32, 64, 128, 250, 475, 860)
"""Samples per second by DR code (config bits 7:5)."""


def config_word(mux: Mux, full_scale: float, data_rate: int) -> int:
    """Config register value that starts one single-shot conversion with the comparator disabled."""
    return (
        OS_BIT
        | (mux.code << 12)
        | (PGA_BY_FS[full_scale].code << 9)
        | MODE_SINGLE_SHOT
        | (DATA_RATES.index(data_rate) << 5)
        | COMPARATOR_DISABLED
    )


def code_to_volts(code: int, full_scale: float) -> float:
    """Volts for a conversion register value (16-bit two's complement, LSB = FS / 32768)."""
    signed = code - 0x10000 if code & 0x8000 else code
    return signed * full_scale / 32768.0


class Ads1115:
    """An ADS1115 on an I2C bus: construct, then call :meth:`read` (blocking, one conversion per input)."""

    def __init__(
        self,
        bus: I2cBus,
        address: int = 0x48,
        *,
        inputs: Sequence[str] = ("AIN0", "AIN1", "AIN2", "AIN3"),
        full_scale: float = 4.096,
        data_rate: int = 128,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        unknown = [name for name in inputs if name not in MUX_BY_NAME]
        if unknown or not inputs:
            raise ValueError(f"inputs: {unknown or 'none'}; each must be one of {sorted(MUX_BY_NAME)}")
        if full_scale not in PGA_BY_FS:
            raise ValueError(f"full_scale: must be one of {sorted(PGA_BY_FS)} (volts)")
        if data_rate not in DATA_RATES:
            raise ValueError(f"data_rate: must be one of {list(DATA_RATES)} (samples per second)")
        self.bus = bus
        self.address = address
        self.inputs = tuple(MUX_BY_NAME[name] for name in inputs)
        self.full_scale = full_scale
        self.data_rate = data_rate
        self._sleep = sleep

    def read(self) -> list[Measurement]:
        """One single-shot conversion per configured input, in volts (rounded to 0.1 mV)."""
        return [Measurement(m.metric, round(self._convert(m, self.full_scale), 4), "V") for m in self.inputs]

    def read_input(self, name: str, full_scale: float | None = None) -> float:
        """One conversion of input ``name`` (e.g. ``"AIN2"``), in volts, unrounded."""
        fs = self.full_scale if full_scale is None else full_scale
        if name not in MUX_BY_NAME or fs not in PGA_BY_FS:
            raise ValueError(f"unknown input {name!r} or full scale {fs!r}")
        return self._convert(MUX_BY_NAME[name], fs)

    def _register(self, register: int) -> int:
        with translated(CHIP, self.address):
            data = self.bus.read_i2c_block_data(self.address, register, 2)
        if len(data) != 2 or any(not 0 <= b <= 0xFF for b in data):
            raise BusError(CHIP, self.address, f"short or malformed read of register {register}: {data!r}")
        return (data[0] << 8) | data[1]

    def _convert(self, mux: Mux, full_scale: float) -> float:
        word = config_word(mux, full_scale, self.data_rate)
        with translated(CHIP, self.address):
            self.bus.write_i2c_block_data(self.address, REG_CONFIG, [word >> 8, word & 0xFF])
        period = 1.0 / self.data_rate
        waited = period * 1.1 + 0.0001  # the internal oscillator is within ±10 % (table 7.5)
        self._sleep(waited)
        step = max(0.0005, period / 10)
        while not self._register(REG_CONFIG) & OS_BIT:
            if waited > 2 * period + 0.01:
                raise NotReady(CHIP, self.address, f"conversion of {mux.name} not done after {waited * 1000:.1f} ms")
            self._sleep(step)
            waited += step
        return code_to_volts(self._register(REG_CONVERSION), full_scale)
