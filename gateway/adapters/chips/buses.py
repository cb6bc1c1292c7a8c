"""Opening I2C and SPI buses (real or emulated), one lock per bus, errors a technician can act on.

Real buses are opened lazily, on the first poll, so a bus that is not enabled yet is reported and
retried like a chip that does not answer, and picked up once it appears. A real bus is shared by
every chip on it and a driver's read is several transfers (write a register pointer, read), so
each bus has a lock that a read holds from its first transfer to its last.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.bus import I2cBus, SpiDevice
from drivers.chip_environment import Environment
from drivers.i2c.emulated_bus import ChipModel, EmulatedI2cBus
from gateway.adapters.chips.config import I2cChipSection, SpiChipSection


class BusUnavailable(OSError):
    """A bus device file is missing or not ours to open; the message says what to do."""


def _open_i2c(number: int) -> I2cBus:
    import smbus2

    path = f"/dev/i2c-{number}"
    try:
        bus: I2cBus = smbus2.SMBus(number)
    except FileNotFoundError:
        raise BusUnavailable(
            errno.ENOENT,
            f"I2C bus {number} is not there ({path} is missing): enable I2C (raspi-config, Interface "
            "Options, I2C; or dtparam=i2c_arm=on in config.txt) and reboot",
        ) from None
    except PermissionError:
        raise BusUnavailable(errno.EACCES, f"no permission to open {path}: add the roost user to group i2c") from None
    return bus


def _open_spi(bus: int, device: int) -> SpiDevice:
    import spidev  # Linux only; imported when a real SPI chip is configured

    path = f"/dev/spidev{bus}.{device}"
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except FileNotFoundError:
        raise BusUnavailable(
            errno.ENOENT,
            f"SPI device {path} is missing: enable SPI (raspi-config, Interface Options, SPI; or "
            "dtparam=spi=on in config.txt) and reboot",
        ) from None
    except PermissionError:
        raise BusUnavailable(errno.EACCES, f"no permission to open {path}: add the roost user to group spi") from None
    return spi  # type: ignore[no-any-return]


@dataclass
class Buses:
    """Every bus the configured chips sit on; emulated ones are built here with their chips."""

    environment: Environment = field(default_factory=Environment)
    open_i2c: Callable[[int], I2cBus] = _open_i2c
    open_spi: Callable[[int, int], SpiDevice] = _open_spi
    _i2c: dict[tuple[bool, int], I2cBus] = field(default_factory=dict)
    _spi: dict[tuple[bool, int, int], SpiDevice] = field(default_factory=dict)
    _locks: dict[tuple[Any, ...], threading.Lock] = field(default_factory=dict)
    _emulated_chips: dict[int, dict[int, ChipModel]] = field(default_factory=dict)

    def add_emulated_i2c(self, chip: I2cChipSection) -> None:
        """Place an emulated chip at its address on its emulated bus (before the first poll)."""
        self._emulated_chips.setdefault(chip.bus, {})[chip.chip_address] = self.environment.i2c_model(chip.chip)

    def lock(self, *key: Any) -> threading.Lock:
        """The lock of one bus (``("i2c", emulated, n)`` or ``("spi", emulated, bus, device)``)."""
        return self._locks.setdefault(key, threading.Lock())

    def i2c(self, chip: I2cChipSection) -> I2cBus:
        """The bus ``chip`` sits on, opened on first use (raises BusUnavailable with advice)."""
        key = (chip.emulated, chip.bus)
        bus = self._i2c.get(key)
        if bus is None:
            bus = EmulatedI2cBus(self._emulated_chips.get(chip.bus, {})) if chip.emulated else self.open_i2c(chip.bus)
            self._i2c[key] = bus
        return bus

    def spi(self, chip: SpiChipSection) -> SpiDevice:
        """The SPI device ``chip`` is, opened on first use."""
        key = (chip.emulated, chip.bus, chip.device)
        dev = self._spi.get(key)
        if dev is None:
            dev = self.environment.spi_model(chip.chip) if chip.emulated else self.open_spi(chip.bus, chip.device)
            self._spi[key] = dev
        return dev

    def forget_i2c(self, chip: I2cChipSection) -> None:
        """Drop a real bus after an error that may mean it went away, so the next poll reopens it."""
        if not chip.emulated:
            bus = self._i2c.pop((False, chip.bus), None)
            close = getattr(bus, "close", None)
            if close is not None:
                close()
