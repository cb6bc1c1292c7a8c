"""BTHome v2 (bthome.io): service data on UUID 0xFCD2, plain or AES-CCM encrypted with the device's bind key.

Written from the public format and encryption pages (bthome.io/format, bthome.io/encryption), not
wrapped around ``bthome-ble``: that library and its dependency tree (habluetooth, bleak-retry-connector,
bluetooth-adapters, aiohttp, pycryptodomex, ...) add about 28 MB of RSS to a fresh process, almost twice the
whole BLE adapter's budget (see ``docs/protocols/ble.md`` and ``bench/ble.py``).

Layout of the service data (after the two UUID bytes): one device-information byte (bit 0
encrypted, bit 2 trigger-based, bits 5-7 the version, which must be 2), then objects: an object id
byte and its value, little-endian. The receiver stops at the first object id it does not know (the
spec's rule, so a newer device still yields the objects it shares with an older receiver). The
same property twice gets a postfix: ``temperature``, ``temperature_2``, ...

Encrypted (bit 0 set): ciphertext, a 4-byte little-endian counter, a 4-byte MIC. The nonce is the
sender's MAC (6 bytes, most significant first), the UUID as on air (``d2 fc``), the device
information byte and the counter bytes; AES-128-CCM with a 4-byte tag and no associated data. The
counter must increase from one advertisement to the next; :func:`drivers.ble.decode.decode` checks
that against a :class:`~drivers.ble.decode.ReplayState`.

Units are SenML's (RFC 8428 and the secondary units of RFC 8798): hPa becomes Pa, lb becomes kg, mm
and mL become m and l, µS/cm becomes S/m, rpm becomes 1/min; energy stays kWh, concentrations ppm
and ug/m3. Binary sensors are booleans named so they do not clash with the sensors of the same
property (``battery_low`` next to ``battery``, ``power_on`` next to ``power``). Events are strings
(``button``: ``press``, ``long_press``, ...; ``dimmer``: ``rotate_left 3``), the firmware version a
string (``4.2.1.0``), the timestamp seconds since the Unix epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from drivers.ble.advertisement import Advertisement, mac_bytes, uuid16
from drivers.ble.errors import (
    AddressRequired,
    BadMic,
    BindKeyRequired,
    BleDecodeError,
    MalformedAdvertisement,
    NotEncrypted,
    UnsupportedFormat,
)
from drivers.ble.result import BleResult
from drivers.measurement import Measurement

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

UUID = uuid16(0xFCD2)
UUID_ON_AIR = b"\xd2\xfc"
FORMAT = "bthome"
FORMAT_ENCRYPTED = "bthome-encrypted"
KEY_LENGTH = 16
MIC_LENGTH = 4
COUNTER_LENGTH = 4

Kind = Literal["number", "binary", "text", "raw", "button", "dimmer", "command", "firmware", "timestamp", "packet_id"]


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One BTHome object id: how many bytes its value takes and what it means.

    ``factor`` turns the raw integer into the SenML value in ``unit`` (the spec's factor times any
    unit conversion); ``digits`` is the decimal places the value is rounded to.
    """

    object_id: int
    metric: str
    kind: Kind
    size: int = 1
    """Bytes of the value; 0 for variable-length objects (text, raw, command)."""
    signed: bool = False
    factor: float = 1
    unit: str | None = None
    digits: int = 0


def _decimals(factor: float) -> int:
    """The decimal places a factor implies: 0.01 -> 2, 0.35 -> 2, 0.000001 -> 6."""
    text = f"{factor:.12f}".rstrip("0")
    return len(text) - text.index(".") - 1


def _n(
    oid: int, metric: str, size: int, factor: float = 1, unit: str | None = None, *, digits: int | None = None
) -> ObjectSpec:
    places = _decimals(factor) if digits is None else digits
    return ObjectSpec(oid, metric, "number", size, factor=factor, unit=unit, digits=places)


def _s(oid: int, metric: str, size: int, factor: float = 1, unit: str | None = None) -> ObjectSpec:
    return ObjectSpec(oid, metric, "number", size, signed=True, factor=factor, unit=unit, digits=_decimals(factor))


def _b(oid: int, metric: str) -> ObjectSpec:
    return ObjectSpec(oid, metric, "binary", 1)


