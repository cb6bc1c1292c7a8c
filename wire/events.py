"""Events on ``roost/{tenant}/{gw}/events[/{batch}]``: rule alerts, annotations and device events.

An event pack is a JSON array of event objects (UTF-8), small and readable by any MQTT client; a
batch id in the topic's last level is acknowledged on ``ack`` exactly like a telemetry batch, so
events are as durable as readings (buffered on the gateway, stored once in the cloud).

Each event::

    {"id": "9f1c...", "kind": "alert", "ts": 1764100000.25, "rule": "freezer-warm",
     "key": "freezer-warm/freezer-1", "state": "raised", "severity": "critical",
     "message": "freezer-1 temperature -12.5 Cel above -15 for 300 s",
     "sensor": "freezer-1", "metric": "temperature", "value": -12.5, "data": {}}

- ``id``: unique per gateway (the cloud stores each id once: a repeat is harmless).
- ``kind``: ``alert`` (raised/cleared, with a severity, de-duplicated by ``key``), ``annotation``
  (a note on the data, no state), ``device`` (joined, left, unavailable, ...).
- ``key``: what identifies one alert across its raise and clear (the rule and its subject).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from wire.errors import PayloadError
from wire.reading import Value

EventKind = Literal["alert", "annotation", "device"]
AlertState = Literal["raised", "cleared"]
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[str, ...] = ("alert", "annotation", "device")
STATES: tuple[str, ...] = ("raised", "cleared")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
MAX_EVENTS = 1000
MAX_TEXT = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event; see the module docstring for the meaning of each field."""

    id: str
    kind: EventKind
    ts: float
    key: str
    message: str = ""
    rule: str | None = None
    state: AlertState | None = None
    severity: Severity | None = None
    sensor: str | None = None
    metric: str | None = None
    value: Value | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object form."""
        return asdict(self)


def encode(events: list[Event]) -> bytes:
    """An event pack as UTF-8 JSON."""
    return json.dumps([e.as_dict() for e in events], separators=(",", ":"), allow_nan=False).encode()


def _text(obj: dict[str, Any], name: str, pos: int, *, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise PayloadError(f"event {pos}: {name!r} is missing")
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise PayloadError(f"event {pos}: {name!r} must be a string of at most {MAX_TEXT} characters")
    return value


def _event(obj: Any, pos: int) -> Event:
    if not isinstance(obj, dict):
        raise PayloadError(f"event {pos} is not a JSON object")
    unknown = set(obj) - {
        "id", "kind", "ts", "key", "message", "rule", "state", "severity", "sensor", "metric", "value", "data",
    }  # fmt: skip
    if unknown:
        raise PayloadError(f"event {pos}: unknown field(s) {sorted(unknown)}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise PayloadError(f"event {pos}: kind {kind!r} is not one of {list(KINDS)}")
    ts = obj.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise PayloadError(f"event {pos}: ts must be a number (seconds since the epoch)")
    state, severity = obj.get("state"), obj.get("severity")
    if kind == "alert":
        if state not in STATES:
            raise PayloadError(f"event {pos}: an alert's state must be one of {list(STATES)}, not {state!r}")
        if severity not in SEVERITIES:
            raise PayloadError(f"event {pos}: an alert's severity must be one of {list(SEVERITIES)}")
    elif state is not None or severity is not None:
        raise PayloadError(f"event {pos}: only alerts have a state and a severity")
    value = obj.get("value")
    if value is not None and (
        not isinstance(value, bool | int | float | str) or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise PayloadError(f"event {pos}: value must be a finite number, true/false or a string")
    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise PayloadError(f"event {pos}: data must be a JSON object")
    return Event(
        id=str(_text(obj, "id", pos, required=True)),
        kind=kind,
        ts=float(ts),
        key=str(_text(obj, "key", pos, required=True)),
        message=_text(obj, "message", pos) or "",
        rule=_text(obj, "rule", pos),
        state=state,
        severity=severity,
        sensor=_text(obj, "sensor", pos),
        metric=_text(obj, "metric", pos),
        value=float(value) if isinstance(value, int) and not isinstance(value, bool) else value,
        data=data,
    )


def from_dict(obj: Any) -> Event:
    """One event from its JSON object form (as :meth:`Event.as_dict` gives it); PayloadError when it is not one."""
    return _event(obj, 0)


def check(event: Event) -> None:
    """Raise PayloadError when ``event`` would not survive :func:`decode` (what the cloud accepts)."""
    try:
        text = json.dumps(event.as_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"event {event.id!r} is not JSON-safe: {exc}") from exc
    _event(json.loads(text), 0)


def decode(payload: bytes) -> list[Event]:
    """Decode an event pack; raise PayloadError naming the event and field that is wrong."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"an event pack must be a JSON array: {exc}") from exc
    if not isinstance(doc, list) or not doc:
        raise PayloadError("an event pack must be a non-empty JSON array of events")
    if len(doc) > MAX_EVENTS:
        raise PayloadError(f"an event pack holds at most {MAX_EVENTS} events, not {len(doc)}")
    return [_event(obj, pos) for pos, obj in enumerate(doc)]
