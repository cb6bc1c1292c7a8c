"""The PostgreSQL store: the same :class:`cloud.store_api.ReadingStore` as SQLite, for a cloud past one machine.

Readings and their 1-minute rollups live in tables partitioned by time (declarative RANGE partitions, created ahead
of time and on demand), batches are copied into a staging table and inserted once each with ``ON CONFLICT DO
NOTHING``, and the new numbers are folded into the rollups in the same transaction. docs/storage.md describes it.
"""

from cloud.pgstore.store import PgStore

__all__ = ["PgStore"]
