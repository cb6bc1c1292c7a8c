"""Which chips answer on an I2C bus, and which of them Roost knows: the technician's bus scan.

Public API::

    scan(bus: I2cBus, *, first: int = 0x03, last: int = 0x77) -> list[Found]
    probe(bus: I2cBus, address: int) -> bool
    identify(bus: I2cBus, address: int) -> Found

Presence is probed the way ``i2cdetect`` does by default: an SMBus quick write (address, write bit,
stop) except at 0x30-0x37 and 0x50-0x5F, where a one-byte read is used because a quick write can
change the write-protect state of some EEPROMs. A NACK means nothing is there. (A read-only probe
would miss an SHT3x: it NACKs reads while it has no measurement to send.) A stuck bus ends the scan
with :class:`drivers.errors.BusTimeout` rather than listing nothing.

Known chips are then named by address and id register (:data:`KNOWN`): a BME280 (0x60) or BMP280
(0x58) by the id at 0xD0 at 0x76/0x77, an SHT3x at 0x44/0x45 by a status register read whose CRC
is right, an ADS1115 at 0x48-0x4B by its config register's reset value 0x8583 (or, once a driver
has used it, by the comparator thresholds' reset values 0x8000 / 0x7FFF).
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable
from dataclasses import dataclass

from smbus2 import i2c_msg

from drivers.bus import I2C_FIRST_ADDRESS, I2C_LAST_ADDRESS, NACK_ERRNOS, I2cBus, translate_os_error
from drivers.i2c import ads1115, bme280, sht3x

READ_PROBE_RANGES = (range(0x30, 0x38), range(0x50, 0x60))


@dataclass(frozen=True, slots=True)
class Found:
    """One address that answered, and what is known about it."""

    address: int
    chip: str | None
    """The chip's name when identified, else None."""
    measures: tuple[str, ...] = ()
    """What the chip measures (metric names)."""
    detail: str = ""
    """How it was identified, or what the address usually holds."""

    def as_json(self) -> dict[str, object]:
        """The JSON form the CLI prints."""
        return {
            "address": f"0x{self.address:02x}",
            "chip": self.chip,
            "measures": list(self.measures),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class KnownChip:
    """A chip the scan can name: where it lives and how to recognise it."""

    chip: str
    addresses: tuple[int, ...]
    measures: tuple[str, ...]
    identify: Callable[[I2cBus, int], str | None]
    """Returns the chip's name (it may refine ``chip``) and evidence, or None if it is not this chip."""


def _bosch(bus: I2cBus, address: int) -> str | None:
    chip_id = bus.read_byte_data(address, bme280.REG_CHIP_ID.address)
    if chip_id == bme280.CHIP_ID:
        return "BME280"
    return bme280.OTHER_CHIP_IDS.get(chip_id)


def _sht3x(bus: I2cBus, address: int) -> str | None:
    bus.i2c_rdwr(i2c_msg.write(address, sht3x.READ_STATUS.payload))
    reply = i2c_msg.read(address, 3)
    bus.i2c_rdwr(reply)
    return "SHT3x" if sht3x.check_word(ctypes.string_at(reply.buf, reply.len)) is not None else None


def _ads1115(bus: I2cBus, address: int) -> str | None:
    def register(n: int) -> int:
        hi, lo = bus.read_i2c_block_data(address, n, 2)
        return (hi << 8) | lo

    if register(ads1115.REG_CONFIG) == ads1115.CONFIG_RESET:
        return "ADS1115"
    thresholds = (register(ads1115.REG_LO_THRESH), register(ads1115.REG_HI_THRESH))
    return "ADS1115" if thresholds == (ads1115.LO_THRESH_RESET, ads1115.HI_THRESH_RESET) else None


KNOWN = (
    KnownChip("BME280", bme280.ADDRESSES, ("temperature", "pressure", "humidity"), _bosch),
    KnownChip("SHT3x", sht3x.ADDRESSES, ("temperature", "humidity"), _sht3x),
    KnownChip("ADS1115", ads1115.ADDRESSES, ("voltage",), _ads1115),
)
MEASURES_BY_NAME = {
    "BMP280": ("temperature", "pressure"),
    "BMP280 (sample)": ("temperature", "pressure"),
    "BME680": ("temperature", "pressure", "humidity", "gas resistance"),
}
EVIDENCE = {
    "BME280": "chip id 0x60 at 0xD0",
    "BMP280": "chip id 0x58 at 0xD0",
    "BME680": "chip id 0x61 at 0xD0 (no Roost driver yet)",
    "SHT3x": "status register read with a valid CRC",
    "ADS1115": "config/threshold registers at their reset values",
}


def probe(bus: I2cBus, address: int) -> bool:
    """Whether a chip acknowledges ``address``; a stuck bus raises BusTimeout, other errors BusError.

    An address a kernel driver has claimed (``EBUSY``, ``UU`` in i2cdetect) counts as present.
    """
    try:
        if any(address in r for r in READ_PROBE_RANGES):
            bus.read_byte(address)
        else:
            bus.write_quick(address)
    except OSError as exc:
        if exc.errno in NACK_ERRNOS:
            return False
        if exc.errno == errno.EBUSY:
            return True
        raise translate_os_error(exc, "I2C bus", address) from exc
    return True


def identify(bus: I2cBus, address: int) -> Found:
    """Name the chip at ``address`` if it is one Roost knows."""
    for known in KNOWN:
        if address not in known.addresses:
            continue
        try:
            name = known.identify(bus, address)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return Found(address, None, (), "in use by a kernel driver (UU in i2cdetect)")
            name = None  # it answered the probe but not like this chip
        except ValueError:
            name = None
        if name is not None:
            measures = MEASURES_BY_NAME.get(name, known.measures)
            return Found(address, name, measures, EVIDENCE.get(name.split(" ")[0], ""))
        return Found(address, None, (), f"{known.chip} address, but it does not answer like one")
    return Found(address, None, (), "no Roost driver knows this address")


def scan(bus: I2cBus, *, first: int = I2C_FIRST_ADDRESS, last: int = I2C_LAST_ADDRESS) -> list[Found]:
    """Probe ``first``..``last`` (0x03..0x77 by default) and identify what answers, in address order."""
    if not I2C_FIRST_ADDRESS <= first <= last <= I2C_LAST_ADDRESS:
        raise ValueError(f"scan range must be within 0x{I2C_FIRST_ADDRESS:02x}..0x{I2C_LAST_ADDRESS:02x}")
    return [identify(bus, address) for address in range(first, last + 1) if probe(bus, address)]
