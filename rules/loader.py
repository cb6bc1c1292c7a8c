"""Rule files (TOML) into :class:`rules.model.RuleSet`, with errors that name the file, rule, field and line.

The document::

    version = 1                                   # optional
    [tags]                                        # optional: tags of sensors (id or glob pattern)
    "freezer-*" = { kind = "freezer" }

    [[rule]]                                      # one table per rule, each with a name
    name = "freezer-warm"
    [rule.select] ...  [rule.window] ...  [rule.aggregate] ...  [rule.condition] ...
    [[rule.action]] ...                           # or [rule.shape] for an uplink shaping rule

Parsing is ``tomllib``; the line of a rule or field comes from :mod:`rules.lines`, which scans the
text for table headers and keys (``tomllib`` keeps no positions). Every rule is checked even after
one failed, so ``roost rules check`` can list every broken rule at once: the error raised is the
first one, the others ride in ``RuleError.others``.
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path as FsPath
from typing import Any, NoReturn

from rules import model
from rules.errors import RuleError
from rules.lines import LineIndex, index
from wire.errors import InvalidName
from wire.names import check_metric, check_sensor
from wire.reading import Value

RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ACTION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
GLOB_CHARS = frozenset("*?[")
TEMPLATE_FIELDS = ("rule", "sensor", "metric", "value", "unit", "state", "severity", "key", "time", "subject")
TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_RULES = 10_000
MAX_PATTERNS = 256

_TOP_KEYS = ("version", "tags", "rule")
_RULE_KEYS = ("name", "description", "enabled", "group_by", "select", "window", "aggregate", "condition", "action")
_RULE_KEYS_ALL = (*_RULE_KEYS, "shape")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h30m"``, ``"500ms"``; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError('must be a duration such as "30s", "5m" or "1h" (or a number of seconds)')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or pos == 0:
            raise ValueError(f'{value!r} is not a duration: write e.g. "30s", "5m", "1h30m" or "500ms"')
    else:
        raise ValueError('must be a duration such as "30s", "5m" or "1h" (or a number of seconds)')
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a duration of zero or more seconds, not {value!r}")
    return seconds


def format_field(path: Iterable[str | int]) -> str:
    """``("action", 1, "severity")`` → ``action[1].severity``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out = f"{out}.{key}" if out else key
    return out


class _Ctx:
    """Where we are: the file, its line index, the rule being read (name and position)."""

    def __init__(self, file: str, lines: LineIndex, rule: str | None, base: tuple[str | int, ...]) -> None:
        self.file = file
        self.lines = lines
        self.rule = rule
        self.base = base

    def fail(self, path: tuple[str | int, ...], problem: str) -> NoReturn:
        raise RuleError(
            problem, file=self.file, rule=self.rule, field=format_field(path), line=self.lines.line(self.base + path)
        )


