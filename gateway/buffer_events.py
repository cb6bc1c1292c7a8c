"""The buffer's event queue: rule alerts, annotations and device events, as durable as readings.

The events live in the reading buffer's SQLite database (their own table) and are written in the
readings' group commits: :class:`gateway.buffer.DurableBuffer` calls the ``*_job`` methods of an
:class:`EventQueue` on its executor thread, inside its transaction, and the rest on the event loop.

The queue is bounded by count (``max_events``) and by bytes (``max_bytes``, the JSON text plus a
per-row overhead) under the buffer's drop policy, every drop counted (``events_dropped_full``, kept
in the database). It has no age limit: an alert raised during a long outage still matters when the
link comes back. Batch ids are ``ev-{boot}-{seq}``: a telemetry batch id starts with a hex digit, so
the two never collide and one ``ack`` topic serves both.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.config import DropPolicy
from gateway.errors import BufferFull
from wire import events as wire_events
from wire.errors import PayloadError
from wire.events import Event

_LOGGER = logging.getLogger(__name__)

BATCH_PREFIX = "ev-"
"""Every event batch id starts with this (a telemetry batch id never does)."""
ROW_OVERHEAD = 24
"""Bytes added to each event's JSON text in the size estimate."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id   INTEGER PRIMARY KEY,
    body TEXT    NOT NULL,
    size INTEGER NOT NULL
);
"""
_META_DROPPED = "events_dropped_full"

_T = TypeVar("_T")
Row = tuple[str, int]
"""An event as stored: its JSON object text and its size estimate."""
Runner = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class EventBatch:
    """The oldest buffered events not yet in flight, taken by the uplink under one id."""

    id: str
    """``ev-{boot-random-hex}-{seq}``: unique per gateway across restarts, safe as an MQTT topic level."""
    events: list[Event]
    first_row: int
    last_row: int


def encode_rows(events: Sequence[Event]) -> list[Row]:
    """The rows for ``events``; PayloadError naming the first event the cloud would refuse."""
    rows: list[Row] = []
    for event in events:
        try:
            body = json.dumps(event.as_dict(), separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"event {event.id!r} is not JSON-safe: {exc}") from exc
        wire_events.from_dict(json.loads(body))  # the cloud's own checks, here where the rule engine hears them
        rows.append((body, ROW_OVERHEAD + len(body.encode())))
    return rows


class EventQueue:
    """State and SQL of the events table; owned by one :class:`gateway.buffer.DurableBuffer`."""

    def __init__(self, *, max_events: int, max_bytes: int, policy: DropPolicy, boot: str, path: object) -> None:
        if max_events < 1 or max_bytes < 1024:
            raise ValueError("an event queue needs max_events >= 1 and max_bytes >= 1024")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.policy: DropPolicy = policy
        self._path = path
        # Owned by the executor thread while open; the loop only reads them.
        self.count = 0
        self.bytes = 0
        self.next_id = 1
        self.dropped_full = 0
        self.received = 0
        self._full_incident = False
        # Owned by the event loop.
        self._boot = boot
        self._seq = 0
        self._mark = 0
        self._inflight: dict[str, tuple[int, int, int]] = {}
        self.inflight_events = 0
        self._returned: collections.deque[tuple[int, int]] = collections.deque()
        self._take_lock = asyncio.Lock()
        self.data = asyncio.Event()

    # ----------------------------------------------------------------- event loop

    @property
    def pending(self) -> int:
        """Events buffered and not in flight (an estimate when the policy dropped in-flight rows)."""
        return max(0, self.count - self.inflight_events)

    def owns(self, batch_id: str) -> bool:
        """Whether ``batch_id`` names an event batch."""
        return batch_id.startswith(BATCH_PREFIX)

    async def take(self, run: Runner, max_events: int) -> EventBatch | None:
        """The oldest (up to) ``max_events`` events not in flight as a batch, or None; ``run`` runs a job."""
        async with self._take_lock:
            while self._returned:
                lo, hi = self._returned.popleft()
                rows = await run(self.select_job, lo, hi, None)
                if rows:
                    return self._new_batch(rows, lo, hi)
            rows = await run(self.select_job, self._mark, None, max(1, max_events))
            if not rows:
                return None
            lo, hi = rows[0][0], rows[-1][0]
            self._mark = hi + 1
            return self._new_batch(rows, lo, hi)

    def _new_batch(self, rows: list[tuple[int, Event | None]], lo: int, hi: int) -> EventBatch:
        self._seq += 1
        batch_id = f"{BATCH_PREFIX}{self._boot}-{self._seq}"
        self._inflight[batch_id] = (lo, hi, len(rows))
        self.inflight_events += len(rows)
        return EventBatch(id=batch_id, events=[e for _, e in rows if e is not None], first_row=lo, last_row=hi)

    def pop(self, batch_ids: Iterable[str]) -> list[tuple[int, int]]:
        """Forget in-flight batches (acknowledged): the row ranges to delete."""
        ranges: list[tuple[int, int]] = []
        for batch_id in batch_ids:
            entry = self._inflight.pop(batch_id, None)
            if entry is not None:
                ranges.append((entry[0], entry[1]))
                self.inflight_events -= entry[2]
        return ranges

    def release(self, batch_ids: Iterable[str]) -> None:
        """Put batches back: the next takes return them first, under new ids."""
        returned = list(self._returned)
        returned.extend(self.pop(batch_ids))
        self._returned = collections.deque(sorted(returned))
        if self._returned:
            self.data.set()

    def inflight_batches(self) -> list[str]:
        """Ids of the event batches taken and neither deleted nor released."""
        return list(self._inflight)

    async def wait(self, timeout: float | None) -> bool:
        """Wait until an event is pending (True) or ``timeout`` passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.pending < 1:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            self.data.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self.data.wait()
            except TimeoutError:
                return self.pending >= 1
        return True

    # ----------------------------------------------------------------- executor thread

    def load_job(self, conn: sqlite3.Connection, meta: dict[str, int]) -> None:
        """Read the counts of an opened database (its schema already made)."""
        count, size, max_id = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0), MAX(id) FROM events").fetchone()
        self.count, self.bytes = int(count), int(size)
        self.next_id = int(max_id or 0) + 1
        self.dropped_full = int(meta.get(_META_DROPPED, 0))

    def snapshot(self) -> tuple[int, int, int]:
        """What a rolled-back transaction restores."""
        return self.count, self.bytes, self.next_id

    def restore(self, snap: tuple[int, int, int]) -> None:
        """Undo the in-memory effects of a rolled-back transaction."""
        self.count, self.bytes, self.next_id = snap

    def select_job(self, conn: sqlite3.Connection, lo: int, hi: int | None, limit: int | None) -> list[Any]:
        """Rows ``lo..hi`` (or the first ``limit`` from ``lo``) as (row id, Event or None when unreadable)."""
        if hi is not None:
            rows = conn.execute("SELECT id, body FROM events WHERE id BETWEEN ? AND ? ORDER BY id", (lo, hi))
        else:
            rows = conn.execute("SELECT id, body FROM events WHERE id >= ? ORDER BY id LIMIT ?", (lo, limit))
        out: list[tuple[int, Event | None]] = []
        for row_id, body in rows.fetchall():
            try:
                out.append((row_id, wire_events.from_dict(json.loads(body))))
            except (ValueError, PayloadError) as exc:  # written by another version: never block the queue on it
                _LOGGER.error("buffer %s: event row %d is unreadable (%s): dropping it", self._path, row_id, exc)
                out.append((row_id, None))
        return out

    def delete_job(self, conn: sqlite3.Connection, ranges: list[tuple[int, int]]) -> int:
        """Delete acknowledged rows inside the caller's transaction; how many went."""
        n = 0
        for lo, hi in ranges:
            k, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE id BETWEEN ? AND ?", (lo, hi)
            ).fetchone()
            if k:
                conn.execute("DELETE FROM events WHERE id BETWEEN ? AND ?", (lo, hi))
                n += k
                self.bytes -= size
        self.count -= n
        return n

    def append_job(self, conn: sqlite3.Connection, appends: list[list[Row]]) -> tuple[list[int | BaseException], int]:
        """Insert each append's rows under the bounds and policy, inside the caller's transaction.

        Returns per append the number stored (or the BufferFull to raise), and how many events were dropped.
        """
        appended: list[int | BaseException] = []
        dropped = 0
        for append in appends:
            rows = append
            size = sum(s for _, s in rows)
            if self.policy != "drop-oldest" and (
                self.count + len(rows) > self.max_events or self.bytes + size > self.max_bytes
            ):
                if self.policy == "refuse":
                    dropped += len(rows)
                    appended.append(
                        BufferFull(f"event queue full ({self.count} of {self.max_events} events): {len(rows)} refused")
                    )
                    continue
                fitting = self._fitting_prefix(rows)
                dropped += len(rows) - len(fitting)
                rows = fitting
                size = sum(s for _, s in rows)
            if rows:
                first = self.next_id
                conn.executemany(
                    "INSERT INTO events (id, body, size) VALUES (?, ?, ?)",
                    [(first + i, body, s) for i, (body, s) in enumerate(rows)],
                )
                self.next_id += len(rows)
                self.count += len(rows)
                self.bytes += size
            appended.append(len(rows))
        if self.policy == "drop-oldest" and (self.count > self.max_events or self.bytes > self.max_bytes):
            dropped += self._trim_oldest(conn)
        if dropped:
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_META_DROPPED, self.dropped_full + dropped)
            )
        return appended, dropped

    def committed(self, appended: list[int | BaseException], dropped: int) -> None:
        """Account for a committed transaction (after COMMIT returned; executor thread: the loop sets ``data``)."""
        self.received += sum(n for n in appended if isinstance(n, int))
        self.dropped_full += dropped
        if dropped and not self._full_incident:
            self._full_incident = True
            _LOGGER.warning(
                "buffer %s: the event queue is full (%d events, %d bytes; limits %d, %d): %s (policy %s)",
                self._path,
                self.count,
                self.bytes,
                self.max_events,
                self.max_bytes,
                "dropping the oldest events" if self.policy == "drop-oldest" else "dropping new events",
                self.policy,
            )
        elif (
            not dropped
            and self._full_incident
            and self.count < self.max_events * 0.9
            and self.bytes < self.max_bytes * 0.9
        ):
            self._full_incident = False
            _LOGGER.info("buffer %s: the event queue has room again", self._path)

    def _fitting_prefix(self, rows: list[Row]) -> list[Row]:
        room_n = self.max_events - self.count
        room_b = self.max_bytes - self.bytes
        total = 0
        for i, (_, size) in enumerate(rows):
            if i >= room_n or total + size > room_b:
                return rows[:i]
            total += size
        return rows

    def _trim_oldest(self, conn: sqlite3.Connection) -> int:
        excess_n = self.count - self.max_events
        excess_b = self.bytes - self.max_bytes
        freed = n = 0
        last = None
        cur = conn.execute("SELECT id, size FROM events ORDER BY id")
        try:
            for row_id, size in cur:
                if n >= excess_n and freed >= excess_b:
                    break
                freed += size
                n += 1
                last = row_id
        finally:
            cur.close()
        if last is not None:
            conn.execute("DELETE FROM events WHERE id <= ?", (last,))
            self.count -= n
            self.bytes -= freed
        return n


__all__ = ["BATCH_PREFIX", "EventBatch", "EventQueue", "encode_rows"]
