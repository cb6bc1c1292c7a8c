"""The managed API as one object the cloud server builds, opens, hooks into its app and closes.

managed = ManagedApi(config.api, db_path, identity, decision_point)
await managed.open()
managed.install(app)            # routes, the portal, the gate and the usage middleware
...
await managed.close()           # flushes the last usage counters
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from cloud.apimgmt.credentials import ClientCredentials
from cloud.apimgmt.db import ApplicationRecord, ManagedApiDB, UsageRow
from cloud.apimgmt.gate import ApiGate, UsageMiddleware
from cloud.apimgmt.plans import BUILT_IN, Plan, plan_of_json, plan_set
from cloud.apimgmt.ratelimit import RateLimiter
from cloud.apimgmt.usage import UsageRecorder
from cloud.authz import Principal
from cloud.config import ApiSection
from cloud.identity import admin
from cloud.identity.db import ClientRecord
from cloud.identity.service import IdentityService
from cloud.policy.decision import DecisionPoint

_LOGGER = logging.getLogger(__name__)

SCOPES: dict[str, str] = {
    "readings:read": "Read readings (GET /api/v1/readings)",
    "gateways:read": "Read gateways and their state (GET /api/v1/gateways)",
    "events:read": "Read events and alerts (GET /api/v1/events, /api/v1/alerts)",
    "commands:write": "Send commands to gateways and change their desired state",
    "topics:read": "Subscribe to the tenant's data topics over MQTT",
}
"""The scopes an application may hold; each is what a default policy (cloud/policy/defaults.cedar) reads."""

_APP_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,80}$")


@dataclass(frozen=True, slots=True)
class Application:
    """An application: its OAuth2 client and what the managed API keeps of it."""

    record: ApplicationRecord
    client: ClientRecord

    def as_json(self) -> dict[str, Any]:
        """The application as the API shows it (never its secret)."""
        return {
            "id": self.record.client_id,
            "client_id": self.record.client_id,
            "name": self.client.name,
            "tenant": self.record.tenant,
            "owner": self.record.owner,
            "plan": self.record.plan,
            "scopes": list(self.client.scopes),
            "created": _rfc3339(self.record.created),
            "secret_rotated": _rfc3339(self.record.rotated) if self.record.rotated is not None else None,
        }


def _rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def check_application(name: str, scopes: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """A checked name and scope list; ValueError("key: problem")."""
    name = name.strip()
    if not _APP_NAME.match(name):
        raise ValueError("name: must be 1 to 80 characters without control characters")
    found = tuple(dict.fromkeys(scopes))
    if not found:
        raise ValueError(f"scopes: choose at least one of {', '.join(SCOPES)}")
    for scope in found:
        if scope not in SCOPES:
            raise ValueError(f"scopes: {scope[:40]!r} is not one of {', '.join(SCOPES)}")
    return name, found


class ManagedApi:
    """Applications, plans, throttling and usage over one database, the identity service and the policies."""

    def __init__(
        self,
        settings: ApiSection,
        db_path: Path,
        identity: IdentityService,
        decision_point: DecisionPoint | None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.decision_point = decision_point
        self.db = ManagedApiDB(db_path)
        self.credentials = ClientCredentials(identity.db)
        self.recorder = UsageRecorder(
            self.db, flush_s=settings.usage_flush_s, retention_days=settings.usage_retention_days
        )
        configured = (
            tuple(Plan(p.name, p.rate_per_s, p.burst, p.unlimited, p.description) for p in settings.plans) or BUILT_IN
        )
        self.default_plans: dict[str, Plan] = {p.name: p for p in configured}
        self._tenant_plans: dict[str, dict[str, Plan]] = {}
        self._apps: dict[str, ApplicationRecord] = {}
        self.gate = ApiGate(
            plan_of=self.plan,
            application_plan=self.application_plan,
            decision_point=decision_point,
            limiter=RateLimiter(),
            throttle=settings.throttle,
            default_plan=settings.default_plan,
            operator_plan=settings.operator_plan,
            client_plan=settings.client_plan,
            anonymous_plan=settings.anonymous_plan,
        )
        self._flush_task: asyncio.Task[None] | None = None
        self.sees_all: dict[tuple[Any, ...], bool] = {}  # routes.may_see_all's decisions, per minute

    # -- life cycle --------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the database, load applications and plans, start flushing usage."""
        await asyncio.to_thread(self.db.open)
        self._apps = {a.client_id: a for a in await asyncio.to_thread(self.db.applications)}
        for tenant, items in (await asyncio.to_thread(self.db.plan_sets)).items():
            try:
                self._tenant_plans[tenant] = plan_set(plan_of_json(i, raw) for i, raw in enumerate(items))
            except ValueError as exc:  # written by a newer or older version: say so, use the defaults
                _LOGGER.warning(
                    "The stored plans of tenant %s cannot be used (%s): using the default plans", tenant, exc
                )
        if self.decision_point is not None and "use_plan" not in self.decision_point.text():
            _LOGGER.warning(
                "The policy set has no policy on use_plan (it predates API plans): every API caller is throttled "
                "under the default plan %r. Add the plan policies of cloud/policy/defaults.cedar to it.",
                self.settings.default_plan,
            )
        self._flush_task = asyncio.create_task(self.recorder.flush_forever(), name="api-usage-flush")

    async def close(self) -> None:
        """Flush the last counters and close the database."""
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        await asyncio.to_thread(self.db.close)

    def install(self, app: FastAPI) -> None:
        """Hook the routes, the portal, the gate and the usage middleware into ``app``."""
        from cloud.apimgmt.portal import portal_router
        from cloud.apimgmt.routes import managed_api_router

        app.state.api_gate = self.gate.check
        app.state.managed_api = self
        app.include_router(managed_api_router(self))
        app.include_router(portal_router(self))
        app.add_middleware(UsageMiddleware, recorder=lambda: self.recorder)

    # -- plans -------------------------------------------------------------------------------------------------

    def plans(self, tenant: str) -> dict[str, Plan]:
        """A tenant's plans by name (its own, else the configured ones)."""
        return self._tenant_plans.get(tenant, self.default_plans)

    def plan(self, tenant: str, name: str) -> Plan | None:
        """One plan of a tenant, or None."""
        return self.plans(tenant).get(name)

    def required_plans(self, tenant: str) -> set[str]:
        """Plans a tenant's set must keep: the configured roles' and every application's."""
        s = self.settings
        in_use = {a.plan for a in self._apps.values() if a.tenant == tenant}
        return {s.default_plan, s.operator_plan, s.client_plan, s.anonymous_plan} | in_use

    async def set_plans(self, tenant: str, items: list[Any], *, by: str) -> dict[str, Plan]:
        """Replace a tenant's plans (ValueError naming the item at fault); the next request uses them."""
        plans = plan_set((plan_of_json(i, raw) for i, raw in enumerate(items)), required=self.required_plans(tenant))
        body = [p.as_json() for p in plans.values()]
        await asyncio.to_thread(self.db.set_plans, tenant, body, when=time.time(), by=by)
        self._tenant_plans[tenant] = plans
        _LOGGER.info("plans of tenant %s set by %s: %s", tenant, by, ", ".join(plans))
        return plans

    def application_plan(self, client_id: str) -> str | None:
        """The plan an application chose, or None for a client that is not an application."""
        app = self._apps.get(client_id)
        return app.plan if app is not None else None

    # -- applications ------------------------------------------------------------------------------------------

    def application_records(self, tenant: str, owner: str | None = None) -> list[ApplicationRecord]:
        """A tenant's applications (of one owner), oldest first."""
        return [a for a in self._apps.values() if a.tenant == tenant and (owner is None or a.owner == owner)]

    def application_record(self, client_id: str) -> ApplicationRecord | None:
        """One application's record, or None."""
        return self._apps.get(client_id)

    async def application(self, client_id: str) -> Application | None:
        """One application with its OAuth2 client, or None (also when its client was deleted elsewhere)."""
        record = self._apps.get(client_id)
        if record is None:
            return None
        client = await asyncio.to_thread(self.identity.db.client, client_id)
        return Application(record, client) if client is not None else None

    async def applications(self, tenant: str, owner: str | None = None) -> list[Application]:
        """A tenant's applications (of one owner) with their OAuth2 clients."""
        out = []
        for record in self.application_records(tenant, owner):
            found = await self.application(record.client_id)
            if found is not None:
                out.append(found)
        return out

    async def register(self, owner: Principal, name: str, scopes: Iterable[str], plan: str) -> tuple[Application, str]:
        """A new application of ``owner``'s tenant; it and its secret (shown once)."""
        name, scope_list = check_application(name, scopes)
        client, secret = await asyncio.to_thread(
            admin.create_client, self.identity.db, owner.tenant, role="viewer", scopes=scope_list, name=name
        )
        record = ApplicationRecord(client.client_id, owner.tenant, owner.id, plan, time.time())
        await asyncio.to_thread(self.db.add_application, record)
        self._apps[record.client_id] = record
        _LOGGER.info(
            "application %s (%s) registered by %s of tenant %s on plan %s",
            client.client_id,
            name,
            owner.id,
            owner.tenant,
            plan,
        )
        return Application(record, client), secret

    async def rotate(self, client_id: str) -> str | None:
        """A new secret for an application (the old one stops working); None when its client is gone."""
        secret = await asyncio.to_thread(self.credentials.rotate, client_id)
        if secret is not None:
            now = time.time()
            await asyncio.to_thread(self.db.set_rotated, client_id, now)
            record = self._apps[client_id]
            self._apps[client_id] = ApplicationRecord(
                record.client_id, record.tenant, record.owner, record.plan, record.created, now
            )
            _LOGGER.info("application %s: secret replaced", client_id)
        return secret

    async def set_application_plan(self, client_id: str, plan: str) -> None:
        """Move an application to another plan; its next request is throttled under it."""
        await asyncio.to_thread(self.db.set_plan, client_id, plan)
        record = self._apps[client_id]
        self._apps[client_id] = ApplicationRecord(
            record.client_id, record.tenant, record.owner, plan, record.created, record.rotated
        )
        _LOGGER.info("application %s moved to plan %s", client_id, plan)

    async def delete(self, client_id: str) -> None:
        """Delete an application and its OAuth2 client (its tokens are revoked; its usage stays)."""
        await asyncio.to_thread(self.credentials.delete, client_id)
        await asyncio.to_thread(self.db.delete_application, client_id)
        record = self._apps.pop(client_id, None)
        if record is not None:
            self.gate.limiter.forget(f"client:{record.tenant}/{client_id}")
        _LOGGER.info("application %s deleted", client_id)

    # -- usage -------------------------------------------------------------------------------------------------

    async def usage(
        self,
        tenant: str,
        *,
        clients: list[str] | None,
        endpoint: str | None,
        since_s: float | None,
        until_s: float | None,
    ) -> list[UsageRow]:
        """Usage rows of a tenant (counters not yet written are written first)."""
        await self.recorder.flush()
        return await asyncio.to_thread(
            self.db.usage,
            tenant,
            clients=clients,
            endpoint=endpoint,
            since_minute=int(since_s // 60) if since_s is not None else None,
            until_minute=-(-int(until_s) // 60) if until_s is not None else None,
        )
