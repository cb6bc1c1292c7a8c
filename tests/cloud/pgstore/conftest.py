"""Both stores behind one fixture: the contract tests run against SQLite and against a real PostgreSQL 15."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.pgstore import PgStore
from cloud.store import Store
from tests.pg import postgres_missing

AnyStore = Store | PgStore


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open, empty store of each back end."""
    s: AnyStore
    if request.param == "sqlite":
        s = Store(tmp_path / "cloud.sqlite")
    else:
        missing = postgres_missing()
        if missing is not None:
            pytest.skip(missing)
        s = PgStore(request.getfixturevalue("pg_dsn"), partition_days=1, partitions_ahead=1, read_connections=2)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def both(tmp_path: Path, pg_dsn: str) -> AsyncIterator[tuple[Store, PgStore]]:
    """One open store of each back end, to compare their answers."""
    lite = Store(tmp_path / "cloud.sqlite")
    pg = PgStore(pg_dsn, partition_days=1, partitions_ahead=1, read_connections=2)
    await lite.open()
    await pg.open()
    try:
        yield lite, pg
    finally:
        await lite.close()
        await pg.close()
