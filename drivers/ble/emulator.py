"""Builds valid advertisements of every format :mod:`drivers.ble.decode` reads, from values; and a small fleet.

For the tests (round trips, vectors), the demo and the BLE adapter's replay scanner. Each builder
returns the raw AD structures a scanner app shows (flags, optional name, then the format's service
or manufacturer data), the form :func:`~drivers.ble.advertisement.parse_ad_structures` reads.
:class:`BleFleet` is a site's worth of emulated devices, one per format (the BTHome one encrypting
with a known bind key and an increasing counter), whose readings drift like a real room's.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from drivers.ble import bthome
from drivers.ble.advertisement import mac_bytes, normalise_mac
from drivers.ble.beacons import URL_EXPANSIONS, URL_SCHEMES
from drivers.ble.ruuvi import STANDARD_GRAVITY
from wire.reading import Value

FLAGS = b"\x02\x01\x06"  # LE General Discoverable, BR/EDR not supported


def ad_structure(kind: int, data: bytes) -> bytes:
    """One AD structure: length, type, data."""
    if len(data) > 254:
        raise ValueError(f"an AD structure holds at most 254 bytes of data, not {len(data)}")
    return bytes((len(data) + 1, kind)) + data


def advertisement(
    *,
    name: str | None = None,
    service_data: Mapping[int, bytes] | None = None,
    manufacturer_data: Mapping[int, bytes] | None = None,
    tx_power: int | None = None,
    flags: bool = True,
) -> bytes:
    """AD structures: flags, service data (16-bit UUIDs), manufacturer data, TX power, complete local name."""
    out = FLAGS if flags else b""
    for uuid, data in (service_data or {}).items():
        out += ad_structure(0x16, uuid.to_bytes(2, "little") + data)
    for company, data in (manufacturer_data or {}).items():
        out += ad_structure(0xFF, company.to_bytes(2, "little") + data)
    if tx_power is not None:
        out += ad_structure(0x0A, tx_power.to_bytes(1, "little", signed=True))
    if name is not None:
        out += ad_structure(0x09, name.encode())
    return out


# --- BTHome ----------------------------------------------------------------------------------------

_BY_NAME = {v: k for k, v in bthome.BUTTON_EVENTS.items() if v} | {"": 0}
_DIMMER_BY_NAME = {v: k for k, v in bthome.DIMMER_EVENTS.items() if v}
_COMMAND_BY_NAME = {v: k for k, v in bthome.COMMANDS.items()}


def bthome_object(object_id: int, value: Value) -> bytes:
    """One BTHome object from a value in Roost's units (the inverse of the decoder's table)."""
    spec = bthome.BY_ID[object_id]
    head = bytes((object_id,))
    kind = spec.kind
    if kind in ("number", "timestamp", "packet_id"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"object 0x{object_id:02X} ({spec.metric}) takes a number, not {value!r}")
        raw = round(value / spec.factor) if kind == "number" else int(value)
        return head + raw.to_bytes(spec.size, "little", signed=spec.signed)
    if kind == "binary":
        return head + (b"\x01" if value else b"\x00")
    if kind in ("text", "raw"):
        data = str(value).encode() if kind == "text" else bytes.fromhex(str(value))
        return head + bytes((len(data),)) + data
    if kind == "firmware":
        parts = [int(p) for p in str(value).split(".")]
        return head + bytes(reversed(parts))
    if kind == "button":
        return head + bytes((_BY_NAME[str(value)],))
    if kind == "dimmer":
        name, _, steps = str(value).partition(" ")
        return head + bytes((_DIMMER_BY_NAME[name], int(steps or 0)))
    name, _, arg = str(value).partition(" ")  # command
    args = b"" if not arg else bytes.fromhex(arg[2:]) if arg.startswith("0x") else bytes((int(arg),))
    return head + bytes((len(args), _COMMAND_BY_NAME[name])) + args


def bthome_payload(objects: Sequence[tuple[int, Value]], *, packet_id: int | None = None) -> bytes:
    """The object list (after the device-information byte), the packet id first when given."""
    out = b"" if packet_id is None else bthome_object(0x00, packet_id)
    return out + b"".join(bthome_object(oid, value) for oid, value in objects)


def bthome_service_data(
    objects: Sequence[tuple[int, Value]],
    *,
    packet_id: int | None = None,
    key: bytes | None = None,
    address: str | None = None,
    counter: int = 0,
    trigger: bool = False,
) -> bytes:
    """BTHome v2 service data (after the UUID): plain, or encrypted with ``key`` for ``address`` at ``counter``."""
    info = 0x40 | (0x04 if trigger else 0)
    payload = bthome_payload(objects, packet_id=packet_id)
    if key is None:
        return bytes((info,)) + payload
    if address is None:
        raise ValueError("an encrypted BTHome advertisement needs the sender's address (it is part of the nonce)")
    return bthome.encrypt(payload, key=key, address=normalise_mac(address), counter=counter, device_info=info | 1)


def bthome_advert(
    objects: Sequence[tuple[int, Value]],
    *,
    packet_id: int | None = None,
    key: bytes | None = None,
    address: str | None = None,
    counter: int = 0,
    trigger: bool = False,
    name: str | None = "DIY-sensor",
) -> bytes:
    """A whole BTHome v2 advertisement (flags, service data on 0xFCD2, name)."""
    data = bthome_service_data(objects, packet_id=packet_id, key=key, address=address, counter=counter, trigger=trigger)
    return advertisement(name=name, service_data={0xFCD2: data})


# --- Ruuvi, pvvx, atc1441 ------------------------------------------------------------------------------


def ruuvi_rawv2(
    *,
    mac: str,
    temperature: float | None = 21.0,
    humidity: float | None = 45.0,
    pressure: int | None = 101_325,
    acceleration: tuple[float, float, float] | None = (0.0, 0.0, STANDARD_GRAVITY),
    battery_voltage: float | None = 3.0,
    tx_power: int | None = 4,
    movement_counter: int | None = 0,
    sequence: int | None = 0,
    name: str | None = None,
) -> bytes:
    """A Ruuvi RAWv2 advertisement; None values are sent as "not available". Acceleration in m/s²."""
    accel = [
        -32768 if acceleration is None else round(a / STANDARD_GRAVITY * 1000) for a in (acceleration or (0, 0, 0))
    ]
    battery = 0x7FF if battery_voltage is None else round(battery_voltage * 1000) - 1600
    tx = 0x1F if tx_power is None else (tx_power + 40) // 2
    data = struct.pack(
        ">BhHHhhhHBH6s",
        5,
        -32768 if temperature is None else round(temperature / 0.005),
        0xFFFF if humidity is None else round(humidity / 0.0025),
        0xFFFF if pressure is None else pressure - 50_000,
        *accel,
        battery << 5 | tx,
        0xFF if movement_counter is None else movement_counter,
        0xFFFF if sequence is None else sequence,
        mac_bytes(normalise_mac(mac)),
    )
    return advertisement(name=name, manufacturer_data={0x0499: data})


def pvvx(
    *,
    mac: str,
    temperature: float,
    humidity: float,
    battery: int,
    battery_voltage: float,
    counter: int,
    flags: int = 0,
    name: str | None = None,
) -> bytes:
    """A pvvx custom-format advertisement (service data on 0x181A, 15 bytes, little-endian, MAC reversed)."""
    data = struct.pack(
        "<6shHHBBB",
        mac_bytes(normalise_mac(mac))[::-1],
        round(temperature * 100),
        round(humidity * 100),
        round(battery_voltage * 1000),
        battery,
        counter & 0xFF,
        flags,
    )
    return advertisement(name=name, service_data={0x181A: data})


def atc1441(
    *,
    mac: str,
    temperature: float,
    humidity: int,
    battery: int,
    battery_voltage: float,
    counter: int,
    name: str | None = None,
) -> bytes:
    """An atc1441-format advertisement (service data on 0x181A, 13 bytes, big-endian)."""
    data = struct.pack(
        ">6shBBHB",
        mac_bytes(normalise_mac(mac)),
        round(temperature * 10),
        humidity,
        battery,
        round(battery_voltage * 1000),
        counter & 0xFF,
    )
    return advertisement(name=name, service_data={0x181A: data})


# --- beacons -------------------------------------------------------------------------------------------


def ibeacon(uuid: str, major: int, minor: int, measured_power: int = -59) -> bytes:
    """An iBeacon advertisement (Apple manufacturer data, type 0x02, length 0x15)."""
    data = b"\x02\x15" + bytes.fromhex(uuid.replace("-", "")) + struct.pack(">HHb", major, minor, measured_power)
    return advertisement(manufacturer_data={0x004C: data})


def _eddystone(frame: bytes) -> bytes:
    return FLAGS + ad_structure(0x03, b"\xaa\xfe") + ad_structure(0x16, b"\xaa\xfe" + frame)


def eddystone_uid(namespace: str, instance: str, tx_power: int = -20, *, reserved: bool = True) -> bytes:
    """An Eddystone-UID advertisement (10-byte namespace and 6-byte instance as hex)."""
    ids = bytes.fromhex(namespace) + bytes.fromhex(instance)
    if len(ids) != 16:
        raise ValueError("an Eddystone-UID is a 10-byte namespace and a 6-byte instance")
    return _eddystone(b"\x00" + struct.pack(">b", tx_power) + ids + (b"\x00\x00" if reserved else b""))


def encode_url(url: str) -> bytes:
    """An Eddystone-URL scheme byte and encoded URL, using the expansion codes (longest match first)."""
    for scheme, prefix in sorted(enumerate(URL_SCHEMES), key=lambda s: -len(s[1])):
        if url.startswith(prefix):
            rest, out = url[len(prefix) :], bytearray((scheme,))
            break
    else:
        raise ValueError(f"{url!r} does not start with http:// or https://")
    codes = sorted(enumerate(URL_EXPANSIONS), key=lambda e: -len(e[1]))
    i = 0
    while i < len(rest):
        for code, text in codes:
            if rest.startswith(text, i):
                out.append(code)
                i += len(text)
                break
        else:
            out.append(ord(rest[i]))
            i += 1
    return bytes(out)


def eddystone_url(url: str, tx_power: int = -20) -> bytes:
    """An Eddystone-URL advertisement."""
    encoded = encode_url(url)
    if len(encoded) > 18:
        raise ValueError(f"{url!r} encodes to {len(encoded) - 1} bytes; an Eddystone-URL holds at most 17")
    return _eddystone(b"\x10" + struct.pack(">b", tx_power) + encoded)


def eddystone_tlm(
    *, battery_voltage: float | None, temperature: float | None, advertisement_count: int, uptime: float
) -> bytes:
    """An unencrypted Eddystone-TLM advertisement (None: not supported, as the spec encodes it)."""
    mv = 0 if battery_voltage is None else round(battery_voltage * 1000)
    temp = -32768 if temperature is None else round(temperature * 256)
    return _eddystone(b"\x20\x00" + struct.pack(">HhII", mv, temp, advertisement_count, round(uptime * 10)))


# --- a fleet --------------------------------------------------------------------------------------------


class EmulatedAdvert(NamedTuple):
    """One advertisement as a radio hears it."""

    address: str
    raw: bytes
    rssi: int


DEMO_BIND_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
"""The bind key of the fleet's encrypted BTHome device (bthome.io's example key: the demo's, never a real one)."""


