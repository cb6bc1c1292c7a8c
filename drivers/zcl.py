"""ZCL attribute values as readings: the table the Zigbee adapter and ``roost decode zcl`` share.

Parsing is zigpy's own (``zigpy.zcl.foundation``: the ZCL header, Report Attributes and Read
Attributes Response records, the IAS Zone status change notification); what each attribute means is
Roost's table below (:data:`ATTRIBUTES`, one frozen dataclass per cluster and attribute), with the
scale the ZCL specification gives it, its SenML unit and its "invalid value" sentinel. A sentinel, an
unexpected data type, a failed read record or an attribute the table does not map is *skipped with a
reason*, never turned into a reading; a frame that cannot be parsed is a :class:`ZclDecodeError`.

Some values need another attribute of the same cluster to be read right: electrical measurement and
metering scale by a multiplier and a divisor, IAS zone status means contact, motion or leak by the zone
type, metering only counts energy when its unit of measure is kWh. Such attributes are *context*:
taken from the same frame when it carries them, else from ``known`` (what the adapter read from the
device when it was bound); multiplier and divisor default to 1 when neither has them.

Only ``zigpy.zcl`` is imported (about 23 MB of RSS here), never ``zigpy.application``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import zigpy.types as zt
from zigpy.zcl import foundation

from drivers.measurement import Measurement

__all__ = ["ATTRIBUTES", "AttributeMetric", "DecodedFrame", "Measurement", "SkipValue", "Skipped", "ZclDecodeError"]

# Clusters (ZCL specification, chapter numbers in the comments).
BASIC = 0x0000
POWER_CONFIGURATION = 0x0001  # 3.3
ON_OFF = 0x0006  # 3.8
LEVEL_CONTROL = 0x0008  # 3.10
COLOR_CONTROL = 0x0300  # 5.2
ILLUMINANCE = 0x0400  # 4.2
TEMPERATURE = 0x0402  # 4.4
PRESSURE = 0x0403  # 4.5
HUMIDITY = 0x0405  # 4.7
OCCUPANCY = 0x0406  # 4.8
IAS_ZONE = 0x0500  # 8.2
METERING = 0x0702  # Smart Energy 10.4.2
ELECTRICAL_MEASUREMENT = 0x0B04  # 4.9

CLUSTER_NAMES: dict[int, str] = {
    POWER_CONFIGURATION: "power configuration",
    ON_OFF: "on/off",
    LEVEL_CONTROL: "level control",
    COLOR_CONTROL: "color control",
    ILLUMINANCE: "illuminance measurement",
    TEMPERATURE: "temperature measurement",
    PRESSURE: "pressure measurement",
    HUMIDITY: "relative humidity measurement",
    OCCUPANCY: "occupancy sensing",
    IAS_ZONE: "IAS zone",
    METERING: "metering",
    ELECTRICAL_MEASUREMENT: "electrical measurement",
}

# IAS zone (8.2.2.2.1.2 zone type, 8.2.2.2.1.3 zone status bits).
ZONE_TYPE_ATTR = 0x0001
ZONE_STATUS_ATTR = 0x0002
ZONE_ALARM1 = 0x0001
ZONE_TAMPER = 0x0004
ZONE_BATTERY_LOW = 0x0008
ZONE_METRICS: dict[int, str] = {
    0x000D: "motion",  # motion sensor
    0x0015: "contact",  # contact switch: alarm1 = opened, so contact = not alarm1
    0x0016: "contact",  # door/window handle
    0x0028: "smoke",  # fire sensor
    0x002A: "leak",  # water sensor
    0x002B: "carbon_monoxide",
    0x002D: "vibration",
}
"""Zone type → the metric its alarm1 bit becomes; other zone types publish ``alarm``."""
INVERTED_ZONE_METRICS = frozenset({"contact"})
"""Metrics that are true when alarm1 is clear (a contact switch reports 'opened' as alarm1)."""
STATUS_CHANGE_NOTIFICATION = 0x00

METERING_UNIT_ATTR = 0x0300
METERING_UNIT_KWH = 0x00


class ZclDecodeError(ValueError):
    """A ZCL frame Roost cannot read; ``problem`` says why in the technician's words."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class AttributeMetric:
    """How one ZCL attribute becomes a reading.

    ``value = raw * scale`` (times ``multiplier / divisor`` when ``scaled_by`` names the two context
    attributes), rounded to ``decimals``; ``convert`` replaces the linear rule when set (illuminance is
    logarithmic, colour temperature is in mireds, booleans are bits).
    """

    cluster: int
    attribute: int
    name: str
    metric: str
    unit: str | None
    scale: float = 1.0
    decimals: int = 6
    invalid: frozenset[int] = frozenset()
    scaled_by: tuple[int, int] | None = None
    convert: Callable[[int], float | bool] | None = None
    bits: int = 16
    """Width of the ZCL data type; a value outside it is refused (a device that sends the wrong type)."""
    signed: bool = False
    reportable: tuple[int, int, int] | None = None
    """Reporting configured on bind: (min interval s, max interval s, reportable change in raw units)."""


