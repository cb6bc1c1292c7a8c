"""A register-level BME280: calibration registers, raw ADC values, modes, status and reset.

The environment is set with ``temperature`` (°C), ``pressure`` (Pa) and ``humidity`` (%RH). On each
completed measurement the model finds the raw 20-bit (temperature, pressure) and 16-bit (humidity)
ADC values that the datasheet's own compensation (:mod:`drivers.i2c.bme280`) turns back into those
values, by bisection over the raw space (the compensation is monotonic in each raw value), at the
resolution the oversampling gives (16 bits at x1 up to 20 bits at x16 or with the IIR filter,
section 3.4). So the real driver recovers the intended value within the chip's resolution.

Modelled from the datasheet: writes as register/data pairs and auto-incrementing burst reads
(section 6.2); sleep, forced (back to sleep when done) and normal mode with standby times
(section 3.3); the status ``measuring`` and ``im_update`` bits; ``ctrl_hum`` taking effect only
with the next ``ctrl_meas`` write (section 5.4.3); ``config`` writes ignored in normal mode
(section 5.4.6); soft reset with 0xB6 at 0xE0; data registers at their reset values (0x80000,
0x8000) until the first measurement; the IIR filter on temperature and pressure (section 3.4.4).

Faults: ``faults`` (NACK, stuck bus, see :class:`drivers.i2c.emulated_bus.Faults`), ``chip_id``
(pretend to be another chip), ``never_ready`` (the measuring bit never clears).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.i2c import bme280 as chip
from drivers.i2c.bme280 import Calibration, Mode
from drivers.i2c.emulated_bus import ChipModel, Clock, Faults

DEFAULT_CALIBRATION = Calibration(
    # Temperature and pressure: the BMP280 datasheet's worked example (section 3.12);
    # humidity: values of the kind real BME280s carry.
    t1=27504, t2=26435, t3=-1000,
    p1=36477, p2=-10685, p3=3024, p4=2855, p5=140, p6=-7, p7=15500, p8=-14600, p9=6000,
    h1=75, h2=362, h3=0, h4=313, h5=50, h6=30,
)  # fmt: skip
RAW_SKIPPED_20 = 0x80000
RAW_SKIPPED_16 = 0x8000
MAX_CATCH_UP = 256  # normal-mode cycles replayed after a long gap (even a x16 filter has settled by then)


def _closest(f: Callable[[int], float], target: float, lo: int, hi: int, *, increasing: bool) -> int:
    """The k in [lo, hi] whose f(k) is nearest ``target``, for f monotonic in k (bisection)."""
    sign = 1.0 if increasing else -1.0
    a, b = lo, hi
    while a < b:  # first k with sign*f(k) >= sign*target
        mid = (a + b) // 2
        if sign * f(mid) < sign * target:
            a = mid + 1
        else:
            b = mid
    best = a
    if a > lo and abs(f(a - 1) - target) <= abs(f(a) - target):
        best = a - 1
    return best


def raw_temperature(celsius: float, cal: Calibration, bits: int = 20) -> int:
    """The 20-bit adc_T (a multiple of 2**(20-bits)) that compensates closest to ``celsius``."""
    step = 1 << (20 - bits)
    k = _closest(lambda k: chip.compensate_temperature(k * step, cal)[0], celsius, 0, (1 << bits) - 1, increasing=True)
    return k * step


def raw_pressure(pascal: float, cal: Calibration, t_fine: int, bits: int = 20) -> int:
    """The adc_P that compensates closest to ``pascal`` at this ``t_fine`` (pressure falls as adc_P rises)."""
    step = 1 << (20 - bits)

    def p(k: int) -> float:
        value = chip.compensate_pressure(k * step, cal, t_fine)
        return 0.0 if value is None else value

    return _closest(p, pascal, 0, (1 << bits) - 1, increasing=False) * step


def raw_humidity(percent: float, cal: Calibration, t_fine: int) -> int:
    """The 16-bit adc_H that compensates closest to ``percent`` at this ``t_fine``."""
    return _closest(lambda k: chip.compensate_humidity(k, cal, t_fine), percent, 0, 0xFFFF, increasing=True)


def encode_data(adc_p: int, adc_t: int, adc_h: int) -> bytes:
    """The 8 data register bytes at 0xF7..0xFE for these raw values (the inverse of ``decode_data``)."""
    press = [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4]
    temp = [adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4]
    return bytes([*press, *temp, adc_h >> 8, adc_h & 0xFF])


def _bits(osrs: int, filtered: bool) -> int:
    """ADC resolution: 16 bits at x1 plus one per doubling; 20 bits with the IIR filter (section 3.4)."""
    return 20 if filtered else 15 + min(osrs, 5)


class Bme280Emulator(ChipModel):
    """A BME280 behind :class:`drivers.i2c.emulated_bus.EmulatedI2cBus`."""

    def __init__(
        self,
        *,
        calibration: Calibration = DEFAULT_CALIBRATION,
        temperature: float = 21.0,
        pressure: float = 101325.0,
        humidity: float = 45.0,
        chip_id: int = chip.CHIP_ID,
        faults: Faults | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(faults=faults, clock=clock)
        self.calibration = calibration
        self.temperature = temperature
        self.pressure = pressure
        self.humidity = humidity
        self.chip_id = chip_id
        self.never_ready = False
        self.measurements = 0
        """How many measurements the chip has completed (tests count forced-mode triggers)."""
        self.regs = bytearray(256)
        self._pointer = 0
        self._power_on()

    # state

    def _power_on(self) -> None:
        for reg in chip.REGISTERS:
            self.regs[reg.address] = reg.reset
        tp, h = self.calibration.encode()
        base = chip.REG_CALIB_TP.address
        self.regs[base : base + len(tp)] = tp
        base = chip.REG_CALIB_H.address
        self.regs[base : base + len(h)] = h
        self.regs[0xF7:0xFF] = encode_data(RAW_SKIPPED_20, RAW_SKIPPED_20, RAW_SKIPPED_16)
        self._osrs_h = 0  # the latched humidity oversampling (ctrl_hum as of the last ctrl_meas write)
        self._forced_done: float | None = None
        self._cycle_done: float | None = None  # normal mode: when the current measurement completes
        self._nvm_until = self.clock() + chip.STARTUP_S
        self._filtered: tuple[float, float] | None = None

    @property
    def mode(self) -> Mode:
        """The mode the chip is in now."""
        self._advance(self.clock())
        bits = self.regs[chip.REG_CTRL_MEAS.address] & 0x03
        return Mode.FORCED if bits == 2 else Mode(bits)

    def _measure_s(self) -> float:
        meas = self.regs[chip.REG_CTRL_MEAS.address]
        return chip.measurement_time_s(meas >> 5, (meas >> 2) & 0x07, self._osrs_h)

    def _advance(self, now: float) -> None:
        if self._forced_done is not None and now >= self._forced_done:
            self._forced_done = None
            self._sample()
            self.regs[chip.REG_CTRL_MEAS.address] &= 0xFC  # back to sleep
        if self._cycle_done is not None and now >= self._cycle_done:
            t_sb = chip.STANDBY_MS[self.regs[chip.REG_CONFIG.address] >> 5] / 1000.0
            period = self._measure_s() + t_sb
            missed = int((now - self._cycle_done) / period)
            if missed > MAX_CATCH_UP:
                self._cycle_done += (missed - MAX_CATCH_UP) * period
            while self._cycle_done <= now:
                self._sample()
                self._cycle_done += period

    def _measuring(self, now: float) -> bool:
        if self.never_ready or self._forced_done is not None:
            return True
        return self._cycle_done is not None and now >= self._cycle_done - self._measure_s()

    def _sample(self) -> None:
        meas = self.regs[chip.REG_CTRL_MEAS.address]
        osrs_t, osrs_p = meas >> 5, (meas >> 2) & 0x07
        coefficient = chip.Filter(min((self.regs[chip.REG_CONFIG.address] >> 2) & 0x07, 4)).coefficient
        filtered = coefficient > 1
        cal = self.calibration
        adc_t = raw_temperature(self.temperature, cal, _bits(osrs_t, filtered)) if osrs_t else RAW_SKIPPED_20
        adc_p = RAW_SKIPPED_20
        adc_h = RAW_SKIPPED_16
        if osrs_t:
            if filtered:  # section 3.4.4: new = (old * (c - 1) + sample) / c, on the raw values
                old_t = self._filtered[0] if self._filtered else adc_t
                adc_t = round((old_t * (coefficient - 1) + adc_t) / coefficient)
            t_fine = chip.compensate_temperature(adc_t, cal)[1]
            if osrs_p:
                adc_p = raw_pressure(self.pressure, cal, t_fine, _bits(osrs_p, filtered))
                if filtered:
                    old_p = self._filtered[1] if self._filtered else adc_p
                    adc_p = round((old_p * (coefficient - 1) + adc_p) / coefficient)
            self._filtered = (adc_t, adc_p)
            if self._osrs_h:
                adc_h = raw_humidity(self.humidity, cal, t_fine)
        self.regs[0xF7:0xFF] = encode_data(adc_p, adc_t, adc_h)
        self.measurements += 1

    # the bus side

    def on_write(self, data: bytes) -> None:
        """Register address, then register/data pairs (no auto-increment on writes, section 6.2.1)."""
        now = self.clock()
        self._advance(now)
        if not data:
            return
        self._pointer = data[0]
        pairs = [data[0], *data[1:]]
        for i in range(0, len(pairs) - 1, 2):
            self._write_register(pairs[i], pairs[i + 1], now)

    def _write_register(self, register: int, value: int, now: float) -> None:
        if register == chip.REG_RESET.address:
            if value == chip.RESET_WORD:
                self._power_on()
        elif register == chip.REG_CTRL_HUM.address:
            self.regs[register] = value & chip.REG_CTRL_HUM.mask
        elif register == chip.REG_CONFIG.address:
            if self.regs[chip.REG_CTRL_MEAS.address] & 0x03 != Mode.NORMAL:
                self.regs[register] = value & chip.REG_CONFIG.mask
        elif register == chip.REG_CTRL_MEAS.address:
            self.regs[register] = value
            self._osrs_h = self.regs[chip.REG_CTRL_HUM.address] & 0x07
            mode = value & 0x03
            self._forced_done = now + self._measure_s() if mode in (1, 2) else None
            self._cycle_done = now + self._measure_s() if mode == Mode.NORMAL else None

    def on_read(self, length: int) -> bytes:
        """Auto-incrementing read from the register pointer (section 6.2.2)."""
        now = self.clock()
        self._advance(now)
        out = bytearray()
        for i in range(length):
            register = (self._pointer + i) & 0xFF
            if register == chip.REG_CHIP_ID.address:
                out.append(self.chip_id & 0xFF)
            elif register == chip.REG_RESET.address:
                out.append(0)
            elif register == chip.REG_STATUS.address:
                status = chip.STATUS_MEASURING if self._measuring(now) else 0
                out.append(status | (chip.STATUS_IM_UPDATE if now < self._nvm_until else 0))
            else:
                out.append(self.regs[register])
        self._pointer = (self._pointer + length) & 0xFF
        return bytes(out)
