"""Events and alert states in PostgreSQL, with the semantics of :mod:`cloud.eventstore` (read its docstring).

Values are JSONB so a number, a boolean or a string comes back as what it was. Every function runs inside the
caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.eventstore import AlertQuery, AlertRow, EventQuery, EventRow
from cloud.pgstore.sqltext import page_where
from wire.events import Event

_EVENT_COLUMNS = "tenant, gateway, id, kind, ts_us, key, rule, state, severity, message, sensor, metric, value, data"
_ALERT_COLUMNS = (
    "tenant, gateway, key, state, severity, message, rule, sensor, metric, value, first_raised_us, last_change_us,"
    " event_id, raises, acknowledged_by, acknowledged_at"
)
Cursor = psycopg.AsyncCursor[tuple[Any, ...]]


def _json(value: object) -> Jsonb | None:
    return None if value is None else Jsonb(value)


async def insert(cur: Cursor, tenant: str, gateway: str, events: Sequence[Event], now: float) -> int:
    """Store ``events`` (each id once) and update the alerts they change; how many were new."""
    new = 0
    for e in events:
        ts_us = round(e.ts * 1_000_000)
        await cur.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}, received) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (tenant, gateway, e.id, e.kind, ts_us, e.key, e.rule, e.state, e.severity, e.message, e.sensor,
             e.metric, _json(e.value), json.dumps(e.data, separators=(",", ":")), now),
        )  # fmt: skip
        if cur.rowcount == 1:
            new += 1
            if e.kind == "alert":
                await _apply_alert(cur, tenant, gateway, e, ts_us)
    return new


async def _apply_alert(cur: Cursor, tenant: str, gateway: str, e: Event, ts_us: int) -> None:
    await cur.execute(
        "SELECT state, last_change_us, first_raised_us, raises FROM alerts"
        " WHERE tenant = %s AND gateway = %s AND key = %s FOR UPDATE",
        (tenant, gateway, e.key),
    )
    row = await cur.fetchone()
    raised = e.state == "raised"
    if row is None:
        await cur.execute(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL)",
            (tenant, gateway, e.key, e.state, e.severity, e.message, e.rule, e.sensor, e.metric, _json(e.value),
             ts_us if raised else None, ts_us, e.id, 1 if raised else 0),
        )  # fmt: skip
        return
    state, last_change_us, first_raised_us, raises = row
    raises += 1 if raised else 0
    if ts_us < last_change_us:  # a late re-send of an older event: history only
        await cur.execute(
            "UPDATE alerts SET raises = %s WHERE tenant = %s AND gateway = %s AND key = %s",
            (raises, tenant, gateway, e.key),
        )
        return
    new_incident = raised and (state == "cleared" or first_raised_us is None)
    first = ts_us if new_incident else first_raised_us
    await cur.execute(
        "UPDATE alerts SET state = %s, severity = %s, message = %s, rule = %s, sensor = %s, metric = %s, value = %s,"
        " first_raised_us = %s, last_change_us = %s, event_id = %s, raises = %s"
        + (", acknowledged_by = NULL, acknowledged_at = NULL" if new_incident else "")
        + " WHERE tenant = %s AND gateway = %s AND key = %s",
        (e.state, e.severity, e.message, e.rule, e.sensor, e.metric, _json(e.value), first, ts_us, e.id, raises,
         tenant, gateway, e.key),
    )  # fmt: skip


async def select_events(cur: Cursor, q: EventQuery) -> list[EventRow]:
    """A page of events in (ts, tenant, gateway, id) order."""
    where, args = page_where(
        (("tenant", q.tenant), ("gateway", q.gateway), ("kind", q.kind)),
        since_us=q.since_us,
        until_us=q.until_us,
        after_columns="ts_us, tenant, gateway, id",
        after=q.after,
    )
    await cur.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events" + where + " ORDER BY ts_us, tenant, gateway, id LIMIT %s",
        [*args, q.limit],
    )
    return [
        EventRow(t, g, i, k, ts, key, rule, st, sev, msg, s, m, v, json.loads(d))
        for t, g, i, k, ts, key, rule, st, sev, msg, s, m, v, d in await cur.fetchall()
    ]


async def select_alerts(cur: Cursor, q: AlertQuery) -> list[AlertRow]:
    """Alerts, newest change first."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("tenant", q.tenant), ("gateway", q.gateway)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if q.state != "all":
        where.append("state = %s")
        args.append("raised" if q.state == "open" else "cleared")
    await cur.execute(
        f"SELECT {_ALERT_COLUMNS} FROM alerts"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY last_change_us DESC, tenant, gateway, key LIMIT %s",
        [*args, q.limit],
    )
    return [AlertRow(*r) for r in await cur.fetchall()]


async def acknowledge(cur: Cursor, tenant: str, gateway: str | None, key: str, *, by: str, at: float) -> list[AlertRow]:
    """Mark the alert ``key`` (of ``gateway``, or of whichever gateway has it) acknowledged; the alerts matched.

    With no ``gateway`` and the key on several gateways nothing is changed and all of them are returned.
    """
    where = "tenant = %s AND key = %s" + (" AND gateway = %s" if gateway is not None else "")
    args: list[Any] = [tenant, key] + ([gateway] if gateway is not None else [])
    await cur.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} FOR UPDATE", args)
    found = await cur.fetchall()
    if len(found) != 1:
        return [AlertRow(*r) for r in found]
    await cur.execute(f"UPDATE alerts SET acknowledged_by = %s, acknowledged_at = %s WHERE {where}", [by, at, *args])
    await cur.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where}", args)
    return [AlertRow(*r) for r in await cur.fetchall()]
