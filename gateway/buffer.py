"""The durable, bounded reading buffer between the hub and the uplink.

SQLite in WAL mode with ``synchronous=FULL``: :meth:`DurableBuffer.append` returns only once its
readings are committed and fsynced, so an adapter may acknowledge its device after it. Appends are
never written one by one: a writer task gathers every append (and every acknowledged batch's
delete) queued within ``commit_interval_ms`` into one transaction (group commit), and then resolves
all of them. Every blocking SQLite call runs on one dedicated single-thread executor.

The buffer is bounded by bytes (``max_bytes``, an estimate per row) and by age (``max_age_s``).
What happens when it is full is the policy's choice (``drop-oldest``, ``drop-newest``, ``refuse``);
every reading dropped is counted (``dropped_full``, ``dropped_age``), and the counters are kept in
the database so they survive a restart and reach the cloud after a reconnect.

The uplink reads with :meth:`DurableBuffer.take` (the oldest readings not already in flight, as a
:class:`Batch` with an id) and calls :meth:`DurableBuffer.delete` once the cloud holds a batch.
In-flight marks live in memory only: after a restart every row is pending again, and the cloud's
ingest is idempotent on (gateway, sensor, metric, ts), so sending a row twice is harmless.

Events (rule alerts, annotations, device events) have their own queue in the same database and the
same commits (:mod:`gateway.buffer_events`): :meth:`DurableBuffer.append_events`,
:meth:`DurableBuffer.take_events`, and :meth:`DurableBuffer.delete` / :meth:`DurableBuffer.release` for
both kinds of batch. The cloud stores each event once by (gateway, event id).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, TypeVar

from gateway import buffer_events
from gateway.buffer_events import EventBatch, EventQueue
from gateway.config import BufferSection, DropPolicy
from gateway.errors import BufferError_, BufferFull
from wire.events import Event
from wire.reading import Reading

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROW_OVERHEAD = 24
"""Bytes added to each row's payload in the size estimate (row header, id, kind, b-tree share)."""
RECOVERED_FRACTION = 0.9
"""A full-buffer incident ends once the buffer is below this fraction of ``max_bytes`` again."""

_KIND_NUMBER, _KIND_BOOL, _KIND_STRING = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id     INTEGER PRIMARY KEY,
    sensor TEXT    NOT NULL,
    metric TEXT    NOT NULL,
    value          NOT NULL,
    kind   INTEGER NOT NULL,
    unit   TEXT,
    ts     INTEGER NOT NULL,
    size   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
_INSERT = "INSERT INTO readings (id, sensor, metric, value, kind, unit, ts, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = "SELECT id, sensor, metric, value, kind, unit, ts FROM readings"