class _Table:
    """One TOML table being read: take its keys one by one, then refuse what is left."""

    def __init__(self, ctx: _Ctx, data: Any, path: tuple[str | int, ...], what: str = "a table") -> None:
        self.ctx = ctx
        self.path = path
        if not isinstance(data, Mapping):
            ctx.fail(path, f"must be {what}, not {_kind(data)}")
        self.data = dict(data)
        self.used: set[str] = set()

    def fail(self, key: str | None, problem: str) -> NoReturn:
        self.ctx.fail(self.path if key is None else (*self.path, key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def str_(self, key: str, default: str | None = None, *, required: bool = False, max_len: int = 1024) -> str:
        value = self.raw(key)
        if value is None:
            if required or default is None:
                self.fail(key, "is required")
            return default
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {_kind(value)}")
        if len(value) > max_len:
            self.fail(key, f"must be at most {max_len} characters")
        return value

    def opt_str(self, key: str) -> str | None:
        return None if self.raw(key) is None else self.str_(key)

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                self.fail(key, f"is required: one of {', '.join(allowed)}")
            return default
        if value not in allowed:
            self.fail(key, f"{value!r} is not allowed: must be one of {', '.join(allowed)}")
        return str(value)

    def number(self, key: str, default: float | None = None, *, minimum: float | None = None) -> float:
        value = self.opt_number(key)
        if value is None:
            if default is None:
                self.fail(key, "is required (a number)")
            return default
        if minimum is not None and value < minimum:
            self.fail(key, f"must be at least {minimum:g}, not {value:g}")
        return value

    def opt_number(self, key: str) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, not {_kind(value)}")
        if not math.isfinite(value):
            self.fail(key, f"must be a finite number, not {value!r}")
        return float(value)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                self.fail(key, "is required (an integer)")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, not {_kind(value)}")
        if not minimum <= value <= maximum:
            self.fail(key, f"must be between {minimum} and {maximum}, not {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {_kind(value)}")
        return value

    def duration(self, key: str, default: float | None = None, *, positive: bool = False) -> float:
        value = self.raw(key)
        if value is None:
            if default is None:
                self.fail(key, 'is required (a duration such as "30s", "5m" or "1h")')
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(key, str(exc))
        if positive and seconds <= 0:
            self.fail(key, "must be longer than zero")
        return seconds

    def value(self, key: str) -> Value | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        self.fail(key, f"must be a number, true/false or a string, not {_kind(value)}")

    def patterns(self, key: str, kind: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ("*",)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            self.fail(key, f"must be a {kind} id or pattern, or a non-empty list of them")
        if len(items) > MAX_PATTERNS:
            self.fail(key, f"at most {MAX_PATTERNS} patterns")
        for item in items:
            if GLOB_CHARS & set(item):
                if not item.strip():
                    self.fail(key, "a pattern must not be empty")
                continue
            try:
                (check_sensor if kind == "sensor" else check_metric)(item)
            except InvalidName as exc:
                self.fail(key, f"{exc} (or use a glob pattern with * ? [...])")
        return tuple(items)

    def str_map(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.raw(key)
        if value is None:
            return ()
        t = _Table(self.ctx, value, (*self.path, key), "a table of strings")
        out = []
        for k, v in t.data.items():
            if not isinstance(v, str):
                t.fail(k, f"must be a string, not {_kind(v)}")
            out.append((k, v))
        return tuple(sorted(out))

    def template(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        text = self.str_(key, default, required=required)
        try:
            fields = [f for _lit, f, _spec, _conv in string.Formatter().parse(text) if f is not None]
        except ValueError as exc:
            self.fail(key, f"is not a valid template: {exc}")
        for f in fields:
            if f not in TEMPLATE_FIELDS:
                self.fail(key, f"unknown placeholder {{{f}}}: use {', '.join('{' + n + '}' for n in TEMPLATE_FIELDS)}")
        try:
            text.format_map(dict.fromkeys(TEMPLATE_FIELDS, 1.5))
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            self.fail(key, f"is not a valid template: {exc}")
        return text

    def table(self, key: str) -> _Table | None:
        value = self.raw(key)
        return None if value is None else _Table(self.ctx, value, (*self.path, key))

    def done(self, known: Iterable[str], what: str = "here") -> None:
        known = tuple(known)
        for key in self.data:
            if key not in known:
                self.fail(key, f"unknown field (known fields {what}: {', '.join(known)})")


def _kind(value: Any) -> str:
    return {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _has_placeholder(text: str) -> bool:
    return any(f is not None for _l, f, _s, _c in string.Formatter().parse(text))


def _selector(t: _Table) -> model.Selector:
    sel = model.Selector(
        sensors=t.patterns("sensor", "sensor"),
        metrics=t.patterns("metric", "metric"),
        tags=t.str_map("tags"),
        value=t.value("value"),
    )
    t.done(("sensor", "metric", "tags", "value"), "in select")
    return sel


def _window(t: _Table) -> model.Window:
    kind = t.choice("kind", model.WINDOW_KINDS)
    fields: tuple[str, ...]
    if kind in ("tumbling", "sliding"):
        size = t.duration("size", positive=True)
        every = t.duration("every", positive=True) if kind == "sliding" else size
        if every > size:
            t.fail("every", "must not be longer than size")
        panes = size / every
        if abs(panes - round(panes)) > 1e-9:
            t.fail("size", "must be a whole multiple of every")
        if round(panes) > 1000:
            t.fail("every", "a sliding window may hold at most 1000 hops (size / every)")
        w = model.Window(kind=kind, size=size, every=every, allowed_lateness=t.duration("allowed_lateness", 0.0))  # type: ignore[arg-type]
        fields = ("kind", "size", "every", "allowed_lateness")
        if kind == "tumbling":
            fields = ("kind", "size", "allowed_lateness")
    elif kind == "count":
        count = t.integer("count", minimum=1, maximum=100_000)
        step = t.integer("step", count, minimum=1, maximum=count)
        w = model.Window(kind="count", count=count, step=step)
        fields = ("kind", "count", "step")
    else:
        w = model.Window(
            kind="session", gap=t.duration("gap", positive=True), allowed_lateness=t.duration("allowed_lateness", 0.0)
        )
        fields = ("kind", "gap", "allowed_lateness")
    t.done(fields, f"in a {kind} window")
    return w


def _aggregate(t: _Table) -> model.Aggregate:
    fn = t.choice("fn", model.AGGREGATES)
    fields: tuple[str, ...] = ("fn",)
    q, per = 50.0, 1.0
    if fn == "percentile":
        q = t.number("q")
        if not 0 <= q <= 100:
            t.fail("q", f"must be between 0 and 100, not {q:g}")
        fields = ("fn", "q")
    elif fn == "rate":
        per = t.duration("per", 1.0, positive=True)
        fields = ("fn", "per")
    t.done(fields, f"for {fn}")
    return model.Aggregate(fn=fn, q=q, per=per)  # type: ignore[arg-type]


def _matcher(t: _Table) -> model.Matcher:
    m = model.Matcher(
        sensors=t.patterns("sensor", "sensor"),
        metrics=t.patterns("metric", "metric"),
        equals=t.value("equals"),
        above=t.opt_number("above"),
        below=t.opt_number("below"),
    )
    t.done(("sensor", "metric", "equals", "above", "below"), "in a sequence step")
    return m


def _condition(t: _Table) -> model.Condition:
    kind = t.choice("kind", ("threshold", "change", "absence", "sequence"))
    cond: model.Condition
    if kind == "threshold":
        above, below, equals = t.opt_number("above"), t.opt_number("below"), t.value("equals")
        given = [k for k, v in (("above", above), ("below", below), ("equals", equals)) if v is not None]
        if len(given) != 1:
            t.fail(None, "a threshold needs exactly one of above, below or equals")
        clear_below, clear_above = t.opt_number("clear_below"), t.opt_number("clear_above")
        if clear_below is not None and (above is None or clear_below > above):
            t.fail("clear_below", "goes with above, and must not be higher than it (hysteresis)")
        if clear_above is not None and (below is None or clear_above < below):
            t.fail("clear_above", "goes with below, and must not be lower than it (hysteresis)")
        cond = model.Threshold(
            above=above,
            below=below,
            equals=equals,
            clear_below=clear_below,
            clear_above=clear_above,
            for_=t.duration("for", 0.0),
        )
        t.done(("kind", "above", "below", "equals", "clear_below", "clear_above", "for"), "in a threshold")
    elif kind == "change":
        cond = model.Change(
            by=t.number("by", minimum=0.0),
            within=t.duration("within", 0.0),
            direction=t.choice("direction", ("up", "down", "any"), "any"),  # type: ignore[arg-type]
        )
        t.done(("kind", "by", "within", "direction"), "in a change condition")
    elif kind == "absence":
        cond = model.Absence(for_=t.duration("for", positive=True))
        t.done(("kind", "for"), "in an absence condition")
    else:
        first, then = t.table("first"), t.table("then")
        if first is None:
            t.fail("first", "is required (a table: sensor, metric, equals, above, below)")
        if then is None:
            t.fail("then", "is required (a table: sensor, metric, equals, above, below)")
        cond = model.SequenceCondition(
            first=_matcher(first), then=_matcher(then), within=t.duration("within", positive=True)
        )
        t.done(("kind", "first", "then", "within"), "in a sequence")
    return cond


def _when(t: _Table, default: str) -> str:
    return t.choice("when", ("raise", "clear", "sample"), default)


def _action(t: _Table, has_condition: bool) -> model.Action:
    kind = t.choice("kind", ("alert", "command", "derive", "annotate"))
    act: model.Action
    if kind == "alert":
        if not has_condition:
            t.fail("kind", "an alert needs a condition (add [rule.condition])")
        act = model.AlertAction(
            severity=t.choice("severity", ("info", "warning", "critical"), "warning"),  # type: ignore[arg-type]
            message=t.template("message", model.DEFAULT_ALERT_MESSAGE),
            clear_message=t.template("clear_message", ""),
        )
        t.done(("kind", "severity", "message", "clear_message"), "in an alert")
    elif kind == "command":
        target = t.template("target", required=True)
        if not _has_placeholder(target):
            try:
                check_sensor(target)
            except InvalidName as exc:
                t.fail("target", str(exc))
        action = t.str_("action", required=True)
        if not ACTION_NAME.fullmatch(action):
            t.fail("action", "must be an action name such as on, off, toggle, level, color_temp, actuate")
        args_raw = t.raw("args")
        if args_raw is not None and not isinstance(args_raw, Mapping):
            t.fail("args", f"must be a table, not {_kind(args_raw)}")
        act = model.CommandAction(
            target=target,
            action=action,
            args=tuple(sorted(dict(args_raw or {}).items())),
            when=_when(t, "raise"),  # type: ignore[arg-type]
        )
        t.done(("kind", "target", "action", "args", "when"), "in a command")
    elif kind == "derive":
        sensor = t.template("sensor", "{sensor}")
        metric = t.template("metric", required=True)
        for key, text, check in (("sensor", sensor, check_sensor), ("metric", metric, check_metric)):
            if not _has_placeholder(text):
                try:
                    check(text)
                except InvalidName as exc:
                    t.fail(key, str(exc))
        act = model.DeriveAction(
            sensor=sensor,
            metric=metric,
            unit=t.opt_str("unit"),
            scale=t.number("scale", 1.0),
            offset=t.number("offset", 0.0),
            when=_when(t, "sample"),  # type: ignore[arg-type]
        )
        t.done(("kind", "sensor", "metric", "unit", "scale", "offset", "when"), "in a derive action")
    else:
        act = model.AnnotateAction(
            message=t.template("message", required=True),
            when=_when(t, "raise" if has_condition else "sample"),  # type: ignore[arg-type]
        )
        t.done(("kind", "message", "when"), "in an annotate action")
    if getattr(act, "when", "sample") != "sample" and not has_condition:
        t.fail("when", f"{getattr(act, 'when', '')!r} needs a condition; without one, only 'sample' applies")
    return act


def _shape(t: _Table) -> model.Shape:
    kind = t.choice("kind", ("deadband", "downsample"))
    if kind == "deadband":
        delta = t.number("delta", 0.0, minimum=0.0)
        percent = t.number("percent", 0.0, minimum=0.0)
        if delta and percent:
            t.fail("percent", "give delta or percent, not both")
        shape: model.Shape = model.Deadband(delta=delta, percent=percent, max_interval=t.duration("max_interval", 0.0))
        t.done(("kind", "delta", "percent", "max_interval"), "in a deadband")
        return shape
    raw = t.raw("stats")
    stats: tuple[str, ...] = ("avg", "min", "max")
    if raw is not None:
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
            t.fail("stats", f"must be a non-empty list of: {', '.join(model.STATS)}")
        for s in raw:
            if s not in model.STATS:
                t.fail("stats", f"{s!r} is not allowed: each must be one of {', '.join(model.STATS)}")
        if len(set(raw)) != len(raw):
            t.fail("stats", "lists a statistic twice")
        stats = tuple(raw)
    shape = model.Downsample(
        every=t.duration("every", positive=True), stats=stats, allowed_lateness=t.duration("allowed_lateness", 0.0)
    )
    t.done(("kind", "every", "stats", "allowed_lateness"), "in a downsample")
    return shape


def _group_by(t: _Table) -> str:
    """``sensor`` (default), ``series``, ``all`` or ``tag:{name}``."""
    value = t.raw("group_by")
    if value is None:
        return "sensor"
    allowed = "sensor, series, all or tag:NAME (e.g. tag:site)"
    if not isinstance(value, str):
        t.fail("group_by", f"must be a string: {allowed}")
    tag = model.group_tag(value)
    if tag is None:
        if value not in model.GROUP_BY:
            t.fail("group_by", f"{value!r} is not allowed: must be {allowed}")
        return value
    if not tag:
        t.fail("group_by", 'names no tag: write e.g. "tag:site"')
    if tag == "name":
        t.fail("group_by", "'name' is reserved for rules: no sensor has a tag called 'name'")
    if not TAG_NAME.fullmatch(tag):
        t.fail("group_by", f"{tag!r} is not a tag name: a letter or digit, then only A-Z a-z 0-9 . _ - (at most 64)")
    return value


def _check_count_distinct(t: _Table, window: model.Window | None, group_by: str) -> None:
    """count_distinct counts the sensors of a group in a time window: it needs both."""
    if window is not None and window.kind not in ("tumbling", "sliding"):
        t.fail("window", "count_distinct counts sensors over time: use a tumbling or sliding window")
    if group_by in ("sensor", "series"):
        t.fail("group_by", f"count_distinct counts the sensors of a group: with group_by = {group_by!r} it is always 1"
               ' (use "tag:NAME" or "all")')  # fmt: skip


def _rule(ctx: _Ctx, data: Any, name: str) -> model.Rule:
    t = _Table(ctx, data, ())
    if not RULE_NAME.fullmatch(name):
        t.fail("name", "must start with a letter or digit, then only A-Z a-z 0-9 . _ - (at most 64 characters)")
    t.used.add("name")
    description = t.str_("description", "")
    enabled = t.boolean("enabled", True)
    group_by = _group_by(t)
    select_t = t.table("select")
    if select_t is None:
        t.fail("select", "is required: which readings the rule sees (sensor, metric, tags, value)")
    # refuse unknown fields first: a misspelt key is the likeliest mistake, and the clearest to report
    t.done(_RULE_KEYS_ALL, "in a rule")
    select = _selector(select_t)
    shape_t = t.table("shape")
    if shape_t is not None:
        for key in ("window", "aggregate", "condition", "action"):
            if t.has(key):
                t.fail(key, "an uplink shaping rule ([rule.shape]) has only select and shape")
        return model.Rule(
            name=name,
            description=description,
            enabled=enabled,
            group_by=group_by,
            select=select,
            shape=_shape(shape_t),
            file=ctx.file,
            line=ctx.lines.line(ctx.base) or 0,
        )
    window_t, agg_t, cond_t = t.table("window"), t.table("aggregate"), t.table("condition")
    window = None if window_t is None else _window(window_t)
    aggregate = None if agg_t is None else _aggregate(agg_t)
    if window is not None and aggregate is None:
        t.fail("aggregate", "a window needs an aggregate (fn = avg, min, max, sum, count, last, rate, percentile)")
    if aggregate is not None and window is None:
        t.fail("window", "an aggregate needs a window (tumbling, sliding, count or session)")
    if aggregate is not None and aggregate.fn == "count_distinct":
        _check_count_distinct(t, window, group_by)
    condition = None if cond_t is None else _condition(cond_t)
    if isinstance(condition, model.Absence) and window is not None:
        t.fail("window", "an absence condition looks at raw readings: remove the window")
    raw_actions = t.raw("action")
    if raw_actions is None:
        t.fail("action", "is required: at least one [[rule.action]] (alert, command, derive, annotate)")
    if isinstance(raw_actions, Mapping):
        items: list[tuple[Any, tuple[str | int, ...]]] = [(raw_actions, ("action",))]
    elif isinstance(raw_actions, list) and raw_actions:
        items = [(a, ("action", i)) for i, a in enumerate(raw_actions)]
    else:
        t.fail("action", "must be a table or an array of tables ([[rule.action]])")
    actions = tuple(_action(_Table(ctx, a, path), condition is not None) for a, path in items)
    alerts = [path for (_a, path), act in zip(items, actions, strict=True) if isinstance(act, model.AlertAction)]
    if len(alerts) > 1:
        ctx.fail(alerts[1], "a rule raises one alert: its key is the rule and subject (write a second rule)")
    return model.Rule(
        name=name,
        description=description,
        enabled=enabled,
        group_by=group_by,
        select=select,
        window=window,
        aggregate=aggregate,
        condition=condition,
        actions=actions,
        file=ctx.file,
        line=ctx.lines.line(ctx.base) or 0,
    )


def _tags(ctx: _Ctx, data: Any) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    t = _Table(ctx, data, ("tags",))
    out = []
    for pattern, tags in t.data.items():
        if not GLOB_CHARS & set(pattern):
            try:
                check_sensor(pattern)
            except InvalidName as exc:
                t.fail(pattern, f"{exc} (or use a glob pattern)")
        entry = t.str_map(pattern)
        if any(k == "name" for k, _v in entry):
            _Table(ctx, tags, ("tags", pattern)).fail("name", "'name' is reserved for rules: call the tag otherwise")
        out.append((pattern, entry))
    return tuple(out)


def load_text(text: str, *, name: str = "<rules>") -> model.RuleSet:
    """Parse a rule file's text; raise RuleError (the first problem; ``.others`` the rest)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise RuleError(f"is not valid TOML: {exc}", file=name, line=int(m.group(1)) if m else None) from exc
    lines = index(text)
    top = _Ctx(name, lines, None, ())
    root = _Table(top, doc, ())
    root.done(_TOP_KEYS, "at the top of a rule file")
    version = root.raw("version")
    if version is not None and version != 1:
        root.fail("version", f"this Roost reads rule files of version 1, not {version!r}")
    tags = _tags(top, root.raw("tags")) if root.has("tags") else ()
    raw_rules = root.raw("rule")
    if raw_rules is None:
        raw_rules = []
    if isinstance(raw_rules, Mapping):
        raw_rules = [raw_rules]
    if not isinstance(raw_rules, list) or not all(isinstance(r, Mapping) for r in raw_rules):
        root.fail("rule", "must be an array of tables: write each rule as [[rule]]")
    if len(raw_rules) > MAX_RULES:
        root.fail("rule", f"at most {MAX_RULES} rules in one file")
    errors: list[RuleError] = []
    rules: list[model.Rule] = []
    seen: dict[str, int] = {}
    for i, data in enumerate(raw_rules):
        raw_name = data.get("name")
        label = raw_name if isinstance(raw_name, str) and raw_name else f"#{i + 1}"
        ctx = _Ctx(name, lines, label, ("rule", i))
        try:
            if not isinstance(raw_name, str) or not raw_name:
                ctx.fail(("name",), "is required: every rule has a name (a string)")
            if raw_name in seen:
                ctx.fail(("name",), f"is used twice: the rule at line {seen[raw_name]} has it too")
            rule = _rule(ctx, data, raw_name)
            seen[raw_name] = rule.line
            rules.append(rule)
        except RuleError as exc:
            errors.append(exc)
    if errors:
        first = errors[0]
        first.others = tuple(errors[1:])
        raise first
    return model.RuleSet(rules=tuple(rules), tags=tags, source=name)


def load_file(path: str | FsPath) -> model.RuleSet:
    """Load one rule file; every failure is a RuleError naming the file (and rule, field and line)."""
    p = FsPath(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise RuleError("no such file", file=str(p)) from exc
    except OSError as exc:
        raise RuleError(f"cannot be read: {exc.strerror}", file=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise RuleError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(p)) from exc
    return load_text(text, name=p.name if p.parent == FsPath() else str(p))


def merge(sets: Iterable[model.RuleSet]) -> model.RuleSet:
    """One rule set from several (files pushed by the cloud and placed locally); names must be unique."""
    rules: list[model.Rule] = []
    tags: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    where: dict[str, model.Rule] = {}
    sources = []
    for rs in sets:
        sources.append(rs.source)
        tags.extend(rs.tags)
        for r in rs.rules:
            if r.name in where:
                other = where[r.name]
                raise RuleError(
                    f"is used twice: {other.file}:{other.line} has a rule of that name too",
                    file=r.file,
                    rule=r.name,
                    field="name",
                    line=r.line,
                )
            where[r.name] = r
            rules.append(r)
    return model.RuleSet(rules=tuple(rules), tags=tuple(tags), source=", ".join(sources) or "<rules>")


def load_files(paths: Iterable[str | FsPath]) -> model.RuleSet:
    """Load several rule files into one rule set (rule names unique across them)."""
    return merge(load_file(p) for p in paths)