_LB_KG = 0.45359237
OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec(0x00, "packet_id", "packet_id", 1),
    # sensors (bthome.io/format "Sensor data")
    _n(0x01, "battery", 1, 1, "%EL"),
    _s(0x02, "temperature", 2, 0.01, "Cel"),
    _n(0x03, "humidity", 2, 0.01, "%RH"),
    _n(0x04, "pressure", 3, 1, "Pa"),  # 0.01 hPa = 1 Pa
    _n(0x05, "illuminance", 3, 0.01, "lx"),
    _n(0x06, "mass", 2, 0.01, "kg"),
    _n(0x07, "mass", 2, 0.01 * _LB_KG, "kg", digits=5),  # sent in lb
    _s(0x08, "dewpoint", 2, 0.01, "Cel"),
    _n(0x09, "count", 1, 1, "count"),
    _n(0x0A, "energy", 3, 0.001, "kWh"),
    _n(0x0B, "power", 3, 0.01, "W"),
    _n(0x0C, "voltage", 2, 0.001, "V"),
    _n(0x0D, "pm25", 2, 1, "ug/m3"),
    _n(0x0E, "pm10", 2, 1, "ug/m3"),
    _n(0x12, "co2", 2, 1, "ppm"),
    _n(0x13, "tvoc", 2, 1, "ug/m3"),
    _n(0x14, "moisture", 2, 0.01, "%"),
    _n(0x2E, "humidity", 1, 1, "%RH"),
    _n(0x2F, "moisture", 1, 1, "%"),
    _n(0x3D, "count", 2, 1, "count"),
    _n(0x3E, "count", 4, 1, "count"),
    _s(0x3F, "rotation", 2, 0.1, "deg"),
    _n(0x40, "distance", 2, 0.001, "m"),  # sent in mm
    _n(0x41, "distance", 2, 0.1, "m"),
    _n(0x42, "duration", 3, 0.001, "s"),
    _n(0x43, "current", 2, 0.001, "A"),
    _n(0x44, "speed", 2, 0.01, "m/s"),
    _s(0x45, "temperature", 2, 0.1, "Cel"),
    _n(0x46, "uv_index", 1, 0.1),
    _n(0x47, "volume", 2, 0.1, "l"),
    _n(0x48, "volume", 2, 0.001, "l"),  # sent in mL
    _n(0x49, "volume_flow_rate", 2, 0.001, "m3/h"),
    _n(0x4A, "voltage", 2, 0.1, "V"),
    _n(0x4B, "gas", 3, 0.001, "m3"),
    _n(0x4C, "gas", 4, 0.001, "m3"),
    _n(0x4D, "energy", 4, 0.001, "kWh"),
    _n(0x4E, "volume", 4, 0.001, "l"),
    _n(0x4F, "water", 4, 0.001, "l"),
    ObjectSpec(0x50, "timestamp", "timestamp", 4, unit="s"),
    _n(0x51, "acceleration", 2, 0.001, "m/s2"),
    _n(0x52, "gyroscope", 2, 0.001, "deg/s"),
    ObjectSpec(0x53, "text", "text", 0),
    ObjectSpec(0x54, "raw", "raw", 0),
    _n(0x55, "volume_storage", 4, 0.001, "l"),
    _n(0x56, "conductivity", 2, 0.0001, "S/m"),  # sent in µS/cm
    _s(0x57, "temperature", 1, 1, "Cel"),
    _s(0x58, "temperature", 1, 0.35, "Cel"),
    _s(0x59, "count", 1, 1, "count"),
    _s(0x5A, "count", 2, 1, "count"),
    _s(0x5B, "count", 4, 1, "count"),
    _s(0x5C, "power", 4, 0.01, "W"),
    _s(0x5D, "current", 2, 0.001, "A"),
    _n(0x5E, "direction", 2, 0.01, "deg"),
    _n(0x5F, "precipitation", 2, 0.1, "mm"),
    _n(0x60, "channel", 1),
    _n(0x61, "rotational_speed", 2, 1, "1/min"),
    _s(0x62, "speed", 4, 0.000001, "m/s"),
    _s(0x63, "acceleration", 4, 0.000001, "m/s2"),
    _n(0x64, "light_level", 1),  # 0 dark, 1 twilight, 2 bright
    _n(0x65, "settings_revision", 1),
    # binary sensors (bthome.io/format "Binary Sensor data"): true is the second state the spec names
    _b(0x0F, "generic_boolean"),
    _b(0x10, "power_on"),
    _b(0x11, "opening"),  # true = open
    _b(0x15, "battery_low"),
    _b(0x16, "battery_charging"),
    _b(0x17, "carbon_monoxide"),
    _b(0x18, "cold"),
    _b(0x19, "connectivity"),
    _b(0x1A, "door"),  # true = open
    _b(0x1B, "garage_door"),  # true = open
    _b(0x1C, "gas_detected"),
    _b(0x1D, "heat"),
    _b(0x1E, "light"),
    _b(0x1F, "unlocked"),  # the spec's "lock": true = unlocked
    _b(0x20, "wet"),  # the spec's binary "moisture"
    _b(0x21, "motion"),
    _b(0x22, "moving"),
    _b(0x23, "occupancy"),
    _b(0x24, "plug"),  # true = plugged in
    _b(0x25, "presence"),  # true = home
    _b(0x26, "problem"),
    _b(0x27, "running"),
    _b(0x28, "safety"),  # true = safe
    _b(0x29, "smoke"),
    _b(0x2A, "sound"),
    _b(0x2B, "tamper"),
    _b(0x2C, "vibration"),
    _b(0x2D, "window"),  # true = open
    # events and device information
    ObjectSpec(0x3A, "button", "button", 1),
    ObjectSpec(0x3B, "command", "command", 0),
    ObjectSpec(0x3C, "dimmer", "dimmer", 2),
    ObjectSpec(0xF0, "device_type_id", "number", 2),
    ObjectSpec(0xF1, "firmware_version", "firmware", 4),
    ObjectSpec(0xF2, "firmware_version", "firmware", 3),
)
BY_ID: dict[int, ObjectSpec] = {spec.object_id: spec for spec in OBJECTS}

