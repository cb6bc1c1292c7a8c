"""Connection strings as they may be shown: never with a password."""

from __future__ import annotations

from psycopg import conninfo


def shown(dsn: str) -> str:
    """``dsn`` without its password, as ``postgresql://user@host:port/db`` (for errors and logs)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except Exception:  # a DSN libpq cannot parse is never shown verbatim
        return "postgresql://<a connection string that cannot be parsed>"
    user = parts.get("user")
    host = parts.get("host") or "localhost"
    port = parts.get("port")
    db = parts.get("dbname") or user or ""
    return f"postgresql://{f'{user}@' if user else ''}{host}{f':{port}' if port else ''}/{db}"
