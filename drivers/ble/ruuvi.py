"""Ruuvi data format 5 (RAWv2): manufacturer data of company 0x0499, 24 bytes, big-endian.

Written from Ruuvi's public "Data format 5 (RAWv2)" page (docs.ruuvi.com), whose test vectors
(valid, maximum, minimum and "not available" values) are in ``tests/vectors/ble/``; not wrapped
around ``ruuvitag-ble``, which with its dependency tree adds about 28 MB of RSS (see
``docs/protocols/ble.md``).

Layout: format (5), temperature int16 × 0.005 °C, humidity uint16 × 0.0025 %, pressure uint16 Pa
+ 50,000, acceleration X/Y/Z int16 mG, power info uint16 (11 bits battery mV above 1,600, 5 bits TX
power in 2 dBm steps above -40 dBm), movement counter uint8, measurement sequence uint16, MAC (6).
"Not available" is the largest value of an unsigned field, the smallest of a signed one, all ones
for the MAC: such a field gives no measurement. The sensor id is the MAC in the payload (the tag's
own), or the advertisement's address when the payload's is not available.

Measurements: ``temperature`` (Cel), ``humidity`` (%RH), ``pressure`` (Pa), ``acceleration_x``/``_y``/``_z``
(m/s2, from mG with standard gravity), ``battery_voltage`` (V), ``tx_power`` (dBm), ``movement_counter``
(count); the measurement sequence becomes the result's ``packet_id``.
"""

from __future__ import annotations

import struct

from drivers.ble.advertisement import Advertisement, format_mac
from drivers.ble.errors import MalformedAdvertisement, UnsupportedFormat
from drivers.ble.result import BleResult
from drivers.measurement import Measurement

COMPANY_ID = 0x0499
FORMAT = "ruuvi-rawv2"
DATA_FORMAT = 5
LENGTH = 24
STANDARD_GRAVITY = 9.80665
"""m/s² per g (the CGPM's standard acceleration of gravity)."""

_LAYOUT = struct.Struct(">BhHHhhhHBH6s")
_NOT_AVAILABLE_MAC = b"\xff" * 6
_FORMATS = {3: "RAWv1 (format 3)", 4: "URL (format 4)", 6: "format 6 (Ruuvi Air)", 8: "encrypted format 8", 0xC5: "C5"}


def _accel(mg: int) -> float:
    return round(mg * STANDARD_GRAVITY / 1000, 6)


def decode_ruuvi(adv: Advertisement, data: bytes) -> BleResult:
    """Decode Ruuvi manufacturer data (after the company id); raises a BleDecodeError."""
    if not data:
        raise MalformedAdvertisement("Ruuvi manufacturer data holds no data-format byte", address=adv.address)
    if data[0] != DATA_FORMAT:
        kind = _FORMATS.get(data[0], f"format {data[0]}")
        raise UnsupportedFormat(
            f"Ruuvi {kind} is not supported: set the tag to data format 5 (RAWv2)", address=adv.address, format=FORMAT
        )
    if len(data) != LENGTH:
        raise MalformedAdvertisement(
            f"Ruuvi RAWv2 data is {LENGTH} bytes, this is {len(data)}", address=adv.address, format=FORMAT
        )
    _, temp, hum, press, ax, ay, az, power, movement, sequence, mac = _LAYOUT.unpack(data)
    out: list[Measurement] = []
    if temp != -32768:
        out.append(Measurement("temperature", round(temp * 0.005, 3), "Cel"))
    if hum != 0xFFFF:
        out.append(Measurement("humidity", round(hum * 0.0025, 4), "%RH"))
    if press != 0xFFFF:
        out.append(Measurement("pressure", press + 50_000, "Pa"))
    for axis, mg in (("x", ax), ("y", ay), ("z", az)):
        if mg != -32768:
            out.append(Measurement(f"acceleration_{axis}", _accel(mg), "m/s2"))
    battery, tx = power >> 5, power & 0x1F
    if battery != 0x7FF:
        out.append(Measurement("battery_voltage", round((battery + 1600) / 1000, 3), "V"))
    if tx != 0x1F:
        out.append(Measurement("tx_power", tx * 2 - 40, "dBm"))
    if movement != 0xFF:
        out.append(Measurement("movement_counter", movement, "count"))
    sensor = format_mac(mac) if mac != _NOT_AVAILABLE_MAC else adv.address
    return BleResult(FORMAT, sensor, out, None if sequence == 0xFFFF else sequence)
