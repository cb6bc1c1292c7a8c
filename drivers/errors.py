"""What a chip driver raises: one root, :class:`DriverError`, with the chip, its address and the problem.

::

    DriverError                  chip, address, problem
    ├── BusError                 transient: the transfer itself failed; retrying later may work
    │   ├── NoAcknowledge        the chip did not acknowledge (absent, unpowered, busy, wrong address)
    │   └── BusTimeout           the bus is stuck (SDA or SCL held low) or the adapter timed out
    └── DeviceError              the chip answered, but not as the datasheet says it should
        ├── WrongChip            the id register names another chip: check the address and the part
        ├── ChecksumError        a CRC over the data failed: noise on the bus or long wires
        ├── NotReady             a conversion did not finish within the datasheet's time (bounded wait)
        └── ImplausibleData      calibration or raw values no working chip can produce

``address`` is the 7-bit I2C address (an ``int``) or, for SPI, ``"spi{bus}.{device}"``. A bus's own
``OSError`` is translated at the boundary (:func:`drivers.bus.translate_os_error`) with ``raise ... from``.
"""

from __future__ import annotations


def format_address(address: int | str) -> str:
    """``0x76`` for an I2C address, the SPI device name as is."""
    return f"0x{address:02x}" if isinstance(address, int) else address


class DriverError(Exception):
    """Root of every chip driver error; ``str()`` reads ``BME280 at 0x76: problem``."""

    def __init__(self, chip: str, address: int | str, problem: str) -> None:
        self.chip = chip
        self.address = address
        self.problem = problem
        super().__init__(f"{chip} at {format_address(address)}: {problem}")


class BusError(DriverError):
    """The transfer failed on the bus (transient)."""


class NoAcknowledge(BusError):
    """The chip did not acknowledge its address or a byte."""


class BusTimeout(BusError):
    """The bus is stuck or the adapter timed out."""


class DeviceError(DriverError):
    """The chip answered with something the datasheet rules out (permanent until someone looks)."""


class WrongChip(DeviceError):
    """The id register holds another chip's id."""

    def __init__(self, chip: str, address: int | str, problem: str, *, found: int) -> None:
        super().__init__(chip, address, problem)
        self.found = found


class ChecksumError(DeviceError):
    """A CRC check over received data failed."""


class NotReady(DeviceError):
    """A conversion did not complete within the bounded wait."""


class ImplausibleData(DeviceError):
    """Calibration or raw data that no working chip produces."""
