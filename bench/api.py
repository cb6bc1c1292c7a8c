"""Requests per second of GET /api/v1/readings with the managed API's throttle in the path, beside without it.

    .venv/bin/python bench/api.py [--seconds 3] [--concurrency 8]

Two real clouds on loopback (identity and policies on both): one with the managed API (the gate: plan by
policy, token bucket; the usage middleware: RateLimit fields, per-minute counters) and one with
``[api] enabled = false``, the ceiling to compare with. An application on a plan high enough never to refuse
calls each with its client-credentials token from one event loop (client and server share the core). Then
the cost of one gate check alone (plan lookup, cached policy decision, token bucket) and of one usage
record (a counter and a histogram bin in memory), in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from starlette.requests import Request

from cloud.authz import Principal
from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer

CONFIG = """
[server]
port = 0
[auth]
require_token = true
[api]
enabled = {enabled}
plans = [
  {{ name = "free", rate_per_s = 5, burst = 10 }},
  {{ name = "standard", rate_per_s = 50, burst = 100 }},
  {{ name = "bench", rate_per_s = 1000000, burst = 1000000 }},
  {{ name = "operator", rate_per_s = 200, burst = 400 }},
  {{ name = "anonymous", rate_per_s = 20, burst = 60 }},
]
"""


async def _token(server: CloudServer, http: httpx.AsyncClient) -> str:
    """A client-credentials token of an application on the "bench" plan (or a plain client without the API)."""
    assert server.identity is not None
    admin.create_tenant(server.identity.db, "acme")
    if server.managed_api is not None:
        owner = Principal("operator", "bench", "acme", role="admin")
        app, secret = await server.managed_api.register(owner, "bench", ["readings:read"], "bench")
        client_id = app.record.client_id
    else:
        rec, secret = admin.create_client(server.identity.db, "acme", scopes=["readings:read"])
        client_id = rec.client_id
    r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


async def _rate(enabled: bool, seconds: float, concurrency: int) -> tuple[float, int]:
    """Requests/s and the count of non-200 answers."""
    with tempfile.TemporaryDirectory() as tmp:
        config = loads(CONFIG.format(enabled=str(enabled).lower()), base_dir=Path(tmp))
        async with CloudServer(config) as server:
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            async with httpx.AsyncClient(base_url=server.info.base_url, limits=limits, timeout=10) as http:
                token = await _token(server, http)
                headers = {"Authorization": f"Bearer {token}"}
                for _ in range(50):  # warm up: connections, decision and entity caches
                    await http.get("/api/v1/readings", params={"limit": 1}, headers=headers)
                done = bad = 0
                deadline = time.perf_counter() + seconds

                async def worker() -> None:
                    nonlocal done, bad
                    while time.perf_counter() < deadline:
                        r = await http.get("/api/v1/readings", params={"limit": 1}, headers=headers)
                        done += 1
                        bad += r.status_code != 200

                start = time.perf_counter()
                async with asyncio.TaskGroup() as group:
                    for _ in range(concurrency):
                        group.create_task(worker())
                return done / (time.perf_counter() - start), bad


async def _gate_cost(n: int) -> tuple[float, float]:
    """Microseconds per gate check (plan, cached policy decision, token bucket) and per usage record."""
    with tempfile.TemporaryDirectory() as tmp:
        config = loads(CONFIG.format(enabled="true"), base_dir=Path(tmp))
        async with CloudServer(config) as server:
            assert server.managed_api is not None
            gate = server.managed_api.gate
            owner = Principal("operator", "bench", "default", role="admin")
            assert server.identity is not None
            admin.create_tenant(server.identity.db, "default")
            app, _ = await server.managed_api.register(owner, "bench", ["readings:read"], "bench")
            client = Principal("client", app.record.client_id, "default", scopes=frozenset({"readings:read"}))
            scope = {"type": "http", "method": "GET", "path": "/api/v1/readings", "headers": [],
                     "client": ("127.0.0.1", 5000)}  # fmt: skip
            start = time.perf_counter()
            for _ in range(n):
                gate.check(Request({**scope, "state": {}}), client)
            gate_us = (time.perf_counter() - start) / n * 1e6
            recorder = server.managed_api.recorder
            start = time.perf_counter()
            for i in range(n):
                recorder.record("default", client.id, "GET /api/v1/readings", 200 if i % 10 else 404, 0.002)
            return gate_us, (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    ceiling, bad_raw = await _rate(False, args.seconds, args.concurrency)
    managed, bad_managed = await _rate(True, args.seconds, args.concurrency)
    gate_us, record_us = await _gate_cost(20_000)
    print(f"GET /api/v1/readings without the managed API (the ceiling): {ceiling:8.0f} requests/s ({bad_raw} not 200)")
    print(
        f"GET /api/v1/readings with throttle and usage in the path:   {managed:8.0f} requests/s ({bad_managed} not 200)"
    )
    print(
        f"  = {managed / ceiling:.1%} of the ceiling; per request: gate check {gate_us:.1f} µs, usage record "
        f"{record_us:.1f} µs"
    )


if __name__ == "__main__":
    asyncio.run(main())
