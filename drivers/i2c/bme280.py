"""Bosch BME280 (temperature, pressure, humidity) on I2C, from the datasheet (BST-BME280-DS002).

Public API::

    Bme280(bus: I2cBus, address: int = 0x76, *, config: Bme280Config = Bme280Config(),
           sleep: Callable[[float], None] = time.sleep)
    Bme280.read() -> list[Measurement]   # temperature (Cel), pressure (Pa), humidity (%RH)
    Bme280.calibration -> Calibration    # read once, on the first read()
    i2c_sensor_id(bus_number, address)   # "i2c-1-0x76" (drivers.bus)

The first ``read()`` checks the chip id (0x60 at 0xD0), soft-resets the chip (0xB6 to 0xE0), waits
for the NVM copy, reads the trimming parameters once, then writes ctrl_hum, config and ctrl_meas
(ctrl_hum only takes effect with the ctrl_meas write that follows, section 5.4.3). In forced mode
each ``read()`` starts one measurement and waits for the status register's ``measuring`` bit
with a bounded loop; in normal mode it reads the latest result, checking first that the chip
still holds the settings (a chip that browned out comes back in sleep mode with stale data).
Data registers are read in one burst, so all values belong to one measurement (section 4).

Compensation: the **double-precision formulas of section 8.1** (the same as the BMP280
datasheet's section 8.1 for temperature and pressure), including the conversion of ``t_fine`` to a
32-bit integer. They reproduce the BMP280 datasheet's worked example (section 3.12) and are
continuous, which lets the emulator invert them by bisection. Values are rounded to 0.01.

Any bus failure or datasheet violation raises a :class:`drivers.errors.DriverError`; after a bus
failure the next ``read()`` sets the chip up again from scratch.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from drivers.bus import I2cBus, translated
from drivers.errors import BusError, DriverError, ImplausibleData, NotReady, WrongChip
from drivers.measurement import Measurement

CHIP = "BME280"
ADDRESSES = (0x76, 0x77)  # SDO to GND / SDO to VDDIO
CHIP_ID = 0x60
OTHER_CHIP_IDS = {0x56: "BMP280 (sample)", 0x57: "BMP280 (sample)", 0x58: "BMP280", 0x61: "BME680"}
RESET_WORD = 0xB6
STARTUP_S = 0.002  # section 1, "start-up time": 2 ms until the NVM is copied


@dataclass(frozen=True, slots=True)
class Register:
    """One register of the memory map (section 5.3, table 18)."""

    name: str
    address: int
    reset: int
    writable: bool = False
    mask: int = 0xFF
    """The bits a write changes."""


REG_CALIB_TP = Register("calib00..calib25", 0x88, 0x00)  # 26 bytes: dig_T1..dig_P9, reserved, dig_H1
REG_CHIP_ID = Register("id", 0xD0, CHIP_ID)
REG_RESET = Register("reset", 0xE0, 0x00, writable=True)
REG_CALIB_H = Register("calib26..calib32", 0xE1, 0x00)  # 7 bytes: dig_H2..dig_H6
REG_CTRL_HUM = Register("ctrl_hum", 0xF2, 0x00, writable=True, mask=0x07)
REG_STATUS = Register("status", 0xF3, 0x00)
REG_CTRL_MEAS = Register("ctrl_meas", 0xF4, 0x00, writable=True)
REG_CONFIG = Register("config", 0xF5, 0x00, writable=True, mask=0xFD)  # bit 1 is reserved
REG_PRESS = Register("press_msb..xlsb", 0xF7, 0x80)  # reset 0x80000 (20 bits)
REG_TEMP = Register("temp_msb..xlsb", 0xFA, 0x80)
REG_HUM = Register("hum_msb..lsb", 0xFD, 0x80)  # reset 0x8000
REGISTERS = (
    REG_CALIB_TP,
    REG_CHIP_ID,
    REG_RESET,
    REG_CALIB_H,
    REG_CTRL_HUM,
    REG_STATUS,
    REG_CTRL_MEAS,
    REG_CONFIG,
    REG_PRESS,
    REG_TEMP,
    REG_HUM,
)
CALIB_TP_LEN = 26
CALIB_H_LEN = 7
DATA_LEN = 8  # 0xF7..0xFE
STATUS_MEASURING = 0x08
STATUS_IM_UPDATE = 0x01


class Oversampling(IntEnum):
    """osrs_t / osrs_p / osrs_h codes (tables 20, 23, 24); SKIP leaves the measurement out."""

    SKIP = 0
    X1 = 1
    X2 = 2
    X4 = 3
    X8 = 4
    X16 = 5

    @property
    def factor(self) -> int:
        """How many samples the chip averages (0 when skipped)."""
        return 0 if self == 0 else 1 << (self - 1)


class Filter(IntEnum):
    """The IIR filter coefficient code in config[4:2] (table 28)."""

    OFF = 0
    X2 = 1
    X4 = 2
    X8 = 3
    X16 = 4

    @property
    def coefficient(self) -> int:
        """The filter coefficient (1 = off)."""
        return 1 << self if self else 1


class Mode(IntEnum):
    """ctrl_meas[1:0] (table 25); 0b10 is forced mode too."""

    SLEEP = 0
    FORCED = 1
    NORMAL = 3


STANDBY_MS: dict[int, float] = {0: 0.5, 1: 62.5, 2: 125.0, 3: 250.0, 4: 500.0, 5: 1000.0, 6: 10.0, 7: 20.0}
"""t_sb code in config[7:5] -> inactive time between normal-mode measurements (table 27)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bme280Config:
    """How the chip measures: mode, oversampling per quantity, IIR filter and (normal mode) standby."""

    mode: Mode = Mode.FORCED
    temperature: Oversampling = Oversampling.X1
    pressure: Oversampling = Oversampling.X1
    humidity: Oversampling = Oversampling.X1
    filter: Filter = Filter.OFF
    standby_ms: float = 1000.0

    def __post_init__(self) -> None:
        if self.mode == Mode.SLEEP:
            raise ValueError("mode: sleep takes no measurements; use forced or normal")
        if self.temperature == Oversampling.SKIP:
            raise ValueError("temperature: cannot be skipped, pressure and humidity compensation need it")
        if self.standby_ms not in STANDBY_MS.values():
            raise ValueError(f"standby_ms: must be one of {sorted(STANDBY_MS.values())}")

    @property
    def ctrl_hum(self) -> int:
        """The ctrl_hum register value."""
        return int(self.humidity)

    @property
    def ctrl_meas(self) -> int:
        """The ctrl_meas register value (with the mode bits)."""
        return (self.temperature << 5) | (self.pressure << 2) | self.mode

    @property
    def config_register(self) -> int:
        """The config register value (spi3w_en left 0)."""
        t_sb = next(code for code, ms in STANDBY_MS.items() if ms == self.standby_ms)
        return (t_sb << 5) | (self.filter << 2)


