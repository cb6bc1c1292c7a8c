"""``[[adapters.i2c]]`` and ``[[adapters.spi]]``: one table per chip, plus ``[adapters.polling]``.

No I/O and no bus libraries here, so the config loader stays light. ``emulated = true`` puts the
chip's register-level emulator (``drivers/``) where the bus would be: the demo and the tests use it,
a Pi with the chip wired uses the real bus by config alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from wire.names import check_sensor
from wire.typedconfig import ConfigValueError, doc

I2cChip = Literal["bme280", "sht3x", "ads1115"]
SpiChip = Literal["mcp3008"]

DEFAULT_ADDRESS: dict[str, int] = {"bme280": 0x76, "sht3x": 0x44, "ads1115": 0x48}
ADDRESSES: dict[str, tuple[int, ...]] = {
    "bme280": (0x76, 0x77),
    "sht3x": (0x44, 0x45),
    "ads1115": (0x48, 0x49, 0x4A, 0x4B),
}
OVERSAMPLING = (1, 2, 4, 8, 16)
ADS1115_FULL_SCALE = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)


def _check_common(interval_s: float, sensor: str) -> None:
    if not 0.01 <= interval_s <= 86400:
        raise ConfigValueError("interval_s", "must be between 0.01 and 86400 seconds")
    if sensor:
        try:
            check_sensor(sensor)
        except ValueError as exc:
            raise ConfigValueError("sensor", str(exc)) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class I2cChipSection:
    """One chip on an I2C bus; its readings carry the sensor id ``i2c-{bus}-0x{address}``."""

    chip: I2cChip = doc("The chip: bme280, sht3x or ads1115")
    bus: int = doc("I2C bus number (/dev/i2c-N; 1 on a Raspberry Pi's header)", default=1)
    address: int = doc(
        "7-bit address, e.g. 0x77; 0 = the chip's usual one (bme280 0x76, sht3x 0x44, ads1115 0x48)", default=0
    )
    interval_s: float = doc("Seconds between readings", default=10.0)
    sensor: str = doc("Sensor id for its readings; empty = i2c-{bus}-0x{address}", default="")
    emulated: bool = doc("Use the chip's register-level emulator instead of the bus (demo, tests)", default=False)
    mode: Literal["forced", "normal"] = doc(
        "bme280: forced (one measurement per reading, lowest power) or normal (continuous)", default="forced"
    )
    oversampling: int = doc("bme280: oversampling of temperature, pressure and humidity (1, 2, 4, 8, 16)", default=1)
    inputs: tuple[str, ...] = doc(
        "ads1115: inputs to convert, AIN0..AIN3 or differential pairs like AIN0-AIN1", default=("AIN0",)
    )
    full_scale_v: float = doc(
        "ads1115: full-scale range in volts (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)", default=4.096
    )

    def __post_init__(self) -> None:
        if not 0 <= self.bus <= 255:
            raise ConfigValueError("bus", "must be between 0 and 255")
        if self.address and not 0x03 <= self.address <= 0x77:
            raise ConfigValueError("address", f"0x{self.address:02x} is not a 7-bit device address (0x03..0x77)")
        if self.address and self.address not in ADDRESSES[self.chip]:
            allowed = ", ".join(f"0x{a:02x}" for a in ADDRESSES[self.chip])
            raise ConfigValueError("address", f"a {self.chip} answers only at {allowed}, not 0x{self.address:02x}")
        _check_common(self.interval_s, self.sensor)
        if self.oversampling not in OVERSAMPLING:
            raise ConfigValueError("oversampling", f"must be one of {list(OVERSAMPLING)}")
        if self.full_scale_v not in ADS1115_FULL_SCALE:
            raise ConfigValueError("full_scale_v", f"must be one of {list(ADS1115_FULL_SCALE)}")
        if self.chip == "ads1115":
            if not self.inputs:
                raise ConfigValueError("inputs", "name at least one input (AIN0..AIN3)")
            from drivers.i2c.ads1115 import MUX_BY_NAME

            unknown = [name for name in self.inputs if name not in MUX_BY_NAME]
            if unknown:
                raise ConfigValueError("inputs", f"{unknown} unknown; each must be one of {sorted(MUX_BY_NAME)}")

    @property
    def chip_address(self) -> int:
        """The configured address, or the chip's usual one."""
        return self.address or DEFAULT_ADDRESS[self.chip]

    @property
    def sensor_id(self) -> str:
        """The sensor id its readings carry."""
        return self.sensor or f"i2c-{self.bus}-0x{self.chip_address:02x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpiChipSection:
    """One ADC on an SPI bus; each input is a sensor ``spi{bus}.{device}-{input}`` with metric ``voltage``."""

    chip: SpiChip = doc("The chip: mcp3008")
    bus: int = doc("SPI bus number (/dev/spidevB.D)", default=0)
    device: int = doc("Chip select (/dev/spidevB.D)", default=0)
    inputs: tuple[str, ...] = doc(
        "Inputs to convert: ch0..ch7 single-ended, or pseudo-differential pairs like ch0-ch1", default=("ch0",)
    )
    vref: float = doc("Reference voltage on VREF, in volts", default=3.3)
    speed_hz: int = doc("SPI clock (at most 1350000 at 2.7 V, 3600000 at 5 V)", default=1_000_000)
    interval_s: float = doc("Seconds between readings", default=10.0)
    emulated: bool = doc("Use the chip's emulator instead of the bus (demo, tests)", default=False)

    def __post_init__(self) -> None:
        if not 0 <= self.bus <= 255 or not 0 <= self.device <= 255:
            raise ConfigValueError("bus", "bus and device must be between 0 and 255")
        _check_common(self.interval_s, "")
        from drivers.spi.mcp3008 import INPUT_BY_NAME

        if not self.inputs:
            raise ConfigValueError("inputs", "name at least one input (ch0..ch7)")
        unknown = [name for name in self.inputs if name not in INPUT_BY_NAME]
        if unknown:
            raise ConfigValueError("inputs", f"{unknown} unknown; each must be ch0..ch7 or a pair like ch0-ch1")
        if len(set(self.inputs)) != len(self.inputs):
            raise ConfigValueError("inputs", "an input is named twice")
        if not 0.25 <= self.vref <= 5.5:
            raise ConfigValueError("vref", "must be between 0.25 and 5.5 volts")
        if not 10_000 <= self.speed_hz <= 3_600_000:
            raise ConfigValueError("speed_hz", "must be between 10000 and 3600000")

    def sensor_id(self, inp: str) -> str:
        """The sensor id of one input: ``spi0.0-ch3``."""
        return f"spi{self.bus}.{self.device}-{inp}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PollingSection:
    """How polled devices (I2C, SPI, Modbus) are watched."""

    fail_threshold: int = doc("Failed polls in a row before a device is reported unavailable", default=3)
    backoff_max_s: float = doc("Longest wait between retries of an unavailable device", default=300.0)

    def __post_init__(self) -> None:
        if not 1 <= self.fail_threshold <= 1000:
            raise ConfigValueError("fail_threshold", "must be between 1 and 1000")
        if self.backoff_max_s <= 0:
            raise ConfigValueError("backoff_max_s", "must be greater than 0")


def check_chips(i2c: Sequence[I2cChipSection], spi: Sequence[SpiChipSection]) -> None:
    """No two chips at one address of one bus, no two sensors with one id."""
    seen: dict[tuple[int, int], int] = {}
    ids: dict[str, str] = {}
    for i, c in enumerate(i2c):
        where = (c.bus, c.chip_address)
        if where in seen:
            raise ConfigValueError(
                f"i2c[{i}].address", f"bus {c.bus} address 0x{c.chip_address:02x} is already i2c[{seen[where]}]"
            )
        seen[where] = i
        if c.sensor_id in ids:
            raise ConfigValueError(f"i2c[{i}].sensor", f"{c.sensor_id!r} is already {ids[c.sensor_id]}'s id")
        ids[c.sensor_id] = f"i2c[{i}]"
    spi_seen: dict[tuple[int, int], int] = {}
    for i, s in enumerate(spi):
        if (s.bus, s.device) in spi_seen:
            raise ConfigValueError(
                f"spi[{i}].device", f"spidev{s.bus}.{s.device} is already spi[{spi_seen[(s.bus, s.device)]}]"
            )
        spi_seen[(s.bus, s.device)] = i
