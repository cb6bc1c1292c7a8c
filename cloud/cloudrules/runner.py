"""The cloud rules runner: one rules engine per tenant, fed after each durable commit, on a thread of its own.

Ingest calls :meth:`CloudRules.stored` with the readings a commit stored as new, and
:meth:`CloudRules.presence` with each online/offline it sees; both only put the batch on a bounded
queue and return, so a slow or failing rule never delays or loses storage (a full queue drops the
batch for the rules only, counted and logged). The engines run on one worker thread (the engine is
single-threaded; the event loop stays free for ingest and the API); their timers tick every
``tick_s``.

Outputs: alerts and annotations are stored as events of the gateway ``cloud``
(:data:`cloud.cloudrules.naming.CLOUD_GATEWAY`) through the store's ``commit_all``, so they have
alert states, can be acknowledged and appear in ``/api/v1/alerts`` and the console like gateway
alerts; derived readings are stored as readings of ``cloud``; commands go to the gateway their
target names (``{gateway}/{sensor}``) as an ``actuate`` command through the fleet's command path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import rules
from cloud.cloudrules.folder import EMPTY, RuleFileError, RulesFolder
from cloud.cloudrules.naming import (
    CLOUD_GATEWAY,
    cloud_readings,
    command_target,
    presence_reading,
    sensor_tags,
    tags_by_gateway,
)
from cloud.config import RulesSection
from cloud.errors import StoreError
from cloud.fleet.commands import CommandCenter
from cloud.fleet.registry import FleetRegistry
from cloud.store import EventWrite, PackWrite
from cloud.store_api import ReadingStore
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_OUTPUTS = 10_000
"""Outputs waiting to be stored or sent, at most (then they are dropped, counted)."""
DRAIN = 1000
"""Queued batches handed to the engines in one go."""
STORE_ATTEMPTS = 5


@dataclass(slots=True)
class _Tenant:
    """One tenant's engine, the gateways' tags it sees, and its files as last loaded."""

    name: str
    engine: rules.Engine = field(init=False)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)
    last_error: str | None = None
    files: list[str] = field(default_factory=list)

    def tags_of(self, sensor: str) -> Mapping[str, str]:
        return sensor_tags(sensor, self.tags)


@dataclass(slots=True)
class RunnerStats:
    """The runner's own counters (each rule's are in the engine's stats)."""

    batches_in: int = 0
    readings_in: int = 0
    presence_in: int = 0
    batches_dropped: int = 0
    outputs_dropped: int = 0
    events_stored: int = 0
    derived_stored: int = 0
    store_failures: int = 0
    commands_sent: int = 0
    commands_refused: int = 0


_Item = tuple[str, str, Sequence[Reading] | None, bool, float]  # tenant, gateway, readings | None: presence


