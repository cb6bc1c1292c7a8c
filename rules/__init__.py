"""The rule language and engine (pure: readings in, alerts, commands and derived readings out).

Rules are data: a TOML file (``docs/rules.md`` is the language reference, ``examples/rules/`` has
examples). This package imports nothing of Roost's but ``wire``; the gateway runs it, and the cloud
runs it over the ingest stream for rules that span gateways (:mod:`cloud.cloudrules`). Everything is
single-threaded: call the engine from one thread (the gateway's event loop, the cloud's rules thread).

Loading::

    rules.load_file(path) -> RuleSet                 # one file
    rules.load_files(paths) -> RuleSet               # several; rule names unique across them
    rules.load_text(text, name="pushed.toml") -> RuleSet

Each raises :class:`RuleError` with ``.file``, ``.rule``, ``.field``, ``.line`` and ``.problem``
(``str()``: ``freezer.toml:12: rule 'freezer-warm': condition.above: must be a number``) for the
first problem, and ``.others`` for the problems of the other rules of the file.

Running::

    engine = rules.Engine(ruleset, *, scheduler=None, now=None, sink=None, tags=None,
                          limits=None, max_future=None, tag_source=None)

- ``scheduler``: a reactivex scheduler whose clock drives timers (windows closing, absence,
  "for at least T") when no reading comes: ``TestScheduler``/``HistoricalScheduler`` in tests and
  replays, ``AsyncIOScheduler`` on the gateway. ``now``: a ``() -> float`` epoch-seconds clock
  (default: the scheduler's). With neither, time passes only with the readings' timestamps and
  :meth:`Engine.advance`.
- ``sink``: ``Callable[[Sequence[Output]], None]``, called with each batch of outputs. The same
  batches are also emitted on ``engine.outputs``, a reactivex ``Observable[list[Output]]``.
- ``tags``: ``{sensor id: {tag: value}}`` the gateway knows (merged over the file's ``[tags]``);
  :meth:`Engine.set_tags` replaces them.
- ``tag_source``: ``(sensor id) -> {tag: value}``, asked once per sensor (the cloud derives a
  sensor's tags from its gateway's site and tags); :meth:`Engine.refresh_tags` forgets the answers.
- ``limits``: :class:`Limits` (memory caps: subjects per rule, items per window, ...).
- ``max_future``: ignore, for the clock, reading timestamps more than this many seconds ahead of
  ``now()`` (a sensor with a wrong clock must not close everyone's windows).

Methods::

    engine.push(readings: Sequence[Reading]) -> None          # processing rules, one batch
    engine.shape(readings: Sequence[Reading]) -> list[Reading]  # uplink shaping: what the buffer keeps
    engine.advance(now: float | None = None) -> None         # let time pass (timers call it)
    engine.reload(ruleset) -> ReloadReport(added, removed, changed, kept)
    engine.refresh_tags() -> None                            # tag_source changed: look tags up again
    engine.stats() -> dict[str, RuleStats]                   # per rule: events_in, outputs, errors,
                                                             # last_error, late, skipped, overflow,
                                                             # shaped_out, active_alerts, disabled
    engine.active_alerts() -> list[str]                      # keys of alerts raised now
    engine.rule_names() -> list[str]
    engine.close() -> None                                   # stop the timer, flush open downsample periods

Outputs (:mod:`rules.outputs`)::

    AlertOut(event: wire.events.Event)        # kind "alert", state raised/cleared, key "{rule}/{subject}"
    AnnotationOut(event: wire.events.Event)   # kind "annotation"
    DerivedOut(reading: Reading, rule: str)   # a window aggregate, a downsampled period, ...
    CommandOut(rule, target, action, args, ts)  # target: the actuator's sensor id

``push`` never lets a rule's run-time error out: it is counted in that rule's stats, logged, and
reported once as an annotation; the other rules go on. ``reload`` keeps the state (windows,
alerts, timers) of every rule whose definition (:meth:`Rule.digest`) is unchanged, and clears the
open alerts of rules it removes or replaces (a changed rule raises again if its condition holds).
Alerts and derived readings are meant for the same durable buffer as readings: the gateway
appends them there; the engine only emits them.
"""

from __future__ import annotations

from rules.compile import RuleStats
from rules.engine import Engine, ReloadReport
from rules.errors import RuleError
from rules.loader import load_file, load_files, load_text, merge
from rules.model import Rule, RuleSet
from rules.outputs import AlertOut, AnnotationOut, CommandOut, DerivedOut, Output, as_json
from rules.subjects import Limits

__all__ = [
    "AlertOut",
    "AnnotationOut",
    "CommandOut",
    "DerivedOut",
    "Engine",
    "Limits",
    "Output",
    "ReloadReport",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleStats",
    "as_json",
    "load_file",
    "load_files",
    "load_text",
    "merge",
]
