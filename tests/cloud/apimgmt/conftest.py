"""A real cloud on loopback with identity, policies and the managed API; helpers to act as developer and app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, WAIT
from tests.cloud.identity.conftest import OPERATOR_PASSWORD, operator_token

API_CONFIG = """
[identity]
throttle_burst = 50
throttle_rate_per_s = 10

[api]
usage_flush_s = 0.2
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud whose identity database holds tenants ``acme`` and ``other``."""
    config = loads(BASE_CONFIG + API_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        assert server.identity is not None
        admin.create_tenant(server.identity.db, "acme")
        admin.create_tenant(server.identity.db, "other")
        yield server


def plain(server: CloudServer, token: str | None = None) -> httpx.AsyncClient:
    """An HTTP client for the server, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.info.base_url, headers=headers, timeout=WAIT)


async def developer(server: CloudServer, name: str = "dev", role: str = "operator", tenant: str = "acme") -> str:
    """An operator's access token (signed in for real)."""
    return await operator_token(server, tenant=tenant, role=role, name=name)


async def register(
    server: CloudServer, token: str, *, name: str = "weather app", scopes: list[str] | None = None, plan: str = "free"
) -> dict[str, Any]:
    """Register an application; its JSON (with client_secret)."""
    async with plain(server, token) as http:
        r = await http.post(
            "/api/v1/applications", json={"name": name, "scopes": scopes or ["readings:read"], "plan": plan}
        )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def app_token(server: CloudServer, client_id: str, secret: str) -> httpx.Response:
    """The token endpoint's answer for an application's client credentials."""
    async with plain(server) as http:
        return await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))


__all__ = ["OPERATOR_PASSWORD", "app_token", "developer", "plain", "register"]
