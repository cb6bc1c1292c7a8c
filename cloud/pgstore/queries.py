"""Reads from PostgreSQL with the SQLite store's orders and pages: readings, rollup buckets, gateways."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from cloud.pgstore.sqltext import page_where
from cloud.rollups import WIDTH_US, Bucket, RollupQuery, fold, table_name
from cloud.store import GatewayRow, ReadingQuery, ReadingRow

Cursor = psycopg.AsyncCursor[tuple[Any, ...]]
_COLUMNS = "bucket_us, vmin, vmax, vsum, n, vlast, last_us"


async def readings(cur: Cursor, q: ReadingQuery) -> list[ReadingRow]:
    """A page of readings in (ts, tenant, gateway, sensor, metric) order."""
    where, args = page_where(
        (("tenant", q.tenant), ("gateway", q.gateway), ("sensor", q.sensor), ("metric", q.metric)),
        since_us=q.since_us,
        until_us=q.until_us,
        after_columns="ts_us, tenant, gateway, sensor, metric",
        after=q.after,
    )
    await cur.execute(
        "SELECT tenant, gateway, sensor, metric, ts_us, vnum, vbool, vstr, unit FROM readings"
        + where
        + " ORDER BY ts_us, tenant, gateway, sensor, metric LIMIT %s",
        [*args, q.limit],
    )
    return [
        ReadingRow(t, g, s, m, ts, num if num is not None else flag if flag is not None else text, u)
        for t, g, s, m, ts, num, flag, text, u in await cur.fetchall()
    ]


async def rollups(cur: Cursor, q: RollupQuery) -> list[Bucket]:
    """The buckets of ``q`` in time order, those of several gateways folded into one (as the SQLite store does)."""
    where = ["sensor = %s", "metric = %s"]
    args: list[object] = [q.sensor, q.metric]
    for column, value in (("tenant", q.tenant), ("gateway", q.gateway)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if q.since_us is not None:
        # A bucket that starts before ``since`` but holds readings after it is part of the range.
        where.append("bucket_us > %s")
        args.append(q.since_us - WIDTH_US[q.resolution])
    if q.until_us is not None:
        where.append("bucket_us < %s")
        args.append(q.until_us)
    if q.after_us is not None:
        where.append("bucket_us > %s")
        args.append(q.after_us)
    source = f"FROM {table_name(q.resolution)} WHERE {' AND '.join(where)}"
    if q.gateway is not None and q.tenant is not None:  # one series: its rows are its buckets
        await cur.execute(f"SELECT {_COLUMNS} {source} ORDER BY bucket_us LIMIT %s", [*args, q.limit])
        return [Bucket(*row) for row in await cur.fetchall()]
    # Usually one gateway measures a sensor: read one row more than asked; if no two rows share a bucket, the
    # first ``limit`` are complete buckets (any other row of them would sort before the extra one).
    await cur.execute(f"SELECT {_COLUMNS} {source} ORDER BY bucket_us, gateway LIMIT %s", [*args, q.limit + 1])
    rows = await cur.fetchall()
    if len(rows) <= q.limit or len({r[0] for r in rows}) == len(rows):
        return fold(rows, q.limit)
    # Several gateways: fold the buckets in the database, to stop at ``limit`` of them.
    await cur.execute(
        "SELECT bucket_us, min(vmin), max(vmax), sum(vsum), sum(n)::bigint,"
        f" (array_agg(vlast ORDER BY last_us DESC, gateway))[1], max(last_us) {source}"
        " GROUP BY bucket_us ORDER BY bucket_us LIMIT %s",
        [*args, q.limit],
    )
    return [Bucket(*row) for row in await cur.fetchall()]


async def gateways(cur: Cursor, tenant: str | None) -> list[GatewayRow]:
    """Every gateway (of one tenant), in (tenant, id) order."""
    await cur.execute(
        "SELECT tenant, id, online, last_seen, health, readings, duplicates, packs, rejected, events FROM gateways"
        + (" WHERE tenant = %s" if tenant is not None else "")
        + " ORDER BY tenant, id",
        [tenant] if tenant is not None else [],
    )
    out = []
    for t, i, online, last_seen, health, n, dups, packs, rejected, events in await cur.fetchall():
        counters = {"readings": n, "duplicates": dups, "packs": packs, "rejected_packs": rejected, "events": events}
        out.append(GatewayRow(t, i, bool(online), last_seen, json.loads(health) if health else None, counters))
    return out