def _lux(raw: int) -> float:
    # 4.2.2.2.1.1: MeasuredValue = 10,000 x log10(lux) + 1; 0 means too dark to measure.
    return 0.0 if raw == 0 else round(10 ** ((raw - 1) / 10000), 2)


def _kelvin(raw: int) -> float:
    return round(1_000_000 / raw, 0)  # mireds to kelvin; 0 is in ``invalid``


def _bit0(raw: int) -> bool:
    return bool(raw & 0x01)


def _bool(raw: int) -> bool:
    return bool(raw)


_TABLE: tuple[AttributeMetric, ...] = (
    AttributeMetric(TEMPERATURE, 0x0000, "measured_value", "temperature", "Cel", 0.01, 2, frozenset({-0x8000}),
                    signed=True, reportable=(30, 900, 10)),
    AttributeMetric(HUMIDITY, 0x0000, "measured_value", "humidity", "%RH", 0.01, 2, frozenset({0xFFFF}),
                    reportable=(30, 900, 50)),
    AttributeMetric(PRESSURE, 0x0000, "measured_value", "pressure", "Pa", 100.0, 1, frozenset({-0x8000}),
                    signed=True, reportable=(30, 900, 1)),
    AttributeMetric(ILLUMINANCE, 0x0000, "measured_value", "illuminance", "lx", invalid=frozenset({0xFFFF}),
                    convert=_lux, reportable=(10, 900, 500)),
    AttributeMetric(OCCUPANCY, 0x0000, "occupancy", "occupancy", None, convert=_bit0, bits=8,
                    reportable=(0, 900, 1)),
    AttributeMetric(ON_OFF, 0x0000, "on_off", "on", None, convert=_bool, bits=1, reportable=(0, 900, 1)),
    AttributeMetric(LEVEL_CONTROL, 0x0000, "current_level", "level", "%", 100 / 254, 1, frozenset({0xFF}), bits=8,
                    reportable=(1, 900, 1)),
    AttributeMetric(COLOR_CONTROL, 0x0007, "color_temperature", "color_temperature", "K",
                    invalid=frozenset({0x0000, 0xFFFF}), convert=_kelvin, reportable=(1, 900, 1)),
    AttributeMetric(IAS_ZONE, ZONE_STATUS_ATTR, "zone_status", "zone_status", None),
    AttributeMetric(ELECTRICAL_MEASUREMENT, 0x0505, "rms_voltage", "voltage", "V", invalid=frozenset({0xFFFF}),
                    scaled_by=(0x0600, 0x0601), reportable=(10, 900, 1)),
    AttributeMetric(ELECTRICAL_MEASUREMENT, 0x0508, "rms_current", "current", "A", invalid=frozenset({0xFFFF}),
                    scaled_by=(0x0602, 0x0603), reportable=(10, 900, 1)),
    AttributeMetric(ELECTRICAL_MEASUREMENT, 0x050B, "active_power", "power", "W", invalid=frozenset({-0x8000}),
                    scaled_by=(0x0604, 0x0605), signed=True, reportable=(10, 900, 1)),
    AttributeMetric(METERING, 0x0000, "current_summ_delivered", "energy", "kWh",
                    invalid=frozenset({0xFFFFFFFFFFFF}), scaled_by=(0x0301, 0x0302), bits=48, reportable=(30, 900, 1)),
    AttributeMetric(METERING, 0x0400, "instantaneous_demand", "power", "W", 1000.0,
                    invalid=frozenset({-0x800000}), scaled_by=(0x0301, 0x0302), bits=24, signed=True,
                    reportable=(10, 900, 1)),
    AttributeMetric(POWER_CONFIGURATION, 0x0020, "battery_voltage", "battery_voltage", "V", 0.1, 1,
                    frozenset({0xFF}), bits=8, reportable=(3600, 21600, 1)),
    AttributeMetric(POWER_CONFIGURATION, 0x0021, "battery_percentage_remaining", "battery", "%EL", 0.5, 1,
                    frozenset({0xFF}), bits=8, reportable=(3600, 21600, 2)),
)  # fmt: skip

ATTRIBUTES: dict[tuple[int, int], AttributeMetric] = {(a.cluster, a.attribute): a for a in _TABLE}
"""(cluster id, attribute id) → how it becomes a reading."""

