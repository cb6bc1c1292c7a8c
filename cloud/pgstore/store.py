"""The PostgreSQL store: :class:`cloud.store_api.ReadingStore` over psycopg 3 (docs/storage.md)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from cloud.errors import StoreError
from cloud.eventstore import AlertQuery, AlertRow, EventQuery, EventRow
from cloud.pgstore import events as pgevents
from cloud.pgstore import queries, schema, writes
from cloud.pgstore.connections import Conn, Readers, Slot
from cloud.pgstore.dsn import shown
from cloud.pgstore.partitions import ROLLUP_1M_PERIOD_DAYS, PartitionSet
from cloud.retention import KINDS, RetentionPolicy, RetentionReport
from cloud.rollups import Bucket, RollupQuery
from cloud.store import EventWrite, GatewayRow, PackWrite, ReadingQuery, ReadingRow

_LOGGER = logging.getLogger(__name__)
_UPSERT_GATEWAY = """
INSERT INTO gateways AS g (tenant, id, last_seen, readings, duplicates, packs, rejected, events)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant, id) DO UPDATE SET
    last_seen = greatest(coalesce(g.last_seen, 0), excluded.last_seen),
    readings = g.readings + excluded.readings, duplicates = g.duplicates + excluded.duplicates,
    packs = g.packs + excluded.packs, rejected = g.rejected + excluded.rejected, events = g.events + excluded.events
