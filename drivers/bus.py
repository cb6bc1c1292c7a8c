"""The bus seams chip drivers talk through: the subset of ``smbus2.SMBus`` and ``spidev.SpiDev`` they use.

A real ``smbus2.SMBus(1)`` or ``spidev.SpiDev()`` satisfies these protocols as is, and so do the
emulated buses beside the drivers (:mod:`drivers.i2c.emulated_bus`, :mod:`drivers.spi.mcp3008_emulator`);
which one a driver gets is a matter of config alone.

What a bus raises is what the kernel's i2c-dev raises through smbus2: ``OSError`` with
``errno.EREMOTEIO`` (the bcm2835 controller) or ``errno.ENXIO``/``errno.EIO`` (other adapters) when
a chip does not acknowledge, and ``errno.ETIMEDOUT`` when the bus is stuck. :class:`I2cBusError`
builds those for emulators; :func:`translate_os_error` turns any of them into the driver's error.

Sensor ids (architecture page, "Names"): :func:`i2c_sensor_id` and :func:`spi_sensor_id`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from smbus2 import i2c_msg

from drivers.errors import BusError, BusTimeout, NoAcknowledge

I2C_FIRST_ADDRESS = 0x03
I2C_LAST_ADDRESS = 0x77
NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO, errno.EIO})
TIMEOUT_ERRNOS = frozenset({errno.ETIMEDOUT, errno.EAGAIN})


class I2cBus(Protocol):
    """The part of ``smbus2.SMBus`` Roost's drivers and the bus scan use (same names, same order)."""

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """Address the chip for writing and stop: an ACK means something is there."""

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """Read one byte with no register pointer write first."""

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Write the register pointer, repeated start, read one byte."""

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """Write the register pointer and one byte."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        """Write the register pointer, repeated start, read ``length`` bytes (a burst read)."""

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        """Write the register pointer and then ``data``."""

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run raw I2C messages in one combined transaction (for chips with commands, not registers)."""


class SpiDevice(Protocol):
    """The part of ``spidev.SpiDev`` the SPI drivers use (after ``open(bus, device)``)."""

    max_speed_hz: int
    mode: int

    def xfer2(self, values: list[int]) -> list[int]:
        """Clock ``values`` out with chip select held low throughout; return what came back."""
        ...


class I2cBusError(OSError):
    """An ``OSError`` shaped like the one smbus2 raises, for emulated buses."""

    @classmethod
    def nack(cls, address: int) -> I2cBusError:
        """The chip at ``address`` did not acknowledge (``EREMOTEIO``, as on a Raspberry Pi)."""
        return cls(errno.EREMOTEIO, f"{os.strerror(errno.EREMOTEIO)} (no ACK from 0x{address:02x})")

    @classmethod
    def timeout(cls, address: int) -> I2cBusError:
        """The bus is stuck: a transfer to ``address`` timed out (``ETIMEDOUT``)."""
        return cls(errno.ETIMEDOUT, f"{os.strerror(errno.ETIMEDOUT)} (bus stuck, addressing 0x{address:02x})")


def translate_os_error(exc: OSError, chip: str, address: int | str) -> BusError:
    """The driver error for a bus's ``OSError``, with what a technician should check."""
    detail = f"errno {exc.errno} {os.strerror(exc.errno) if exc.errno else exc}"
    if exc.errno in NACK_ERRNOS:
        return NoAcknowledge(chip, address, f"no acknowledge ({detail}): check wiring, power and the address")
    if exc.errno in TIMEOUT_ERRNOS:
        return BusTimeout(
            chip, address, f"bus timed out ({detail}): SDA or SCL held low? power-cycle the chip, check pull-ups"
        )
    return BusError(chip, address, f"bus transfer failed ({detail})")


@contextmanager
def translated(chip: str, address: int | str) -> Iterator[None]:
    """Run bus calls, turning a bus ``OSError`` into the driver's :class:`BusError`."""
    try:
        yield
    except OSError as exc:
        raise translate_os_error(exc, chip, address) from exc


def i2c_sensor_id(bus: int, address: int) -> str:
    """The sensor id of the chip at ``address`` on I2C bus ``bus``: ``i2c-1-0x76``."""
    return f"i2c-{bus}-0x{address:02x}"


def spi_sensor_id(bus: int, device: int, channel: int) -> str:
    """The sensor id of one ADC channel on SPI bus ``bus``, chip select ``device``: ``spi0.0-ch3``."""
    return f"spi{bus}.{device}-ch{channel}"
