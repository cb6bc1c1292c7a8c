"""Actions: signals (raise, clear, sample) into outputs (alerts, commands, derived readings, annotations).

Alerts follow the condition: one ``raised`` event when it becomes true for a subject, one
``cleared`` when it becomes false; the condition's per-subject state is what de-duplicates them,
and the event's ``key`` is ``{rule}/{subject}``. Other actions fire on the signal named by their
``when`` (``raise`` by default for commands and annotations, ``sample`` for derived readings).

Messages, command targets and derived names are templates over ``{rule} {sensor} {metric} {value}
{unit} {state} {severity} {key} {time} {subject}``; format specs work (``{value:.1f}``). An alert of
a rule grouped by a tag (``group_by = "tag:site"``) carries ``data = {"group": {"site": value}}``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from rules import model
from rules.conditions import Signal
from rules.outputs import AlertOut, AnnotationOut, CommandOut, DerivedOut, Output
from rules.stage import Stage
from rules.subjects import alert_key, subject_name
from wire.events import MAX_TEXT, Event
from wire.names import check_metric, check_sensor
from wire.reading import Reading, Value

Handler = Callable[[str, Hashable, Reading, list[Output]], None]


def new_id() -> str:
    """A unique event id (the cloud stores each id once)."""
    return uuid.uuid4().hex


def _event_value(v: Value) -> Value | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class _Template:
    """A message or name template; plain text is returned as is, without formatting."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.plain = "{" not in text and "}" not in text

    def render(self, rule: str, kind: str, key: Hashable, s: Reading, severity: str = "") -> str:
        if self.plain:
            return self.text
        value = _event_value(s[2])
        fields: dict[str, Any] = {
            "rule": rule,
            "sensor": s[0],
            "metric": s[1],
            "value": "-" if value is None else value,
            "unit": s[4] or "",
            "state": {"raise": "raised", "clear": "cleared"}.get(kind, kind),
            "severity": severity,
            "key": alert_key(rule, key),
            "time": datetime.fromtimestamp(s[3], UTC).isoformat().replace("+00:00", "Z"),
            "subject": subject_name(key),
        }
        try:
            return self.text.format_map(fields)
        except (ValueError, TypeError):  # a numeric format spec met a string or true/false value
            fields["value"] = str(fields["value"])
            return self.text.format_map({**fields, "value": _Loose(fields["value"])})


class _Loose(str):
    """A string that ignores numeric format specs (``{value:.1f}`` on ``"open"``)."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return str(self)


def _alert(rule: str, a: model.AlertAction, group: str | None = None) -> Handler:
    raised, cleared = _Template(a.message), _Template(a.clear_message or a.message)
    severity = a.severity

    def handle(kind: str, key: Hashable, s: Reading, out: list[Output]) -> None:
        if kind == "sample":
            return
        template = raised if kind == "raise" else cleared
        out.append(
            AlertOut(
                Event(
                    id=new_id(),
                    kind="alert",
                    ts=s[3],
                    key=alert_key(rule, key),
                    message=template.render(rule, kind, key, s, severity)[:MAX_TEXT],
                    rule=rule,
                    state="raised" if kind == "raise" else "cleared",
                    severity=severity,
                    sensor=s[0],
                    metric=s[1],
                    value=_event_value(s[2]),
                    data={} if group is None else {"group": {group: subject_name(key)}},
                )
            )
        )

    return handle


def _command(rule: str, a: model.CommandAction) -> Handler:
    target, when, action, args = _Template(a.target), a.when, a.action, dict(a.args)

    def handle(kind: str, key: Hashable, s: Reading, out: list[Output]) -> None:
        if kind != when:
            return
        name = target.text if target.plain else check_sensor(target.render(rule, kind, key, s))
        out.append(CommandOut(rule, name, action, dict(args), s[3]))

    return handle


def _derive(rule: str, a: model.DeriveAction, stage: Stage) -> Handler:
    sensor_t, metric_t, when = _Template(a.sensor), _Template(a.metric), a.when
    same_sensor = a.sensor == "{sensor}"
    scale, offset, unit = a.scale, a.offset, a.unit
    identity = scale == 1.0 and offset == 0.0

    def handle(kind: str, key: Hashable, s: Reading, out: list[Output]) -> None:
        if kind != when:
            return
        v = s[2]
        if not identity:
            if v.__class__ is str:
                stage.skipped += 1
                return
            v = float(v) * scale + offset
        if same_sensor or sensor_t.plain:
            sensor = s[0] if same_sensor else sensor_t.text
        else:
            sensor = check_sensor(sensor_t.render(rule, kind, key, s))
        metric = metric_t.text if metric_t.plain else check_metric(metric_t.render(rule, kind, key, s))
        out.append(DerivedOut(Reading(sensor, metric, v, s[3], unit if unit is not None else s[4]), rule))

    return handle


def _annotate(rule: str, a: model.AnnotateAction) -> Handler:
    message, when = _Template(a.message), a.when

    def handle(kind: str, key: Hashable, s: Reading, out: list[Output]) -> None:
        if kind != when:
            return
        out.append(
            AnnotationOut(
                Event(
                    id=new_id(),
                    kind="annotation",
                    ts=s[3],
                    key=alert_key(rule, key),
                    message=message.render(rule, kind, key, s)[:MAX_TEXT],
                    rule=rule,
                    sensor=s[0],
                    metric=s[1],
                    value=_event_value(s[2]),
                )
            )
        )

    return handle


class ActionStage(Stage):
    """Runs every action of a rule on every signal, in the order the rule lists them."""

    def __init__(self, rule: model.Rule) -> None:
        super().__init__()
        self.handlers: list[Handler] = []
        for a in rule.actions:
            if isinstance(a, model.AlertAction):
                self.handlers.append(_alert(rule.name, a, model.group_tag(rule.group_by)))
            elif isinstance(a, model.CommandAction):
                self.handlers.append(_command(rule.name, a))
            elif isinstance(a, model.DeriveAction):
                self.handlers.append(_derive(rule.name, a, self))
            else:
                self.handlers.append(_annotate(rule.name, a))

    def process(self, items: list[Signal], clock: float) -> list[Output]:
        out: list[Output] = []
        handlers = self.handlers
        for kind, key, s in items:
            for h in handlers:
                h(kind, key, s, out)
        return out


def clear_events(rule: model.Rule, active: list[tuple[Hashable, Reading]], reason: str, ts: float) -> list[Output]:
    """Cleared alerts for subjects whose rule goes away (removed, changed or disabled): none stays open forever."""
    out: list[Output] = []
    for a in rule.actions:
        if not isinstance(a, model.AlertAction):
            continue
        for key, s in active:
            out.append(
                AlertOut(
                    Event(
                        id=new_id(),
                        kind="alert",
                        ts=max(ts, s[3]) if math.isfinite(ts) else s[3],
                        key=alert_key(rule.name, key),
                        message=f"{rule.name}: cleared because the rule was {reason}",
                        rule=rule.name,
                        state="cleared",
                        severity=a.severity,
                        sensor=s[0],
                        metric=s[1],
                        value=_event_value(s[2]),
                        data={"reason": f"rule {reason}"},
                    )
                )
            )
    return out
