"""Naming rules for sensors, metrics, tenants and gateways (architecture page, "Names")."""

from __future__ import annotations

import re

from wire.errors import InvalidName

# SenML name characters (RFC 8428 section 4.5.1), first one a letter or digit.
_SENSOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_METRIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-./_]*")
_TENANT = re.compile(r"[a-z0-9][a-z0-9-]*")
# A gateway id is one MQTT topic level: no '/', '+' or '#'.
_GATEWAY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_ID = 128


def _check(kind: str, pattern: re.Pattern[str], value: str, rule: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidName(kind, str(value), "it is empty")
    if len(value) > MAX_ID:
        raise InvalidName(kind, value[:40] + "...", f"longer than {MAX_ID} characters")
    if not pattern.fullmatch(value):
        raise InvalidName(kind, value, rule)
    return value


def check_sensor(value: str) -> str:
    """Return ``value`` if it is a valid sensor id, else raise InvalidName."""
    return _check("sensor", _SENSOR, value, "start with a letter or digit, then only A-Z a-z 0-9 - : . / _")


def check_metric(value: str) -> str:
    """Return ``value`` if it is a valid metric name (SenML characters, no ':')."""
    return _check("metric", _METRIC, value, "start with a letter or digit, then only A-Z a-z 0-9 - . / _")


def check_tenant(value: str) -> str:
    """Return ``value`` if it is a valid tenant id."""
    return _check("tenant", _TENANT, value, "lower-case letters, digits and '-', starting with a letter or digit")


def check_gateway(value: str) -> str:
    """Return ``value`` if it is a valid gateway id (one topic level)."""
    return _check("gateway", _GATEWAY, value, "start with a letter or digit, then only A-Z a-z 0-9 . _ -")


def split_name(full: str) -> tuple[str, str]:
    """Split a full SenML name ``{sensor}:{metric}`` at its last ':' and check both parts."""
    sensor, sep, metric = full.rpartition(":")
    if not sep or not sensor:
        raise InvalidName("sensor", full, "a SenML name must be '{sensor}:{metric}' (base name 'sensor:')")
    return check_sensor(sensor), check_metric(metric)
