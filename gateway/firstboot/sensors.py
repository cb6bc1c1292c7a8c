"""``[[sensors]]`` of roost.toml -> the gateway's ``[adapters]`` table, checked by the gateway's own config classes.

Each kind takes the few keys it needs; ``id`` is the sensor id wherever the adapter lets one be chosen.
A value the adapter refuses is reported at the roost.toml key (``sensors[2].address``), with the
adapter's own explanation of what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.ble.config import BleDeviceSection
from gateway.adapters.chips.config import I2cChipSection, SpiChipSection
from gateway.adapters.modbus.config import ModbusPortSection
from gateway.adapters.serial.config import SerialPortSection
from gateway.adapters.zigbee.config import ZigbeeSection
from gateway.firstboot.problems import Problems
from gateway.firstboot.settings import SensorSummary
from wire import typedconfig
from wire.names import check_sensor
from wire.typedconfig import ConfigValueError


@dataclass(frozen=True, slots=True)
class Kind:
    """What one kind of sensor takes in roost.toml and where it goes in gateway.toml."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    rename: Mapping[str, str] = field(default_factory=dict)
    """roost.toml key -> the adapter's key."""

    @property
    def allowed(self) -> tuple[str, ...]:
        """Every key this kind takes, ``kind`` included."""
        return ("kind", *self.required, *self.optional)


KINDS: dict[str, Kind] = {
    "coap": Kind(("id",), ()),
    "serial": Kind(("path",), ("protocol", "baud", "id"), {"id": "sensor"}),
    "i2c": Kind(("chip",), ("bus", "address", "id", "interval_s", "emulated"), {"id": "sensor"}),
    "spi": Kind(("chip",), ("bus", "device", "inputs", "interval_s", "emulated")),
    "ble": Kind(("address",), ("id", "bind_key"), {"id": "name"}),
    "zigbee": Kind(("radio",), ("path",)),
    "modbus": Kind(("path", "registers"), ("unit", "baud", "parity", "id", "interval_s"), {"id": "sensor"}),
}
HINTS = {
    "id": "the sensor id its readings carry (letters, digits and - : . / _)",
    "path": "the device path, like /dev/serial/by-id/usb-... or /dev/ttyUSB0",
    "chip": "which chip (i2c: bme280, sht3x or ads1115; spi: mcp3008)",
    "address": "the device's Bluetooth address, like A4:C1:38:0A:1B:2C",
    "radio": "the Zigbee stick's kind: znp (TI), ezsp (Silicon Labs) or deconz (ConBee/RaspBee)",
    "registers": 'the unit\'s register map, like registers = [{ name = "voltage", address = 0, unit = "V" }]',
}
SECRET_KEYS = ("bind_key",)
_ADAPTER_KEY = re.compile(r"^(?P<prefix>(?:i2c|spi|serial|modbus)\[\d+\]|ble\.devices\[\d+\]|zigbee)\.?(?P<rest>.*)$")


@dataclass(slots=True)
class Mapped:
    """The adapters table built so far and which roost.toml sensor each entry came from."""

    adapters: dict[str, Any] = field(default_factory=dict)
    paired: list[str] = field(default_factory=list)
    origin: dict[str, int] = field(default_factory=dict)
    """Adapter key prefix (``i2c[0]``, ``ble.devices[1]``, ``zigbee``) -> index in [[sensors]]."""
    summary: list[SensorSummary] = field(default_factory=list)


def map_sensors(raw: Any, problems: Problems) -> Mapped | None:
    """The ``[adapters]`` table for ``raw`` (roost.toml's ``sensors``); None when a sensor has a problem."""
    out = Mapped()
    if raw is None:
        return out
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        problems.add("sensors", 'must be a list of [[sensors]] tables, each with kind = "i2c", "serial", ...')
        return None
    before = len(problems)
    coap_ids: dict[str, int] = {}
    for i, sensor in enumerate(raw):
        _map_one(i, sensor, out, coap_ids, problems)
    from gateway.config import AdaptersSection

    try:  # across sensors (two chips at one address, ...): checked over the ones that are fine on their own
        typedconfig.build(AdaptersSection, out.adapters)
    except ConfigValueError as exc:
        problems.add(*_back(exc, out))
    return None if len(problems) > before else out


