"""SQL text shared with the SQLite store, in psycopg's placeholder style (``%s`` for SQLite's ``?``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloud import pagequery


def placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (the SQL given holds no other ``?`` or ``%``)."""
    assert "%" not in sql, sql
    return sql.replace("?", "%s")


def page_where(
    equals: Sequence[tuple[str, Any]],
    *,
    since_us: int | None,
    until_us: int | None,
    after_columns: str,
    after: Sequence[Any] | None,
) -> tuple[str, list[Any]]:
    """:func:`cloud.pagequery.page_where` for PostgreSQL."""
    where, args = pagequery.page_where(
        equals, since_us=since_us, until_us=until_us, after_columns=after_columns, after=after
    )
    return placeholders(where), args