"""
_RETRIES = 3  # a deadlock or serialization failure between workers: the whole commit is tried again
_TABLES = {"raw": ("readings", "ts_us"), "1m": ("rollups_1m", "bucket_us"), "1h": ("rollups_1h", "bucket_us")}


class PgStore:
    """Readings, rollups, events, alert states and gateways in PostgreSQL."""

    def __init__(
        self,
        dsn: str,
        *,
        partition_days: int = 7,
        partitions_ahead: int = 4,
        read_connections: int = 4,
        rollups_enabled: bool = True,
    ) -> None:
        self.shown_dsn = shown(dsn)
        """The DSN without its password, for messages."""
        self.rollups_enabled = rollups_enabled
        self.partitions_ahead = partitions_ahead
        self.readings_partitions = PartitionSet("readings", "ts_us", partition_days)
        self.rollup_partitions = PartitionSet("rollups_1m", "bucket_us", ROLLUP_1M_PERIOD_DAYS)
        self._writer = Slot(dsn, "roost-cloud-write", setup=self._setup_writer)
        self._maintenance = Slot(dsn, "roost-cloud-maintenance")
        self._readers = Readers(dsn, read_connections)
        self.retried_commits = 0
        """Commits tried again after a deadlock with another worker or a partition dropped under this one."""
        self.drop_lock_timeout_s = 5.0
        """Longest a partition drop waits for the queries running on it (then it is left for the next run)."""

    def _error(self, what: str, exc: BaseException) -> StoreError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if detail.startswith("connection failed") or "could not connect" in detail:
            detail += " (is PostgreSQL running and reachable there? check [store] dsn or dsn_file in cloud.toml)"
        return StoreError(f"{self.shown_dsn}: {what}: {detail}")

    @staticmethod
    async def _setup_writer(conn: Conn) -> None:
        await conn.execute(writes.STAGING)

    # -- life cycle ------------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema if the database has none, make the partitions ahead of time."""
        try:
            async with self._writer.use() as conn:
                before = await schema.migrate(conn, self.shown_dsn)
                # Nobody is connected to a broker that has just started.
                await conn.execute("UPDATE gateways SET online = false WHERE online")
            if before is None:
                _LOGGER.info("created the store at %s (schema %d)", self.shown_dsn, schema.SCHEMA_VERSION)
            await self.maintain()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, psycopg.Error | OSError):
                raise self._error("cannot open the store", exc) from exc
            raise

    async def close(self) -> None:
        """Close every connection."""
        for slot in (self._writer, self._maintenance):
            await slot.close()
        await self._readers.close()

    async def maintain(self, *, now: float | None = None) -> None:
        """Make the partitions of the current period and ``partitions_ahead`` more."""
        now_us = round((time.time() if now is None else now) * 1_000_000)
        async with self._maintenance.use() as conn:
            for parts in (self.readings_partitions, self.rollup_partitions):
                await parts.load(conn)
                ahead = [now_us + i * parts.period_us for i in range(self.partitions_ahead + 1)]
                made = await parts.ensure(conn, ahead)
                if made:
                    _LOGGER.info("made partitions %s", ", ".join(made))

    # -- writes ------------------------------------------------------------------------------------------------------

    async def _ensure_partitions(self, conn: Conn, packs: Sequence[PackWrite]) -> None:
        span = writes.times(packs)
        if span is None:
            return
        lo, hi = span
        for parts in (self.readings_partitions, self.rollup_partitions):
            if parts.covers(lo) and parts.covers(hi) and lo // parts.period_us == hi // parts.period_us:
                continue
            made = await parts.ensure(conn, (r.ts_us for p in packs for r in p.readings))
            if made:
                _LOGGER.info("made partitions %s for readings outside the existing ones", ", ".join(made))

    async def _commit(
        self, conn: Conn, packs: Sequence[PackWrite], events: Sequence[EventWrite], now: float
    ) -> tuple[list[int], list[int]]:
        per_gw: dict[tuple[str, str], list[int]] = {}
        async with conn.transaction(), conn.cursor() as cur:
            inserted = await writes.insert(cur, packs, rollups=self.rollups_enabled)
            for pack, n in zip(packs, inserted, strict=True):
                c = per_gw.setdefault((pack.tenant, pack.gateway), [0, 0, 0, 0, 0])
                c[0] += n
                c[1] += len(pack.readings) - n
                c[2] += 0 if pack.rejected else 1
                c[3] += 1 if pack.rejected else 0
            new_events = []
            for ev in events:
                n = await pgevents.insert(cur, ev.tenant, ev.gateway, ev.events, now)
                new_events.append(n)
                c = per_gw.setdefault((ev.tenant, ev.gateway), [0, 0, 0, 0, 0])
                c[3] += 1 if ev.rejected else 0
                c[4] += n
            if per_gw:  # in key order, so two workers never wait for each other's rows in turn
                await cur.executemany(_UPSERT_GATEWAY, [(t, g, now, *c) for (t, g), c in sorted(per_gw.items())])
        return inserted, new_events

    async def commit(self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = (), *, now: float) -> list[int]:
        """Store packs and events in one durable transaction; the number of new readings per pack."""
        return (await self.commit_all(packs, events, now=now))[0]

    async def commit_all(
        self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = (), *, now: float
    ) -> tuple[list[int], list[int]]:
        """Store packs and event packs in one durable transaction; new readings per pack, new events per event pack."""
        try:
            async with self._writer.use() as conn:
                for attempt in range(_RETRIES + 1):
                    await self._ensure_partitions(conn, packs)
                    try:
                        return await self._commit(conn, packs, events, now)
                    except (pgerrors.DeadlockDetected, pgerrors.SerializationFailure) as exc:
                        if attempt == _RETRIES:
                            raise
                        _LOGGER.info("commit tried again after: %s", str(exc).splitlines()[0])
                    except pgerrors.CheckViolation as exc:
                        # Retention dropped a partition this worker still believed in: read them again.
                        if "no partition" not in str(exc) or attempt == _RETRIES:
                            raise
                        await self.readings_partitions.load(conn)
                        await self.rollup_partitions.load(conn)
                    self.retried_commits += 1
                raise AssertionError("unreachable")
        except (psycopg.Error, OSError) as exc:
            raise self._error("commit failed", exc) from exc

    async def _gateway_update(self, tenant: str, gateway: str, column: str, value: Any, now: float) -> None:
        assert column in ("online", "health")  # never from input
        query = sql.SQL(
            "INSERT INTO gateways AS g (tenant, id, last_seen, {c}) VALUES (%s, %s, %s, %s) ON CONFLICT (tenant, id)"
            " DO UPDATE SET {c} = excluded.{c}, last_seen = greatest(coalesce(g.last_seen, 0), excluded.last_seen)"
        ).format(c=sql.Identifier(column))
        try:
            async with self._writer.use() as conn:
                await conn.execute(query, (tenant, gateway, now, value))
        except (psycopg.Error, OSError) as exc:
            raise self._error("write failed", exc) from exc

    async def set_online(self, tenant: str, gateway: str, online: bool, *, now: float) -> None:
        """Record a gateway's presence."""
        await self._gateway_update(tenant, gateway, "online", online, now)

    async def set_health(self, tenant: str, gateway: str, health: dict[str, Any], *, now: float) -> None:
        """Record a gateway's latest health report."""
        await self._gateway_update(tenant, gateway, "health", json.dumps(health), now)

    async def acknowledge_alert(
        self, tenant: str, gateway: str | None, key: str, *, by: str, at: float
    ) -> list[AlertRow]:
        """Record an operator's acknowledgement; the alerts matched (changed only when exactly one matched)."""
        try:
            async with self._writer.use() as conn, conn.transaction(), conn.cursor() as cur:
                return await pgevents.acknowledge(cur, tenant, gateway, key, by=by, at=at)
        except (psycopg.Error, OSError) as exc:
            raise self._error("write failed", exc) from exc

    # -- reads -------------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[psycopg.AsyncCursor[tuple[Any, ...]]]:
        try:
            # Binary results: a page of 10,000 rollup buckets loads in half the time it takes as text.
            async with self._readers.use() as conn, conn.cursor(binary=True) as cur:
                yield cur
        except (psycopg.Error, OSError) as exc:
            raise self._error("query failed", exc) from exc

    async def readings(self, query: ReadingQuery) -> list[ReadingRow]:
        """A page of readings in (ts, tenant, gateway, sensor, metric) order."""
        async with self._reading() as cur:
            return await queries.readings(cur, query)

    async def rollups(self, query: RollupQuery) -> list[Bucket]:
        """A page of rollup buckets of one series, in time order."""
        async with self._reading() as cur:
            return await queries.rollups(cur, query)

    async def events(self, query: EventQuery) -> list[EventRow]:
        """A page of events in (ts, tenant, gateway, id) order."""
        async with self._reading() as cur:
            return await pgevents.select_events(cur, query)

    async def alerts(self, query: AlertQuery) -> list[AlertRow]:
        """Alert states, newest change first."""
        async with self._reading() as cur:
            return await pgevents.select_alerts(cur, query)

    async def gateways(self, tenant: str | None = None) -> list[GatewayRow]:
        """Every gateway the store knows (of one tenant)."""
        async with self._reading() as cur:
            return await queries.gateways(cur, tenant)

    async def ping(self) -> bool:
        """Whether the store answers a query."""
        try:
            async with self._reading() as cur:
                await cur.execute("SELECT 1")
                return await cur.fetchone() == (1,)
        except StoreError:
            return False

    # -- retention ---------------------------------------------------------------------------------------------------

    async def apply_retention(self, policy: RetentionPolicy, *, now: float) -> RetentionReport:
        """Drop the partitions before every tenant's cutoff, delete the older rows of the rest (docs/storage.md)."""
        report = RetentionReport()
        try:
            async with self._maintenance.use() as conn:
                for kind in KINDS:
                    table, column = _TABLES[kind]
                    cutoffs = policy.cutoffs(kind, now=now)
                    parts = {"raw": self.readings_partitions, "1m": self.rollup_partitions}.get(kind)
                    drop_before = cutoffs.drop_before()
                    if parts is not None and drop_before is not None:
                        report.dropped += await parts.drop_before(
                            conn, drop_before, lock_timeout_s=self.drop_lock_timeout_s
                        )
                    deleted = 0
                    for tenant, excluded, cutoff in cutoffs.deletes():
                        where = sql.SQL("{} < %s").format(sql.Identifier(column))
                        args: list[Any] = [cutoff]
                        if tenant is not None:
                            where += sql.SQL(" AND tenant = %s")
                            args.append(tenant)
                        elif excluded:
                            where += sql.SQL(" AND tenant <> ALL(%s)")
                            args.append(list(excluded))
                        cur = await conn.execute(
                            sql.SQL("DELETE FROM {} WHERE ").format(sql.Identifier(table)) + where, args
                        )
                        deleted += max(cur.rowcount, 0)
                    report.deleted[table] = deleted
        except (psycopg.Error, OSError) as exc:
            raise self._error("retention failed", exc) from exc
        return report
