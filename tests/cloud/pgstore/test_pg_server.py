"""The PostgreSQL test server itself: it answers, each test gets a database of its own, fsync is on."""

from __future__ import annotations

import psycopg
import pytest

from tests.pg import PgServer, needs_postgres

pytestmark = needs_postgres


def test_fresh_database_answers_with_fsync_on(pg_server: PgServer, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT current_database(), current_setting('fsync'), version()").fetchone()
    assert row is not None
    assert row[0].startswith("test_") and row[0] != "roost"
    assert row[1] == "on"
    assert "PostgreSQL 15" in row[2]
    assert pg_dsn.startswith("postgresql://roost@127.0.0.1:")
    assert 1.0 < pg_server.rss_mb() < 2000.0


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_an_empty_database(pg_dsn: str, run: int) -> None:
    with psycopg.connect(pg_dsn) as conn:
        count = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        conn.execute("CREATE TABLE left_behind (x int)")  # the next test must not see it
    assert count == (0,)
