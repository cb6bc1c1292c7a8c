"""The rule language as frozen dataclasses: what :mod:`rules.loader` builds from TOML and :mod:`rules.compile` runs.

A rule is either a *processing* rule (select → optional window and aggregate → optional condition →
actions) or an *uplink shaping* rule (select → shape). ``docs/rules.md`` is the reference for every
field; the loader checks each value, so the classes here trust what they are given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from wire.reading import Value

GroupBy = str
"""``sensor``, ``series``, ``all``, or ``tag:{name}`` (one subject per value of that sensor tag)."""
GROUP_BY: tuple[str, ...] = ("sensor", "series", "all")
TAG_PREFIX = "tag:"
WindowKind = Literal["tumbling", "sliding", "count", "session"]
WINDOW_KINDS: tuple[str, ...] = ("tumbling", "sliding", "count", "session")
AggregateFn = Literal["avg", "min", "max", "sum", "count", "last", "rate", "percentile", "count_distinct"]
AGGREGATES: tuple[str, ...] = ("avg", "min", "max", "sum", "count", "last", "rate", "percentile", "count_distinct")
Severity = Literal["info", "warning", "critical"]
When = Literal["raise", "clear", "sample"]
Direction = Literal["up", "down", "any"]
STATS: tuple[str, ...] = ("avg", "min", "max", "sum", "count", "last")


def group_tag(group_by: str) -> str | None:
    """The tag name a ``tag:{name}`` grouping groups by; None for sensor, series and all."""
    return group_by[len(TAG_PREFIX) :] if group_by.startswith(TAG_PREFIX) else None


DEFAULT_ALERT_MESSAGE = "{rule}: {sensor} {metric} {value} {unit}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which readings a rule sees: sensor id and metric patterns (exact or glob), sensor tags, a value."""

    sensors: tuple[str, ...] = ("*",)
    metrics: tuple[str, ...] = ("*",)
    tags: tuple[tuple[str, str], ...] = ()
    value: Value | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """How readings are grouped in time (or count) before they are aggregated."""

    kind: WindowKind
    size: float = 0.0  # tumbling, sliding: seconds
    every: float = 0.0  # sliding: the hop in seconds (tumbling: equal to size)
    count: int = 0  # count: readings per window
    step: int = 0  # count: readings between two windows (default: count)
    gap: float = 0.0  # session: seconds of silence that end a session
    allowed_lateness: float = 0.0  # event-time windows: how long a window waits for late readings


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    """What one window becomes: one value."""

    fn: AggregateFn
    q: float = 50.0  # percentile: 0..100
    per: float = 1.0  # rate: change per this many seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    """One step of a sequence: the readings that count as that step."""

    sensors: tuple[str, ...] = ("*",)
    metrics: tuple[str, ...] = ("*",)
    equals: Value | None = None
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """True while the value is above (or below, or equal to) a level; hysteresis and "for at least"."""

    kind: Literal["threshold"] = "threshold"
    above: float | None = None
    below: float | None = None
    equals: Value | None = None
    clear_below: float | None = None  # with above: clears only below this (default: above)
    clear_above: float | None = None  # with below: clears only above this (default: below)
    for_: float = 0.0  # the condition must hold this long before the alert is raised


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """True when the value moved by more than ``by`` since the previous sample (or within ``within``)."""

    kind: Literal["change"] = "change"
    by: float
    within: float = 0.0
    direction: Direction = "any"


@dataclass(frozen=True, slots=True, kw_only=True)
class Absence:
    """True when a subject sent nothing for ``for_`` seconds (of event time, driven by the clock)."""

    kind: Literal["absence"] = "absence"
    for_: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceCondition:
    """True when a reading matching ``then`` follows one matching ``first`` within ``within`` seconds."""

    kind: Literal["sequence"] = "sequence"
    first: Matcher
    then: Matcher
    within: float


Condition = Threshold | Change | Absence | SequenceCondition


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertAction:
    """Raise an alert when the condition becomes true, clear it when it becomes false."""

    kind: Literal["alert"] = "alert"
    severity: Severity = "warning"
    message: str = DEFAULT_ALERT_MESSAGE
    clear_message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandAction:
    """Ask the adapter that owns ``target`` to do ``action``."""

    kind: Literal["command"] = "command"
    target: str
    action: str
    args: tuple[tuple[str, Any], ...] = ()
    when: When = "raise"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeriveAction:
    """Emit a derived reading (sensor and metric are templates); value × scale + offset."""

    kind: Literal["derive"] = "derive"
    sensor: str = "{sensor}"
    metric: str
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    when: When = "sample"


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotateAction:
    """Emit an annotation event (a note on the data, no state)."""

    kind: Literal["annotate"] = "annotate"
    message: str
    when: When = "raise"


Action = AlertAction | CommandAction | DeriveAction | AnnotateAction


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadband:
    """Uplink shaping: keep a reading only when it moved more than ``delta`` (or ``percent``) since the last kept."""

    kind: Literal["deadband"] = "deadband"
    delta: float = 0.0
    percent: float = 0.0
    max_interval: float = 0.0  # keep one anyway after this long (a heartbeat); 0: never


@dataclass(frozen=True, slots=True, kw_only=True)
class Downsample:
    """Uplink shaping: replace the raw readings by one aggregate per period of ``every`` seconds."""

    kind: Literal["downsample"] = "downsample"
    every: float
    stats: tuple[str, ...] = ("avg", "min", "max")
    allowed_lateness: float = 0.0


Shape = Deadband | Downsample


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One rule. ``line`` and ``file`` say where it was written; they are not part of its definition."""

    name: str
    description: str = ""
    enabled: bool = True
    group_by: GroupBy = "sensor"
    select: Selector
    window: Window | None = None
    aggregate: Aggregate | None = None
    condition: Condition | None = None
    actions: tuple[Action, ...] = ()
    shape: Shape | None = None
    file: str = field(default="<rules>", compare=False)
    line: int = field(default=0, compare=False)

    @property
    def is_shaping(self) -> bool:
        """An uplink shaping rule (deadband, downsample) rather than a processing rule."""
        return self.shape is not None

    def definition(self) -> dict[str, Any]:
        """The rule's meaning as plain data: everything but its description and where it was written."""
        data = _plain(self)
        for k in ("description", "file", "line"):
            data.pop(k, None)
        return data  # type: ignore[no-any-return]

    def digest(self) -> str:
        """A canonical hash of :meth:`definition`: equal for two rules that behave the same."""
        text = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """The rules of one file (or several), and the sensor tags the file declares."""

    rules: tuple[Rule, ...] = ()
    tags: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # (sensor pattern, ((key, value), ...))
    source: str = "<rules>"

    def by_name(self) -> dict[str, Rule]:
        """The rules by name."""
        return {r.name: r for r in self.rules}


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, **{f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    return obj
