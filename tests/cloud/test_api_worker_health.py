"""An API worker whose RabbitMQ nodes are all down still answers reads: /healthz says degraded, with 200."""

from __future__ import annotations

from pathlib import Path

import httpx

from cloud.config import loads
from cloud.server import CloudServer
from tests.e2e.harness import free_port


async def test_an_api_worker_without_its_broker_stays_in_the_load_balancer(tmp_path: Path) -> None:
    dead = f"amqp://roost:x@127.0.0.1:{free_port()}/roost"  # nobody listens there
    config = loads(
        f'[server]\nport = 0\nrole = "api"\n[broker]\nkind = "rabbitmq"\namqp_urls = ["{dead}"]\n'
        "connect_timeout_s = 1.0\n[identity]\nenabled = false\n"
        '[[auth.observers]]\ntoken = "observer-token-1234567890"\ntenant = "default"\n',
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server, httpx.AsyncClient(base_url=server.info.base_url, timeout=10) as http:
        health = await http.get("/healthz")
        readings = await http.get("/api/v1/readings", headers={"Authorization": "Bearer observer-token-1234567890"})
    assert health.status_code == 200
    assert health.json()["status"] == "degraded" and health.json()["broker"] == "failing"
    assert readings.status_code == 200 and readings.json()["items"] == []
