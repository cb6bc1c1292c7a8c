"""The events and alerts API.

::

    GET  /api/v1/events?gateway=&kind=&since=&until=&limit=&cursor=   every event, oldest first, in pages
    GET  /api/v1/alerts?state=open|cleared|all&gateway=&limit=          each alert key's current state
    POST /api/v1/alerts/{key}/acknowledge?gateway=                      an operator has seen it

Reading asks the decision point for ``read_events`` in the tenant (every role, and API clients with the
``events:read`` scope, by the default policies); acknowledging asks for ``acknowledge_alerts``, one of
the ``command`` actions (operators and above; viewers and observers never). Tenants are isolated the way
``/api/v1/readings`` isolates them: the caller's own tenant unless ``tenant`` names another the policies
allow.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from cloud import api_models as models
from cloud.api import MAX_LIMIT, Caller, _allow, decode_key, encode_key, parse_time, rfc3339
from cloud.errors import ApiError
from cloud.eventstore import AlertQuery, AlertRow, EventQuery, EventRow
from cloud.openapi_doc import problem_responses
from cloud.paging import CursorQuery, fetch_page, limit_query, page_body
from cloud.store_api import ReadingStore
from wire.events import KINDS

TenantParam = Annotated[str | None, Query(description="The tenant (default: the caller's)")]


def encode_cursor(row: EventRow) -> str:
    """The opaque cursor after ``row``."""
    return encode_key([row.ts_us, row.tenant, row.gateway, row.id])


def decode_cursor(text: str) -> tuple[int, str, str, str]:
    """The event key a cursor holds; ApiError(400) when it is not one of ours."""
    return decode_key(text, 4)


def event_item(e: EventRow) -> dict[str, Any]:
    """An event as the API shows it."""
    return {
        "gateway": e.gateway,
        "id": e.id,
        "kind": e.kind,
        "ts": rfc3339(e.ts_us),
        "key": e.key,
        "rule": e.rule,
        "state": e.state,
        "severity": e.severity,
        "message": e.message,
        "sensor": e.sensor,
        "metric": e.metric,
        "value": e.value,
        "data": e.data,
    }


def alert_item(a: AlertRow) -> dict[str, Any]:
    """An alert as the API shows it (``state``: open or cleared)."""
    return {
        "gateway": a.gateway,
        "key": a.key,
        "state": "open" if a.state == "raised" else "cleared",
        "severity": a.severity,
        "message": a.message,
        "rule": a.rule,
        "sensor": a.sensor,
        "metric": a.metric,
        "value": a.value,
        "first_raised": rfc3339(a.first_raised_us) if a.first_raised_us is not None else None,
        "last_change": rfc3339(a.last_change_us),
        "raises": a.raises,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": rfc3339(round(a.acknowledged_at * 1_000_000)) if a.acknowledged_at is not None else None,
    }


def _who(caller: Any) -> str:
    return "anonymous" if caller is None else f"{caller.kind}:{caller.tenant}/{caller.id}"


def events_router(store: ReadingStore) -> APIRouter:
    """The router over the store's events and alerts."""
    router = APIRouter()

    @router.get("/api/v1/events", response_model=models.EventsPage)
    async def list_events(
        request: Request,
        caller: Caller,
        *,
        tenant: TenantParam = None,
        gateway: str | None = None,
        kind: Annotated[str | None, Query(description="alert, annotation or device")] = None,
        since: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, inclusive")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch seconds, exclusive")] = None,
        limit: Annotated[int, limit_query(1000, MAX_LIMIT)] = 1000,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        """Events (alerts raised and cleared, annotations, device events) ordered by time, one page at a time."""
        if kind is not None and kind not in KINDS:
            raise ApiError(400, f"kind must be one of {', '.join(KINDS)}", parameter="kind")
        query = EventQuery(
            tenant=_allow(request, caller, "read_events", tenant),
            gateway=gateway,
            kind=kind,
            since_us=parse_time("since", since) if since is not None else None,
            until_us=parse_time("until", until) if until is not None else None,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,
        )
        rows = await store.events(query)
        page = rows[:limit]
        after = encode_cursor(page[-1]) if len(rows) > limit else None
        # Sent as built (response_model documents it): validating up to 10,000 items against it is slow.
        return JSONResponse({"items": [event_item(e) for e in page], "next_cursor": after, "next": after})

    @router.get("/api/v1/alerts", response_model=models.AlertsPage)
    async def list_alerts(
        request: Request,
        caller: Caller,
        *,
        tenant: TenantParam = None,
        state: Annotated[Literal["open", "cleared", "all"], Query(description="open, cleared or all")] = "open",
        gateway: str | None = None,
        limit: Annotated[int, limit_query(1000, MAX_LIMIT)] = 1000,
        cursor: CursorQuery = None,
    ) -> dict[str, Any]:
        """Each alert key's current state per gateway, the most recently changed first."""
        target = _allow(request, caller, "read_events", tenant)

        async def first(n: int) -> list[AlertRow]:
            return await store.alerts(AlertQuery(tenant=target, gateway=gateway, state=state, limit=n))

        rows, after = await fetch_page(first, cursor, limit)
        return page_body([alert_item(a) for a in rows], after)

    @router.post(
        "/api/v1/alerts/{key:path}/acknowledge", response_model=models.Alert, responses=problem_responses(404, 409)
    )
    async def acknowledge_alert(
        key: Annotated[str, Path(description="The alert's key (rule/sensor)")],
        request: Request,
        caller: Caller,
        *,
        tenant: TenantParam = None,
        gateway: Annotated[str | None, Query(description="The gateway (needed when several have this key)")] = None,
    ) -> dict[str, Any]:
        """Mark an alert acknowledged by the caller (the mark is cleared when the alert is raised again)."""
        target = _allow(request, caller, "acknowledge_alerts", tenant) or "default"
        rows = await store.acknowledge_alert(target, gateway, key, by=_who(caller), at=time.time())
        if not rows:
            where = f" on gateway {gateway!r}" if gateway else ""
            raise ApiError(404, f"no alert {key!r}{where} in tenant {target!r}", parameter="key")
        if len(rows) > 1:
            names = ", ".join(sorted(r.gateway for r in rows))
            raise ApiError(409, f"alert {key!r} exists on several gateways ({names}): name one", parameter="gateway")
        return alert_item(rows[0])

    return router
