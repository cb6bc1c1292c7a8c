"""The cloud's store: SQLite in WAL mode with ``synchronous=FULL``; one writer thread, one reader thread.

Readings are keyed by (tenant, gateway, sensor, metric, ts in µs) and inserted with ``INSERT OR IGNORE``, so
a pack sent again is stored once; numeric readings are also folded into 1-minute and 1-hour rollups
in the same transaction (:mod:`cloud.rollups`). A commit returns only once SQLite has fsynced it: the ingest
acknowledges batches to gateways after that. Events (and the alert states they drive) are stored in the same commits,
once per (tenant, gateway, event id): :mod:`cloud.eventstore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cloud import eventstore, rollups
from cloud.errors import SchemaTooNew, StoreError
from cloud.eventstore import AlertQuery, AlertRow, EventQuery, EventRow
from cloud.pagequery import page_where
from cloud.retention import KINDS, RetentionPolicy, RetentionReport
from cloud.rollups import Bucket, RollupQuery
from wire.events import Event
from wire.reading import Reading, Value

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
RETENTION_BATCH = 5000
"""Rows one retention DELETE removes at most: a commit waits for one batch, never for the whole run."""
_RETENTION_TABLES = {
    "raw": ("readings", "ts_us", "tenant, gateway, sensor, metric, ts_us"),
    "1m": ("rollups_1m", "bucket_us", "tenant, sensor, metric, gateway, bucket_us"),
    "1h": ("rollups_1h", "bucket_us", "tenant, sensor, metric, gateway, bucket_us"),
}

SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE readings (
    tenant  TEXT NOT NULL,
    gateway TEXT NOT NULL,
    sensor  TEXT NOT NULL,
    metric  TEXT NOT NULL,
    ts_us   INTEGER NOT NULL,
    value   NOT NULL,  -- no declared type: REAL numbers, INTEGER 0/1 booleans, TEXT strings keep their kind
    unit    TEXT,
    PRIMARY KEY (tenant, gateway, sensor, metric, ts_us)
) WITHOUT ROWID;
CREATE INDEX readings_by_time ON readings (ts_us, tenant, gateway, sensor, metric);
CREATE TABLE gateways (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    online     INTEGER NOT NULL DEFAULT 0,
    last_seen  REAL,
    health     TEXT,
    readings   INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    packs      INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0,
    events     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);
"""
# Schema 1 kept event payloads as received in a table ``events``; schema 2 keeps it, renamed, and decodes events.
_MIGRATE_1_TO_2 = "ALTER TABLE events RENAME TO event_payloads_v1;" + eventstore.SCHEMA
_UPSERT_GATEWAY = """
INSERT INTO gateways (tenant, id, last_seen, readings, duplicates, packs, rejected, events)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant, id) DO UPDATE SET
    last_seen = max(coalesce(last_seen, 0), excluded.last_seen),
    readings = readings + excluded.readings, duplicates = duplicates + excluded.duplicates,
    packs = packs + excluded.packs, rejected = rejected + excluded.rejected, events = events + excluded.events
"""


