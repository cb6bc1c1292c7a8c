"""Runs the rules engine on the gateway: readings in from the hub, alerts, derived readings and commands out.

- Rule files come from ``[rules] files`` (and the rules the cloud pushed with the desired state, kept
  in ``state_dir/dm/rules.toml``). A file that changes is reloaded: only the rules that changed are
  replaced, the others keep their windows and open alerts. A file with an error is refused as a
  whole (the error names the rule, the field and the line) and the rules running before stay.
- Every batch the hub made durable is pushed to the engine; uplink shaping (deadband, downsample)
  decides what the buffer keeps, while the rules still see every reading.
- Alerts and annotations become durable events (:meth:`Hub.publish_events`), derived readings durable
  readings (:meth:`Hub.publish`), and commands go to the adapter that owns the target
  (:class:`gateway.actuation.Actuators`). A failed command is logged and reported as an annotation.
- Timers (windows closing, absence of data, "for at least T") fire from a tick every ``tick_s``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import rules
from gateway.actuation import Actuators
from gateway.adapters.base import ActuationError
from gateway.hub import Hub
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

MAX_PENDING = 10_000
"""Outputs waiting to be made durable, at most (then the oldest derived readings are dropped, counted)."""


class RulesRunner:
    """The engine over the hub, with its files watched for changes."""

    def __init__(
        self,
        hub: Hub,
        files: Sequence[Path],
        *,
        actuators: Callable[[], Actuators],
        tick_s: float = 0.5,
        watch_s: float = 2.0,
    ) -> None:
        self._hub = hub
        self._files = [f for f in files]
        self._actuators = actuators
        self._tick_s = tick_s
        self._watch_s = watch_s
        self._mtimes: dict[Path, float | None] = {}
        self._pending: asyncio.Queue[rules.Output] = asyncio.Queue(maxsize=MAX_PENDING)
        self.dropped_outputs = 0
        self.commands_done = 0
        self.commands_failed = 0
        self.last_error: str | None = None
        self.engine = rules.Engine(self._load() or rules.load_text("", name="(no rules)"), now=time.time,
                                   sink=self._on_outputs)  # fmt: skip
        hub.batch_observers.append(self.engine.push)
        hub.shaper = self.engine.shape

    # -- loading -----------------------------------------------------------------------------------------------

    def _stat(self) -> dict[Path, float | None]:
        out: dict[Path, float | None] = {}
        for f in self._files:
            try:
                out[f] = f.stat().st_mtime
            except OSError:
                out[f] = None
        return out

    def _load(self) -> rules.RuleSet | None:
        """The rule set of the files that exist now; None (and the error logged) when one is wrong."""
        self._mtimes = self._stat()
        present = [f for f, m in self._mtimes.items() if m is not None]
        try:
            ruleset = rules.load_files(present) if present else None
        except rules.RuleError as exc:
            self.last_error = str(exc)
            _LOGGER.error("Rules not loaded: %s (the rules running before stay)", exc)
            return None
        except OSError as exc:
            self.last_error = str(exc)
            _LOGGER.error("Rules not loaded: cannot read %s", exc)
            return None
        self.last_error = None
        return ruleset

    def reload_if_changed(self) -> rules.ReloadReport | None:
        """Reload when a file changed, appeared or went away; the report, or None when nothing changed."""
        if self._stat() == self._mtimes:
            return None
        ruleset = self._load()
        if ruleset is None:
            if any(m is not None for m in self._mtimes.values()):
                return None  # an error: keep what runs
            ruleset = rules.load_text("", name="(no rules)")
        report = self.engine.reload(ruleset)
        _LOGGER.info(
            "Rules reloaded: %d added, %d removed, %d changed, %d kept with their state",
            len(report.added), len(report.removed), len(report.changed), len(report.kept),
        )  # fmt: skip
        return report

    # -- outputs -----------------------------------------------------------------------------------------------

    def _on_outputs(self, outputs: Sequence[rules.Output]) -> None:
        for out in outputs:
            try:
                self._pending.put_nowait(out)
            except asyncio.QueueFull:
                self.dropped_outputs += 1

    async def _deliver(self) -> None:
        while True:
            first = await self._pending.get()
            batch = [first]
            while not self._pending.empty() and len(batch) < 1000:
                batch.append(self._pending.get_nowait())
            events: list[Event] = []
            derived: list[Reading] = []
            for out in batch:
                if isinstance(out, rules.AlertOut | rules.AnnotationOut):
                    events.append(out.event)
                elif isinstance(out, rules.DerivedOut):
                    derived.append(out.reading)
                elif isinstance(out, rules.CommandOut):
                    await self._command(out)
            try:
                if events:
                    await self._hub.publish_events(events)
                if derived:
                    await self._hub.publish(derived)
            except Exception as exc:  # a full buffer under refuse policy: counted there; never end the runner
                self.dropped_outputs += len(events) + len(derived)
                _LOGGER.warning("Rule outputs could not be stored: %s", exc)

    async def _command(self, cmd: rules.CommandOut) -> None:
        try:
            await self._actuators().actuate(cmd.target, cmd.action, cmd.args)
        except ActuationError as exc:
            self.commands_failed += 1
            note = Event(
                id=uuid.uuid4().hex,
                kind="annotation",
                ts=time.time(),
                key=f"{cmd.rule}/command",
                rule=cmd.rule,
                sensor=cmd.target,
                message=f"rule {cmd.rule}: {cmd.action} on {cmd.target} failed: {exc}",
            )
            try:
                await self._hub.publish_events([note])
            except Exception as err:  # the note is a courtesy; the log has it too
                _LOGGER.debug("could not store the command's failure note: %s", err)
        else:
            self.commands_done += 1

    # -- the task ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver outputs, tick the timers and watch the files until cancelled; then flush the engine."""
        deliver = asyncio.create_task(self._deliver(), name="rules-deliver")
        try:
            next_watch = time.monotonic() + self._watch_s
            while True:
                await asyncio.sleep(self._tick_s)
                self.engine.advance(time.time())
                if time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + self._watch_s
                    self.reload_if_changed()
        finally:
            self.engine.close()
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)

    def stats(self) -> dict[str, object]:
        """For the heartbeat: per rule counters, active alerts, and the runner's own."""
        return {
            "rules": {name: dataclasses.asdict(st) for name, st in self.engine.stats().items()},
            "active_alerts": self.engine.active_alerts(),
            "shaped_out": self._hub.shaped_out,
            "commands_done": self.commands_done,
            "commands_failed": self.commands_failed,
            "dropped_outputs": self.dropped_outputs,
            "last_error": self.last_error,
        }