def measurement_time_s(osrs_t: int, osrs_p: int, osrs_h: int, *, maximum: bool = False) -> float:
    """How long one measurement takes for these oversampling codes (section 9.1, appendix B)."""
    ft, fp, fh = (Oversampling(min(code, 5)).factor for code in (osrs_t, osrs_p, osrs_h))
    if maximum:
        ms = 1.25 + 2.3 * ft + (2.3 * fp + 0.575 if fp else 0.0) + (2.3 * fh + 0.575 if fh else 0.0)
    else:
        ms = 1.0 + 2.0 * ft + (2.0 * fp + 0.5 if fp else 0.0) + (2.0 * fh + 0.5 if fh else 0.0)
    return ms / 1000.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """The trimming parameters (section 4.2.2, table 16), with their datasheet signedness."""

    t1: int  # unsigned short
    t2: int  # signed short
    t3: int  # signed short
    p1: int  # unsigned short
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int  # p2..p9 signed short
    h1: int  # unsigned char
    h2: int  # signed short
    h3: int  # unsigned char
    h4: int  # signed 12 bits: 0xE4 [11:4], 0xE5[3:0] [3:0]
    h5: int  # signed 12 bits: 0xE5[7:4] [3:0], 0xE6 [11:4]
    h6: int  # signed char

    @classmethod
    def parse(cls, tp: bytes, h: bytes) -> Calibration:
        """Decode the 26 bytes from 0x88 and the 7 bytes from 0xE1."""
        if len(tp) != CALIB_TP_LEN or len(h) != CALIB_H_LEN:
            raise ValueError(f"calibration blocks must be {CALIB_TP_LEN} and {CALIB_H_LEN} bytes")
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack_from("<HhhHhhhhhhhh", tp)
        h1 = tp[25]
        (h2,) = struct.unpack_from("<h", h)
        h3 = h[2]
        h4 = _signed12((h[3] << 4) | (h[4] & 0x0F))
        h5 = _signed12((h[5] << 4) | (h[4] >> 4))
        h6 = h[6] - 256 if h[6] > 127 else h[6]
        return cls(t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, h1, h2, h3, h4, h5, h6)

    def encode(self) -> tuple[bytes, bytes]:
        """The two register blocks holding these parameters (for emulators and tests)."""
        tp = struct.pack(
            "<HhhHhhhhhhhhBB",
            self.t1,
            self.t2,
            self.t3,
            self.p1,
            self.p2,
            self.p3,
            self.p4,
            self.p5,
            self.p6,
            self.p7,
            self.p8,
            self.p9,
            0,  # 0xA0, reserved
            self.h1,
        )
        h4, h5 = self.h4 & 0xFFF, self.h5 & 0xFFF
        h = struct.pack("<hB", self.h2, self.h3) + bytes(
            [h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4, self.h6 & 0xFF]
        )
        return tp, h


