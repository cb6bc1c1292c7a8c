"""The managed API's database (SQLite, WAL): applications, each tenant's plans, and per-minute usage.

Blocking: callers run it on a worker thread; one connection behind a lock. The OAuth2 client behind an
application (its secret's hash, scopes) lives in the identity database; this one holds what the managed
API adds: who registered it and its plan.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.errors import SchemaTooNew, StoreError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE applications (
    client_id TEXT PRIMARY KEY,
    tenant    TEXT NOT NULL,
    owner     TEXT NOT NULL,
    plan      TEXT NOT NULL,
    created   REAL NOT NULL,
    rotated   REAL
);
CREATE INDEX applications_by_tenant ON applications (tenant, owner);
CREATE TABLE plans (
    tenant  TEXT PRIMARY KEY,
    body    TEXT NOT NULL,
    updated REAL NOT NULL,
    by      TEXT NOT NULL
);
CREATE TABLE usage (
    minute     INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    client     TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    calls      INTEGER NOT NULL,
    errors_4xx INTEGER NOT NULL,
    errors_5xx INTEGER NOT NULL,
    throttled  INTEGER NOT NULL,
    hist       TEXT NOT NULL,
    PRIMARY KEY (tenant, minute, client, endpoint)
);
"""


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    """What the managed API keeps of an application (its OAuth2 client is in the identity database)."""

    client_id: str
    tenant: str
    owner: str
    plan: str
    created: float
    rotated: float | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One minute of one client's calls to one endpoint; ``hist`` maps a latency bin to its count."""

    minute: int
    tenant: str
    client: str
    endpoint: str
    calls: int
    errors_4xx: int
    errors_5xx: int
    throttled: int
    hist: dict[int, int]


class ManagedApiDB:
    """The database; every method is blocking and thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open, creating the schema when needed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # usage counters: losing the last commit on power loss is fine
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise SchemaTooNew(self.path, version, SCHEMA_VERSION)
            if version == 0:
                conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the managed API's database: {exc}") from exc
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the managed API's database is not open")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the managed API's database is not open")
            return self._conn.execute(sql, args).fetchall()

    # -- applications ------------------------------------------------------------------------------------------

    def add_application(self, app: ApplicationRecord) -> None:
        """Record a new application."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO applications VALUES (?, ?, ?, ?, ?, ?)",
                (app.client_id, app.tenant, app.owner, app.plan, app.created, app.rotated),
            )

    def applications(self, tenant: str | None = None) -> list[ApplicationRecord]:
        """Applications (of one tenant), oldest first."""
        rows = self._all("SELECT * FROM applications WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created", (tenant,))
        return [ApplicationRecord(*r) for r in rows]

    def set_plan(self, client_id: str, plan: str) -> bool:
        """Move an application to another plan; False when there is no such application."""
        with self._tx() as conn:
            return conn.execute("UPDATE applications SET plan = ? WHERE client_id = ?", (plan, client_id)).rowcount == 1

    def set_rotated(self, client_id: str, when: float) -> None:
        """Note when an application's secret was last replaced."""
        with self._tx() as conn:
            conn.execute("UPDATE applications SET rotated = ? WHERE client_id = ?", (when, client_id))

    def delete_application(self, client_id: str) -> bool:
        """Forget an application (its usage stays); False when there was none."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM applications WHERE client_id = ?", (client_id,)).rowcount == 1

    # -- plans -------------------------------------------------------------------------------------------------

    def plan_sets(self) -> dict[str, list[dict[str, Any]]]:
        """Every tenant's own plans (JSON objects), by tenant."""
        return {tenant: json.loads(body) for tenant, body in self._all("SELECT tenant, body FROM plans")}

    def set_plans(self, tenant: str, plans: list[dict[str, Any]], *, when: float, by: str) -> None:
        """Replace a tenant's plans."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO plans VALUES (?, ?, ?, ?)", (tenant, json.dumps(plans), when, by))

    # -- usage -------------------------------------------------------------------------------------------------

    def add_usage(self, rows: list[UsageRow]) -> None:
        """Add counted minutes to what is stored (a minute flushed twice is summed, its histograms merged)."""
        with self._tx() as conn:
            for row in rows:
                key = (row.tenant, row.minute, row.client, row.endpoint)
                old = conn.execute(
                    "SELECT calls, errors_4xx, errors_5xx, throttled, hist FROM usage"
                    " WHERE tenant = ? AND minute = ? AND client = ? AND endpoint = ?",
                    key,
                ).fetchone()
                calls, e4, e5, thr, hist = row.calls, row.errors_4xx, row.errors_5xx, row.throttled, dict(row.hist)
                if old is not None:
                    calls, e4, e5, thr = calls + old[0], e4 + old[1], e5 + old[2], thr + old[3]
                    for k, v in json.loads(old[4]).items():
                        hist[int(k)] = hist.get(int(k), 0) + v
                conn.execute(
                    "INSERT OR REPLACE INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.minute, row.tenant, row.client, row.endpoint, calls, e4, e5, thr, json.dumps(hist)),
                )

    def usage(
        self,
        tenant: str,
        *,
        clients: Sequence[str] | None,
        endpoint: str | None,
        since_minute: int | None,
        until_minute: int | None,
    ) -> list[UsageRow]:
        """Stored minutes of one tenant, filtered (``clients`` None: all), by minute."""
        sql = "SELECT * FROM usage WHERE tenant = ?"
        args: list[Any] = [tenant]
        if clients is not None:
            sql += f" AND client IN ({','.join('?' * len(clients))})" if clients else " AND 0"
            args.extend(clients)
        if endpoint is not None:
            sql += " AND endpoint = ?"
            args.append(endpoint)
        if since_minute is not None:
            sql += " AND minute >= ?"
            args.append(since_minute)
        if until_minute is not None:
            sql += " AND minute < ?"
            args.append(until_minute)
        rows = self._all(sql + " ORDER BY minute, client, endpoint LIMIT 200000", args)
        return [
            UsageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], {int(k): v for k, v in json.loads(r[8]).items()})
            for r in rows
        ]

    def purge_usage(self, before_minute: int) -> int:
        """Forget minutes older than ``before_minute``; how many rows."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM usage WHERE minute < ?", (before_minute,)).rowcount
