"""How gateways' readings look to cloud rules, and where cloud rules' outputs go.

- A reading of sensor ``s`` from gateway ``g`` is seen as sensor ``g/s`` (a gateway id has no ``/``,
  so the first ``/`` always splits them), with the same metric, value, time and unit.
- Presence: each ``online``/``offline`` the cloud sees for ``g`` (its ``status``, its last will, its
  connects and disconnects) is the reading sensor ``g``, metric ``online``, value true or false,
  stamped with the cloud's clock.
- Tags of a sensor ``g/...`` (and of ``g``): ``gateway = g``, ``site`` (when the fleet registry has
  one), and each of the gateway's operator tags: ``north`` becomes ``north = "true"``, a ``key=value``
  tag becomes ``key = "value"``. ``gateway`` and ``site`` are never overridden by an operator tag. The
  presence sensor ``g`` also has ``kind = "gateway"``, so a rule selects presence with
  ``tags = { kind = "gateway" }``.
- Alerts and annotations of cloud rules are stored under the gateway id ``cloud``; ingest refuses
  anything a client publishes as ``cloud``, so no gateway can pass for it.
- A command's target is ``g/s``: the command ``actuate`` goes to gateway ``g`` for its sensor ``s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from wire.errors import InvalidName
from wire.names import check_gateway, check_sensor
from wire.reading import Reading

CLOUD_GATEWAY = check_gateway("cloud")
"""The gateway id under which the cloud's own alerts, annotations and derived readings are stored."""
PRESENCE_METRIC = "online"
TAG_TRUE = "true"
RESERVED_TAGS = ("gateway", "site")
PRESENCE_TAGS = {"kind": "gateway"}


def cloud_readings(gateway: str, readings: Sequence[Reading]) -> list[Reading]:
    """``readings`` of ``gateway`` as cloud rules see them: sensor ``{gateway}/{sensor}``."""
    prefix = gateway + "/"
    return [Reading(prefix + r[0], r[1], r[2], r[3], r[4]) for r in readings]


def presence_reading(gateway: str, online: bool, ts: float) -> Reading:
    """The reading the cloud makes of a gateway going online or offline."""
    return Reading(gateway, PRESENCE_METRIC, online, ts, None)


def gateway_tags(gateway: str, site: str | None, tags: Iterable[str]) -> dict[str, str]:
    """The tags cloud rules see on every sensor of ``gateway``."""
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        key = key.strip()
        if key and key not in RESERVED_TAGS:
            out[key] = value.strip() if sep else TAG_TRUE
    out["gateway"] = gateway
    if site:
        out["site"] = site
    return out


def sensor_tags(sensor: str, by_gateway: Mapping[str, Mapping[str, str]]) -> Mapping[str, str]:
    """The tags cloud rules see on ``sensor`` (``g/s``, or the presence sensor ``g``)."""
    gw, sep, _rest = sensor.partition("/")
    tags = by_gateway.get(gw) or {"gateway": gw}
    return tags if sep else {**tags, **PRESENCE_TAGS}


def command_target(target: str) -> tuple[str, str]:
    """``(gateway, sensor)`` of a cloud rule's command target ``g/s``; ValueError saying what is wrong."""
    gateway, sep, sensor = target.partition("/")
    if not sep or not sensor:
        raise ValueError(
            f"command target {target!r} names no gateway: in the cloud a target is '{{gateway}}/{{sensor}}'"
        )
    try:
        check_gateway(gateway)
        check_sensor(sensor)
    except InvalidName as exc:
        raise ValueError(f"command target {target!r}: {exc}") from exc
    if gateway == CLOUD_GATEWAY:
        raise ValueError(f"command target {target!r}: {CLOUD_GATEWAY!r} is the cloud, not a gateway")
    return gateway, sensor


def tags_by_gateway(metas: Mapping[str, tuple[str | None, Sequence[str]]]) -> dict[str, dict[str, str]]:
    """``{gateway: tags}`` from ``{gateway: (site, operator tags)}`` (the fleet registry's view)."""
    return {gw: gateway_tags(gw, site, tags) for gw, (site, tags) in metas.items()}
