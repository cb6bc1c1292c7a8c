"""Sensirion SHT3x-DIS (SHT30/31/35) temperature and humidity on I2C, from the datasheet (version 5).

Public API::

    Sht3x(bus: I2cBus, address: int = 0x44, *, repeatability: Repeatability = Repeatability.HIGH,
          sleep: Callable[[float], None] = time.sleep)
    Sht3x.read() -> list[Measurement]     # temperature (Cel), humidity (%RH)
    crc8(data: bytes) -> int              # the datasheet's CRC-8 (poly 0x31, init 0xFF)
    decode_measurement(reply: bytes, address) -> tuple[float, float]   # raises ChecksumError / ValueError
    i2c_sensor_id(bus_number, address)    # "i2c-1-0x44" (drivers.bus)

``read()`` sends a single-shot command with clock stretching disabled (0x2400 at high
repeatability, section 4.3, table 9), waits the datasheet's longest measurement time, then reads
six bytes: temperature MSB, LSB, CRC, humidity MSB, LSB, CRC. With stretching disabled the chip
NACKs the read header until the measurement is done, so a NACK on the read is retried a bounded
number of times before it becomes :class:`drivers.errors.NotReady`; a NACK on the command is a
missing chip (:class:`drivers.errors.NoAcknowledge`). Every 16-bit word's CRC is checked
(section 4.12). Conversions (section 4.13): T = -45 + 175 * S_T / 65535, RH = 100 * S_RH / 65535;
values are rounded to 0.01.

The SHT3x has commands, not a register pointer, so it is driven with ``i2c_rdwr`` and
``smbus2.i2c_msg``.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from smbus2 import i2c_msg

from drivers.bus import NACK_ERRNOS, I2cBus, translate_os_error, translated
from drivers.errors import ChecksumError, NotReady
from drivers.measurement import Measurement

CHIP = "SHT3x"
ADDRESSES = (0x44, 0x45)  # ADDR pin low / high
CRC_POLYNOMIAL = 0x31
CRC_INIT = 0xFF


@dataclass(frozen=True, slots=True)
class Command:
    """One 16-bit command (sent MSB first) and how long the chip is busy after it (table 4)."""

    name: str
    code: int
    busy_max_s: float = 0.0
    busy_typ_s: float = 0.0

    @property
    def payload(self) -> bytes:
        """The command as it goes on the wire."""
        return self.code.to_bytes(2, "big")


class Repeatability(Enum):
    """Single-shot measurement repeatability, clock stretching disabled (table 9)."""

    HIGH = Command("single shot, high repeatability", 0x2400, 0.0155, 0.0125)
    MEDIUM = Command("single shot, medium repeatability", 0x240B, 0.0065, 0.0045)
    LOW = Command("single shot, low repeatability", 0x2416, 0.0045, 0.0025)


SINGLE_SHOT_STRETCHED = (
    Command("single shot, high, stretched", 0x2C06),
    Command("single shot, medium, stretched", 0x2C0D),
    Command("single shot, low, stretched", 0x2C10),
)
READ_STATUS = Command("read status register", 0xF32D)
CLEAR_STATUS = Command("clear status register", 0x3041)
SOFT_RESET = Command("soft reset", 0x30A2, 0.0015, 0.0015)
HEATER_ON = Command("heater enable", 0x306D)
HEATER_OFF = Command("heater disable", 0x3066)
STATUS_AFTER_RESET = 0x8010  # alert pending, reset detected (table 18)
READ_RETRIES = 10
RETRY_S = 0.001


def crc8(data: bytes) -> int:
    """CRC-8 over ``data``: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection (table 19)."""
    crc = CRC_INIT
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLYNOMIAL) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def word_with_crc(word: int) -> bytes:
    """A 16-bit word as the chip sends it: MSB, LSB, CRC."""
    raw = word.to_bytes(2, "big")
    return raw + bytes([crc8(raw)])


def check_word(triple: bytes) -> int | None:
    """The word in ``MSB, LSB, CRC`` if the CRC matches, else None."""
    return int.from_bytes(triple[:2], "big") if len(triple) == 3 and crc8(triple[:2]) == triple[2] else None


def temperature_from_raw(raw: int) -> float:
    """°C from the 16-bit temperature word (section 4.13)."""
    return -45.0 + 175.0 * raw / 65535.0


def humidity_from_raw(raw: int) -> float:
    """%RH from the 16-bit humidity word (section 4.13)."""
    return 100.0 * raw / 65535.0


def decode_measurement(reply: bytes, address: int | str = 0x44) -> tuple[float, float]:
    """(°C, %RH) from the six reply bytes; ValueError on a wrong length, ChecksumError on a bad CRC."""
    if len(reply) != 6:
        raise ValueError(f"a measurement is 6 bytes, not {len(reply)}")
    t_word, rh_word = check_word(reply[0:3]), check_word(reply[3:6])
    if t_word is None or rh_word is None:
        which = "temperature" if t_word is None else "humidity"
        raise ChecksumError(
            CHIP, address, f"CRC mismatch on the {which} word ({reply.hex(' ')}): noise on the bus or wires too long?"
        )
    return temperature_from_raw(t_word), humidity_from_raw(rh_word)


class Sht3x:
    """An SHT3x on an I2C bus: construct, then call :meth:`read` (blocking, about 16 ms)."""

    def __init__(
        self,
        bus: I2cBus,
        address: int = 0x44,
        *,
        repeatability: Repeatability = Repeatability.HIGH,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus = bus
        self.address = address
        self.command: Command = repeatability.value
        self._sleep = sleep

    def read(self) -> list[Measurement]:
        """One single-shot measurement."""
        with translated(CHIP, self.address):
            self.bus.i2c_rdwr(i2c_msg.write(self.address, self.command.payload))
        self._sleep(self.command.busy_max_s)
        reply = self._read_reply(6)
        temperature, humidity = decode_measurement(reply, self.address)
        return [
            Measurement("temperature", round(temperature, 2), "Cel"),
            Measurement("humidity", round(humidity, 2), "%RH"),
        ]

    def read_status(self) -> int:
        """The 16-bit status register (table 18), CRC checked."""
        with translated(CHIP, self.address):
            self.bus.i2c_rdwr(i2c_msg.write(self.address, READ_STATUS.payload))
        word = check_word(self._read_reply(3))
        if word is None:
            raise ChecksumError(CHIP, self.address, "CRC mismatch on the status word")
        return word

    def _read_reply(self, length: int) -> bytes:
        """Read ``length`` bytes, retrying while the chip NACKs because it is still measuring."""
        for attempt in range(READ_RETRIES + 1):
            msg = i2c_msg.read(self.address, length)
            try:
                self.bus.i2c_rdwr(msg)
            except OSError as exc:
                if exc.errno not in NACK_ERRNOS:
                    raise translate_os_error(exc, CHIP, self.address) from exc
                if attempt == READ_RETRIES:
                    waited = self.command.busy_max_s + READ_RETRIES * RETRY_S
                    raise NotReady(
                        CHIP, self.address, f"no data {waited * 1000:.1f} ms after the command (NACK on read)"
                    ) from exc
                self._sleep(RETRY_S)
                continue
            return ctypes.string_at(msg.buf, msg.len)
        raise AssertionError("unreachable")  # pragma: no cover
