"""JSON envelopes on the non-telemetry topics: ack, health, status."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from wire.errors import PayloadError

ONLINE = b"online"
OFFLINE = b"offline"


class Ack(TypedDict):
    """Cloud -> gateway on ``ack``: batch ids now durable in the store, and ids the cloud refused for good.

    A refused batch (a pack the ingest cannot decode) will never be taken, so the gateway drops it
    and counts it rather than sending it again forever.
    """

    batches: list[str]
    rejected: list[str]


class Counters(TypedDict):
    """The uplink's counters, reported on ``health``."""

    buffered: int
    """Readings in the buffer now."""
    received: int
    """Readings accepted from adapters since start."""
    sent: int
    """Readings the cloud has acknowledged since start."""
    dropped: int
    """Readings dropped since the buffer was created (buffer full or too old), all causes."""
    dropped_full: int
    dropped_age: int
    rejected: int
    """Payloads refused by adapters (malformed, unknown sensor, ...)."""
    reconnects: int


class EventCounters(TypedDict):
    """The uplink's event counters, reported on ``health`` under ``events``."""

    buffered: int
    """Events in the buffer now."""
    received: int
    """Events appended since start."""
    sent: int
    """Events the cloud has acknowledged since start."""
    dropped: int
    """Events dropped because the buffer's event queue was full, since it was created."""
    rejected: int
    """Events in packs the cloud refused for good."""


class _HealthRequired(TypedDict):
    ts: float
    uptime_s: float
    counters: Counters


class Health(_HealthRequired, total=False):
    """Gateway -> cloud on ``health``: counters always; the DM agent's heartbeat adds the rest.

    ``system``: cpu_temp_c, load_1m, memory_used_pct, disk_free_mb, process_rss_mb (what the machine can
    tell); ``adapters``: each adapter's state and counters by name; ``versions``: software versions;
    ``location``: ``{"lat", "lon", "alt_m", "source", "at"}`` or null; ``events``: the event counters.
    """

    system: dict[str, Any]
    adapters: dict[str, Any]
    versions: dict[str, str]
    location: dict[str, Any] | None
    rules: dict[str, Any] | None
    events: EventCounters


HEALTH_OBJECTS = ("system", "adapters", "versions", "events")


def encode_ack(batches: list[str], rejected: list[str] | None = None) -> bytes:
    """The ``ack`` payload for these batch ids (and those refused for good)."""
    return json.dumps({"batches": batches, "rejected": rejected or []}, separators=(",", ":")).encode()


def decode_ack(payload: bytes) -> Ack:
    """An ``ack`` payload, or PayloadError; ``rejected`` defaults to empty."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"ack payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PayloadError("ack payload must be a JSON object")
    batches, rejected = doc.get("batches", []), doc.get("rejected", [])
    for key, ids in (("batches", batches), ("rejected", rejected)):
        if not isinstance(ids, list) or not all(isinstance(b, str) for b in ids):
            raise PayloadError(f"ack payload's {key!r} must be a list of batch id strings")
    return {"batches": batches, "rejected": rejected}


def encode_health(health: Health) -> bytes:
    """The ``health`` payload."""
    return json.dumps(health, separators=(",", ":")).encode()


def decode_health(payload: bytes) -> Health:
    """A ``health`` payload, or PayloadError."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"health payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("counters"), dict):
        raise PayloadError("health payload must be an object with 'counters'")
    for key in ("ts", "uptime_s"):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PayloadError(f"health payload's {key!r} must be a number")
    for key, value in doc["counters"].items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(f"health payload's counter {key!r} must be an integer")
    for key in HEALTH_OBJECTS:
        if key in doc and not isinstance(doc[key], dict):
            raise PayloadError(f"health payload's {key!r} must be an object")
    if doc.get("location") is not None and not isinstance(doc["location"], dict):
        raise PayloadError("health payload's 'location' must be an object or null")
    return doc  # type: ignore[return-value]