CONTEXT_ATTRIBUTES: dict[int, frozenset[int]] = {
    ELECTRICAL_MEASUREMENT: frozenset({0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605}),
    METERING: frozenset({METERING_UNIT_ATTR, 0x0301, 0x0302}),
    IAS_ZONE: frozenset({ZONE_TYPE_ATTR}),
}
"""Attributes that say how another one of the same cluster is read (multipliers, divisors, zone type)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An attribute record that gave no reading, and why."""

    attribute: int
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """What one ZCL frame carried."""

    cluster: int
    command: str
    tsn: int
    manufacturer: int | None
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    context: dict[int, int] = field(default_factory=dict)
    """Context attributes (multipliers, divisors, zone type) the frame carried."""


def supported_clusters() -> list[int]:
    """The clusters whose attributes Roost turns into readings."""
    return sorted(CLUSTER_NAMES)


def _int(raw: object) -> int | None:
    if isinstance(raw, int):
        return int(raw)
    return None


def _zone(raw: int, zone_type: int | None) -> list[Measurement]:
    metric = ZONE_METRICS.get(zone_type, "alarm") if zone_type is not None else "alarm"
    alarm = bool(raw & ZONE_ALARM1)
    value = not alarm if metric in INVERTED_ZONE_METRICS else alarm
    return [
        Measurement(metric, value),
        Measurement("tamper", bool(raw & ZONE_TAMPER)),
        Measurement("battery_low", bool(raw & ZONE_BATTERY_LOW)),
    ]


class SkipValue(Exception):
    """An attribute value that gives no reading; the message is the reason."""


def measure(cluster: int, attribute: int, raw: object, known: Mapping[int, int] | None = None) -> list[Measurement]:
    """The readings one attribute value gives; raise :class:`SkipValue` saying why when it gives none.

    ``raw`` is the value as zigpy parsed it (an int subclass for every attribute in the table);
    ``known`` holds the cluster's context attributes (multiplier, divisor, zone type, unit of measure).
    """
    spec = ATTRIBUTES.get((cluster, attribute))
    if spec is None:
        raise SkipValue("not an attribute Roost maps to a reading")
    value = _int(raw)
    if value is None:
        raise SkipValue(f"unexpected data type {type(raw).__name__} for {spec.name}")
    lo, hi = (-(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1) if spec.signed else (0, (1 << spec.bits) - 1)
    if not lo <= value <= hi:
        raise SkipValue(f"{spec.name} {value} does not fit its ZCL data type ({lo} to {hi})")
    if value in spec.invalid:
        shown = str(value) if value < 0 else f"0x{value:X}"
        raise SkipValue(f"{spec.name} is the ZCL 'invalid value' ({shown}): the device has no measurement")
    ctx = known or {}
    if cluster == IAS_ZONE:
        return _zone(value, ctx.get(ZONE_TYPE_ATTR))
    if cluster == METERING and spec.metric == "energy" and ctx.get(METERING_UNIT_ATTR, METERING_UNIT_KWH) != 0:
        raise SkipValue(f"the meter counts in unit of measure {ctx[METERING_UNIT_ATTR]}, not kWh")
    if spec.convert is not None:
        out = spec.convert(value)
        return [Measurement(spec.metric, out, spec.unit)]
    number = value * spec.scale
    if spec.scaled_by is not None:
        multiplier = ctx.get(spec.scaled_by[0], 1) or 1
        divisor = ctx.get(spec.scaled_by[1], 1) or 1
        number = number * multiplier / divisor
    number = round(number, spec.decimals)
    if not math.isfinite(number):
        raise SkipValue(f"{spec.name} is out of range")
    return [Measurement(spec.metric, float(number), spec.unit)]


def _context(cluster: int, records: list[tuple[int, object]]) -> dict[int, int]:
    wanted = CONTEXT_ATTRIBUTES.get(cluster, frozenset())
    found: dict[int, int] = {}
    for attrid, raw in records:
        value = _int(raw)
        if attrid in wanted and value is not None:
            found[attrid] = value
    return found


def _measure_records(
    cluster: int, records: list[tuple[int, object]], known: Mapping[int, int] | None, out: DecodedFrame
) -> None:
    ctx = {**(known or {}), **out.context}
    wanted = CONTEXT_ATTRIBUTES.get(cluster, frozenset())
    for attrid, raw in records:
        if attrid in wanted:
            continue  # context, not a reading of its own
        try:
            out.measurements.extend(measure(cluster, attrid, raw, ctx))
        except SkipValue as exc:
            out.skipped.append(Skipped(attrid, str(exc)))


def decode(cluster_id: int, data: bytes, *, known: Mapping[int, int] | None = None) -> DecodedFrame:
    """Parse one ZCL frame (header included) of ``cluster_id``; raise ZclDecodeError when it cannot be read."""
    if cluster_id not in CLUSTER_NAMES:
        names = ", ".join(f"0x{c:04X} {n}" for c, n in sorted(CLUSTER_NAMES.items()))
        raise ZclDecodeError(f"cluster 0x{cluster_id:04X} is not one Roost decodes (it reads {names})")
    if len(data) < 3:
        raise ZclDecodeError(f"truncated frame: a ZCL header takes at least 3 bytes, this frame has {len(data)}")
    try:
        hdr, rest = foundation.ZCLHeader.deserialize(data)
    except Exception as exc:  # zigpy raises ValueError, KeyError, ...: untrusted bytes
        raise ZclDecodeError(f"truncated or malformed ZCL header: {exc}") from None
    fc = hdr.frame_control
    manufacturer = None if hdr.manufacturer is None else int(hdr.manufacturer)
    tsn, command = int(hdr.tsn), int(hdr.command_id)
    if fc.frame_type == foundation.FrameType.CLUSTER_COMMAND:
        if cluster_id == IAS_ZONE and command == STATUS_CHANGE_NOTIFICATION and manufacturer is None:
            return _zone_notification(cluster_id, tsn, rest, known)
        raise ZclDecodeError(
            f"unsupported command: cluster-specific command 0x{command:02X} of the "
            f"{CLUSTER_NAMES[cluster_id]} cluster carries no readings Roost decodes"
        )
    if manufacturer is not None:
        raise ZclDecodeError(
            f"manufacturer-specific frame (manufacturer 0x{manufacturer:04X}): its attribute ids are the "
            "manufacturer's own, not the ones Roost maps"
        )
    if command == foundation.GeneralCommand.Report_Attributes:
        name = "report_attributes"
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Report_Attributes].schema
        parsed = _parse(schema, rest, "Report Attributes")
        records = [(int(r.attrid), r.value.value) for r in parsed.attribute_reports]
        failed: list[Skipped] = []
    elif command == foundation.GeneralCommand.Read_Attributes_rsp:
        name = "read_attributes_response"
        schema = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema
        parsed = _parse(schema, rest, "Read Attributes Response")
        records = []
        failed = []
        for r in parsed.status_records:
            if r.status == foundation.Status.SUCCESS:
                records.append((int(r.attrid), r.value.value))
            else:
                failed.append(Skipped(int(r.attrid), f"the device answered {_status_name(int(r.status))}"))
    else:
        known_name = _general_name(command)
        raise ZclDecodeError(
            f"unsupported command: general command 0x{command:02X}{known_name} carries no readings; Roost decodes "
            "Report Attributes (0x0A), Read Attributes Response (0x01) and the IAS zone status change notification"
        )
    if not records and not failed:
        raise ZclDecodeError(f"truncated frame: the {name.replace('_', ' ')} holds no attribute records")
    out = DecodedFrame(cluster_id, name, tsn, manufacturer, context=_context(cluster_id, records))
    out.skipped.extend(failed)
    _measure_records(cluster_id, records, known, out)
    return out


