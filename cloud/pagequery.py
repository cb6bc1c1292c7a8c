"""The WHERE clause of a time-ordered, cursor-paged query (readings and events share the shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def page_where(
    equals: Sequence[tuple[str, Any]],
    *,
    since_us: int | None,
    until_us: int | None,
    after_columns: str,
    after: Sequence[Any] | None,
) -> tuple[str, list[Any]]:
    """(`` WHERE ...`` or ``""``, its arguments): equality filters that are set, the time range, the cursor.

    ``after_columns`` is the ordering key as SQL (``ts_us, tenant, gateway, id``); ``after`` its values
    on the last row of the previous page (a row-value comparison, so the page starts just past it).
    """
    where: list[str] = []
    args: list[Any] = []
    for column, value in equals:
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since_us is not None:
        where.append("ts_us >= ?")
        args.append(since_us)
    if until_us is not None:
        where.append("ts_us < ?")
        args.append(until_us)
    if after is not None:
        where.append(f"({after_columns}) > ({', '.join('?' * len(after))})")
        args.extend(after)
    return (" WHERE " + " AND ".join(where) if where else ""), args
