"""The store's connections: one writer (commits are serialized, as in SQLite), a few readers, one for maintenance.

Each is an ``AsyncConnection`` in autocommit mode (transactions are explicit). A connection the server dropped
(a restart, a failover) is replaced the next time it is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


async def connect(dsn: str, *, application_name: str, timeout_s: float = 10.0) -> Conn:
    """A connection in autocommit mode, in UTC."""
    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=max(1, round(timeout_s)), application_name=application_name
    )
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


class Slot:
    """One connection used by one task at a time; re-made when it broke; ``setup`` runs on each new one."""

    def __init__(self, dsn: str, name: str, setup: Callable[[Conn], Awaitable[None]] | None = None) -> None:
        self._dsn = dsn
        self._name = name
        self._setup = setup
        self._conn: Conn | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> Conn:
        """The connection (call while holding ``lock``)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                await self._conn.close()
            conn = await connect(self._dsn, application_name=self._name)
            if self._setup is not None:
                await self._setup(conn)
            self._conn = conn
        return self._conn

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Conn]:
        async with self.lock:
            yield await self.get()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class Readers:
    """A fixed set of reader slots handed out one task at a time."""

    def __init__(self, dsn: str, size: int) -> None:
        self._slots = [Slot(dsn, f"roost-cloud-read-{i}") for i in range(size)]
        self._free: asyncio.Queue[Slot] = asyncio.Queue()
        for slot in self._slots:
            self._free.put_nowait(slot)

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Conn]:
        slot = await self._free.get()
        try:
            async with slot.use() as conn:
                yield conn
        finally:
            self._free.put_nowait(slot)

    async def close(self) -> None:
        for slot in self._slots:
            await slot.close()
