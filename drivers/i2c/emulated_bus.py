"""An I2C bus in memory: an object with the ``smbus2.SMBus`` interface that hosts emulated chips.

Each smbus2 call becomes the I2C transactions a real adapter would put on the wire (address phase,
then written or read bytes; a register read is a pointer write, a repeated start and a read), and
each hosted :class:`ChipModel` answers them as its datasheet says. An address nobody answers gets
a NACK (``OSError`` ``EREMOTEIO``) as on a Raspberry Pi.

Faults: per chip (:class:`Faults`: NACK, NACK after N more transactions, holding the bus stuck)
and per bus (``bus.stuck``). :func:`demo_bus` is the demo's bus: BME280 at 0x76, SHT3x at 0x44,
ADS1115 at 0x48.
"""

from __future__ import annotations

import ctypes
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from smbus2 import i2c_msg

from drivers.bus import I2cBusError

I2C_M_RD = 0x0001
BLOCK_MAX = 32  # smbus2 refuses longer I2C block transfers (I2C_SMBUS_BLOCK_MAX)
Clock = Callable[[], float]


@dataclass(slots=True)
class Faults:
    """Switches a test or the demo flips to make a chip misbehave on the bus."""

    nack: bool = False
    """The chip does not acknowledge its address (unplugged, unpowered, wrong address)."""
    stuck: bool = False
    """The chip holds SDA low: every transfer on the whole bus times out."""
    nack_after: int | None = None
    """Acknowledge this many more address phases, then NACK every one (a chip dropping out mid-read)."""


class ManualClock:
    """A clock tests move by hand; pass ``clock.now`` to emulators and ``clock.sleep`` to drivers."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        """The current time in seconds."""
        return self.t

    def sleep(self, seconds: float) -> None:
        """Advance the time instead of waiting."""
        self.t += max(0.0, seconds)


class ChipModel(ABC):
    """One emulated I2C chip: what it does with the bytes of each transaction addressed to it."""

    def __init__(self, *, faults: Faults | None = None, clock: Clock = time.monotonic) -> None:
        self.faults = faults if faults is not None else Faults()
        self.clock = clock

    def acknowledges_read(self) -> bool:
        """Whether the chip ACKs its address for a read now (a busy SHT3x does not)."""
        return True

    @abstractmethod
    def on_write(self, data: bytes) -> None:
        """The master wrote ``data`` after an acknowledged address (``b""`` for a quick write)."""

    @abstractmethod
    def on_read(self, length: int) -> bytes:
        """The master reads ``length`` bytes after an acknowledged address."""


class EmulatedI2cBus:
    """An ``smbus2.SMBus`` look-alike dispatching by address to chip models."""

    def __init__(self, devices: Mapping[int, ChipModel] | None = None, *, history: int = 256) -> None:
        self.devices: dict[int, ChipModel] = dict(devices or {})
        self.stuck = False
        """The whole bus is stuck (a chip or a short holds SDA low): every transfer times out."""
        self.history: deque[tuple[int, str, bytes]] = deque(maxlen=history)
        """The last transactions: (address, "w" or "r", bytes)."""

    def attach(self, address: int, device: ChipModel) -> None:
        """Put a chip on the bus at ``address``."""
        _check_address(address)
        self.devices[address] = device

    def _address(self, address: int, *, read: bool) -> ChipModel:
        _check_address(address)
        if self.stuck or any(d.faults.stuck for d in self.devices.values()):
            raise I2cBusError.timeout(address)
        dev = self.devices.get(address)
        if dev is None or dev.faults.nack:
            raise I2cBusError.nack(address)
        left = dev.faults.nack_after
        if left is not None:
            if left <= 0:
                raise I2cBusError.nack(address)
            dev.faults.nack_after = left - 1
        if read and not dev.acknowledges_read():
            raise I2cBusError.nack(address)
        return dev

    def _write(self, address: int, data: bytes) -> None:
        dev = self._address(address, read=False)
        self.history.append((address, "w", data))
        dev.on_write(data)

    def _read(self, address: int, length: int) -> bytes:
        dev = self._address(address, read=True)
        data = bytes(dev.on_read(length))
        if len(data) != length:  # a model bug, not a bus condition
            raise AssertionError(f"chip model at 0x{address:02x} returned {len(data)} bytes, not {length}")
        self.history.append((address, "r", data))
        return data

    # smbus2.SMBus's interface (the subset drivers.bus.I2cBus names, same parameter names).

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """Address the chip for writing and stop."""
        self._write(i2c_addr, b"")

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """Read one byte with no pointer write."""
        return self._read(i2c_addr, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        """Write one byte."""
        self._write(i2c_addr, bytes([_byte(value)]))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Pointer write, repeated start, one byte read."""
        self._write(i2c_addr, bytes([_byte(register)]))
        return self._read(i2c_addr, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """Pointer and one byte."""
        self._write(i2c_addr, bytes([_byte(register), _byte(value)]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        """Pointer write, repeated start, ``length`` bytes read."""
        if not 0 < length <= BLOCK_MAX:
            raise ValueError(f"Desired block length over {BLOCK_MAX} bytes")
        self._write(i2c_addr, bytes([_byte(register)]))
        return list(self._read(i2c_addr, length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        """Pointer and then ``data``."""
        if len(data) > BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {BLOCK_MAX} bytes")
        self._write(i2c_addr, bytes([_byte(register), *(_byte(b) for b in data)]))

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        """Run raw messages in order, filling the read messages' buffers like the kernel does."""
        for msg in i2c_msgs:
            if msg.flags & I2C_M_RD:
                data = self._read(msg.addr, msg.len)
                ctypes.memmove(msg.buf, data, len(data))
            else:
                self._write(msg.addr, ctypes.string_at(msg.buf, msg.len))

    def close(self) -> None:
        """Nothing to release (``smbus2.SMBus`` compatibility)."""


def _check_address(address: int) -> None:
    if not 0 <= address <= 0x7F:
        raise ValueError(f"not a 7-bit I2C address: {address!r}")


def _byte(value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"not a byte: {value!r}")
    return value


DEMO_BME280 = 0x76
DEMO_SHT3X = 0x44
DEMO_ADS1115 = 0x48


def demo_bus(clock: Clock = time.monotonic) -> EmulatedI2cBus:
    """The demo's emulated bus: a BME280 at 0x76, an SHT3x at 0x44 and an ADS1115 at 0x48."""
    from drivers.i2c.ads1115_emulator import Ads1115Emulator
    from drivers.i2c.bme280_emulator import Bme280Emulator
    from drivers.i2c.sht3x_emulator import Sht3xEmulator

    ads = Ads1115Emulator(clock=clock)
    ads.voltages = [1.65, 0.5, 3.3, 0.0]
    return EmulatedI2cBus(
        {
            DEMO_BME280: Bme280Emulator(clock=clock),
            DEMO_SHT3X: Sht3xEmulator(clock=clock),
            DEMO_ADS1115: ads,
        }
    )
