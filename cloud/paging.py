"""Cursor paging of the API's lists (docs/api.md, "Paging").

Every list answers ``{"items": [...], "next_cursor": "..." | null}``; the client passes ``next_cursor`` back
as ``cursor`` for the next page and stops at null. A cursor is opaque. Readings and events page by their
ordering key (cloud/pagequery.py); the other lists, short and newest first, page by position with
:func:`position_page` (a page may then repeat or skip an item that was added or removed meanwhile).

A router declares its parameters as ``cursor: CursorQuery = None`` and ``limit: Annotated[int,
limit_query(100, 1000)] = 100`` and answers ``{"items": page, "next_cursor": next_cursor}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

from cloud.errors import ApiError

T = TypeVar("T")

MAX_POSITION = 1_000_000
"""How deep a positional cursor may go."""

_TAG = "p"

CursorQuery = Annotated[
    str | None,
    Query(max_length=512, description="The previous page's next_cursor (leave out for the first page)"),
]


def limit_query(default: int, maximum: int) -> Any:
    """The ``limit`` parameter of a list: at least 1, at most ``maximum``."""
    return Query(ge=1, le=maximum, description=f"Items per page (at most {maximum}, default {default})")


def encode_position(position: int) -> str:
    """The cursor of the page that starts at ``position``."""
    raw = json.dumps([_TAG, position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str | None) -> int:
    """Where the page a cursor names starts (0 without one); ApiError(400) when it is not ours."""
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != _TAG
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
        or not 0 <= value[1] <= MAX_POSITION
    ):
        raise ApiError(400, "cursor is not valid: pass the next_cursor of the previous page", parameter="cursor")
    return value[1]


def position_page(items: Sequence[T], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """The page of ``items`` (the whole list) that ``cursor`` names, and the next page's cursor or None."""
    start = decode_position(cursor)
    page = list(items[start : start + limit])
    return page, encode_position(start + limit) if len(items) > start + limit else None


async def fetch_page(
    fetch: Callable[[int], Awaitable[Sequence[T]]], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """Like :func:`position_page` over a store that answers its first ``n`` items with ``await fetch(n)``."""
    start = decode_position(cursor)
    return position_page(await fetch(start + limit + 1), cursor, limit)


def page_body(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    """A list's answer."""
    return {"items": items, "next_cursor": next_cursor}
