"""What the engine emits: alerts and annotations (wire events), commands for local actuators, derived readings.

The gateway sends :class:`AlertOut` and :class:`AnnotationOut` events and :class:`DerivedOut`
readings through the same durable buffer as any reading, and hands :class:`CommandOut` to the
adapter that owns the target (``gateway.actuation.Actuators``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wire.events import Event
from wire.reading import Reading


@dataclass(frozen=True, slots=True)
class AlertOut:
    """An alert raised or cleared (``event.kind == "alert"``, ``event.state`` raised/cleared)."""

    event: Event


@dataclass(frozen=True, slots=True)
class AnnotationOut:
    """An annotation (``event.kind == "annotation"``): a note on the data, no state."""

    event: Event


@dataclass(frozen=True, slots=True)
class DerivedOut:
    """A reading the rule computed (a window aggregate, a downsampled period); ``rule`` made it."""

    reading: Reading
    rule: str = ""


@dataclass(frozen=True, slots=True)
class CommandOut:
    """Ask the adapter that owns sensor ``target`` to do ``action`` with ``args``."""

    rule: str
    target: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0


Output = AlertOut | AnnotationOut | DerivedOut | CommandOut


def as_json(out: Output) -> dict[str, Any]:
    """One output as a JSON object with a ``type`` (alert, annotation, derived, command)."""
    if isinstance(out, AlertOut | AnnotationOut):
        return {"type": "alert" if isinstance(out, AlertOut) else "annotation", **out.event.as_dict()}
    if isinstance(out, DerivedOut):
        r = out.reading
        return {"type": "derived", "rule": out.rule, "ts": r.ts, "sensor": r.sensor, "metric": r.metric,
                "value": r.value, "unit": r.unit}  # fmt: skip
    return {"type": "command", "rule": out.rule, "ts": out.ts, "target": out.target, "action": out.action,
            "args": out.args}  # fmt: skip
