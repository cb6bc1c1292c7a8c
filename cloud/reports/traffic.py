"""What the cloud received from each gateway per UTC day: bytes, messages, and the 5-minute slots it was heard in.

The ingest calls :meth:`Traffic.add` for every publish on a gateway's topics (telemetry, events, health,
status, state, command results, token requests; a pack sent again counts again: these are bytes *received*,
not stored). Counts are summed in memory and written every ``flush_s`` seconds (and on close) to a small
table of their own, ``traffic.sqlite`` beside the store: the store interface has no place for them. With
several ingest workers each would need its own file; the reports read one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from wire.topics import Topic

_LOGGER = logging.getLogger(__name__)

FROM_GATEWAY = frozenset({"telemetry", "events", "health", "status", "state", "cmd-result", "token"})
SLOT_S = 300
SLOTS_PER_DAY = 86_400 // SLOT_S
_SCHEMA = """
CREATE TABLE IF NOT EXISTS traffic (
    tenant   TEXT NOT NULL,
    gateway  TEXT NOT NULL,
    day      TEXT NOT NULL,
    bytes    INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    slots    BLOB NOT NULL,
    PRIMARY KEY (tenant, gateway, day)
) WITHOUT ROWID
"""


@dataclass(frozen=True, slots=True)
class DayTraffic:
    """One gateway's traffic of one day: bytes and messages received, and the slots it was heard in."""

    bytes: int
    messages: int
    slots: frozenset[int]


@dataclass(slots=True)
class _Count:
    bytes: int = 0
    messages: int = 0
    slots: set[int] = field(default_factory=set)

    def merge(self, other: _Count) -> None:
        self.bytes += other.bytes
        self.messages += other.messages
        self.slots |= other.slots


def _pack(slots: set[int]) -> bytes:
    bits = bytearray(SLOTS_PER_DAY // 8)
    for s in slots:
        bits[s // 8] |= 1 << (s % 8)
    return bytes(bits)


def _unpack(blob: bytes) -> frozenset[int]:
    return frozenset(i for i in range(min(len(blob) * 8, SLOTS_PER_DAY)) if blob[i // 8] >> (i % 8) & 1)


class Traffic:
    """The per-(tenant, gateway, day) counters: summed in memory, flushed to ``path`` now and then."""

    def __init__(self, path: Path, *, flush_s: float = 10.0) -> None:
        self.path = path
        self.flush_s = flush_s
        self._pending: dict[tuple[str, str, str], _Count] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, tenant: str, gateway: str, size: int, at: float | None = None) -> None:
        """Count one message of ``size`` bytes received now (or at ``at``); never blocks."""
        now = time.time() if at is None else at
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        entry = self._pending.get((tenant, gateway, day))
        if entry is None:
            entry = self._pending[(tenant, gateway, day)] = _Count()
        entry.bytes += size
        entry.messages += 1
        entry.slots.add(int(now % 86_400) // SLOT_S)

    def received(self, topic: Topic, size: int) -> None:
        """The ingest's hook: count a publish on a topic the gateway sends on (never what the cloud sends it)."""
        if topic.kind in FROM_GATEWAY and (topic.kind != "state" or topic.tail == "reported"):
            self.add(topic.tenant, topic.gateway, size)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        return db

    def _write(self, pending: dict[tuple[str, str, str], _Count]) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            for (tenant, gateway, day), count in pending.items():
                row = db.execute(
                    "SELECT bytes, messages, slots FROM traffic WHERE tenant = ? AND gateway = ? AND day = ?",
                    (tenant, gateway, day),
                ).fetchone()
                total = _Count(count.bytes, count.messages, set(count.slots))
                if row is not None:
                    total.merge(_Count(row[0], row[1], set(_unpack(row[2]))))
                db.execute(
                    "INSERT OR REPLACE INTO traffic VALUES (?, ?, ?, ?, ?, ?)",
                    (tenant, gateway, day, total.bytes, total.messages, _pack(total.slots)),
                )
            db.execute("COMMIT")
        finally:
            db.close()

    async def flush(self) -> None:
        """Write what was counted since the last flush."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            if pending:
                try:
                    await asyncio.to_thread(self._write, pending)
                except sqlite3.Error as exc:
                    _LOGGER.error("cannot record the traffic counters in %s: %s", self.path, exc)
                    for key, entry in pending.items():  # kept for the next flush
                        self._pending.setdefault(key, _Count()).merge(entry)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    def start(self) -> None:
        """Flush every ``flush_s`` seconds until closed."""
        self._task = asyncio.create_task(self._flush_forever(), name="traffic-flush")

    async def close(self) -> None:
        """Stop flushing, after a last flush."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    def _read(self, tenant: str, day: str) -> dict[str, DayTraffic]:
        if not self.path.exists():
            return {}
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT gateway, bytes, messages, slots FROM traffic WHERE tenant = ? AND day = ?", (tenant, day)
            ).fetchall()
        finally:
            db.close()
        return {g: DayTraffic(b, m, _unpack(s)) for g, b, m, s in rows}

    async def day(self, tenant: str, day: str) -> dict[str, DayTraffic]:
        """Each gateway's traffic of a tenant on ``day`` (YYYY-MM-DD), by gateway id (what is flushed)."""
        return await asyncio.to_thread(self._read, tenant, day)