BUTTON_EVENTS: dict[int, str] = {
    0x00: "",  # no event for this button (keeps the position of the next one)
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
}
DIMMER_EVENTS: dict[int, str] = {0x00: "", 0x01: "rotate_left", 0x02: "rotate_right"}
COMMANDS: dict[int, str] = {0x00: "off", 0x01: "on", 0x02: "toggle", 0x03: "step_up", 0x04: "step_down"}


def _event_name(table: dict[int, str], code: int) -> str:
    name = table.get(code)
    return name if name is not None else f"unknown_0x{code:02x}"


def parse_objects(payload: bytes, *, address: str, fmt: str) -> tuple[list[Measurement], int | None]:
    """Decode a BTHome object list into measurements and the packet id; raises MalformedAdvertisement."""
    out: list[Measurement] = []
    seen: dict[str, int] = {}
    packet_id: int | None = None
    i, n = 0, len(payload)
    by_id = BY_ID
    while i < n:
        spec = by_id.get(payload[i])
        if spec is None:
            break  # the spec: stop at the first object id this receiver does not know
        start = i + 1
        size = spec.size
        if size == 0:  # variable length: a length byte first
            if start >= n:
                raise MalformedAdvertisement(
                    f"object 0x{spec.object_id:02X} ({spec.metric}) at byte {i} has no length byte",
                    address=address,
                    format=fmt,
                )
            # command: length byte (low 5 bits: argument bytes), opcode, arguments; text/raw: length, bytes
            size = 2 + (payload[start] & 0x1F) if spec.kind == "command" else 1 + payload[start]
        end = start + size
        if end > n:
            raise MalformedAdvertisement(
                f"object 0x{spec.object_id:02X} ({spec.metric}) at byte {i} needs {size} bytes, {n - start} left",
                address=address,
                format=fmt,
            )
        field = payload[start:end]
        i = end
        kind = spec.kind
        value: float | bool | str
        if kind == "number":
            number = int.from_bytes(field, "little", signed=spec.signed)
            value = number if spec.factor == 1 else round(number * spec.factor, spec.digits)
        elif kind == "binary":
            value = field[0] != 0
        elif kind == "packet_id":
            packet_id = field[0]
            continue
        elif kind == "button":
            value = _event_name(BUTTON_EVENTS, field[0])
        elif kind == "dimmer":
            value = _event_name(DIMMER_EVENTS, field[0])
            if value:
                value = f"{value} {field[1]}"
        elif kind == "command":
            name = _event_name(COMMANDS, field[1])
            args = field[2:]
            if not args:
                value = name
            elif name in ("step_up", "step_down") and len(args) == 1:
                value = f"{name} {args[0]}"
            else:
                value = f"{name} 0x{args.hex()}"
        elif kind == "firmware":
            value = ".".join(str(b) for b in reversed(field))
        elif kind == "timestamp":
            value = int.from_bytes(field, "little")
        elif kind == "text":
            try:
                value = field[1:].decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedAdvertisement(
                    f"text object at byte {start - 1} is not UTF-8", address=address, format=fmt
                ) from None
        else:  # raw
            value = field[1:].hex()
        metric = spec.metric
        count = seen.get(metric, 0) + 1
        seen[metric] = count
        if count > 1:
            metric = f"{metric}_{count}"
        if value == "" and kind in ("button", "dimmer"):
            continue  # "no event" keeps its position (button_2 stays button_2) but is no reading
        out.append(Measurement(metric, value, spec.unit))
    return out, packet_id


