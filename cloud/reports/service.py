"""The reports folder (``{folder}/{tenant}/{day}/``), making a report once, and the daily schedule.

A report is complete when its ``report.json`` exists; asking again for it answers that one (a restart never
makes the same day twice). The schedule makes yesterday's report of each tenant at ``[reports] at`` (UTC)
every day, and at start when that time of today has passed and yesterday's report is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud.config import CloudConfig
from cloud.errors import StoreError
from cloud.fleet.registry import FleetRegistry
from cloud.reports.build import make_report
from cloud.reports.traffic import Traffic
from cloud.store_api import ReadingStore

_LOGGER = logging.getLogger(__name__)

SitesOf = Callable[[str], Awaitable[Mapping[str, str | None]]]
"""A tenant's gateways' sites, by gateway id (the fleet registry's)."""


class ReportService:
    """Makes, finds and schedules daily reports."""

    def __init__(
        self,
        store: ReadingStore,
        traffic: Traffic,
        sites_of: SitesOf,
        folder: Path,
        *,
        at: str = "00:15",
        tenants: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.traffic = traffic
        self.sites_of = sites_of
        self.folder = folder
        self.at = at
        self.tenants = tenants
        """Tenants the schedule reports on; empty: every tenant the store knows gateways of."""
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self.made = 0
        """Reports made since start (tests and logs)."""
        self.runs = 0
        """Scheduled runs done since start, the catch-up at start included."""

    def folder_of(self, tenant: str, day: date) -> Path:
        """The folder of a report (``tenant`` and ``day`` already checked)."""
        return self.folder / tenant / day.isoformat()

    async def find(self, tenant: str, day: date) -> dict[str, Any] | None:
        """A complete report's figures, or None."""
        path = self.folder_of(tenant, day) / "report.json"

        def read() -> dict[str, Any] | None:
            try:
                loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                return None
            return loaded

        return await asyncio.to_thread(read)

    async def make(self, tenant: str, day: date) -> tuple[dict[str, Any], bool]:
        """The report of ``tenant``'s ``day``, made now unless it exists; (figures, whether made now)."""
        lock = self._locks.setdefault(f"{tenant}/{day}", asyncio.Lock())
        async with lock:
            found = await self.find(tenant, day)
            if found is not None:
                return found, False
            started = time.monotonic()
            report = await make_report(
                self.store, self.traffic, await self.sites_of(tenant), tenant=tenant, day=day,
                folder=self.folder_of(tenant, day),
            )  # fmt: skip
            self.made += 1
            _LOGGER.info(
                "daily report of %s for %s made in %.1f s (%d gateways, %d series)",
                tenant, day, time.monotonic() - started, len(report["gateways"]), len(report["sensors"]),
            )  # fmt: skip
            return report, True

    # -- the schedule --------------------------------------------------------------------------------------------

    def _due(self, now: float) -> tuple[datetime, datetime]:
        """Today's run time and the next one after ``now``."""
        hour, minute = (int(p) for p in self.at.split(":"))
        current = datetime.fromtimestamp(now, UTC)
        today = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return today, today if current < today else today + timedelta(days=1)

    async def _tenants(self) -> list[str]:
        if self.tenants:
            return list(self.tenants)
        return sorted({g.tenant for g in await self.store.gateways()})

    async def run_for(self, day: date) -> None:
        """Make the reports of ``day`` of each scheduled tenant that has none yet (a failure never stops the rest)."""
        for tenant in await self._tenants():
            try:
                await self.make(tenant, day)
            except (StoreError, OSError, ValueError) as exc:
                _LOGGER.error("the daily report of %s for %s failed: %s", tenant, day, exc)
            except Exception:
                _LOGGER.exception("the daily report of %s for %s failed", tenant, day)
        self.runs += 1

    async def _forever(self) -> None:
        today, _ = self._due(self._clock())
        if self._clock() >= today.timestamp():  # catch up after a restart (made once: see make)
            await self.run_for(today.date() - timedelta(days=1))
        while True:
            _, following = self._due(self._clock())
            await asyncio.sleep(max(0.0, following.timestamp() - self._clock()))
            await self.run_for(following.date() - timedelta(days=1))

    def start(self, *, schedule: bool) -> None:
        """Flush the traffic counters now and then and, if ``schedule``, make the daily reports, until stopped."""
        self.traffic.start()
        if schedule:
            self._task = asyncio.create_task(self._forever(), name="daily-reports")

    async def stop(self) -> None:
        """Stop the schedule (a report being made is abandoned: it has no report.json, so it is made again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.traffic.close()


def registry_sites(registry: FleetRegistry) -> SitesOf:
    """The sites of a tenant's gateways as the fleet registry holds them."""

    async def sites_of(tenant: str) -> Mapping[str, str | None]:
        return {gw: meta.site for gw, meta in (await registry.all(tenant)).items()}

    return sites_of


def traffic_path(config: CloudConfig) -> Path:
    """The traffic counters' file: traffic.sqlite beside the store."""
    return config.store.path.parent / "traffic.sqlite"


def reports_for(config: CloudConfig, store: ReadingStore, registry: FleetRegistry) -> ReportService:
    """The reports of a cloud, with its traffic counters, as ``[reports]`` configures them."""
    section = config.reports
    return ReportService(
        store, Traffic(traffic_path(config)), registry_sites(registry), section.folder,
        at=section.at, tenants=section.tenants,
    )  # fmt: skip