def _map_one(i: int, sensor: dict[str, Any], out: Mapped, coap_ids: dict[str, int], problems: Problems) -> None:
    key = f"sensors[{i}]"
    raw_kind = sensor.get("kind")
    kind = KINDS.get(raw_kind) if isinstance(raw_kind, str) else None
    if kind is None or not isinstance(raw_kind, str):
        allowed = ", ".join(KINDS)
        shown = f'"{raw_kind}" is not' if isinstance(raw_kind, str) else "is missing: give"
        problems.add(f"{key}.kind", f"{shown} a kind of sensor this gateway knows (one of {allowed})")
        return
    kind_name: str = raw_kind
    bad = False
    for name in sensor:
        if name not in kind.allowed:
            problems.add(f"{key}.{name}", f'unknown key for kind = "{kind_name}" (allowed: {", ".join(kind.allowed)})')
            bad = True
    for name in kind.required:
        if name not in sensor:
            problems.add(f"{key}.{name}", f'is required for kind = "{kind_name}": {HINTS.get(name, name)}')
            bad = True
    if bad:
        return
    table = {kind.rename.get(k, k): v for k, v in sensor.items() if k != "kind"}
    try:
        if kind_name == "coap":
            _coap(i, sensor, out, coap_ids)
        elif kind_name == "ble":
            section = typedconfig.build(BleDeviceSection, table)
            devices = out.adapters.setdefault("ble", {"enabled": True, "devices": []})["devices"]
            out.origin[f"ble.devices[{len(devices)}]"] = i
            devices.append(table)
            out.summary.append(SensorSummary(kind="ble", label=f"BLE {section.address}"))
        elif kind_name == "zigbee":
            if "zigbee" in out.adapters:
                raise ConfigValueError(
                    "kind", f"only one Zigbee radio is supported (sensors[{out.origin['zigbee']}] is one)"
                )
            zigbee = {"enabled": True, **table}
            typedconfig.build(ZigbeeSection, zigbee)
            out.adapters["zigbee"] = zigbee
            out.origin["zigbee"] = i
            out.summary.append(SensorSummary(kind="zigbee", label=f"Zigbee radio {table['radio']}"))
        else:
            cls = {"serial": SerialPortSection, "i2c": I2cChipSection, "spi": SpiChipSection}.get(
                kind_name, ModbusPortSection
            )
            typedconfig.build(cls, table)
            entries = out.adapters.setdefault(kind_name, [])
            out.origin[f"{kind_name}[{len(entries)}]"] = i
            entries.append(table)
            out.summary.append(SensorSummary(kind=kind_name, label=_label(kind_name, table)))
    except ConfigValueError as exc:
        reverse = {v: k for k, v in kind.rename.items()}
        first, dot, rest = exc.key_path.partition(".")
        head, bracket, index = first.partition("[")
        name = reverse.get(head, head) + bracket + index
        problems.add(f"{key}.{name}{dot}{rest}" if exc.key_path else key, exc.problem)


def _coap(i: int, sensor: dict[str, Any], out: Mapped, coap_ids: dict[str, int]) -> None:
    sensor_id = sensor["id"]
    if not isinstance(sensor_id, str):
        raise ConfigValueError("id", f"must be a string, not {sensor_id!r}")
    try:
        check_sensor(sensor_id)
    except ValueError as exc:
        raise ConfigValueError("id", str(exc)) from exc
    if sensor_id in coap_ids:
        raise ConfigValueError("id", f"{sensor_id!r} is already sensors[{coap_ids[sensor_id]}]'s id")
    coap_ids[sensor_id] = i
    out.paired.append(sensor_id)
    out.summary.append(SensorSummary(kind="coap", label=f"CoAP {sensor_id}"))


def _label(kind: str, table: dict[str, Any]) -> str:
    emulated = " (emulated)" if table.get("emulated") else ""
    if kind == "i2c":
        return f"{table['chip']} on I2C bus {table.get('bus', 1)}{emulated}"
    if kind == "spi":
        return f"{table['chip']} on SPI {table.get('bus', 0)}.{table.get('device', 0)}{emulated}"
    if kind == "serial":
        return f"{table.get('protocol', 'roost')} on {table['path']}"
    return f"Modbus unit {table.get('unit', 1)} on {table['path']}"


def _back(exc: ConfigValueError, out: Mapped) -> tuple[str, str]:
    """A cross-check of the adapters table (two chips at one address, ...) as a roost.toml key and message."""
    m = _ADAPTER_KEY.match(exc.key_path)
    if m and m.group("prefix") in out.origin:
        index = out.origin[m.group("prefix")]
        rest = {"sensor": "id", "name": "id"}.get(m.group("rest"), m.group("rest"))
        message = exc.problem
        for prefix, i in out.origin.items():  # "is already i2c[0]" -> "is already sensors[3]"
            message = message.replace(prefix, f"sensors[{i}]")
        return (f"sensors[{index}].{rest}" if rest else f"sensors[{index}]"), message
    return "sensors", exc.problem
