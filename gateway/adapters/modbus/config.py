"""``[[adapters.modbus]]``: one table per Modbus RTU unit (slave) on a serial port (docs/protocols/modbus.md).

Several tables may name the same port (an RS-485 line carries up to 247 units): they share one
serial connection, so they must agree on its settings. No I/O and no pymodbus here, so the config
loader stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from drivers.modbus_map import BIT_KINDS, DataType, Kind, Order, RegisterDef
from wire.names import check_metric, check_sensor
from wire.typedconfig import ConfigValueError, doc

Parity = Literal["none", "even", "odd"]
BAUD_RATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)
_UNIT = re.compile(r"[A-Za-z0-9%/.*_-]{1,24}")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusRegisterSection:
    """One value in a unit's register map; its reading's metric is ``name``."""

    name: str = doc("Metric name of the value (letters, digits, - . / _)")
    kind: Kind = doc("Table: holding or input registers, coil or discrete (input bits)", default="holding")
    address: int = doc("0-based protocol address (a manual's 40001 is holding 0, 30001 is input 0)")
    type: DataType | None = doc(
        "int16, uint16, int32, uint32, float32, int64, uint64, float64; none: uint16 (bool for coils)", default=None
    )
    word_order: Order = doc("Order of the registers of a 32/64-bit value: big (ABCD) or little (CDAB)", default="big")
    byte_order: Order = doc("Order of the two bytes in each register: big (Modbus) or little (BADC)", default="big")
    scale: float = doc("Value = raw * scale + offset", default=1.0)
    offset: float = doc("Added after scaling", default=0.0)
    unit: str = doc("SenML unit of the value (V, A, W, kWh, Cel, %RH, Hz, ...); empty: none", default="")

    def __post_init__(self) -> None:
        try:
            check_metric(self.name)
        except ValueError as exc:
            raise ConfigValueError("name", str(exc)) from exc
        if not 0 <= self.address <= 0xFFFF:
            raise ConfigValueError("address", f"{self.address} must be between 0 and 65535")
        if self.kind in BIT_KINDS and self.type not in (None, "bool"):
            raise ConfigValueError("type", f"a {self.kind} is one bit: leave type out (it reads as true/false)")
        if self.kind not in BIT_KINDS and self.type == "bool":
            raise ConfigValueError("type", f"a {self.kind} register holds a number: int16, uint16, ..., float32")
        if self.kind in BIT_KINDS and (self.scale != 1.0 or self.offset != 0.0):
            raise ConfigValueError("scale", f"a {self.kind} is true/false: scale and offset do not apply")
        if self.scale == 0:
            raise ConfigValueError("scale", "must not be 0")
        if self.unit and not _UNIT.fullmatch(self.unit):
            raise ConfigValueError("unit", f"{self.unit!r} is not a SenML unit (like V, kWh, Cel, %RH, m3/h)")
        try:
            self.definition()
        except ValueError as exc:
            raise ConfigValueError("address", str(exc)) from exc

    def definition(self) -> RegisterDef:
        """The driver's register definition."""
        dtype: DataType = self.type or ("bool" if self.kind in BIT_KINDS else "uint16")
        return RegisterDef(
            name=self.name,
            kind=self.kind,
            address=self.address,
            type=dtype,
            word_order=self.word_order,
            byte_order=self.byte_order,
            scale=self.scale,
            offset=self.offset,
            unit=self.unit or None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusPortSection:
    """One Modbus RTU unit on a serial port, polled on an interval."""

    path: str = doc("Serial device: a stable /dev/serial/by-id/... link, or /dev/ttyUSB0, /dev/ttyAMA0")
    unit: int = doc("Unit id (slave address) of the device, 1-247", default=1)
    name: str = doc("Name of the line in sensor ids ({name}-{unit}); empty: the device file's name", default="")
    sensor: str = doc("Sensor id of this unit's readings; empty: {name}-{unit}, like ttyUSB0-1", default="")
    baud: int = doc("Baud rate", default=9600)
    parity: Parity = doc("Parity: none, even or odd (8 data bits)", default="even")
    stopbits: int = doc("Stop bits: 1 or 2", default=1)
    interval_s: float = doc("Seconds between polls of this unit", default=10.0)
    timeout_s: float = doc(
        "Seconds to wait for an answer to a request (the same for every unit on a port)", default=1.0
    )
    retries: int = doc("Times a request that got no answer is sent again before it counts as failed", default=2)
    max_read: int = doc("Most registers in one read request (125 is the protocol's limit)", default=125)
    max_gap: int = doc("Unused addresses one read may span to join two values (0: only adjacent)", default=8)
    registers: tuple[ModbusRegisterSection, ...] = doc("The register map: [[adapters.modbus.registers]]")

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigValueError(
                "path", f"{self.path!r} must be an absolute device path, like /dev/serial/by-id/... or /dev/ttyUSB0"
            )
        if not 1 <= self.unit <= 247:
            raise ConfigValueError("unit", f"{self.unit} must be between 1 and 247 (0 is broadcast, never answered)")
        if self.name and _NAME_CHARS.search(self.name):
            raise ConfigValueError("name", f"{self.name!r} may hold only letters, digits and - . _")
        if self.sensor:
            try:
                check_sensor(self.sensor)
            except ValueError as exc:
                raise ConfigValueError("sensor", str(exc)) from exc
        else:
            try:
                check_sensor(self.sensor_id)
            except ValueError as exc:
                raise ConfigValueError("name", f"the sensor id made from it is not valid: {exc}") from exc
        if self.baud not in BAUD_RATES:
            raise ConfigValueError("baud", f"{self.baud} must be one of {', '.join(map(str, BAUD_RATES))}")
        if self.stopbits not in (1, 2):
            raise ConfigValueError("stopbits", f"{self.stopbits} must be 1 or 2")
        if not 0.05 <= self.interval_s <= 86400:
            raise ConfigValueError("interval_s", "must be between 0.05 and 86400")
        if not 0.01 <= self.timeout_s <= 60:
            raise ConfigValueError("timeout_s", "must be between 0.01 and 60")
        if not 0 <= self.retries <= 10:
            raise ConfigValueError("retries", "must be between 0 and 10")
        if not 4 <= self.max_read <= 125:
            raise ConfigValueError("max_read", "must be between 4 and 125 (a 64-bit value spans 4 registers)")
        if not 0 <= self.max_gap <= 125:
            raise ConfigValueError("max_gap", "must be between 0 and 125")
        if not self.registers:
            raise ConfigValueError("registers", "is empty: list the unit's values as [[adapters.modbus.registers]]")
        seen: dict[str, int] = {}
        for i, reg in enumerate(self.registers):
            if reg.name in seen:
                raise ConfigValueError(f"registers[{i}].name", f"{reg.name!r} is already registers[{seen[reg.name]}]")
            seen[reg.name] = i

    @property
    def line_name(self) -> str:
        """The line's name in sensor ids: ``name``, else the device file's name made safe."""
        if self.name:
            return self.name
        base = PurePosixPath(self.path).name or "modbus"
        return _NAME_CHARS.sub("_", base).lstrip("_.-") or "modbus"

    @property
    def sensor_id(self) -> str:
        """The sensor id of this unit's readings."""
        return self.sensor or f"{self.line_name}-{self.unit}"

    def serial_settings(self) -> tuple[int, str, int]:
        """(baud, parity letter, stop bits): what every unit on one port must agree on."""
        return self.baud, self.parity[0].upper(), self.stopbits


def check_ports(units: tuple[ModbusPortSection, ...]) -> None:
    """Refuse two tables for one unit on one port, two units with one sensor id, or one port set up two ways."""
    by_path: dict[str, int] = {}
    units_seen: dict[tuple[str, int], int] = {}
    sensors: dict[str, int] = {}
    for i, u in enumerate(units):
        first = units_seen.setdefault((u.path, u.unit), i)
        if first != i:
            raise ConfigValueError(f"modbus[{i}].unit", f"unit {u.unit} on {u.path} is already modbus[{first}]")
        first = sensors.setdefault(u.sensor_id, i)
        if first != i:
            raise ConfigValueError(
                f"modbus[{i}].sensor", f"sensor id {u.sensor_id!r} is already modbus[{first}]'s: set name or sensor"
            )
        first = by_path.setdefault(u.path, i)
        other = units[first]
        for key in ("baud", "parity", "stopbits", "timeout_s"):
            if getattr(u, key) != getattr(other, key):
                raise ConfigValueError(
                    f"modbus[{i}].{key}",
                    f"{u.path} is also modbus[{first}]'s port, with {key} = {getattr(other, key)!r}: baud, parity, "
                    "stopbits and timeout_s must be the same for every unit on one port",
                )
