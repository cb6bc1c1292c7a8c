"""A BLE advertisement as the decoders see it, and the parser for the raw AD structures a scanner app shows.

:class:`Advertisement` holds what bleak's ``AdvertisementData`` holds (service data keyed by full
128-bit lower-case UUID strings, manufacturer data keyed by company id), so the adapter builds one
from bleak without copying bytes, and :func:`parse_ad_structures` builds the same thing from the
bytes a technician copies from a scanner app (``0201061216d2fc41...``).

The raw form is the advertising payload of the Bluetooth Core Specification (Vol 3, Part C,
section 11): a list of AD structures, each ``length`` (one byte, counting the type and the data),
``type``, ``data``. A length of 0 ends the significant part (the rest is padding). Types read here:
0x01 flags (checked for length, otherwise ignored), 0x02-0x07 service UUID lists (16, 32 and
128-bit, incomplete or complete), 0x08/0x09 shortened/complete local name, 0x0A TX power level,
0x16/0x20/0x21 service data with a 16/32/128-bit UUID, 0xFF manufacturer specific data (company id
little-endian first). Other types are skipped. Multi-byte UUIDs are little-endian on air.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from drivers.ble.errors import MalformedAdvertisement

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
"""The Bluetooth base UUID after its first 32 bits: a 16/32-bit UUID ``n`` is ``{n:08x}`` + this."""
MAX_RAW = 1650
"""Longest advertising payload: an extended advertisement's data (Core 5.x); legacy ones carry 31 bytes,
31 more in a scan response, and a technician may paste both together."""
UNKNOWN_ADDRESS = ""
"""The address of an advertisement parsed without one (``roost decode ble`` without ``--mac``)."""

_MAC = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}", re.ASCII)
_HEX12 = re.compile(r"[0-9A-Fa-f]{12}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One received advertisement (advertising data and scan response merged, as bleak reports it)."""

    address: str
    """The sender's MAC in upper case with colons (``A4:C1:38:12:34:56``); ``""`` when not known."""
    rssi: int | None
    """Received signal strength in dBm, None when not known (a pasted payload)."""
    local_name: str | None
    service_data: Mapping[str, bytes]
    """Service data by full 128-bit lower-case UUID string (``0000fcd2-0000-1000-8000-00805f9b34fb``)."""
    manufacturer_data: Mapping[int, bytes]
    """Manufacturer specific data by company id (0x0499 Ruuvi, 0x004C Apple), without the id's two bytes."""
    service_uuids: tuple[str, ...] = ()
    tx_power: int | None = None
    """The advertised TX power level in dBm (AD type 0x0A), None when absent."""


@lru_cache(maxsize=512)
def uuid16(value: int) -> str:
    """The full 128-bit UUID string of a 16- or 32-bit Bluetooth UUID (``0xFCD2`` → ``0000fcd2-0000-...``)."""
    return f"{value:08x}{BASE_UUID_TAIL}"


def uuid128(raw: bytes) -> str:
    """The UUID string of 16 bytes in air (little-endian) order."""
    h = raw[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalise_mac(text: str) -> str:
    """``A4:C1:38:12:34:56`` from that, lower case, dashes or twelve bare hex digits; raises MalformedAdvertisement."""
    if not isinstance(text, str):
        raise MalformedAdvertisement(f"a MAC address is text, not {type(text).__name__}")
    t = text.strip().upper().replace("-", ":")
    if _MAC.fullmatch(t):
        return t
    if _HEX12.fullmatch(t):
        return ":".join(t[i : i + 2] for i in range(0, 12, 2))
    raise MalformedAdvertisement(f"{text[:40]!r} is not a MAC address (like A4:C1:38:12:34:56)")


def mac_bytes(address: str) -> bytes:
    """The six bytes of an upper-case colon MAC, most significant first (as the nonce of BTHome wants them)."""
    return bytes.fromhex(address.replace(":", ""))


def format_mac(raw: bytes) -> str:
    """``A4:C1:38:12:34:56`` from six bytes, most significant first."""
    return raw.hex(":").upper()


def _uuid_list(data: bytes, width: int, at: int, kind: int) -> list[str]:
    if len(data) % width:
        raise MalformedAdvertisement(
            f"AD structure 0x{kind:02X} at offset {at}: {len(data)} bytes is not a list of {width}-byte UUIDs"
        )
    if width == 16:
        return [uuid128(data[i : i + 16]) for i in range(0, len(data), 16)]
    return [uuid16(int.from_bytes(data[i : i + width], "little")) for i in range(0, len(data), width)]


def parse_ad_structures(raw: bytes, *, address: str | None = None, rssi: int | None = None) -> Advertisement:
    """Parse an advertising payload (AD structures) into an Advertisement; raises MalformedAdvertisement."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedAdvertisement(f"an advertisement is bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    if not raw:
        raise MalformedAdvertisement("empty advertisement: no AD structures")
    if len(raw) > MAX_RAW:
        raise MalformedAdvertisement(f"{len(raw)} bytes is longer than any advertisement (at most {MAX_RAW})")
    mac = UNKNOWN_ADDRESS if address is None else normalise_mac(address)
    service_data: dict[str, bytes] = {}
    manufacturer: dict[int, bytes] = {}
    uuids: list[str] = []
    name: str | None = None
    short_name: str | None = None
    tx_power: int | None = None
    i, n = 0, len(raw)
    while i < n:
        length = raw[i]
        if length == 0:  # early termination: the rest is padding
            break
        end = i + 1 + length
        if end > n:
            raise MalformedAdvertisement(
                f"AD structure at offset {i} says {length} bytes follow, only {n - i - 1} do: truncated?"
            )
        kind = raw[i + 1]
        data = raw[i + 2 : end]
        if kind == 0x16:
            if len(data) < 2:
                raise MalformedAdvertisement(f"service data at offset {i} is shorter than its 16-bit UUID")
            service_data[uuid16(data[0] | data[1] << 8)] = data[2:]
        elif kind == 0xFF:
            if len(data) < 2:
                raise MalformedAdvertisement(f"manufacturer data at offset {i} is shorter than its company id")
            manufacturer[data[0] | data[1] << 8] = data[2:]
        elif kind == 0x01:
            if len(data) < 1:
                raise MalformedAdvertisement(f"flags at offset {i} hold no byte")
        elif kind in (0x08, 0x09):
            text = data.decode("utf-8", errors="replace")
            if kind == 0x09:
                name = text
            else:
                short_name = text
        elif kind == 0x0A:
            if len(data) != 1:
                raise MalformedAdvertisement(f"TX power level at offset {i} is {len(data)} bytes, not 1")
            tx_power = data[0] - 256 if data[0] > 127 else data[0]
        elif kind == 0x20:
            if len(data) < 4:
                raise MalformedAdvertisement(f"service data at offset {i} is shorter than its 32-bit UUID")
            service_data[uuid16(int.from_bytes(data[:4], "little"))] = data[4:]
        elif kind == 0x21:
            if len(data) < 16:
                raise MalformedAdvertisement(f"service data at offset {i} is shorter than its 128-bit UUID")
            service_data[uuid128(data[:16])] = data[16:]
        elif 0x02 <= kind <= 0x07:
            uuids.extend(_uuid_list(data, (2, 4, 16)[(kind - 2) // 2], i, kind))
        i = end
    return Advertisement(
        address=mac,
        rssi=rssi,
        local_name=name if name is not None else short_name,
        service_data=service_data,
        manufacturer_data=manufacturer,
        service_uuids=tuple(uuids),
        tx_power=tx_power,
    )
