"""The export API: a range of readings (or one series' rollups) as a CSV or Parquet file, streamed.

::

    GET /api/v1/export?format=csv|parquet&tenant=&gateway=&sensor=&metric=&since=&until=&resolution=raw|1m|1h

Authorized like ``GET /api/v1/readings`` (``read_readings`` in the tenant, the caller's own by default). The
answer is streamed page by page from the store with ``Content-Disposition: attachment``; the columns are
described in :mod:`cloud.export` and docs/reports.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from cloud.api import Caller, _allow, parse_time
from cloud.errors import ApiError
from cloud.export_request import MEDIA_TYPES, ExportFormat, ExportInvalid, ExportRequest, ExportResolution
from cloud.store_api import ReadingStore

_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export file (CSV or Parquet), streamed",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def export_router(store: ReadingStore) -> APIRouter:
    """The router that exports from ``store``."""
    router = APIRouter()

    @router.get("/api/v1/export", response_class=StreamingResponse, responses=_FILE)
    async def export(
        request: Request,
        caller: Caller,
        *,
        format: Annotated[ExportFormat, Query(description="csv or parquet")] = "csv",
        tenant: Annotated[str | None, Query(description="The tenant (default: the caller's)")] = None,
        gateway: str | None = None,
        sensor: str | None = None,
        metric: str | None = None,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, inclusive")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, exclusive")] = None,
        resolution: Annotated[
            ExportResolution, Query(description="raw readings (default), or one series' 1m or 1h rollups")
        ] = "raw",
    ) -> StreamingResponse:
        """A tenant's readings in [since, until) as one CSV or Parquet file (columns: docs/reports.md)."""
        target = _allow(request, caller, "read_readings", tenant)
        if target is None:
            raise ApiError(400, "tenant is required (the API is open: name the tenant to export)", parameter="tenant")
        try:
            req = ExportRequest(
                tenant=target,
                format=format,
                gateway=gateway,
                sensor=sensor,
                metric=metric,
                since_us=parse_time("since", since) if since is not None else None,
                until_us=parse_time("until", until) if until is not None else None,
                resolution=resolution,
            )
        except ExportInvalid as exc:
            raise ApiError(400, exc.problem, parameter=exc.parameter) from None
        from cloud.export import export_chunks  # pyarrow: loaded by the first export, not at start

        return StreamingResponse(
            export_chunks(store, req),
            media_type=MEDIA_TYPES[req.format],
            headers={"Content-Disposition": f'attachment; filename="{req.filename()}"'},
        )

    return router