def _parse(schema: type[zt.Struct], rest: bytes, what: str) -> zt.Struct:
    try:
        parsed, extra = schema.deserialize(rest)
    except Exception as exc:  # untrusted bytes: any parsing failure is the frame's, never ours
        raise ZclDecodeError(f"truncated or malformed {what} record: {exc}") from None
    if extra:
        raise ZclDecodeError(f"{len(extra)} bytes left over after the {what} records")
    return parsed


def _zone_notification(cluster_id: int, tsn: int, rest: bytes, known: Mapping[int, int] | None) -> DecodedFrame:
    from zigpy.zcl.clusters.security import IasZone

    schema = IasZone.ClientCommandDefs.status_change_notification.schema
    try:
        parsed, _extra = schema.deserialize(rest)
    except Exception as exc:  # untrusted bytes
        raise ZclDecodeError(f"truncated or malformed zone status change notification: {exc}") from None
    out = DecodedFrame(cluster_id, "zone_status_change_notification", tsn, None)
    zone_status = int(getattr(parsed, "zone_status", 0))  # a generated schema field
    out.measurements.extend(_zone(zone_status, (known or {}).get(ZONE_TYPE_ATTR)))
    return out


def decode_frame(cluster_id: int, data: bytes, *, known: Mapping[int, int] | None = None) -> list[Measurement]:
    """The readings a Report Attributes / Read Attributes Response / IAS zone notification frame carries."""
    return decode(cluster_id, data, known=known).measurements


def _status_name(status: int) -> str:
    try:
        return foundation.Status(status).name
    except ValueError:
        return f"status 0x{status:02X}"


def _general_name(command: int) -> str:
    try:
        return f" ({foundation.GeneralCommand(command).name.replace('_', ' ')})"
    except ValueError:
        return ""


def status_name(status: int) -> str:
    """A ZCL status as its name (``SUCCESS``, ``UNSUP_CLUSTER_COMMAND``, ...)."""
    return _status_name(status)
