"""pytest fixtures for a real PostgreSQL server (registered in tests/conftest.py).

``pg_server`` is one server for the whole session (it starts in about a second); ``pg_dsn`` is a fresh, empty
database on it for each test, dropped afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PgServer, postgres_missing

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A PostgreSQL 15 server on 127.0.0.1 for the session (skips the test when PostgreSQL is not installed)."""
    missing = postgres_missing()
    if missing is not None:
        pytest.skip(missing)
    server = PgServer(Path(tmp_path_factory.mktemp("pg")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """The DSN of a fresh database of this test's own."""
    name = f"test_{next(_numbers)}"
    dsn = pg_server.create_database(name)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)