_T = TypeVar("_T")
_Row = tuple[int, str, str, Any, int, str | None, int, int]


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest buffered readings not yet in flight, taken by the uplink under one id."""

    id: str
    """Unique per gateway across restarts (``{boot-random-hex}-{seq}``) and safe as an MQTT topic level."""
    readings: list[Reading]
    first_row: int
    last_row: int


class BufferStats(TypedDict):
    """What :meth:`DurableBuffer.stats` reports."""

    buffered: int
    """Readings in the buffer now (in flight included)."""
    bytes: int
    """Estimated size of the buffered readings."""
    inflight: int
    """Readings taken by the uplink and not yet deleted."""
    dropped: int
    """All readings dropped since the database was created (dropped_full + dropped_age)."""
    dropped_full: int
    dropped_age: int
    received: int
    """Readings appended (stored) since this buffer was opened."""
    commits: int
    """Transactions committed since this buffer was opened."""
    events_buffered: int
    """Events in the buffer now (in flight included)."""
    events_bytes: int
    events_inflight: int
    events_dropped: int
    """Events dropped because the event queue was full, since the database was created."""
    events_received: int
    """Events appended (stored) since this buffer was opened."""


@dataclass(slots=True)
class _Append:
    readings: Sequence[Reading]
    future: asyncio.Future[None]


@dataclass(slots=True)
class _AppendEvents:
    rows: list[buffer_events.Row]
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Delete:
    ranges: list[tuple[int, int]]
    future: asyncio.Future[int]
    event_ranges: list[tuple[int, int]]


@dataclass(slots=True)
class _Outcome:
    """What one group commit did, per queued item."""

    appended: list[int | BaseException]
    deleted: list[int]
    events_appended: list[int | BaseException]


class DurableBuffer:
    """SQLite-backed, bounded, group-committing reading buffer; an async context manager.

    With policy ``drop-newest`` an :meth:`append` whose readings do not fit returns normally and the
    readings that do not fit are not stored: they are counted in ``dropped_full``, never silent.
    With ``refuse`` it raises :class:`gateway.errors.BufferFull` (the readings are counted as
    ``dropped_full`` too, since the gateway did not keep them). ``drop-oldest`` (the default) deletes
    the oldest rows, in flight or not, to make room. Events follow the same policy within their own
    bounds (``max_events``, ``max_event_bytes``).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 7 * 86400.0,
        policy: DropPolicy = "drop-oldest",
        commit_interval_ms: float = 2.0,
        max_events: int = 10_000,
        max_event_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.policy: DropPolicy = policy
        self.commit_interval_s = commit_interval_ms / 1000.0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._data = asyncio.Event()
        self._appends: list[_Append] = []
        self._deletes: list[_Delete] = []
        self._closing = False
        self._open = False
        # Owned by the executor thread while open; the loop only reads them.
        self._count = 0
        self._bytes = 0
        self._next_id = 1
        self._dropped_full = 0
        self._dropped_age = 0
        self._full_incident = False
        self._full_incident_drops = 0
        self._age_incident = False
        self._received = 0
        self._commits = 0
        self._last_sweep = 0.0
        # Owned by the event loop: in-flight batches and where the next take starts.
        self._boot = secrets.token_hex(6)
        self._seq = 0
        self._mark = 0
        self._inflight: dict[str, tuple[int, int, int]] = {}
        self._inflight_readings = 0
        self._returned: collections.deque[tuple[int, int]] = collections.deque()
        self._take_lock = asyncio.Lock()
        self._events = EventQueue(
            max_events=max_events, max_bytes=max_event_bytes, policy=policy, boot=self._boot, path=self.path
        )
        self._event_appends: list[_AppendEvents] = []

    @classmethod
    def from_config(cls, path: Path, section: BufferSection) -> DurableBuffer:
        """A buffer at ``path`` with the bounds and policy of a ``[buffer]`` config section."""
        return cls(
            path,
            max_bytes=section.max_bytes,
            max_age_s=section.max_age_s,
            policy=section.policy,
            commit_interval_ms=section.commit_interval_ms,
        )

    # ----------------------------------------------------------------- life cycle

    async def open(self) -> None:
        """Open (or create) the database and start the writer task; raise BufferError_ naming the path."""
        if self._open:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="roost-buffer")
        try:
            await self._run(self._open_db)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._open = True
        self._closing = False
        self._writer_task = asyncio.get_running_loop().create_task(self._writer(), name="roost-buffer-writer")
        if self._count:
            self._data.set()
        if self._events.count:
            self._events.data.set()
        _LOGGER.info(
            "buffer %s open: %d readings (%d bytes) and %d events pending",
            self.path,
            self._count,
            self._bytes,
            self._events.count,
        )

    async def close(self) -> None:
        """Commit what is queued, checkpoint the WAL and close; later appends raise BufferError_."""
        if not self._open:
            return
        self._closing = True
        self._wake.set()
        task, self._writer_task = self._writer_task, None
        if task is not None:
            try:
                await task
            finally:
                self._open = False
                with contextlib.suppress(Exception):
                    await self._run(self._close_db)
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                    self._executor = None
        self._open = False

    async def __aenter__(self) -> DurableBuffer:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- writing

    async def append(self, readings: Sequence[Reading]) -> None:
        """Return once ``readings`` are committed and fsynced (or dropped by the policy); may raise BufferFull."""
        if not readings:
            return
        if not self._open or self._closing:
            raise BufferError_(f"buffer {self.path} is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._appends.append(_Append(readings, fut))
        self._wake.set()
        await fut

    async def append_events(self, events: Sequence[Event]) -> None:
        """Return once ``events`` are committed and fsynced (or dropped by the policy); may raise BufferFull.

        Raises wire's PayloadError (a ValueError) for an event the cloud would refuse, before storing any.
        """
        if not events:
            return
        if not self._open or self._closing:
            raise BufferError_(f"buffer {self.path} is closed")
        rows = buffer_events.encode_rows(events)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._event_appends.append(_AppendEvents(rows, fut))
        self._wake.set()
        await fut

    # ----------------------------------------------------------------- reading side (the uplink)

    @property
    def pending(self) -> int:
        """Readings buffered and not in flight (an estimate when the policy dropped in-flight rows)."""
        return max(0, self._count - self._inflight_readings)

    async def wait(self, min_readings: int = 1, timeout: float | None = None) -> bool:
        """Wait until at least ``min_readings`` are pending (True) or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending < max(1, min_readings):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._data.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._data.wait()
            except TimeoutError:
                return self.pending >= min_readings
        return True

    async def take(self, max_readings: int) -> Batch | None:
        """Mark the oldest (up to) ``max_readings`` readings not in flight as a batch and return it, or None."""
        if not self._open:
            raise BufferError_(f"buffer {self.path} is closed")
        async with self._take_lock:
            while self._returned:
                lo, hi = self._returned.popleft()
                rows = await self._run(self._select_range, lo, hi)
                if rows:
                    return self._new_batch(rows, lo, hi)
            batch_rows = await self._run(self._select_from, self._mark, max_readings)
            if not batch_rows:
                return None
            lo, hi = batch_rows[0][0], batch_rows[-1][0]
            self._mark = hi + 1
            return self._new_batch(batch_rows, lo, hi)

    @property
    def pending_events(self) -> int:
        """Events buffered and not in flight."""
        return self._events.pending

    async def wait_events(self, timeout: float | None = None) -> bool:
        """Wait until an event is pending (True) or ``timeout`` passes (False)."""
        return await self._events.wait(timeout)

    async def take_events(self, max_events: int) -> EventBatch | None:
        """Mark the oldest (up to) ``max_events`` events not in flight as a batch (id ``ev-...``), or None."""
        if not self._open:
            raise BufferError_(f"buffer {self.path} is closed")
        return await self._events.take(self._run_with_conn, max_events)

    async def _run_with_conn(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await self._run(lambda: fn(self._live_conn(), *args))

    def _live_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BufferError_(f"buffer {self.path} is closed")
        return self._conn

    def _new_batch(self, rows: list[tuple[int, Reading]], lo: int, hi: int) -> Batch:
        self._seq += 1
        batch_id = f"{self._boot}-{self._seq}"
        self._inflight[batch_id] = (lo, hi, len(rows))
        self._inflight_readings += len(rows)
        return Batch(id=batch_id, readings=[r for _, r in rows], first_row=lo, last_row=hi)

    async def delete(self, batch_ids: Iterable[str]) -> int:
        """Delete the rows of acknowledged batches, readings' or events' (unknown ids are ignored); how many went."""
        ranges: list[tuple[int, int]] = []
        event_ids: list[str] = []
        for batch_id in batch_ids:
            entry = self._inflight.pop(batch_id, None)
            if entry is not None:
                ranges.append((entry[0], entry[1]))
                self._inflight_readings -= entry[2]
            elif self._events.owns(batch_id):
                event_ids.append(batch_id)
        event_ranges = self._events.pop(event_ids) if event_ids else []
        if not ranges and not event_ranges:
            return 0
        if not self._open or self._closing:
            raise BufferError_(f"buffer {self.path} is closed")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._deletes.append(_Delete(ranges, fut, event_ranges))
        self._wake.set()
        return await fut

    def release(self, batch_ids: Iterable[str]) -> None:
        """Put batches back (not acknowledged, not to be sent under these ids): the next takes return them first."""
        batch_ids = list(batch_ids)
        self._events.release(b for b in batch_ids if self._events.owns(b))
        returned = list(self._returned)
        for batch_id in batch_ids:
            entry = self._inflight.pop(batch_id, None)
            if entry is not None:
                returned.append((entry[0], entry[1]))
                self._inflight_readings -= entry[2]
        self._returned = collections.deque(sorted(returned))
        if self._returned:
            self._data.set()

    def inflight_batches(self) -> list[str]:
        """Ids of the batches (readings' and events') taken and neither deleted nor released."""
        return [*self._inflight, *self._events.inflight_batches()]

    async def expire(self) -> int:
        """Drop readings older than ``max_age_s`` now (the writer also does it periodically); return how many."""
        if not self.max_age_s:
            return 0
        return await self._run(self._sweep_job)

    def stats(self) -> BufferStats:
        """Counts and bytes buffered, drop counters, readings received."""
        return {
            "buffered": self._count,
            "bytes": self._bytes,
            "inflight": self._inflight_readings,
            "dropped": self._dropped_full + self._dropped_age,
            "dropped_full": self._dropped_full,
            "dropped_age": self._dropped_age,
            "received": self._received,
            "commits": self._commits,
            "events_buffered": self._events.count,
            "events_bytes": self._events.bytes,
            "events_inflight": self._events.inflight_events,
            "events_dropped": self._events.dropped_full,
            "events_received": self._events.received,
        }

    # ----------------------------------------------------------------- the writer task

    async def _writer(self) -> None:
        sweep_every = min(60.0, max(1.0, self.max_age_s / 10)) if self.max_age_s else None
        last_start = 0.0
        while True:
            if not (self._appends or self._deletes or self._event_appends or self._closing):
                try:
                    async with asyncio.timeout(sweep_every):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if not self._closing and (self._appends or self._deletes or self._event_appends):
                # Commits start at most every commit_interval: under load a commit takes longer than that and
                # the next one starts at once with everything queued meanwhile; a lone append waits at most
                # the interval. sleep(0) lets appenders that are ready in this loop iteration join.
                await asyncio.sleep(max(0.0, last_start + self.commit_interval_s - time.monotonic()))
            appends, self._appends = self._appends, []
            deletes, self._deletes = self._deletes, []
            event_appends, self._event_appends = self._event_appends, []
            sweep = sweep_every is not None and time.monotonic() - self._last_sweep >= sweep_every
            if appends or deletes or event_appends or sweep:
                last_start = time.monotonic()
                await self._commit(appends, deletes, sweep, event_appends)
            if self._closing and not self._appends and not self._deletes and not self._event_appends:
                return

    async def _commit(
        self, appends: list[_Append], deletes: list[_Delete], sweep: bool, event_appends: list[_AppendEvents]
    ) -> None:
        try:
            outcome = await self._run(
                self._commit_job,
                [a.readings for a in appends],
                [d.ranges for d in deletes],
                sweep,
                [e.rows for e in event_appends],
                [d.event_ranges for d in deletes],
            )
        except BaseException as exc:
            err = exc if isinstance(exc, BufferError_) else BufferError_(f"buffer {self.path}: commit failed: {exc}")
            futures: list[asyncio.Future[Any]] = [a.future for a in appends] + [d.future for d in deletes]
            futures += [e.future for e in event_appends]
            for fut in futures:
                if not fut.done():
                    fut.set_exception(err)
            if not isinstance(exc, Exception):
                raise
            _LOGGER.error("buffer %s: commit failed: %s", self.path, exc)
            return
        for a, res in zip(appends, outcome.appended, strict=True):
            if a.future.done():
                continue
            if isinstance(res, BaseException):
                a.future.set_exception(res)
            else:
                a.future.set_result(None)
        for d, n in zip(deletes, outcome.deleted, strict=True):
            if not d.future.done():
                d.future.set_result(n)
        if any(isinstance(n, int) and n for n in outcome.appended):
            self._data.set()
        for e, res in zip(event_appends, outcome.events_appended, strict=True):
            if not e.future.done():
                if isinstance(res, BaseException):
                    e.future.set_exception(res)
                else:
                    e.future.set_result(None)
        if any(isinstance(n, int) and n for n in outcome.events_appended):
            self._events.data.set()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise BufferError_(f"buffer {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ----------------------------------------------------------------- executor-thread jobs

    def _open_db(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise BufferError_(f"cannot open buffer database {self.path}: it is a directory")
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        except (OSError, sqlite3.Error) as exc:
            raise BufferError_(f"cannot open buffer database {self.path}: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise BufferError_(f"buffer database {self.path}: WAL mode is not available here (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA + buffer_events.SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise BufferError_(f"buffer database {self.path} has schema version {version}, not {SCHEMA_VERSION}")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            count, size, max_id = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MAX(id) FROM readings"
            ).fetchone()
            self._events.load_job(conn, meta)
        except sqlite3.Error as exc:
            conn.close()
            raise BufferError_(f"cannot use buffer database {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._count, self._bytes = int(count), int(size)
        self._next_id = int(max_id or 0) + 1
        self._dropped_full = int(meta.get("dropped_full", 0))
        self._dropped_age = int(meta.get("dropped_age", 0))
        self._last_sweep = time.monotonic()

    def _close_db(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _select_from(self, first: int, limit: int) -> list[tuple[int, Reading]]:
        assert self._conn is not None
        rows = self._conn.execute(_SELECT + " WHERE id >= ? ORDER BY id LIMIT ?", (first, limit)).fetchall()
        return _to_readings(rows)

    def _select_range(self, lo: int, hi: int) -> list[tuple[int, Reading]]:
        assert self._conn is not None
        rows = self._conn.execute(_SELECT + " WHERE id BETWEEN ? AND ? ORDER BY id", (lo, hi)).fetchall()
        return _to_readings(rows)

    def _sweep_job(self) -> int:
        conn = self._conn
        assert conn is not None
        count0, bytes0 = self._count, self._bytes
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = self._sweep(conn)
            if n:
                self._write_meta(conn, self._dropped_full, self._dropped_age + n)
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._count, self._bytes = count0, bytes0
            if isinstance(exc, sqlite3.Error):
                raise BufferError_(f"buffer {self.path}: expiring old readings failed: {exc}") from exc
            raise
        self._dropped_age += n
        self._note_age_drops(n)
        return n

    def _sweep(self, conn: sqlite3.Connection) -> int:
        """Delete rows older than max_age inside the caller's transaction; return the count (counters untouched)."""
        self._last_sweep = time.monotonic()
        cutoff = round((time.time() - self.max_age_s) * 1_000_000)
        sizes = conn.execute("DELETE FROM readings WHERE ts < ? RETURNING size", (cutoff,)).fetchall()
        if sizes:
            self._count -= len(sizes)
            self._bytes -= sum(s for (s,) in sizes)
        return len(sizes)

    def _commit_job(
        self,
        appends: list[Sequence[Reading]],
        deletes: list[list[tuple[int, int]]],
        sweep: bool,
        event_appends: list[list[buffer_events.Row]],
        event_deletes: list[list[tuple[int, int]]],
    ) -> _Outcome:
        conn = self._conn
        if conn is None:
            raise BufferError_(f"buffer {self.path} is closed")
        count0, bytes0, next_id0 = self._count, self._bytes, self._next_id
        events0 = self._events.snapshot()
        events_appended: list[int | BaseException] = []
        events_dropped = 0
        cutoff = round((time.time() - self.max_age_s) * 1_000_000) if self.max_age_s else None
        dropped_full = dropped_age = 0
        appended: list[int | BaseException] = []
        deleted: list[int] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for ranges in deletes:
                n = 0
                for lo, hi in ranges:
                    k, size = conn.execute(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM readings WHERE id BETWEEN ? AND ?", (lo, hi)
                    ).fetchone()
                    if k:
                        conn.execute("DELETE FROM readings WHERE id BETWEEN ? AND ?", (lo, hi))
                        n += k
                        self._bytes -= size
                self._count -= n
                deleted.append(n)
            if sweep and cutoff is not None:
                dropped_age += self._sweep(conn)
            for readings in appends:
                rows, size, aged = self._rows(readings, cutoff)
                dropped_age += aged
                if rows and self.policy != "drop-oldest" and self._bytes + size > self.max_bytes:
                    if self.policy == "refuse":
                        dropped_full += len(rows)
                        appended.append(
                            BufferFull(
                                f"buffer full ({self._bytes} of {self.max_bytes} bytes): {len(rows)} readings refused"
                            )
                        )
                        continue
                    rows, size = self._fitting_prefix(rows)
                    dropped_full += len(readings) - aged - len(rows)
                if rows:
                    conn.executemany(_INSERT, rows)
                    self._count += len(rows)
                    self._bytes += size
                appended.append(len(rows))
            if self.policy == "drop-oldest" and self._bytes > self.max_bytes:
                dropped_full += self._trim_oldest(conn, self._bytes - self.max_bytes)
            if dropped_full or dropped_age:
                self._write_meta(conn, self._dropped_full + dropped_full, self._dropped_age + dropped_age)
            for i, event_ranges in enumerate(event_deletes):
                if event_ranges:
                    deleted[i] += self._events.delete_job(conn, event_ranges)
            if event_appends:
                events_appended, events_dropped = self._events.append_job(conn, event_appends)
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._count, self._bytes, self._next_id = count0, bytes0, next_id0
            self._events.restore(events0)
            if isinstance(exc, sqlite3.Error):
                raise BufferError_(f"buffer {self.path}: commit failed: {exc}") from exc
            raise
        self._commits += 1
        self._received += sum(n for n in appended if isinstance(n, int))
        self._dropped_full += dropped_full
        self._dropped_age += dropped_age
        self._note_full_drops(dropped_full)
        self._note_age_drops(dropped_age)
        if event_appends:
            self._events.committed(events_appended, events_dropped)
        return _Outcome(appended, deleted, events_appended)

    def _rows(self, readings: Sequence[Reading], cutoff: int | None) -> tuple[list[_Row], int, int]:
        rows: list[_Row] = []
        total = 0
        aged = 0
        next_id = self._next_id
        for r in readings:
            ts = round(r.ts * 1_000_000)
            if cutoff is not None and ts < cutoff:
                aged += 1
                continue
            v = r.value
            unit = r.unit
            if v is True or v is False:
                kind, vsize = _KIND_BOOL, 1
            elif isinstance(v, str):
                kind, vsize = _KIND_STRING, len(v)
            else:
                kind, vsize = _KIND_NUMBER, 8
            size = ROW_OVERHEAD + len(r.sensor) + len(r.metric) + vsize + (len(unit) if unit else 0)
            rows.append((next_id, r.sensor, r.metric, v, kind, unit, ts, size))
            next_id += 1
            total += size
        self._next_id = next_id
        return rows, total, aged

    def _fitting_prefix(self, rows: list[_Row]) -> tuple[list[_Row], int]:
        room = self.max_bytes - self._bytes
        total = 0
        for i, row in enumerate(rows):
            if total + row[7] > room:
                return rows[:i], total
            total += row[7]
        return rows, total

    def _trim_oldest(self, conn: sqlite3.Connection, excess: int) -> int:
        freed = 0
        n = 0
        last = None
        cur = conn.execute("SELECT id, size FROM readings ORDER BY id")
        try:
            for row_id, size in cur:
                freed += size
                n += 1
                last = row_id
                if freed >= excess:
                    break
        finally:
            cur.close()
        if last is not None:
            conn.execute("DELETE FROM readings WHERE id <= ?", (last,))
            self._count -= n
            self._bytes -= freed
        return n

    @staticmethod
    def _write_meta(conn: sqlite3.Connection, dropped_full: int, dropped_age: int) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("dropped_full", dropped_full), ("dropped_age", dropped_age)],
        )

    def _note_full_drops(self, n: int) -> None:
        if n:
            self._full_incident_drops += n
            if not self._full_incident:
                self._full_incident = True
                verb = "refusing" if self.policy == "refuse" else "dropping"
                which = "the oldest" if self.policy == "drop-oldest" else "new"
                _LOGGER.warning(
                    "buffer %s is full (%d bytes, limit %d): %s %s readings (policy %s)",
                    self.path,
                    self._bytes,
                    self.max_bytes,
                    verb,
                    which,
                    self.policy,
                )
        elif self._full_incident and self._bytes < self.max_bytes * RECOVERED_FRACTION:
            _LOGGER.info(
                "buffer %s has room again (%d of %d bytes); %d readings were dropped while it was full",
                self.path,
                self._bytes,
                self.max_bytes,
                self._full_incident_drops,
            )
            self._full_incident = False
            self._full_incident_drops = 0

    def _note_age_drops(self, n: int) -> None:
        if n and not self._age_incident:
            self._age_incident = True
            _LOGGER.warning("buffer %s: dropping readings older than %.0f s", self.path, self.max_age_s)
        elif not n and self._age_incident:
            self._age_incident = False
            _LOGGER.info("buffer %s: no more readings past the age limit", self.path)


def _to_readings(rows: list[tuple[int, str, str, Any, int, str | None, int]]) -> list[tuple[int, Reading]]:
    return [
        (row_id, Reading(sensor, metric, bool(value) if kind == _KIND_BOOL else value, ts / 1_000_000, unit))
        for row_id, sensor, metric, value, kind, unit, ts in rows
    ]


def default_path(state_dir: Path) -> Path:
    """Where the buffer lives when the config names no path."""
    return state_dir / "buffer.sqlite"


__all__ = ["Batch", "BufferStats", "DurableBuffer", "EventBatch", "default_path"]
