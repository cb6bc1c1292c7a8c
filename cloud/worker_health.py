"""The only HTTP an ingest worker (``server.role = "ingest"``) serves: ``/healthz``, for haproxy and systemd checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.broker.base import MessageBroker
from cloud.stats import Stats
from cloud.store_api import ReadingStore


def ingest_health_app(
    store: ReadingStore,
    broker: MessageBroker,
    stats: Stats,
    ingest_error: Callable[[], str | None],
    broker_details: Callable[[], dict[str, Any]] = dict,
) -> Starlette:
    """``GET /healthz``: 200 when the store answers, its last commit succeeded and the broker is connected; else 503.

    The body has the same shape as the API's ``/healthz`` (status, store, broker, counters), plus
    ``broker_details`` (for RabbitMQ: the node connected to, connections opened, redeliveries).
    """

    async def healthz(_request: Request) -> JSONResponse:
        error = ingest_error()
        store_ok = error is None and await store.ping()
        broker_ok = broker.healthy
        ok = store_ok and broker_ok
        body = {
            "status": "ok" if ok else "failing",
            "role": "ingest",
            "store": "ok" if store_ok else (error or "failing"),
            "broker": "ok" if broker_ok else "failing",
            "counters": stats.as_dict(),
            "broker_details": broker_details(),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
