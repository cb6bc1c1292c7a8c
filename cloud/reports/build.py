"""One tenant's daily report: export the UTC day as Parquet, compute with DuckDB, add uptime, bytes and alerts.

Files written into the report's folder: ``readings.parquet`` (the day's export), ``sensors.csv``,
``gateways.csv``, ``sites.csv``, ``report.html`` and, last, ``report.json`` (a report whose ``report.json``
exists is complete: a run stopped half-way is made again).

Gateway uptime is the share of the day's 288 five-minute slots in which the gateway was heard from: a slot
counts when the cloud received any message of the gateway in it (telemetry, events, health every 30 s by
default, status; :mod:`cloud.reports.traffic`) or when one of its readings is stamped in it (readings sent
late, after an outage, still show the gateway was measuring).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cloud.eventstore import EventQuery
from cloud.export_request import ExportRequest
from cloud.reports import figures
from cloud.reports.figures import DayFigures, SeriesFigures
from cloud.reports.traffic import SLOTS_PER_DAY, DayTraffic, Traffic
from cloud.store_api import ReadingStore

NO_SITE = "(no site)"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
FILES = ("report.html", "report.json", "sensors.csv", "gateways.csv", "sites.csv", "readings.parquet")


@dataclass(frozen=True, slots=True)
class GatewayDay:
    """One gateway's day."""

    site: str
    gateway: str
    series: int
    readings: int
    expected: int
    completeness: float | None
    uptime: float
    slots_heard: int
    messages: int
    bytes: int
    alerts_raised: int
    alerts_cleared: int


@dataclass(frozen=True, slots=True)
class SiteDay:
    """One site's day: its gateways' figures together."""

    site: str
    gateways: int
    series: int
    readings: int
    expected: int
    completeness: float | None
    uptime: float | None
    bytes: int
    alerts_raised: int


def parse_day(text: str) -> date:
    """A day as YYYY-MM-DD; ValueError naming the format."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"day {text!r} must be a date as YYYY-MM-DD") from None


def day_range_us(day: date) -> tuple[int, int]:
    """The UTC day [start, end) in µs."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000
    return start, start + figures.DAY_S * 1_000_000


def report_id(tenant: str, day: date) -> str:
    """``acme_2026-11-18`` (``_`` is in no tenant id)."""
    return f"{tenant}_{day.isoformat()}"


def _completeness(series: list[SeriesFigures]) -> tuple[int, float | None]:
    with_interval = [s for s in series if s.expected]
    expected = sum(s.expected or 0 for s in with_interval)
    if not expected:
        return 0, None
    return expected, sum(min(s.readings, s.expected or 0) for s in with_interval) / expected


async def _alerts(store: ReadingStore, tenant: str, since_us: int, until_us: int) -> dict[str, list[int]]:
    """Per gateway, [raised, cleared] alert events of the day."""
    out: dict[str, list[int]] = {}
    after: tuple[int, str, str, str] | None = None
    while True:
        page = await store.events(
            EventQuery(tenant=tenant, kind="alert", since_us=since_us, until_us=until_us, after=after, limit=1000)
        )
        for e in page:
            counts = out.setdefault(e.gateway, [0, 0])
            counts[0 if e.state == "raised" else 1] += 1
        if len(page) < 1000:
            return out
        last = page[-1]
        after = (last.ts_us, last.tenant, last.gateway, last.id)


def _gateways(
    figs: DayFigures,
    sites: Mapping[str, str | None],
    traffic: Mapping[str, DayTraffic],
    alerts: Mapping[str, list[int]],
    known: set[str],
) -> list[GatewayDay]:
    names = known | set(figs.reading_slots) | set(traffic) | {s.gateway for s in figs.series}
    out = []
    for gw in names:
        series = [s for s in figs.series if s.gateway == gw]
        expected, done = _completeness(series)
        heard = figs.reading_slots.get(gw, set()) | set(traffic[gw].slots if gw in traffic else ())
        t = traffic.get(gw)
        raised, cleared = alerts.get(gw, [0, 0])
        out.append(
            GatewayDay(
                sites.get(gw) or NO_SITE,
                gw,
                len(series),
                sum(s.readings for s in series),
                expected,
                done,
                len(heard) / SLOTS_PER_DAY,
                len(heard),
                t.messages if t else 0,
                t.bytes if t else 0,
                raised,
                cleared,
            )
        )
    return sorted(out, key=lambda g: (g.site == NO_SITE, g.site, g.gateway))


def _sites(gateways: list[GatewayDay], series: list[SeriesFigures]) -> list[SiteDay]:
    out = []
    for site in sorted({g.site for g in gateways}, key=lambda name: (name == NO_SITE, name)):
        mine = [g for g in gateways if g.site == site]
        ids = {g.gateway for g in mine}
        expected, done = _completeness([s for s in series if s.gateway in ids])
        out.append(
            SiteDay(
                site,
                len(mine),
                sum(g.series for g in mine),
                sum(g.readings for g in mine),
                expected,
                done,
                sum(g.uptime for g in mine) / len(mine) if mine else None,
                sum(g.bytes for g in mine),
                sum(g.alerts_raised for g in mine),
            )
        )
    return out


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out.getvalue()


async def make_report(
    store: ReadingStore,
    traffic: Traffic | None,
    sites: Mapping[str, str | None],
    *,
    tenant: str,
    day: date,
    folder: Path,
) -> dict[str, Any]:
    """Make the report of ``tenant``'s ``day`` in ``folder`` (created); its figures as ``report.json`` holds them."""
    from cloud.export import export_to_file  # pyarrow: loaded by the first report, not at start
    from cloud.reports.page import render

    since_us, until_us = day_range_us(day)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    parquet = folder / "readings.parquet"
    req = ExportRequest(tenant=tenant, format="parquet", since_us=since_us, until_us=until_us)
    await export_to_file(store, req, parquet)
    figs = await asyncio.to_thread(figures.compute, parquet, since_us)
    if traffic is not None:
        await traffic.flush()
    day_traffic = await traffic.day(tenant, day.isoformat()) if traffic is not None else {}
    alerts = await _alerts(store, tenant, since_us, until_us)
    known = {g.id for g in await store.gateways(tenant)}
    gateways = _gateways(figs, sites, day_traffic, alerts, known)
    site_of = {g.gateway: g.site for g in gateways}
    sensors = [{"site": site_of.get(s.gateway, NO_SITE)} | asdict(s) for s in figs.series]
    report: dict[str, Any] = {
        "id": report_id(tenant, day),
        "tenant": tenant,
        "day": day.isoformat(),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sites": [asdict(s) for s in _sites(gateways, figs.series)],
        "gateways": [asdict(g) for g in gateways],
        "sensors": sensors,
        "files": list(FILES),
    }
    hourly = {k: [asdict(h) for h in v] for k, v in figs.hourly.items()}
    files = {
        "sensors.csv": _csv(sensors, ["site", *SeriesFigures.__dataclass_fields__]),
        "gateways.csv": _csv(report["gateways"], list(GatewayDay.__dataclass_fields__)),
        "sites.csv": _csv(report["sites"], list(SiteDay.__dataclass_fields__)),
        "report.html": render(report, hourly),
        "report.json": json.dumps(report, indent=2),  # last: its presence says the report is complete
    }
    for name, text in files.items():
        await asyncio.to_thread(_write_text, folder / name, text)
    return report


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8", newline="")
    tmp.replace(path)