@dataclass(slots=True)
class BleFleet:
    """One emulated device per format, readings drifting like a room's; :meth:`adverts` is one round of them."""

    seed: int | None = None
    bthome_mac: str = "54:48:E6:8F:80:A5"
    encrypted_mac: str = "54:48:E6:8F:80:A6"
    ruuvi_mac: str = "CB:B8:33:4C:88:4F"
    pvvx_mac: str = "A4:C1:38:12:34:56"
    atc_mac: str = "A4:C1:38:AB:CD:EF"
    beacon_mac: str = "F0:0D:CA:FE:00:01"
    bind_key: bytes = DEMO_BIND_KEY
    _rng: random.Random = field(init=False, repr=False)
    _step: int = field(init=False, default=0)
    _counter: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def keys(self) -> dict[str, bytes]:
        """Bind keys by MAC (what a technician would configure)."""
        return {self.encrypted_mac: self.bind_key}

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every device's MAC."""
        return (self.bthome_mac, self.encrypted_mac, self.ruuvi_mac, self.pvvx_mac, self.atc_mac, self.beacon_mac)

    def _rssi(self) -> int:
        return round(self._rng.gauss(-70, 6))

    def adverts(self) -> list[EmulatedAdvert]:
        """One advertisement from each device, the next step of their readings."""
        self._step += 1
        self._counter += 1 + self._rng.randrange(3)  # counters increase, not necessarily by one
        s, rng = self._step, self._rng
        t = round(21 + 1.5 * math.sin(s / 60) + rng.gauss(0, 0.05), 2)
        h = round(min(95.0, max(10.0, 45 + 5 * math.sin(s / 90) + rng.gauss(0, 0.3))), 2)
        p = round(101_325 + 150 * math.sin(s / 200))
        return [
            EmulatedAdvert(
                self.bthome_mac,
                bthome_advert([(0x01, 93), (0x02, t), (0x03, h)], packet_id=s & 0xFF),
                self._rssi(),
            ),
            EmulatedAdvert(
                self.encrypted_mac,
                bthome_advert(
                    [(0x02, round(t - 2.5, 2)), (0x03, h), (0x21, s % 20 < 3)],
                    key=self.bind_key,
                    address=self.encrypted_mac,
                    counter=self._counter,
                ),
                self._rssi(),
            ),
            EmulatedAdvert(
                self.ruuvi_mac,
                ruuvi_rawv2(
                    mac=self.ruuvi_mac,
                    temperature=round(t + 0.4, 2),
                    humidity=h,
                    pressure=p,
                    battery_voltage=2.977,
                    movement_counter=s // 50 % 255,
                    sequence=s % 65535,
                ),
                self._rssi(),
            ),
            EmulatedAdvert(
                self.pvvx_mac,
                pvvx(
                    mac=self.pvvx_mac,
                    temperature=round(t - 0.3, 2),
                    humidity=h,
                    battery=87,
                    battery_voltage=2.95,
                    counter=s,
                ),
                self._rssi(),
            ),
            EmulatedAdvert(
                self.atc_mac,
                atc1441(
                    mac=self.atc_mac,
                    temperature=round(t + 1.1, 1),
                    humidity=round(h),
                    battery=76,
                    battery_voltage=2.89,
                    counter=s,
                ),
                self._rssi(),
            ),
            EmulatedAdvert(
                self.beacon_mac,
                ibeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 42)
                if s % 2
                else eddystone_uid("edd1ebeac04e5defa017", "0badc0ffee01"),
                self._rssi(),
            ),
        ]
