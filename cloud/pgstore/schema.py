"""The PostgreSQL schema and its version: tables, indexes, and the migration that creates them.

Text keys use the ``C`` collation, so rows sort byte by byte as in SQLite and pages of both stores are equal.
``readings`` and ``rollups_1m`` are partitioned by time (:mod:`cloud.pgstore.partitions` adds the partitions);
``rollups_1h`` is small (one row per series and hour) and is not.
"""

from __future__ import annotations

import psycopg

from cloud.errors import SchemaTooNew

SCHEMA_VERSION = 1

_KEY = 'TEXT COLLATE "C" NOT NULL'


def _rollup_table(name: str, partitioned: bool) -> str:
    return f"""CREATE TABLE {name} (
    tenant    {_KEY},
    sensor    {_KEY},
    metric    {_KEY},
    gateway   {_KEY},
    bucket_us BIGINT NOT NULL,
    vmin      DOUBLE PRECISION NOT NULL,
    vmax      DOUBLE PRECISION NOT NULL,
    vsum      DOUBLE PRECISION NOT NULL,
    n         BIGINT NOT NULL,
    vlast     DOUBLE PRECISION NOT NULL,
    last_us   BIGINT NOT NULL,
    PRIMARY KEY (tenant, sensor, metric, gateway, bucket_us)
){" PARTITION BY RANGE (bucket_us)" if partitioned else ""}"""


STATEMENTS: tuple[str, ...] = (
    # A reading's value is in exactly one of vnum (numbers), vbool (booleans), vstr (strings): it keeps its kind.
    # The primary key is the one B-tree: it makes a reading unique and finds a sensor's readings (a second B-tree
    # on the sensor cost a quarter of the ingest rate); the BRIN index on the time finds a time range.
    f"""CREATE TABLE readings (
    tenant  {_KEY},
    gateway {_KEY},
    sensor  {_KEY},
    metric  {_KEY},
    ts_us   BIGINT NOT NULL,
    vnum    DOUBLE PRECISION,
    vbool   BOOLEAN,
    vstr    TEXT,
    unit    TEXT,
    PRIMARY KEY (tenant, sensor, metric, gateway, ts_us),
    CHECK (num_nonnulls(vnum, vbool, vstr) = 1)
) PARTITION BY RANGE (ts_us)""",
    "CREATE INDEX readings_time_brin ON readings USING brin (ts_us)",
    _rollup_table("rollups_1m", partitioned=True),
    _rollup_table("rollups_1h", partitioned=False),
    "CREATE INDEX rollups_1h_by_bucket ON rollups_1h (bucket_us)",
    f"""CREATE TABLE gateways (
    tenant     {_KEY},
    id         {_KEY},
    online     BOOLEAN NOT NULL DEFAULT false,
    last_seen  DOUBLE PRECISION,
    health     TEXT,
    readings   BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    packs      BIGINT NOT NULL DEFAULT 0,
    rejected   BIGINT NOT NULL DEFAULT 0,
    events     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
)""",
    # Event and alert values are JSON: a number, true/false or a string comes back as what it was.
    f"""CREATE TABLE events (
    tenant   {_KEY},
    gateway  {_KEY},
    id       {_KEY},
    kind     TEXT NOT NULL,
    ts_us    BIGINT NOT NULL,
    key      TEXT NOT NULL,
    rule     TEXT,
    state    TEXT,
    severity TEXT,
    message  TEXT NOT NULL,
    sensor   TEXT,
    metric   TEXT,
    value    JSONB,
    data     TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, gateway, id)
)""",
    "CREATE INDEX events_by_time ON events (ts_us, tenant, gateway, id)",
    f"""CREATE TABLE alerts (
    tenant          {_KEY},
    gateway         {_KEY},
    key             {_KEY},
    state           TEXT NOT NULL,
    severity        TEXT NOT NULL,
    message         TEXT NOT NULL,
    rule            TEXT,
    sensor          TEXT,
    metric          TEXT,
    value           JSONB,
    first_raised_us BIGINT,
    last_change_us  BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    raises          BIGINT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at DOUBLE PRECISION,
    PRIMARY KEY (tenant, gateway, key)
)""",
    "CREATE INDEX alerts_by_change ON alerts (tenant, last_change_us)",
)

_LOCK = 0x526F6F7374  # pg_advisory_xact_lock key: one migration at a time across workers


async def migrate(conn: psycopg.AsyncConnection[tuple[object, ...]], shown_dsn: str) -> int | None:
    """Create the schema if the database has none; the version found before (None: created now).

    Raises SchemaTooNew when a newer Roost wrote the database.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        cur = await conn.execute("SELECT max(version) FROM schema_version")
        row = await cur.fetchone()
        version = row[0] if row is not None else None
        if version is not None and int(str(version)) > SCHEMA_VERSION:
            raise SchemaTooNew(shown_dsn, int(str(version)), SCHEMA_VERSION)
        if version is None:
            for statement in STATEMENTS:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            return None
        return int(str(version))