@dataclass(frozen=True, slots=True)
class PackWrite:
    """One telemetry pack to store (``rejected``: nothing to store, count it against its gateway)."""

    tenant: str
    gateway: str
    readings: Sequence[Reading]
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One event pack to store, each event once by id (``rejected``: nothing to store, count it)."""

    tenant: str
    gateway: str
    events: Sequence[Event]
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """A stored reading."""

    tenant: str
    gateway: str
    sensor: str
    metric: str
    ts_us: int
    value: Value
    unit: str | None


@dataclass(frozen=True, slots=True)
class GatewayRow:
    """A gateway as the store knows it."""

    tenant: str
    id: str
    online: bool
    last_seen: float | None
    health: dict[str, Any] | None
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingQuery:
    """A page of readings: filters, a time range [since, until) in µs, and the key of the last row seen."""

    tenant: str | None = None
    gateway: str | None = None
    sensor: str | None = None
    metric: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    after: tuple[int, str, str, str, str] | None = None
    """(ts_us, tenant, gateway, sensor, metric) of the last row of the previous page."""
    limit: int = 1000


class Store:
    """The SQLite store; blocking work runs on its own writer and reader threads."""

    def __init__(self, path: Path, *, rollups_enabled: bool = True) -> None:
        self.path = path
        self.rollups_enabled = rollups_enabled
        """False: numeric readings are not folded into rollups (bench/ingest_rollups.py's baseline)."""
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-store-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-store-reader")
        self._local = threading.local()

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # -- connections (each lives on its own thread) --------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
            self._local.conn = conn
        return conn

    def _close_conn(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(self.path, version, SCHEMA_VERSION)
        if version < SCHEMA_VERSION:
            script = _SCHEMA + eventstore.SCHEMA if version == 0 else _MIGRATE_1_TO_2 if version == 1 else ""
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                # Schema 3 adds the rollups, computed from the readings already stored.
                rollups.create(conn, backfill=version > 0)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            verb = "created" if version == 0 else f"migrated from schema {version}"
            _LOGGER.info("%s the store at %s (schema %d)", verb, self.path, SCHEMA_VERSION)
        # Retention deletes old buckets by time (made here, not by a schema version: the file stays readable by
        # the version before).
        for table in ("rollups_1m", "rollups_1h"):
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_by_bucket ON {table} (bucket_us)")
        # Nobody is connected to a broker that has just started.
        conn.execute("UPDATE gateways SET online = 0 WHERE online != 0")

    async def open(self) -> None:
        """Open (and create or migrate) the database."""
        try:
            await self._on(self._writer, self._migrate)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    async def close(self) -> None:
        """Close both connections and stop the threads."""
        for pool in (self._writer, self._reader):
            with contextlib.suppress(RuntimeError):  # already shut down
                await self._on(pool, self._close_conn)
            pool.shutdown(wait=False)

    # -- writes --------------------------------------------------------------------------------------------------

    def _commit(
        self, packs: Sequence[PackWrite], events: Sequence[EventWrite], now: float
    ) -> tuple[list[int], list[int]]:
        conn = self._conn()
        inserted: list[int] = []
        new_events: list[int] = []
        per_gw: dict[tuple[str, str], list[int]] = {}
        folds = rollups.Folds() if self.rollups_enabled else None
        conn.execute("BEGIN IMMEDIATE")
        try:
            for pack in packs:
                n = rollups.insert(conn, pack.tenant, pack.gateway, pack.readings, folds)
                inserted.append(n)
                c = per_gw.setdefault((pack.tenant, pack.gateway), [0, 0, 0, 0, 0])
                c[0] += n
                c[1] += len(pack.readings) - n
                c[2] += 0 if pack.rejected else 1
                c[3] += 1 if pack.rejected else 0
            for ev in events:
                n = eventstore.insert(conn, ev.tenant, ev.gateway, ev.events, now)
                new_events.append(n)
                c = per_gw.setdefault((ev.tenant, ev.gateway), [0, 0, 0, 0, 0])
                c[3] += 1 if ev.rejected else 0
                c[4] += n
            if folds is not None:
                folds.write(conn)
            conn.executemany(_UPSERT_GATEWAY, [(t, g, now, *c) for (t, g), c in per_gw.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inserted, new_events

    async def commit(self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = (), *, now: float) -> list[int]:
        """Store packs and events in one durable transaction; the number of new readings per pack."""
        return (await self.commit_all(packs, events, now=now))[0]

    async def commit_all(
        self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = (), *, now: float
    ) -> tuple[list[int], list[int]]:
        """Store packs and event packs in one durable transaction; new readings per pack, new events per event pack."""
        try:
            return await self._on(self._writer, self._commit, packs, events, now)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: commit failed: {exc}") from exc

    def _gateway_update(self, tenant: str, gateway: str, column: str, value: Any, now: float) -> None:
        assert column in ("online", "health")  # never from input
        self._conn().execute(
            f"INSERT INTO gateways (tenant, id, last_seen, {column}) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, id)"
            f" DO UPDATE SET {column} = excluded.{column}, last_seen = max(coalesce(last_seen, 0), excluded.last_seen)",
            (tenant, gateway, now, value),
        )

    async def set_online(self, tenant: str, gateway: str, online: bool, *, now: float) -> None:
        """Record a gateway's presence."""
        await self._write(self._gateway_update, tenant, gateway, "online", int(online), now)

    async def set_health(self, tenant: str, gateway: str, health: dict[str, Any], *, now: float) -> None:
        """Record a gateway's latest health report."""
        await self._write(self._gateway_update, tenant, gateway, "health", json.dumps(health), now)

    async def _write(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            await self._on(self._writer, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: write failed: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------------------------------

    def _readings(self, q: ReadingQuery) -> list[ReadingRow]:
        # Unless it names a gateway and a sensor, the primary key narrows a query only to a tenant or a gateway,
        # and SQLite would sort all of their rows for every page (0.14 s a page at a million rows): "+column" keeps
        # it off that key, so the time index gives the order and the scan stops at the page's end (3 ms).
        off = "" if q.gateway is not None and q.sensor is not None else "+"
        where, args = page_where(
            (
                (off + "tenant", q.tenant),
                (off + "gateway", q.gateway),
                ("sensor", q.sensor),
                ("metric", q.metric),
            ),
            since_us=q.since_us,
            until_us=q.until_us,
            after_columns="ts_us, tenant, gateway, sensor, metric",
            after=q.after,
        )
        sql = (
            "SELECT tenant, gateway, sensor, metric, ts_us, value, unit FROM readings"
            + where
            + " ORDER BY ts_us, tenant, gateway, sensor, metric LIMIT ?"
        )
        rows = self._conn().execute(sql, [*args, q.limit]).fetchall()
        return [ReadingRow(t, g, s, m, ts, bool(v) if isinstance(v, int) else v, u) for t, g, s, m, ts, v, u in rows]

    async def readings(self, query: ReadingQuery) -> list[ReadingRow]:
        """A page of readings in (ts, tenant, gateway, sensor, metric) order."""
        try:
            return await self._on(self._reader, self._readings, query)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    async def rollups(self, query: RollupQuery) -> list[Bucket]:
        """A page of rollup buckets of one series, in time order."""
        try:
            return await self._on(self._reader, lambda: rollups.select(self._conn(), query))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    def _gateways(self, tenant: str | None) -> list[GatewayRow]:
        sql = (
            "SELECT tenant, id, online, last_seen, health, readings, duplicates, packs, rejected, events"
            " FROM gateways" + (" WHERE tenant = ?" if tenant is not None else "") + " ORDER BY tenant, id"
        )
        out = []
        for t, i, online, last_seen, health, readings, dups, packs, rejected, events in self._conn().execute(
            sql, [tenant] if tenant is not None else []
        ):
            counters = {
                "readings": readings,
                "duplicates": dups,
                "packs": packs,
                "rejected_packs": rejected,
                "events": events,
            }
            out.append(GatewayRow(t, i, bool(online), last_seen, json.loads(health) if health else None, counters))
        return out

    async def events(self, query: EventQuery) -> list[EventRow]:
        """A page of events in (ts, tenant, gateway, id) order."""
        try:
            return await self._on(self._reader, lambda: eventstore.select_events(self._conn(), query))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    async def alerts(self, query: AlertQuery) -> list[AlertRow]:
        """Alert states, newest change first."""
        try:
            return await self._on(self._reader, lambda: eventstore.select_alerts(self._conn(), query))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    async def acknowledge_alert(
        self, tenant: str, gateway: str | None, key: str, *, by: str, at: float
    ) -> list[AlertRow]:
        """Record an operator's acknowledgement; the alerts matched (changed only when exactly one matched)."""

        def job() -> list[AlertRow]:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = eventstore.acknowledge(conn, tenant, gateway, key, by=by, at=at)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return rows

        try:
            return await self._on(self._writer, job)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: write failed: {exc}") from exc

    async def gateways(self, tenant: str | None = None) -> list[GatewayRow]:
        """Every gateway the store knows (of one tenant)."""
        try:
            return await self._on(self._reader, self._gateways, tenant)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    async def ping(self) -> bool:
        """Whether the store answers a query."""
        try:
            await self._on(self._reader, lambda: self._conn().execute("SELECT 1").fetchone())
        except (sqlite3.Error, StoreError, RuntimeError):
            return False
        return True

    # -- retention -------------------------------------------------------------------------------------------------

    def _delete_batch(self, table: str, tenant: str | None, excluded: tuple[str, ...], cutoff: int) -> int:
        _, column, key = next(t for t in _RETENTION_TABLES.values() if t[0] == table)
        where = f"{column} < ?"
        args: list[object] = [cutoff]
        if tenant is not None:
            where += " AND tenant = ?"
            args.append(tenant)
        elif excluded:
            where += f" AND tenant NOT IN ({', '.join('?' * len(excluded))})"
            args += excluded
        cur = self._conn().execute(
            f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
            [*args, RETENTION_BATCH],
        )
        return cur.rowcount

    async def apply_retention(self, policy: RetentionPolicy, *, now: float) -> RetentionReport:
        """Delete what ``policy`` no longer keeps, in batches of :data:`RETENTION_BATCH` rows (one commit each)."""
        report = RetentionReport()
        try:
            for kind in KINDS:
                table = _RETENTION_TABLES[kind][0]
                total = 0
                for tenant, excluded, cutoff in policy.cutoffs(kind, now=now).deletes():
                    while True:
                        n = await self._on(self._writer, self._delete_batch, table, tenant, excluded, cutoff)
                        total += n
                        if n < RETENTION_BATCH:
                            break
                report.deleted[table] = total
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: retention failed: {exc}") from exc
        return report

    async def maintain(self, *, now: float) -> None:
        """Nothing to prepare ahead in SQLite (PostgreSQL makes partitions here)."""