# --- encryption ------------------------------------------------------------------------------------

_CIPHERS: dict[bytes, AESCCM] = {}
_MAX_CIPHERS = 256


def _cipher(key: bytes) -> AESCCM:
    cipher = _CIPHERS.get(key)
    if cipher is None:
        # imported on first use: AES-CCM costs about 6 MB of RSS over the gateway, and most sites send plain data
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM

        if len(_CIPHERS) >= _MAX_CIPHERS:
            _CIPHERS.clear()
        cipher = _CIPHERS[key] = AESCCM(key, tag_length=MIC_LENGTH)
    return cipher


def check_key(key: bytes) -> bytes:
    """Return ``key`` if it is a 16-byte AES-128 bind key; raises BleDecodeError."""
    if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise BleDecodeError(f"a BTHome bind key is {KEY_LENGTH} bytes (32 hex digits), not {size}", format=FORMAT)
    return key


def nonce(address: str, device_info: int, counter: bytes) -> bytes:
    """The 13-byte AES-CCM nonce: MAC, UUID as on air, device-information byte, counter (little-endian bytes)."""
    return mac_bytes(address) + UUID_ON_AIR + bytes((device_info,)) + counter


def encrypt(plain: bytes, *, key: bytes, address: str, counter: int, device_info: int = 0x41) -> bytes:
    """Service data (after the UUID) of an encrypted BTHome advertisement: info byte, ciphertext, counter, MIC."""
    ctr = counter.to_bytes(COUNTER_LENGTH, "little")
    sealed = _cipher(check_key(key)).encrypt(nonce(address, device_info, ctr), plain, None)
    return bytes((device_info,)) + sealed[:-MIC_LENGTH] + ctr + sealed[-MIC_LENGTH:]


def decrypt(data: bytes, *, key: bytes, address: str) -> tuple[bytes, int]:
    """Verify and decrypt encrypted service data (after the UUID): (plaintext objects, counter); raises BadMic."""
    from cryptography.exceptions import InvalidTag

    if len(data) < 1 + COUNTER_LENGTH + MIC_LENGTH:
        raise MalformedAdvertisement(
            f"encrypted BTHome data of {len(data)} bytes is shorter than its counter and MIC",
            address=address,
            format=FORMAT_ENCRYPTED,
        )
    ctr = data[-8:-4]
    sealed = data[1:-8] + data[-4:]
    try:
        plain = _cipher(check_key(key)).decrypt(nonce(address, data[0], ctr), sealed, None)
    except InvalidTag:
        raise BadMic(
            "the bind key is wrong or the data was corrupted: the MIC did not match",
            address=address,
            format=FORMAT_ENCRYPTED,
        ) from None
    return plain, int.from_bytes(ctr, "little")


def decode_bthome(adv: Advertisement, data: bytes, *, key: bytes | None = None) -> BleResult:
    """Decode BTHome v2 service data (after the UUID) of ``adv``; raises a BleDecodeError."""
    address = adv.address
    if not data:
        raise MalformedAdvertisement("BTHome service data holds no device-information byte", address=address)
    info = data[0]
    version = info >> 5
    if version != 2:
        raise UnsupportedFormat(
            f"BTHome version {version} on UUID 0xFCD2 is not supported (only v2; v1 uses 0x181C/0x181E)",
            address=address,
            format=FORMAT,
        )
    counter: int | None = None
    if info & 0x01:
        if key is None:
            raise BindKeyRequired(
                "an encrypted BTHome advertisement: it needs the device's bind key", address=address, format=FORMAT
            )
        if not address:
            raise AddressRequired(
                "an encrypted BTHome advertisement: decrypting it needs the sender's MAC address (the nonce holds it)",
                format=FORMAT_ENCRYPTED,
            )
        payload, counter = decrypt(data, key=key, address=address)
        fmt = FORMAT_ENCRYPTED
    else:
        if key is not None:
            raise NotEncrypted(
                "the device has a bind key but this advertisement is not encrypted: dropped (spoofed or reset?)",
                address=address,
                format=FORMAT,
            )
        payload = data[1:]
        fmt = FORMAT
    measurements, packet_id = parse_objects(payload, address=address, fmt=fmt)
    return BleResult(fmt, address, measurements, packet_id, counter is not None, counter)
