"""What the rest of the cloud asks of a store, whatever the database behind it.

Two back ends implement :class:`ReadingStore`: :class:`cloud.store.Store` (SQLite, the embedded default) and
the PostgreSQL store (``[store] backend = "postgresql"``). Writes are idempotent on (tenant, gateway, sensor,
metric, ts): a pack stored twice counts its readings once, in the readings and in the rollups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cloud.eventstore import AlertQuery, AlertRow, EventQuery, EventRow
from cloud.rollups import Bucket, RollupQuery
from cloud.store import EventWrite, GatewayRow, PackWrite, ReadingQuery, ReadingRow

__all__ = [
    "AlertQuery",
    "AlertRow",
    "Bucket",
    "EventQuery",
    "EventRow",
    "EventWrite",
    "GatewayRow",
    "PackWrite",
    "ReadingQuery",
    "ReadingRow",
    "ReadingStore",
    "RollupQuery",
]


class ReadingStore(Protocol):
    """A durable store of readings, their rollups, events, alert states and gateways."""

    async def open(self) -> None:
        """Open (and create or migrate) the database."""
        ...

    async def close(self) -> None:
        """Close the connections."""
        ...

    async def commit(self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = ..., *, now: float) -> list[int]:
        """Store packs (and events) in one durable transaction; the number of new readings per pack."""
        ...

    async def commit_all(
        self, packs: Sequence[PackWrite], events: Sequence[EventWrite] = ..., *, now: float
    ) -> tuple[list[int], list[int]]:
        """Store packs and event packs in one durable transaction; new readings per pack, new events per pack."""
        ...

    async def set_online(self, tenant: str, gateway: str, online: bool, *, now: float) -> None:
        """Record a gateway's presence."""
        ...

    async def set_health(self, tenant: str, gateway: str, health: dict[str, Any], *, now: float) -> None:
        """Record a gateway's latest health report."""
        ...

    async def readings(self, query: ReadingQuery) -> list[ReadingRow]:
        """A page of readings in (ts, tenant, gateway, sensor, metric) order."""
        ...

    async def rollups(self, query: RollupQuery) -> list[Bucket]:
        """A page of rollup buckets of one series, in time order."""
        ...

    async def events(self, query: EventQuery) -> list[EventRow]:
        """A page of events in (ts, tenant, gateway, id) order."""
        ...

    async def alerts(self, query: AlertQuery) -> list[AlertRow]:
        """Alert states, newest change first."""
        ...

    async def acknowledge_alert(
        self, tenant: str, gateway: str | None, key: str, *, by: str, at: float
    ) -> list[AlertRow]:
        """Record an operator's acknowledgement; the alerts matched."""
        ...

    async def gateways(self, tenant: str | None = None) -> list[GatewayRow]:
        """Every gateway the store knows (of one tenant)."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers a query."""
        ...
