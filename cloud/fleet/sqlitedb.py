"""The fleet's tables in ``fleet.sqlite``: one small base for the command log, the registry and the campaigns.

Each part owns its tables (its ``SCHEMA``) in the same file: opened in WAL mode with ``synchronous=FULL``,
one connection per part, statements run one at a time on a worker thread so the event loop never waits
on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, ClassVar


class FleetTables:
    """Open, close and run statements on a part's tables; subclasses set ``SCHEMA`` and ``WHAT``."""

    SCHEMA: ClassVar[str] = ""
    WHAT: ClassVar[str] = "the fleet tables"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open (or create) the tables."""

        def _open() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(self.SCHEMA)
            return db

        self._db = await asyncio.to_thread(_open)

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self._db
        if db is None:
            raise RuntimeError(f"{self.WHAT} are not open")
        async with self._lock:
            return await asyncio.to_thread(lambda: db.execute(sql, params).fetchall())