class CloudRules:
    """Rules over the ingest stream; see the module docstring. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(
        self,
        config: RulesSection,
        store: ReadingStore,
        *,
        registry: FleetRegistry | None = None,
        commands: CommandCenter | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.folder = RulesFolder(config.folder)
        self.stats = RunnerStats()
        self._store = store
        self._registry = registry
        self._commands = commands
        self._now = now
        self._tenants: dict[str, _Tenant] = {}
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=config.queue_max)
        self._outputs: asyncio.Queue[tuple[str, rules.Output]] = asyncio.Queue(maxsize=MAX_OUTPUTS)
        self._collected: list[tuple[str, rules.Output]] = []  # touched on the rules thread only
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cloud-rules")
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._dropping = False

    # -- what ingest calls (never blocks) ------------------------------------------------------------------------

    def stored(self, tenant: str, gateway: str, readings: Sequence[Reading]) -> None:
        """Readings a commit stored as new; queued for the rules of ``tenant`` (dropped, counted, when full)."""
        if readings and tenant in self._tenants:
            self._put((tenant, gateway, readings, False, 0.0))

    def presence(self, tenant: str, gateway: str, online: bool, ts: float) -> None:
        """A gateway went online or offline; queued as its presence reading."""
        if tenant in self._tenants and gateway != CLOUD_GATEWAY:
            self._put((tenant, gateway, None, online, ts))

    def _put(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.batches_dropped += 1
            if not self._dropping:
                self._dropping = True
                _LOGGER.warning(
                    "cloud rules are behind: %d batches waiting; new batches are stored but not seen by the rules "
                    "until they catch up (counted as batches_dropped)",
                    self._queue.qsize(),
                )
        else:
            if self._dropping and self._queue.qsize() < self.config.queue_max // 2:
                self._dropping = False
                _LOGGER.info("cloud rules caught up (%d batches dropped so far)", self.stats.batches_dropped)

    # -- life cycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every tenant's rules and the gateways' tags; start feeding, ticking and delivering."""
        for tenant in await asyncio.to_thread(self.folder.tenants):
            await self._load(tenant)
        await self.refresh_tags()
        self._tasks = [
            asyncio.create_task(self._feed(), name="cloud-rules-feed"),
            asyncio.create_task(self._tick(), name="cloud-rules-tick"),
            asyncio.create_task(self._deliver(), name="cloud-rules-deliver"),
        ]
        _LOGGER.info(
            "cloud rules running from %s: %s",
            self.config.folder,
            ", ".join(f"{t.name} ({len(t.engine.rule_names())} rules)" for t in self._tenants.values()) or "none yet",
        )

    async def close(self) -> None:
        """Hand what is queued to the engines, flush them, store their last outputs; stop."""
        feed, tick, deliver = self._tasks or (None, None, None)
        for task in (tick, feed):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (tick, feed) if t is not None), return_exceptions=True)
        try:
            await self._drain_queue()
            for t in list(self._tenants.values()):
                await self._on_thread(t.engine.close)
        except Exception:  # closing must go on
            _LOGGER.exception("cloud rules: flushing at shutdown failed")
        if deliver is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self._outputs.join()
            except TimeoutError:
                _LOGGER.warning("cloud rules: %d outputs not stored at shutdown", self._outputs.qsize())
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._tasks = []

    # -- the rules thread ----------------------------------------------------------------------------------------

    async def _on_thread(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the rules thread; the outputs it made go to delivery."""

        def call() -> tuple[_T, list[tuple[str, rules.Output]]]:
            result = fn()
            out, self._collected = self._collected, []
            return result, out

        result, outputs = await asyncio.get_running_loop().run_in_executor(self._thread, call)
        for item in outputs:
            try:
                self._outputs.put_nowait(item)
            except asyncio.QueueFull:
                self.stats.outputs_dropped += 1
        if self.stats.outputs_dropped and outputs and self._outputs.full():
            _LOGGER.warning("cloud rule outputs dropped: the store is not keeping up (%d so far)",
                            self.stats.outputs_dropped)  # fmt: skip
        return result

    def _new_tenant(self, tenant: str, ruleset: rules.RuleSet) -> _Tenant:
        t = _Tenant(tenant)

        def sink(outputs: Sequence[rules.Output]) -> None:
            self._collected.extend((tenant, o) for o in outputs)

        t.engine = rules.Engine(
            ruleset, now=self._now, sink=sink, tag_source=t.tags_of, max_future=self.config.max_future_s
        )
        return t

    async def _load(self, tenant: str) -> rules.ReloadReport | None:
        """(Re)load a tenant's folder; on an error the rules running before stay (and the error is kept)."""
        current = self._tenants.get(tenant)
        try:
            loaded = await asyncio.to_thread(self.folder.load, tenant)
        except RuleFileError as exc:
            mtimes = await asyncio.to_thread(self.folder.mtimes, tenant)
            if current is None:
                current = await self._on_thread(lambda: self._new_tenant(tenant, rules.load_text("", name=EMPTY)))
                self._tenants[tenant] = current
            current.mtimes = mtimes
            current.last_error = "; ".join(exc.problems)
            _LOGGER.error("cloud rules of tenant %s not loaded (the rules running before stay): %s", tenant,
                          current.last_error)  # fmt: skip
            return None
        files = sorted(loaded.mtimes)
        if current is None:
            current = await self._on_thread(lambda: self._new_tenant(tenant, loaded.ruleset))
            current.mtimes, current.files = loaded.mtimes, files
            self._tenants[tenant] = current
            await self._refresh_tenant_tags(current)
            return rules.ReloadReport(added=tuple(current.engine.rule_names()))
        engine = current.engine
        report = await self._on_thread(lambda: engine.reload(loaded.ruleset))
        current.mtimes, current.files, current.last_error = loaded.mtimes, files, None
        _LOGGER.info(
            "cloud rules of tenant %s reloaded: %d added, %d removed, %d changed, %d kept with their state",
            tenant, len(report.added), len(report.removed), len(report.changed), len(report.kept),
        )  # fmt: skip
        return report

    async def reload(self, tenant: str | None = None) -> dict[str, rules.ReloadReport | None]:
        """Reload one tenant's files (or every tenant's whose files changed, appeared or went away)."""
        if tenant is not None:
            return {tenant: await self._load(tenant)}
        out: dict[str, rules.ReloadReport | None] = {}
        names = set(await asyncio.to_thread(self.folder.tenants)) | set(self._tenants)
        for name in sorted(names):
            t = self._tenants.get(name)
            mtimes = await asyncio.to_thread(self.folder.mtimes, name)
            if t is None or mtimes != t.mtimes:
                out[name] = await self._load(name)
        return out

    # -- tags ----------------------------------------------------------------------------------------------------

    async def refresh_tags(self) -> None:
        """Read every tenant's gateways' site and tags from the fleet registry; rules see changes at once."""
        for t in list(self._tenants.values()):
            await self._refresh_tenant_tags(t)

    async def _refresh_tenant_tags(self, t: _Tenant) -> None:
        if self._registry is None:
            return
        try:
            metas = await self._registry.all(t.name)
        except Exception as exc:  # the registry may be closing; the tags known stay
            _LOGGER.warning("cloud rules: cannot read the gateways' tags of tenant %s: %s", t.name, exc)
            return
        tags = tags_by_gateway({gw: (m.site, m.tags) for gw, m in metas.items()})
        if tags != t.tags:

            def apply() -> None:
                t.tags = tags
                t.engine.refresh_tags()

            await self._on_thread(apply)

    # -- tasks ---------------------------------------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        items: list[_Item] = []
        while len(items) < DRAIN:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return items

    def _push_all(self, items: list[_Item]) -> None:
        """On the rules thread: each tenant's share of ``items``, as cloud readings, in one push."""
        by_tenant: dict[str, list[Reading]] = {}
        for tenant, gateway, readings, online, ts in items:
            batch = by_tenant.setdefault(tenant, [])
            if readings is None:
                batch.append(presence_reading(gateway, online, ts))
            else:
                batch.extend(cloud_readings(gateway, readings))
        for tenant, batch in by_tenant.items():
            t = self._tenants.get(tenant)
            if t is not None and batch:
                t.engine.push(batch)

    def _count(self, items: list[_Item]) -> None:
        st = self.stats
        for _tenant, _gw, readings, _online, _ts in items:
            st.batches_in += 1
            if readings is None:
                st.presence_in += 1
            else:
                st.readings_in += len(readings)

    async def _drain_queue(self) -> None:
        while not self._queue.empty():
            items = self._take()
            self._count(items)
            await self._on_thread(functools.partial(self._push_all, items))

    async def _feed(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first, *self._take()]
            self._count(items)
            try:
                await self._on_thread(functools.partial(self._push_all, items))
            except Exception:  # the engine isolates rules; this is a last resort so the feed never stops
                _LOGGER.exception("cloud rules: a batch could not be processed")

    def _advance_all(self, now: float) -> None:
        for t in list(self._tenants.values()):
            t.engine.advance(now)

    async def _tick(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        next_watch = loop.time() + cfg.watch_s
        next_tags = loop.time() + cfg.tags_refresh_s
        while True:
            await asyncio.sleep(cfg.tick_s)
            try:
                await self._on_thread(functools.partial(self._advance_all, self._now()))
                if loop.time() >= next_watch:
                    next_watch = loop.time() + cfg.watch_s
                    await self.reload()
                if loop.time() >= next_tags:
                    next_tags = loop.time() + cfg.tags_refresh_s
                    await self.refresh_tags()
            except Exception:  # a tick that fails is logged; the next one tries again
                _LOGGER.exception("cloud rules: a tick failed")

    async def _deliver(self) -> None:
        while True:
            first = await self._outputs.get()
            batch = [first]
            while len(batch) < DRAIN and not self._outputs.empty():
                batch.append(self._outputs.get_nowait())
            events: dict[str, list[Event]] = {}
            derived: dict[str, list[Reading]] = {}
            for tenant, out in batch:
                if isinstance(out, rules.AlertOut | rules.AnnotationOut):
                    events.setdefault(tenant, []).append(out.event)
                elif isinstance(out, rules.DerivedOut):
                    derived.setdefault(tenant, []).append(out.reading)
                elif isinstance(out, rules.CommandOut):
                    self._command(tenant, out)
            if events or derived:
                await self._store_outputs(events, derived)
            for _ in batch:
                self._outputs.task_done()

    async def _store_outputs(self, events: dict[str, list[Event]], derived: dict[str, list[Reading]]) -> None:
        packs = [PackWrite(tenant, CLOUD_GATEWAY, readings) for tenant, readings in derived.items()]
        writes = [EventWrite(tenant, CLOUD_GATEWAY, evs) for tenant, evs in events.items()]
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                await self._store.commit_all(packs, writes, now=time.time())
            except StoreError as exc:
                self.stats.store_failures += 1
                if attempt == STORE_ATTEMPTS:
                    n = sum(map(len, events.values())) + sum(map(len, derived.values()))
                    self.stats.outputs_dropped += n
                    _LOGGER.error("cloud rules: %d alerts/readings lost, the store failed %d times: %s", n,
                                  attempt, exc)  # fmt: skip
                    return
                _LOGGER.warning("cloud rules: storing alerts failed (trying again): %s", exc)
                await asyncio.sleep(0.2 * 2**attempt)
            else:
                self.stats.events_stored += sum(map(len, events.values()))
                self.stats.derived_stored += sum(map(len, derived.values()))
                return

    def _command(self, tenant: str, cmd: rules.CommandOut) -> None:
        try:
            gateway, sensor = command_target(cmd.target)
        except ValueError as exc:
            self.stats.commands_refused += 1
            _LOGGER.warning("cloud rule %s: command %s not sent: %s", cmd.rule, cmd.action, exc)
            return
        if self._commands is None:
            self.stats.commands_refused += 1
            _LOGGER.warning("cloud rule %s: command %s to %s not sent: no command path", cmd.rule, cmd.action, gateway)
            return
        task = asyncio.create_task(self._send(tenant, gateway, sensor, cmd), name=f"cloud-rule-command {cmd.rule}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, tenant: str, gateway: str, sensor: str, cmd: rules.CommandOut) -> None:
        assert self._commands is not None
        try:
            await self._commands.send(
                tenant,
                gateway,
                "actuate",
                {"sensor": sensor, "action": cmd.action, "args": cmd.args},
                timeout_s=self.config.command_timeout_s,
                issued_by=f"cloud rule {cmd.rule}",
            )
        except Exception as exc:  # an unknown gateway, args that are not JSON, a closing database
            self.stats.commands_refused += 1
            _LOGGER.warning("cloud rule %s: command %s to %s/%s not sent: %s", cmd.rule, cmd.action, gateway,
                            sensor, exc)  # fmt: skip
        else:
            self.stats.commands_sent += 1

    # -- what the API shows ----------------------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        """Tenants with cloud rules (a folder, or rules written through the API)."""
        return sorted(self._tenants)

    async def status(self, tenant: str) -> dict[str, Any]:
        """A tenant's rules, their counters and open alerts, the files and the last load error."""
        t = self._tenants.get(tenant)
        if t is None:
            return {"tenant": tenant, "files": [], "rules": [], "active_alerts": [], "last_error": None,
                    "gateways_tagged": 0, "runner": dataclasses.asdict(self.stats)}  # fmt: skip
        engine = t.engine

        def snapshot() -> tuple[dict[str, rules.RuleStats], list[str], rules.RuleSet]:
            return engine.stats(), engine.active_alerts(), engine.ruleset

        stats, active, ruleset = await self._on_thread(snapshot)
        items = []
        for r in ruleset.rules:
            st = stats.get(r.name)
            items.append({
                "name": r.name, "file": r.file, "line": r.line, "description": r.description, "enabled": r.enabled,
                "group_by": r.group_by, "stats": dataclasses.asdict(st) if st is not None else None,
            })  # fmt: skip
        return {"tenant": tenant, "files": t.files, "rules": items, "active_alerts": active,
                "last_error": t.last_error, "gateways_tagged": len(t.tags),
                "runner": dataclasses.asdict(self.stats)}  # fmt: skip

    async def write(self, tenant: str, name: str, text: str) -> rules.ReloadReport | None:
        """Check and store a rule file (RuleFileError with every problem), then reload the tenant."""
        await asyncio.to_thread(self.folder.write, tenant, name, text)
        return await self._load(tenant)

    async def delete(self, tenant: str, name: str) -> rules.ReloadReport | None:
        """Remove a rule file (FileNotFoundError if none), then reload the tenant."""
        if not await asyncio.to_thread(self.folder.delete, tenant, name):
            raise FileNotFoundError(name)
        return await self._load(tenant)
