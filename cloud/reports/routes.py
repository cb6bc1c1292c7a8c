"""The reports API.

::

    POST /api/v1/reports {"tenant": "acme", "day": "2026-11-18"}  201 {"id": "acme_2026-11-18", ...} (200: existed)
    GET  /api/v1/reports/{id}                                     the figures (report.json)
    GET  /api/v1/reports/{id}/report.html                         the page, charts inline
    GET  /api/v1/reports/{id}/{sites,gateways,sensors}.csv        the figures as CSV
    GET  /api/v1/reports/{id}/readings.parquet                    the day's export the figures come from

A report is of a tenant's readings, so each asks for ``read_readings`` in that tenant (the caller's own when
the body names none).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from cloud.api import Caller, _allow
from cloud.api_models import Item
from cloud.errors import ApiError
from cloud.openapi_doc import problem_responses
from cloud.reports.build import parse_day, report_id
from cloud.reports.service import ReportService
from wire.names import check_tenant

_MEDIA = {
    "report.html": "text/html; charset=utf-8",
    "sites.csv": "text/csv; charset=utf-8",
    "gateways.csv": "text/csv; charset=utf-8",
    "sensors.csv": "text/csv; charset=utf-8",
    "readings.parquet": "application/vnd.apache.parquet",
}
_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **problem_responses(404),
}


class ReportRequest(BaseModel):
    """Which report to make."""

    tenant: str | None = Field(default=None, max_length=128, description="The tenant (default: the caller's)")
    day: str = Field(min_length=10, max_length=10, description="The UTC day, YYYY-MM-DD", examples=["2026-11-18"])


class ReportCreated(Item):
    """Where a report is."""

    id: str = Field(description="The report's id: tenant_YYYY-MM-DD")
    tenant: str
    day: str
    created: bool = Field(description="False: it existed already and was not made again")
    files: dict[str, str] = Field(description="The report's files by name, as paths of this API")


class SiteFigures(Item):
    """One site's day (docs/reports.md)."""

    site: str
    gateways: int
    series: int
    readings: int
    expected: int
    completeness: float | None
    uptime: float | None
    bytes: int
    alerts_raised: int


class GatewayFigures(Item):
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


class SeriesFigures(Item):
    """One series' day (a gateway's sensor and metric)."""

    site: str
    gateway: str
    sensor: str
    metric: str
    unit: str | None
    readings: int
    numbers: int
    min: float | None
    max: float | None
    avg: float | None
    interval_s: float | None
    expected: int | None
    completeness: float | None


class Report(Item):
    """A daily report's figures."""

    id: str
    tenant: str
    day: str
    generated_at: str = Field(description="When it was made, RFC 3339 UTC")
    sites: list[SiteFigures]
    gateways: list[GatewayFigures]
    sensors: list[SeriesFigures]
    files: list[str]


def _links(rid: str) -> dict[str, str]:
    base = f"/api/v1/reports/{rid}"
    return {"report.json": base} | {name: f"{base}/{name}" for name in _MEDIA}


def _parse_id(rid: str) -> tuple[str, date]:
    tenant, sep, day = rid.rpartition("_")
    try:
        if not sep:
            raise ValueError(rid)
        return check_tenant(tenant), parse_day(day)
    except ValueError:
        raise ApiError(400, f"report id {rid[:60]!r} must be tenant_YYYY-MM-DD", parameter="id") from None


def reports_router(service: ReportService) -> APIRouter:
    """The reports API over ``service``."""
    router = APIRouter()

    def allowed(request: Request, caller: Any, tenant: str | None) -> str:
        target = _allow(request, caller, "read_readings", tenant)
        if target is None:
            raise ApiError(400, "tenant is required (the API is open: name the tenant)", parameter="tenant")
        return target

    @router.post(
        "/api/v1/reports",
        status_code=201,
        response_model=ReportCreated,
        responses={200: {"model": ReportCreated, "description": "The report existed already: it was not made again"}},
    )
    async def create_report(body: ReportRequest, request: Request, caller: Caller) -> JSONResponse:
        """Make the daily report of a tenant's UTC day (DuckDB over the day's Parquet export); docs/reports.md."""
        if body.tenant is not None:
            try:
                check_tenant(body.tenant)
            except ValueError as exc:
                raise ApiError(400, str(exc), parameter="tenant") from None
        tenant = allowed(request, caller, body.tenant)
        try:
            day = parse_day(body.day)
        except ValueError as exc:
            raise ApiError(400, str(exc), parameter="day") from None
        _, created = await service.make(tenant, day)
        rid = report_id(tenant, day)
        answer = {"id": rid, "tenant": tenant, "day": day.isoformat(), "created": created, "files": _links(rid)}
        return JSONResponse(answer, status_code=201 if created else 200)

    @router.get("/api/v1/reports/{id}", response_model=Report, responses=problem_responses(404))
    async def get_report(
        id: Annotated[str, Path(description="tenant_YYYY-MM-DD", max_length=150)],
        request: Request,
        caller: Caller,
    ) -> JSONResponse:
        """A report's figures: per site, gateway and sensor series (what report.json holds)."""
        tenant, day = _parse_id(id)
        allowed(request, caller, tenant)
        found = await service.find(tenant, day)
        if found is None:
            raise ApiError(404, f"no report of tenant {tenant!r} for {day} (POST /api/v1/reports makes it)")
        return JSONResponse(found)

    @router.get("/api/v1/reports/{id}/{name}", response_class=FileResponse, responses=_FILE_RESPONSES)
    async def get_report_file(
        id: Annotated[str, Path(description="tenant_YYYY-MM-DD", max_length=150)],
        name: Annotated[str, Path(description="report.html, sites.csv, gateways.csv, sensors.csv or readings.parquet")],
        request: Request,
        caller: Caller,
    ) -> FileResponse:
        """One of a report's files."""
        tenant, day = _parse_id(id)
        allowed(request, caller, tenant)
        if name not in _MEDIA:
            raise ApiError(404, f"a report has no file {name[:60]!r}: {', '.join(_MEDIA)}", parameter="name")
        if await service.find(tenant, day) is None:
            raise ApiError(404, f"no report of tenant {tenant!r} for {day} (POST /api/v1/reports makes it)")
        path = service.folder_of(tenant, day) / name
        filename = f"roost-{tenant}-{day}-{name}"
        return FileResponse(path, media_type=_MEDIA[name], filename=filename if not name.endswith(".html") else None)

    return router
