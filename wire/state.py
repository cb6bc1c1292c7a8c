"""Desired and reported state (device-twin style): ``state/desired`` (cloud, retained) and ``state/reported``.

Desired state, set by the cloud (JSON)::

    {"version": 7, "config": {"adapters": {"coap": {"enabled": false}}, "uplink": {"batch_max_delay_ms": 500}},
     "rules": "...TOML text of the gateway's rules...", "set_by": "operator:acme/olga", "set_at": 1764100000.0}

``config`` holds gateway.toml tables, the subset the cloud may set (:data:`SETTABLE`). Reported state,
published by the gateway (JSON, retained)::

    {"version": 7, "applied": ["adapters.coap", "uplink"], "rejected": {"cloud.url": "not settable from the cloud"},
     "sensors": [{"id": "th-1", "adapter": "serial", "management": "semi", "available": true}],
     "versions": {"roost": "0.1.0"}, "location": null, "locked": false, "features": {...}, "at": 1764100001.0}

``version`` in the report is the desired version the gateway runs now (0: none applied yet).
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal, NotRequired, TypedDict

from wire.commands import json_object
from wire.errors import PayloadError

MAX_PAYLOAD = 256 * 1024
Management = Literal["full", "semi", "none"]

SETTABLE: tuple[str, ...] = (
    "adapters",
    "uplink",
    "paired",
    "cloud.mqtt_url",
    "cloud.mqtt_urls",
    "cloud.transport",
    "cloud.keepalive_s",
    "cloud.backoff_max_s",
    "buffer.max_bytes",
    "buffer.max_age_s",
    "buffer.policy",
    "gateway.log_level",
)
"""Key paths (tables or single keys) of gateway.toml the cloud may set; the rest stays the installer's."""


class Desired(TypedDict):
    """What the cloud wants the gateway to run."""

    version: int
    config: dict[str, Any]
    rules: NotRequired[str | None]
    set_by: NotRequired[str]
    set_at: NotRequired[float]


class SensorState(TypedDict):
    """One local sensor as the gateway sees it."""

    id: str
    adapter: str | None
    management: Management
    available: bool


def decode_desired(payload: bytes) -> Desired:
    """Parse and check a desired-state payload; PayloadError says what is wrong."""
    body = json_object(payload, "desired state", MAX_PAYLOAD)
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PayloadError("desired state: 'version' must be a whole number, at least 1")
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise PayloadError("desired state: 'config' must be an object of gateway.toml tables")
    rules = body.get("rules")
    if rules is not None and not isinstance(rules, str):
        raise PayloadError("desired state: 'rules' must be TOML text")
    out: Desired = {"version": version, "config": config}
    if rules is not None:
        out["rules"] = rules
    if isinstance(body.get("set_by"), str):
        out["set_by"] = body["set_by"]
    set_at = body.get("set_at")
    if isinstance(set_at, int | float) and not isinstance(set_at, bool) and math.isfinite(set_at):
        out["set_at"] = float(set_at)
    return out


def encode(body: dict[str, Any] | Desired) -> bytes:
    """Compact JSON for either direction."""
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def decode_reported(payload: bytes) -> dict[str, Any]:
    """Parse a reported-state payload (checked for shape, not content); PayloadError if unusable."""
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"reported state is {len(payload)} bytes, more than {MAX_PAYLOAD}")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"reported state is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError("reported state must be a JSON object")
    version = body.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise PayloadError("reported state: 'version' must be a whole number")
    return body
