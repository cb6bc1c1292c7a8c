"""Presence beacons: Apple iBeacon and Google Eddystone (UID, URL, TLM), with the received signal strength.

Written from the public layouts: Apple's iBeacon (manufacturer data of company 0x004C: type 0x02,
length 0x15, a 16-byte proximity UUID, major and minor uint16 big-endian, measured power int8 at
1 m) and Google's Eddystone frame specifications (service data on UUID 0xFEAA; frame type 0x00
UID, 0x10 URL, 0x20 TLM; multi-byte values big-endian). Home Assistant keeps no parser library
for these that would be worth its import.

A beacon's reading is its presence: every result has ``presence`` (true) and, when the radio
reported it, ``rssi`` (dBm), plus the calibrated power it advertises (``tx_power``: dBm at 1 m for
iBeacon, at 0 m for Eddystone). Sensor ids: ``ibeacon-{uuid}-{major}-{minor}`` and
``eddystone-{namespace}-{instance}`` (lower-case hex), SenML name characters only. URL and TLM
frames carry no id of their own; they are named by the sender's MAC (a TLM frame is interleaved
with a UID or URL frame from the same MAC). A URL frame gives ``url`` (text); a TLM frame gives
``battery_voltage`` (V, absent when the beacon reports 0: no battery), ``temperature`` (Cel, 8.8
fixed point, absent at 0x8000), ``advertisement_count`` (count) and ``uptime`` (s). Encrypted TLM
(version 1) and EID frames are recognised and refused (UnsupportedFormat): they need the owner's
identity key. Apple manufacturer data other than iBeacon (AirDrop, Find My, ...) is foreign: None.
"""

from __future__ import annotations

import struct

from drivers.ble.advertisement import Advertisement, uuid16
from drivers.ble.errors import MalformedAdvertisement, UnsupportedFormat
from drivers.ble.result import BleResult
from drivers.measurement import Measurement

APPLE = 0x004C
IBEACON_TYPE = b"\x02\x15"
IBEACON_LENGTH = 23
EDDYSTONE_UUID = uuid16(0xFEAA)
FORMAT_IBEACON = "ibeacon"
FORMAT_UID = "eddystone-uid"
FORMAT_URL = "eddystone-url"
FORMAT_TLM = "eddystone-tlm"

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_TLDS = (".com", ".org", ".edu", ".net", ".info", ".biz", ".gov")
URL_EXPANSIONS: tuple[str, ...] = tuple(t + "/" for t in _TLDS) + _TLDS
"""Codes 0x00-0x06 with a '/', 0x07-0x0D the same without."""

_IBEACON = struct.Struct(">16sHHb")
_TLM = struct.Struct(">BHhII")


def _presence(adv: Advertisement, tx_power: int | None = None) -> list[Measurement]:
    out = [Measurement("presence", True)]
    if adv.rssi is not None:
        out.append(Measurement("rssi", adv.rssi, "dBm"))
    if tx_power is not None:
        out.append(Measurement("tx_power", tx_power, "dBm"))
    return out


def decode_ibeacon(adv: Advertisement, data: bytes) -> BleResult | None:
    """Decode Apple manufacturer data (after the company id) if it is an iBeacon, else None."""
    if data[:2] != IBEACON_TYPE:
        return None  # another Apple advertisement (AirDrop, Handoff, Find My, ...)
    if len(data) != IBEACON_LENGTH:
        raise MalformedAdvertisement(
            f"an iBeacon is {IBEACON_LENGTH} bytes of manufacturer data, this is {len(data)}",
            address=adv.address,
            format=FORMAT_IBEACON,
        )
    uuid, major, minor, power = _IBEACON.unpack_from(data, 2)
    h = uuid.hex()
    sensor = f"ibeacon-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}-{major}-{minor}"
    return BleResult(FORMAT_IBEACON, sensor, _presence(adv, power))


def decode_url(encoded: bytes) -> str:
    """The URL of an Eddystone-URL frame's scheme byte and encoded text; raises MalformedAdvertisement."""
    if not encoded:
        raise MalformedAdvertisement("Eddystone-URL frame without its scheme byte", format=FORMAT_URL)
    if encoded[0] >= len(URL_SCHEMES):
        raise MalformedAdvertisement(f"Eddystone-URL scheme 0x{encoded[0]:02X} is not defined", format=FORMAT_URL)
    parts = [URL_SCHEMES[encoded[0]]]
    for code in encoded[1:]:
        if code < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[code])
        elif 0x21 <= code <= 0x7E:
            parts.append(chr(code))
        else:
            raise MalformedAdvertisement(
                f"Eddystone-URL byte 0x{code:02X} is neither printable ASCII nor an expansion code", format=FORMAT_URL
            )
    return "".join(parts)


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def decode_eddystone(adv: Advertisement, data: bytes) -> BleResult:
    """Decode Eddystone service data (after the UUID): UID, URL or TLM; raises a BleDecodeError."""
    if not data:
        raise MalformedAdvertisement("Eddystone service data without a frame type", address=adv.address)
    frame = data[0]
    if frame == 0x00:
        if len(data) not in (18, 20):
            raise MalformedAdvertisement(
                f"an Eddystone-UID frame is 20 bytes (18 without its reserved bytes), this is {len(data)}",
                address=adv.address,
                format=FORMAT_UID,
            )
        sensor = f"eddystone-{data[2:12].hex()}-{data[12:18].hex()}"
        return BleResult(FORMAT_UID, sensor, _presence(adv, _signed(data[1])))
    if frame == 0x10:
        if len(data) < 3 or len(data) > 20:
            raise MalformedAdvertisement(
                f"an Eddystone-URL frame is 3 to 20 bytes, this is {len(data)}", address=adv.address, format=FORMAT_URL
            )
        try:
            url = decode_url(data[2:])
        except MalformedAdvertisement as exc:
            raise MalformedAdvertisement(exc.problem, address=adv.address, format=FORMAT_URL) from None
        out = _presence(adv, _signed(data[1]))
        out.append(Measurement("url", url))
        return BleResult(FORMAT_URL, adv.address, out)
    if frame == 0x20:
        if len(data) >= 2 and data[1] == 0x01:
            raise UnsupportedFormat(
                "encrypted Eddystone TLM (eTLM) is not supported", address=adv.address, format=FORMAT_TLM
            )
        if len(data) != 14 or data[1] != 0x00:
            raise MalformedAdvertisement(
                f"an unencrypted Eddystone-TLM frame is 14 bytes with version 0 (this: {len(data)} bytes)",
                address=adv.address,
                format=FORMAT_TLM,
            )
        _, mv, temp, adv_count, deciseconds = _TLM.unpack_from(data, 1)
        out = _presence(adv)
        if mv:
            out.append(Measurement("battery_voltage", mv / 1000, "V"))
        if temp != -32768:
            out.append(Measurement("temperature", temp / 256, "Cel"))
        out.append(Measurement("advertisement_count", adv_count, "count"))
        out.append(Measurement("uptime", round(deciseconds / 10, 1), "s"))
        return BleResult(FORMAT_TLM, adv.address, out)
    if frame == 0x30:
        raise UnsupportedFormat(
            "Eddystone-EID (ephemeral id) is not supported: it needs the beacon's identity key",
            address=adv.address,
            format="eddystone-eid",
        )
    raise MalformedAdvertisement(f"Eddystone frame type 0x{frame:02X} is not defined", address=adv.address)
