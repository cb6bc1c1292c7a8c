"""The fleet registry: per gateway, the operators' tags and site, its reported and desired state; the audit trail.

Kept in ``fleet.sqlite`` beside the command table (WAL, ``synchronous=FULL``). The store keeps presence,
last contact and health (from ``status`` and ``health``); this keeps what device management adds:

- ``reported``: the last ``state/reported`` of the gateway (versions, location, sensors, applied version);
- ``desired``: the config and rules the operators want the gateway to run, with a version the cloud
  increments; published retained on ``state/desired`` and published again whenever the gateway says it is
  online (retained messages are a convenience: a RabbitMQ cluster keeps them per node);
- ``tags`` and ``site``: the operators' labels that searches and bulk commands select by;
- ``audit``: who did what to which gateways and when (desired state, tags, bulk commands, revocations).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cloud.fleet.sqlitedb import FleetTables

_LOGGER = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_meta (
    tenant          TEXT NOT NULL,
    gateway         TEXT NOT NULL,
    tags            TEXT NOT NULL DEFAULT '[]',
    site            TEXT,
    reported        TEXT,
    reported_at     REAL,
    desired         TEXT,
    desired_version INTEGER NOT NULL DEFAULT 0,
    desired_at      REAL,
    desired_by      TEXT,
    PRIMARY KEY (tenant, gateway)
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    tenant  TEXT NOT NULL,
    who     TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, at);
"""
MAX_TAGS = 32


@dataclass(frozen=True, slots=True)
class GatewayMeta:
    """What the registry holds for one gateway."""

    tenant: str
    gateway: str
    tags: list[str] = field(default_factory=list)
    site: str | None = None
    reported: dict[str, Any] | None = None
    reported_at: float | None = None
    desired: dict[str, Any] | None = None
    desired_version: int = 0
    desired_at: float | None = None
    desired_by: str | None = None


def _meta(row: tuple[Any, ...]) -> GatewayMeta:
    tenant, gw, tags, site, reported, reported_at, desired, version, desired_at, desired_by = row
    return GatewayMeta(
        tenant, gw, json.loads(tags), site, json.loads(reported) if reported else None, reported_at,
        json.loads(desired) if desired else None, version, desired_at, desired_by,
    )  # fmt: skip


class FleetRegistry(FleetTables):
    """Tags, reported and desired state, and the audit trail, per tenant."""

    SCHEMA = SCHEMA
    WHAT = "the fleet registry tables"

    async def _ensure(self, tenant: str, gateway: str) -> None:
        await self._run("INSERT OR IGNORE INTO gateway_meta (tenant, gateway) VALUES (?, ?)", (tenant, gateway))

    # -- reading -----------------------------------------------------------------------------------------------

    async def get(self, tenant: str, gateway: str) -> GatewayMeta:
        """What the registry holds for a gateway (empty when nothing yet)."""
        rows = await self._run("SELECT * FROM gateway_meta WHERE tenant = ? AND gateway = ?", (tenant, gateway))
        return _meta(rows[0]) if rows else GatewayMeta(tenant, gateway)

    async def all(self, tenant: str) -> dict[str, GatewayMeta]:
        """Every gateway of a tenant the registry holds, by id."""
        rows = await self._run("SELECT * FROM gateway_meta WHERE tenant = ?", (tenant,))
        return {r[1]: _meta(r) for r in rows}

    # -- writing -----------------------------------------------------------------------------------------------

    async def set_tags(self, tenant: str, gateway: str, tags: list[str], site: str | None) -> GatewayMeta:
        """Replace the gateway's tags (and site)."""
        await self._ensure(tenant, gateway)
        clean = sorted(set(tags))[:MAX_TAGS]
        await self._run(
            "UPDATE gateway_meta SET tags = ?, site = ? WHERE tenant = ? AND gateway = ?",
            (json.dumps(clean), site, tenant, gateway),
        )
        return await self.get(tenant, gateway)

    async def set_reported(self, tenant: str, gateway: str, reported: dict[str, Any]) -> None:
        """Keep the gateway's latest reported state."""
        await self._ensure(tenant, gateway)
        await self._run(
            "UPDATE gateway_meta SET reported = ?, reported_at = ? WHERE tenant = ? AND gateway = ?",
            (json.dumps(reported), time.time(), tenant, gateway),
        )

    async def set_desired(
        self, tenant: str, gateway: str, config: dict[str, Any], rules: str | None, by: str
    ) -> dict[str, Any]:
        """Record a new desired state with the next version number; the body to publish."""
        await self._ensure(tenant, gateway)
        now = time.time()
        async with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError("the fleet registry is not open")

            def _tx() -> dict[str, Any]:
                db.execute("BEGIN IMMEDIATE")
                try:
                    (version,) = db.execute(
                        "SELECT desired_version FROM gateway_meta WHERE tenant = ? AND gateway = ?", (tenant, gateway)
                    ).fetchone()
                    body: dict[str, Any] = {"version": version + 1, "config": config, "set_by": by, "set_at": now}
                    if rules is not None:
                        body["rules"] = rules
                    db.execute(
                        "UPDATE gateway_meta SET desired = ?, desired_version = ?, desired_at = ?, desired_by = ? "
                        "WHERE tenant = ? AND gateway = ?",
                        (json.dumps(body), version + 1, now, by, tenant, gateway),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                return body

            return await asyncio.to_thread(_tx)

    # -- audit -------------------------------------------------------------------------------------------------

    async def audit(self, tenant: str, who: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Append one entry to the audit trail (never a secret in ``detail``)."""
        await self._run(
            "INSERT INTO audit (at, tenant, who, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), tenant, who, action, target, json.dumps(detail, default=str)),
        )
        _LOGGER.info("audit: %s %s %s in %s", who, action, target, tenant)

    async def audit_trail(self, tenant: str, limit: int = 100, gateway: str | None = None) -> list[dict[str, Any]]:
        """The newest entries of a tenant (optionally those naming one gateway), newest first."""
        rows = await self._run(
            "SELECT at, who, action, target, detail FROM audit WHERE tenant = ?1 "
            "AND (?2 IS NULL OR target = ?2 OR target LIKE '%' || ?2 || '%') ORDER BY id DESC LIMIT ?3",
            (tenant, gateway, limit),
        )
        return [{"at": at, "who": who, "action": a, "target": t, "detail": json.loads(d)} for at, who, a, t, d in rows]
