"""The store's events and alerts: tables, writes inside the store's commit, and queries.

``events`` holds every event a gateway sent, once per (tenant, gateway, event id): a re-sent pack
changes nothing. ``alerts`` holds each alert key's current state per gateway, derived from the alert
events as they are stored: ``raised`` (open) or ``cleared``, with the first raise of the current
incident, the last change, severity and message, and an operator's acknowledgement (reset when a
cleared alert is raised again). An alert event older than the alert's last change (a late re-send)
is kept in ``events`` but does not turn the state back.

Every function here runs on one of the store's threads with that thread's connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cloud.pagequery import page_where
from wire.events import Event
from wire.reading import Value

SCHEMA = """
CREATE TABLE events (
    tenant   TEXT NOT NULL,
    gateway  TEXT NOT NULL,
    id       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    ts_us    INTEGER NOT NULL,
    key      TEXT NOT NULL,
    rule     TEXT,
    state    TEXT,
    severity TEXT,
    message  TEXT NOT NULL,
    sensor   TEXT,
    metric   TEXT,
    value,
    data     TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (tenant, gateway, id)
) WITHOUT ROWID;
CREATE INDEX events_by_time ON events (ts_us, tenant, gateway, id);
CREATE TABLE alerts (
    tenant          TEXT NOT NULL,
    gateway         TEXT NOT NULL,
    key             TEXT NOT NULL,
    state           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    rule            TEXT,
    sensor          TEXT,
    metric          TEXT,
    value,
    first_raised_us INTEGER,
    last_change_us  INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    raises          INTEGER NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    PRIMARY KEY (tenant, gateway, key)
) WITHOUT ROWID;
CREATE INDEX alerts_by_change ON alerts (tenant, last_change_us)
"""
"""Tables and indexes; statements separated by ';' (the store runs them one by one)."""

AlertFilter = Literal["open", "cleared", "all"]
_EVENT_COLUMNS = "tenant, gateway, id, kind, ts_us, key, rule, state, severity, message, sensor, metric, value, data"
_ALERT_COLUMNS = (
    "tenant, gateway, key, state, severity, message, rule, sensor, metric, value, first_raised_us, last_change_us,"
    " event_id, raises, acknowledged_by, acknowledged_at"
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored event."""

    tenant: str
    gateway: str
    id: str
    kind: str
    ts_us: int
    key: str
    rule: str | None
    state: str | None
    severity: str | None
    message: str
    sensor: str | None
    metric: str | None
    value: Value | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert key's current state on one gateway."""

    tenant: str
    gateway: str
    key: str
    state: str
    """``raised`` (open) or ``cleared``."""
    severity: str
    message: str
    rule: str | None
    sensor: str | None
    metric: str | None
    value: Value | None
    first_raised_us: int | None
    """When the current incident was first raised (None: only a clear was ever seen)."""
    last_change_us: int
    event_id: str
    """The event that set this state."""
    raises: int
    """Raise events stored for this key (repeats included)."""
    acknowledged_by: str | None
    acknowledged_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """A page of events: filters, a time range [since, until) in µs, and the key of the last row seen."""

    tenant: str | None = None
    gateway: str | None = None
    kind: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    after: tuple[int, str, str, str] | None = None
    """(ts_us, tenant, gateway, id) of the last row of the previous page."""
    limit: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertQuery:
    """Alerts of a tenant (or all), one gateway or all, open, cleared or all; newest change first."""

    tenant: str | None = None
    gateway: str | None = None
    state: AlertFilter = "open"
    limit: int = 1000


def _value_out(v: Any) -> Value | None:
    return bool(v) if isinstance(v, int) else v  # numbers are stored REAL: an INTEGER is a boolean


def insert(conn: sqlite3.Connection, tenant: str, gateway: str, events: Sequence[Event], now: float) -> int:
    """Store ``events`` (each id once) and update the alerts they change; how many were new."""
    new = 0
    for e in events:
        ts_us = round(e.ts * 1_000_000)
        cur = conn.execute(
            f"INSERT OR IGNORE INTO events ({_EVENT_COLUMNS}, received) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                tenant,
                gateway,
                e.id,
                e.kind,
                ts_us,
                e.key,
                e.rule,
                e.state,
                e.severity,
                e.message,
                e.sensor,
                e.metric,
                e.value,
                json.dumps(e.data, separators=(",", ":")),
                now,
            ),
        )
        if cur.rowcount == 1:
            new += 1
            if e.kind == "alert":
                _apply_alert(conn, tenant, gateway, e, ts_us)
    return new