def _signed12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


def compensate_temperature(adc_t: int, cal: Calibration) -> tuple[float, int]:
    """Temperature in °C and ``t_fine`` (section 8.1, ``BME280_compensate_T_double``)."""
    var1 = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    var2 = (adc_t / 131072.0 - cal.t1 / 8192.0) * (adc_t / 131072.0 - cal.t1 / 8192.0) * cal.t3
    return (var1 + var2) / 5120.0, int(var1 + var2)  # int() truncates like the C cast


def compensate_pressure(adc_p: int, cal: Calibration, t_fine: float) -> float | None:
    """Pressure in Pa (section 8.1, ``BME280_compensate_P_double``); None where the datasheet returns 0."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.p6 / 32768.0
    var2 = var2 + var1 * cal.p5 * 2.0
    var2 = var2 / 4.0 + cal.p4 * 65536.0
    var1 = (cal.p3 * var1 * var1 / 524288.0 + cal.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.p1
    if var1 == 0.0:
        return None  # the datasheet's guard against division by zero
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.p9 * p * p / 2147483648.0
    var2 = p * cal.p8 / 32768.0
    return p + (var1 + var2 + cal.p7) / 16.0


def compensate_humidity(adc_h: int, cal: Calibration, t_fine: float) -> float:
    """Relative humidity in %, clamped to 0..100 (section 8.1, ``bme280_compensate_H_double``)."""
    var_h = t_fine - 76800.0
    var_h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * var_h)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * var_h * (1.0 + cal.h3 / 67108864.0 * var_h))
    )
    var_h = var_h * (1.0 - cal.h1 * var_h / 524288.0)
    return min(100.0, max(0.0, var_h))


def decode_data(data: bytes) -> tuple[int, int, int]:
    """(adc_P, adc_T, adc_H) from the 8 bytes at 0xF7..0xFE (20, 20 and 16 bits)."""
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    return adc_p, adc_t, (data[6] << 8) | data[7]


# What a working BME280 can report: its operating range with a margin (section 1, table 1).
TEMPERATURE_RANGE = (-45.0, 90.0)
PRESSURE_RANGE = (25000.0, 125000.0)


class Bme280:
    """A BME280 on an I2C bus: construct, then call :meth:`read` (blocking, a few ms)."""

    def __init__(
        self,
        bus: I2cBus,
        address: int = 0x76,
        *,
        config: Bme280Config | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus = bus
        self.address = address
        self.config = config if config is not None else Bme280Config()
        self._sleep = sleep
        self._cal: Calibration | None = None
        self._configured = False

    @property
    def calibration(self) -> Calibration | None:
        """The trimming parameters, once the first :meth:`read` has read them."""
        return self._cal

    def read(self) -> list[Measurement]:
        """Measure (forced mode) or fetch the latest result (normal mode) and compensate it."""
        try:
            if not self._configured:
                self._setup()
            data = self._measure()
        except BusError:
            self._configured = False  # the chip may have reset: start from scratch next time
            raise
        return self._compensate(data)

    # set-up and measurement

    def _error(self, cls: type[DriverError], problem: str) -> DriverError:
        return cls(CHIP, self.address, problem)

    def _read(self, register: int, length: int) -> bytes:
        with translated(CHIP, self.address):
            data = self.bus.read_i2c_block_data(self.address, register, length)
        if len(data) != length or any(not 0 <= b <= 0xFF for b in data):
            raise self._error(BusError, f"short or malformed read at 0x{register:02x}: {len(data)} of {length} bytes")
        return bytes(data)

    def _write(self, register: int, value: int) -> None:
        with translated(CHIP, self.address):
            self.bus.write_byte_data(self.address, register, value)

    def _setup(self) -> None:
        chip_id = self._read(REG_CHIP_ID.address, 1)[0]
        if chip_id != CHIP_ID:
            other = OTHER_CHIP_IDS.get(chip_id)
            hint = f"that is a {other}" if other else "not a Bosch BME280"
            raise WrongChip(
                CHIP,
                self.address,
                f"chip id 0x{chip_id:02x} where a BME280 has 0x{CHIP_ID:02x} ({hint})",
                found=chip_id,
            )
        self._write(REG_RESET.address, RESET_WORD)
        self._wait(STARTUP_S, STARTUP_S * 5, STATUS_IM_UPDATE, "the NVM copy after reset (status im_update)")
        if self._cal is None:
            self._cal = self._check_calibration(
                Calibration.parse(
                    self._read(REG_CALIB_TP.address, CALIB_TP_LEN), self._read(REG_CALIB_H.address, CALIB_H_LEN)
                )
            )
        cfg = self.config
        # After reset the chip sleeps, so config is not ignored (section 5.4.6); ctrl_hum latches
        # on the ctrl_meas write (section 5.4.3), which also starts normal mode.
        self._write(REG_CTRL_HUM.address, cfg.ctrl_hum)
        self._write(REG_CONFIG.address, cfg.config_register)
        if cfg.mode == Mode.NORMAL:
            self._write(REG_CTRL_MEAS.address, cfg.ctrl_meas)
            typical, longest = self._durations()
            self._wait(typical, longest, STATUS_MEASURING, "the first normal-mode measurement")
        self._configured = True

    def _check_calibration(self, cal: Calibration) -> Calibration:
        tp, _ = cal.encode()
        if len(set(tp[:24])) == 1 or cal.t1 == 0 or cal.p1 == 0 or cal.t2 <= 0:
            raise self._error(ImplausibleData, f"calibration data unreadable (0x88..0x9F = {tp[:24].hex()})")
        return cal

    def _durations(self) -> tuple[float, float]:
        cfg = self.config
        args = (cfg.temperature, cfg.pressure, cfg.humidity)
        return measurement_time_s(*args), measurement_time_s(*args, maximum=True)

    def _wait(self, first: float, longest: float, bit: int, what: str) -> None:
        """Sleep ``first``, then poll status until ``bit`` clears; give up after twice ``longest``."""
        waited, step = first, 0.001
        self._sleep(first)
        while self._read(REG_STATUS.address, 1)[0] & bit:
            if waited >= 2 * longest + 0.005:
                raise self._error(NotReady, f"still busy after {waited * 1000:.1f} ms waiting for {what}")
            self._sleep(step)
            waited += step

    def _measure(self) -> bytes:
        cfg = self.config
        if cfg.mode == Mode.FORCED:
            self._write(REG_CTRL_MEAS.address, cfg.ctrl_meas)
            typical, longest = self._durations()
            self._wait(typical, longest, STATUS_MEASURING, "a forced-mode measurement")
            return self._read(REG_PRESS.address, DATA_LEN)
        block = self._read(REG_CTRL_HUM.address, 5 + DATA_LEN)  # 0xF2..0xFE (0xF6 unused) in one burst
        held = (block[0] & REG_CTRL_HUM.mask, block[2], block[3] & REG_CONFIG.mask)
        if held != (cfg.ctrl_hum, cfg.ctrl_meas, cfg.config_register):
            self._configured = False
            raise self._error(
                NotReady,
                "lost its settings (ctrl_hum, ctrl_meas, config = "
                + ", ".join(f"0x{v:02x}" for v in held)
                + "): reset or brown-out? it is set up again on the next read",
            )
        return block[5:]

    def _compensate(self, data: bytes) -> list[Measurement]:
        cal = self._cal
        assert cal is not None  # set by _setup
        adc_p, adc_t, adc_h = decode_data(data)
        temperature, t_fine = compensate_temperature(adc_t, cal)
        if not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
            raise self._error(ImplausibleData, f"temperature {temperature:.2f} °C is outside what a BME280 reports")
        out = [Measurement("temperature", round(temperature, 2), "Cel")]
        if self.config.pressure != Oversampling.SKIP:
            pressure = compensate_pressure(adc_p, cal, t_fine)
            if pressure is None or not PRESSURE_RANGE[0] <= pressure <= PRESSURE_RANGE[1]:
                shown = "undefined" if pressure is None else f"{pressure:.0f} Pa"
                raise self._error(ImplausibleData, f"pressure {shown} is outside what a BME280 reports")
            out.append(Measurement("pressure", round(pressure, 2), "Pa"))
        if self.config.humidity != Oversampling.SKIP:
            out.append(Measurement("humidity", round(compensate_humidity(adc_h, cal, t_fine), 2), "%RH"))
        return out
