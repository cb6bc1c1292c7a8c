"""The store the config asks for: SQLite (``[store] backend = "sqlite"``, the default) or PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloud.config import CloudConfig
from cloud.errors import StoreError
from cloud.store import Store

if TYPE_CHECKING:
    from cloud.pgstore import PgStore


def make_store(config: CloudConfig) -> Store | PgStore:
    """A new, unopened store for ``config.store``."""
    section = config.store
    if section.backend == "sqlite":
        return Store(section.path)
    try:
        dsn = section.postgresql_dsn()
    except OSError as exc:
        raise StoreError(f"{section.dsn_file}: cannot read the PostgreSQL connection string: {exc.strerror}") from exc
    if not dsn:
        raise StoreError(f"{section.dsn_file}: the PostgreSQL connection string file is empty")
    from cloud.pgstore import PgStore  # psycopg (about 23 MB): loaded only by a cloud that uses PostgreSQL

    return PgStore(
        dsn,
        partition_days=section.partition_days,
        partitions_ahead=section.partitions_ahead,
        read_connections=section.read_connections,
    )