def _apply_alert(conn: sqlite3.Connection, tenant: str, gateway: str, e: Event, ts_us: int) -> None:
    row = conn.execute(
        "SELECT state, last_change_us, first_raised_us, raises FROM alerts"
        " WHERE tenant = ? AND gateway = ? AND key = ?",
        (tenant, gateway, e.key),
    ).fetchone()
    raised = e.state == "raised"
    if row is None:
        conn.execute(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
            (
                tenant,
                gateway,
                e.key,
                e.state,
                e.severity,
                e.message,
                e.rule,
                e.sensor,
                e.metric,
                e.value,
                ts_us if raised else None,
                ts_us,
                e.id,
                1 if raised else 0,
            ),
        )
        return
    state, last_change_us, first_raised_us, raises = row
    raises += 1 if raised else 0
    if ts_us < last_change_us:  # a late re-send of an older event: history only
        conn.execute(
            "UPDATE alerts SET raises = ? WHERE tenant = ? AND gateway = ? AND key = ?",
            (raises, tenant, gateway, e.key),
        )
        return
    new_incident = raised and (state == "cleared" or first_raised_us is None)
    first = ts_us if new_incident else first_raised_us
    conn.execute(
        "UPDATE alerts SET state = ?, severity = ?, message = ?, rule = ?, sensor = ?, metric = ?, value = ?,"
        " first_raised_us = ?, last_change_us = ?, event_id = ?, raises = ?"
        + (", acknowledged_by = NULL, acknowledged_at = NULL" if new_incident else "")
        + " WHERE tenant = ? AND gateway = ? AND key = ?",
        (
            e.state,
            e.severity,
            e.message,
            e.rule,
            e.sensor,
            e.metric,
            e.value,
            first,
            ts_us,
            e.id,
            raises,
            tenant,
            gateway,
            e.key,
        ),
    )


def select_events(conn: sqlite3.Connection, q: EventQuery) -> list[EventRow]:
    """A page of events in (ts, tenant, gateway, id) order."""
    where, args = page_where(
        (("tenant", q.tenant), ("gateway", q.gateway), ("kind", q.kind)),
        since_us=q.since_us,
        until_us=q.until_us,
        after_columns="ts_us, tenant, gateway, id",
        after=q.after,
    )
    sql = f"SELECT {_EVENT_COLUMNS} FROM events" + where + " ORDER BY ts_us, tenant, gateway, id LIMIT ?"
    return [
        EventRow(t, g, i, k, ts, key, rule, st, sev, msg, s, m, _value_out(v), json.loads(d))
        for t, g, i, k, ts, key, rule, st, sev, msg, s, m, v, d in conn.execute(sql, [*args, q.limit])
    ]


def _alert(row: tuple[Any, ...]) -> AlertRow:
    values = list(row)
    values[9] = _value_out(values[9])
    return AlertRow(*values)


def select_alerts(conn: sqlite3.Connection, q: AlertQuery) -> list[AlertRow]:
    """Alerts, newest change first."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("tenant", q.tenant), ("gateway", q.gateway)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if q.state != "all":
        where.append("state = ?")
        args.append("raised" if q.state == "open" else "cleared")
    sql = (
        f"SELECT {_ALERT_COLUMNS} FROM alerts"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY last_change_us DESC, tenant, gateway, key LIMIT ?"
    )
    return [_alert(r) for r in conn.execute(sql, [*args, q.limit])]


def acknowledge(
    conn: sqlite3.Connection, tenant: str, gateway: str | None, key: str, *, by: str, at: float
) -> list[AlertRow]:
    """Mark the alert ``key`` (of ``gateway``, or of whichever gateway has it) acknowledged; the alerts matched.

    With no ``gateway`` and the key on several gateways nothing is changed and all of them are returned.
    """
    where = "tenant = ? AND key = ?" + (" AND gateway = ?" if gateway is not None else "")
    args: list[Any] = [tenant, key] + ([gateway] if gateway is not None else [])
    found = conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where}", args).fetchall()
    if len(found) != 1:
        return [_alert(r) for r in found]
    conn.execute(f"UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE {where}", [by, at, *args])
    return [_alert(r) for r in conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where}", args)]
