"""The fleet manager: registry view, desired state, bulk commands and revoking a stolen gateway.

Glue between the store (presence, health), the registry (tags, reported and desired state, audit), the
command center and the identity service. Everything a person does here is written to the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from cloud.authz import Principal
from cloud.broker.base import MessageBroker
from cloud.fleet.commands import CommandCenter, CommandRecord
from cloud.fleet.registry import FleetRegistry, GatewayMeta
from cloud.identity.service import IdentityService
from cloud.store import GatewayRow
from cloud.store_api import ReadingStore
from wire import state as wire_state
from wire import topics
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)
WIPE_DEADLINE_S = 30 * 86400.0
"""How long a wipe queued for a stolen gateway waits for it to connect (the command center's longest)."""
MAX_BULK = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which gateways a bulk command goes to: all conditions must hold (an empty selector selects none)."""

    ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    version: str | None = None
    site: str | None = None
    online: bool | None = None

    @property
    def empty(self) -> bool:
        """Whether nothing narrows the selection (refused: a bulk command to everything must say so)."""
        return not (self.ids or self.tags or self.version or self.site) and self.online is None


def _version(row: GatewayRow | None, meta: GatewayMeta) -> str | None:
    reported = meta.reported or {}
    versions = reported.get("versions") or ((row.health or {}).get("versions") if row is not None else None) or {}
    roost = versions.get("roost") if isinstance(versions, dict) else None
    return roost if isinstance(roost, str) else None


def entry(gateway: str, tenant: str, row: GatewayRow | None, meta: GatewayMeta) -> dict[str, Any]:
    """One gateway as the registry view lists it."""
    reported = meta.reported or {}
    health = row.health if row is not None else None
    return {
        "id": gateway,
        "tenant": tenant,
        "online": bool(row.online) if row is not None else False,
        "last_seen": row.last_seen if row is not None else None,
        "version": _version(row, meta),
        "location": reported.get("location") or (health or {}).get("location"),
        "tags": meta.tags,
        "site": meta.site,
        "locked": bool(reported.get("locked", False)),
        "health": health,
        "sensors": reported.get("sensors", []),
        "desired_version": meta.desired_version,
        "reported_version": reported.get("version"),
        "in_sync": meta.desired_version == 0 or reported.get("version") == meta.desired_version,
        "reported_at": meta.reported_at,
    }


class FleetService:
    """The fleet operations the API offers."""

    def __init__(
        self,
        store: ReadingStore,
        registry: FleetRegistry,
        commands: CommandCenter,
        broker: MessageBroker,
        identity: IdentityService | None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.commands = commands
        self.broker = broker
        self.identity = identity
        self._background: set[asyncio.Task[None]] = set()
        self.refused_reports = 0

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Let background writes finish (bounded)."""
        if self._background:
            await asyncio.wait(self._background, timeout=2)

    # -- from the ingest ---------------------------------------------------------------------------------------

    def on_reported(self, topic: topics.Topic, payload: bytes, principal: Principal | None) -> None:
        """A ``state/reported`` publish: kept when it comes from that gateway."""
        if (
            principal is None
            or principal.kind != "gateway"
            or (principal.tenant, principal.id)
            != (
                topic.tenant,
                topic.gateway,
            )
        ):
            self.refused_reports += 1
            _LOGGER.warning("reported state on %s from a client that is not that gateway: ignored", topic)
            return
        try:
            body = wire_state.decode_reported(payload)
        except PayloadError as exc:
            self.refused_reports += 1
            _LOGGER.warning("bad reported state from %s/%s: %s", topic.tenant, topic.gateway, exc)
            return
        self._spawn(self.registry.set_reported(topic.tenant, topic.gateway, body), "fleet reported")

    def on_online(self, tenant: str, gateway: str) -> None:
        """A gateway says it is online: re-send its desired state, send its pending commands now."""
        self.commands.kick(tenant, gateway)
        self._spawn(self._resend_desired(tenant, gateway), "fleet desired resend")

    async def _resend_desired(self, tenant: str, gateway: str) -> None:
        meta = await self.registry.get(tenant, gateway)
        if meta.desired is not None:
            await self._publish_desired(tenant, gateway, meta.desired)

    async def _publish_desired(self, tenant: str, gateway: str, body: dict[str, Any]) -> None:
        try:
            await self.broker.publish(
                topics.topic(tenant, gateway, "state", "desired"), wire_state.encode(body), qos=1, retain=True
            )
        except Exception as exc:  # the gateway gets it when it next connects
            _LOGGER.warning("cannot publish the desired state of %s/%s now: %s", tenant, gateway, exc)

    # -- operators ---------------------------------------------------------------------------------------------

    async def gateways(self, tenant: str) -> list[dict[str, Any]]:
        """Every gateway of the tenant: the store's presence and health with the registry's view."""
        rows = {r.id: r for r in await self.store.gateways(tenant)}
        metas = await self.registry.all(tenant)
        enrolled: set[str] = set()
        if self.identity is not None:
            enrolled = {g.id for g in await asyncio.to_thread(self.identity.db.gateways, tenant) if g.revoked is None}
        ids = sorted(set(rows) | set(metas) | enrolled)
        return [entry(gw, tenant, rows.get(gw), metas.get(gw) or GatewayMeta(tenant, gw)) for gw in ids]

    async def select(self, tenant: str, selector: Selector) -> list[dict[str, Any]]:
        """The gateways of the tenant the selector picks."""
        out = []
        for g in await self.gateways(tenant):
            if selector.ids and g["id"] not in selector.ids:
                continue
            if selector.tags and not set(selector.tags) <= set(g["tags"]):
                continue
            if selector.version is not None and g["version"] != selector.version:
                continue
            if selector.site is not None and g["site"] != selector.site:
                continue
            if selector.online is not None and g["online"] != selector.online:
                continue
            out.append(g)
        return out

    async def set_desired(
        self, tenant: str, gateway: str, config: dict[str, Any], rules: str | None, by: str
    ) -> dict[str, Any]:
        """Record and publish (retained) a new desired state; its body with the version."""
        body = await self.registry.set_desired(tenant, gateway, config, rules, by)
        await self._publish_desired(tenant, gateway, body)
        keys = sorted(config)
        await self.registry.audit(
            tenant, by, "set-desired", gateway, {"version": body["version"], "keys": keys, "rules": rules is not None}
        )
        return body

    async def bulk(
        self,
        tenant: str,
        selector: Selector,
        command: str,
        args: dict[str, Any],
        *,
        timeout_s: float,
        wait_s: float,
        by: str,
    ) -> dict[str, Any]:
        """Send one command to every selected gateway; per-gateway request ids and (within ``wait_s``) results."""
        picked = (await self.select(tenant, selector))[:MAX_BULK]
        records: list[CommandRecord] = []
        for g in picked:
            records.append(await self.commands.send(tenant, g["id"], command, args, timeout_s=timeout_s, issued_by=by))
        if wait_s > 0 and records:
            waited = await asyncio.gather(
                *(self.commands.wait(tenant, r.gateway, r.request_id, wait_s) for r in records)
            )
            records = [w or r for w, r in zip(waited, records, strict=True)]
        items = [r.as_dict() for r in records]
        summary: dict[str, int] = {}
        for r in records:
            summary[r.status] = summary.get(r.status, 0) + 1
        await self.registry.audit(
            tenant, by, f"bulk:{command}", ",".join(r.gateway for r in records) or "(none)",
            {"selector": _selector_dict(selector), "request_ids": [r.request_id for r in records]},
        )  # fmt: skip
        return {"command": command, "selected": len(records), "summary": summary, "items": items}

    async def revoke(self, tenant: str, gateway: str, *, stolen: bool, wipe: bool, by: str) -> dict[str, Any]:
        """Revoke a gateway: tokens (closing its connections), hardware id blocked if stolen, a wipe queued."""
        if self.identity is None:
            raise LookupError("this cloud has no identity service: nothing to revoke")
        found = await asyncio.to_thread(self.identity.db.gateway, gateway)
        if found is None or found.tenant != tenant:
            raise LookupError(f"no enrolled gateway {gateway!r} in tenant {tenant!r}")
        tokens = await asyncio.to_thread(
            self.identity.revoke_gateway, gateway, stolen=stolen, reason=f"revoked by {by}"
        )
        out: dict[str, Any] = {"gateway": gateway, "tokens_revoked": tokens, "stolen": stolen, "at": time.time()}
        if stolen:
            out["hardware_blocked"] = found.hardware_id or found.id
        if wipe:
            # Delivered if it ever connects again with valid credentials (an operator allowed it back);
            # a stolen gateway is told to wipe itself by the token endpoint ("revoked: wipe") at its next refresh.
            rec = await self.commands.send(
                tenant, gateway, "wipe", {"confirm": "wipe", "reason": "revoked"}, timeout_s=WIPE_DEADLINE_S,
                issued_by=by,
            )  # fmt: skip
            out["wipe_request_id"] = rec.request_id
        await self.registry.audit(tenant, by, "revoke", gateway, {k: v for k, v in out.items() if k != "at"})
        return out


def _selector_dict(s: Selector) -> dict[str, Any]:
    return {"ids": list(s.ids), "tags": list(s.tags), "version": s.version, "site": s.site, "online": s.online}
