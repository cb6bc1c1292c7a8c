"""Xiaomi LYWSD03MMC (and kin) with custom firmware: pvvx's "custom" and atc1441's formats, UUID 0x181A.

Written from the firmware authors' public descriptions: pvvx's ATC_MiThermometer README ("Custom
format (all data little-endian)") and atc1441's ATC_MiThermometer README ("Advertising format of
the custom firmware"). ``xiaomi-ble`` does not decode either (it reads the Mi Home 0xFE95 formats)
and adds about 42 MB of RSS, so these are Roost's own. pvvx firmware set to BTHome is decoded as
BTHome. Neither format is authenticated: anyone can send them, so treat their readings as such.

Both are service data on the Environmental Sensing UUID 0x181A, told apart by length:

- pvvx custom, 15 bytes after the UUID, little-endian: MAC (6, least significant first),
  temperature int16 × 0.01 °C, humidity uint16 × 0.01 %, battery mV uint16, battery % uint8,
  measurement counter uint8, flags uint8 (bit 0 reed switch, bit 1 GPIO_TRG output, bit 2 output
  controlled by the trigger, bit 3 temperature trigger, bit 4 humidity trigger).
- atc1441, 13 bytes after the UUID, big-endian: MAC (6, most significant first), temperature
  int16 × 0.1 °C, humidity uint8 %, battery % uint8, battery mV uint16, frame counter uint8.

Measurements: ``temperature`` (Cel), ``humidity`` (%RH), ``battery`` (%EL), ``battery_voltage`` (V);
pvvx adds ``reed_switch``, ``trigger_output``, ``temperature_trigger`` and ``humidity_trigger``
(booleans). The counter becomes the result's ``packet_id``; the MAC in the payload is the sensor id.
"""

from __future__ import annotations

import struct

from drivers.ble.advertisement import Advertisement, format_mac, uuid16
from drivers.ble.errors import MalformedAdvertisement
from drivers.ble.result import BleResult
from drivers.measurement import Measurement

UUID = uuid16(0x181A)
FORMAT_PVVX = "pvvx"
FORMAT_ATC1441 = "atc1441"
LENGTH_PVVX = 15
LENGTH_ATC1441 = 13

_PVVX = struct.Struct("<6shHHBBB")
_ATC = struct.Struct(">6shBBHB")


def decode_env_sensing(adv: Advertisement, data: bytes) -> BleResult:
    """Decode 0x181A service data (after the UUID) in pvvx's or atc1441's format; raises MalformedAdvertisement."""
    if len(data) == LENGTH_PVVX:
        mac, temp, hum, mv, pct, counter, flags = _PVVX.unpack(data)
        return BleResult(
            FORMAT_PVVX,
            format_mac(mac[::-1]),
            [
                Measurement("temperature", round(temp * 0.01, 2), "Cel"),
                Measurement("humidity", round(hum * 0.01, 2), "%RH"),
                Measurement("battery", pct, "%EL"),
                Measurement("battery_voltage", round(mv / 1000, 3), "V"),
                Measurement("reed_switch", bool(flags & 0x01)),
                Measurement("trigger_output", bool(flags & 0x02)),
                Measurement("temperature_trigger", bool(flags & 0x08)),
                Measurement("humidity_trigger", bool(flags & 0x10)),
            ],
            counter,
        )
    if len(data) == LENGTH_ATC1441:
        mac, temp, hum, pct, mv, counter = _ATC.unpack(data)
        return BleResult(
            FORMAT_ATC1441,
            format_mac(mac),
            [
                Measurement("temperature", round(temp * 0.1, 1), "Cel"),
                Measurement("humidity", hum, "%RH"),
                Measurement("battery", pct, "%EL"),
                Measurement("battery_voltage", round(mv / 1000, 3), "V"),
            ],
            counter,
        )
    raise MalformedAdvertisement(
        f"0x181A service data of {len(data)} bytes is neither pvvx's custom format ({LENGTH_PVVX} bytes) "
        f"nor atc1441's ({LENGTH_ATC1441} bytes)",
        address=adv.address,
    )
