"""Subjects and limits: whose state a rule keeps (per sensor, per series, or one for all) and how much of it.

A rule's ``group_by`` decides the subject of a reading, and so the granularity of window state,
condition state and alert de-duplication (the alert key is ``{rule}/{subject}``):

- ``sensor`` (default): one subject per sensor id; key ``{rule}/{sensor}``;
- ``series``: one per sensor and metric; key ``{rule}/{sensor}:{metric}``;
- ``all``: one subject for the whole rule; key ``{rule}``;
- ``tag:{name}``: one per value of the sensor tag ``name`` (sensors without it are not selected);
  key ``{rule}/{value}`` (e.g. ``site-freezers/shop-12`` with ``tag:site``).

Every per-subject map in the engine is capped by :class:`Limits` (memory stays bounded whatever
the sensors send); what a cap turns away is counted in the rule's stats, never silent.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from rules.model import group_tag
from wire.reading import Reading

KeyFn = Callable[[Reading], Hashable]
TagsOf = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps on the engine's memory; each documented in docs/rules.md ("Limits")."""

    max_subjects: int = 10_000
    """Subjects per rule (windows, conditions, shaping); beyond it the oldest subject is evicted."""
    max_window_items: int = 100_000
    """Readings one window pane (or count window, or session) holds per subject; more are counted and dropped."""
    max_sessions: int = 64
    """Open sessions per subject of a session window; beyond it the oldest is closed early."""
    max_change_points: int = 10_000
    """Points a ``change ... within`` condition keeps per subject; beyond it the oldest are forgotten."""
    max_routes: int = 65_536
    """Distinct (sensor, metric) pairs the dispatch cache remembers before it starts over."""
    disable_after: int = 100
    """Run-time errors after which a rule is disabled (0: never)."""


def _by_sensor(r: Reading) -> Hashable:
    return r[0]


def _by_series(r: Reading) -> Hashable:
    return (r[0], r[1])


def _all(_r: Reading) -> Hashable:
    return ""


def key_function(group_by: str, tags_of: TagsOf | None = None) -> KeyFn:
    """The function giving a reading's subject key (a str, a (sensor, metric) tuple, or "").

    ``tags_of`` gives a sensor's tags; a ``tag:{name}`` grouping needs it (the key is the tag's value).
    """
    tag = group_tag(group_by)
    if tag is not None:
        if tags_of is None:
            raise ValueError(f"group_by {group_by!r} needs the sensors' tags")
        get_tags = tags_of

        def by_tag(r: Reading) -> Hashable:
            return get_tags(r[0]).get(tag, "")

        return by_tag
    return {"sensor": _by_sensor, "series": _by_series}.get(group_by, _all)


def subject_name(key: Hashable) -> str:
    """The subject as it appears in alert keys: ``sensor``, ``sensor:metric`` or ``""`` (the whole rule)."""
    if isinstance(key, tuple):
        return ":".join(str(k) for k in key)
    return str(key)


def alert_key(rule: str, key: Hashable) -> str:
    """The de-duplication key of an alert: ``{rule}/{subject}``, or ``{rule}`` for a rule-wide subject."""
    name = subject_name(key)
    return f"{rule}/{name}" if name else rule
