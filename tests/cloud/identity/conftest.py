"""A real cloud on loopback with the authorization server, and helpers to get tokens from it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.identity.service import IdentityService
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, WAIT

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
IDENTITY_CONFIG = """
[identity]
throttle_burst = 6
throttle_rate_per_s = 0.01
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud whose identity database holds tenants ``acme`` and ``other``."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        assert server.identity is not None
        admin.create_tenant(server.identity.db, "acme")
        admin.create_tenant(server.identity.db, "other")
        yield server


def identity_of(server: CloudServer) -> IdentityService:
    """The server's identity service."""
    assert server.identity is not None
    return server.identity


def client_of(server: CloudServer) -> httpx.AsyncClient:
    """A plain HTTP client for the server."""
    return httpx.AsyncClient(base_url=server.info.base_url, timeout=WAIT)


async def client_token(server: CloudServer, tenant: str = "acme", role: str = "admin") -> tuple[str, str, str]:
    """(client id, secret, access token) of a new API client of ``tenant`` with ``role``."""
    rec, secret = admin.create_client(identity_of(server).db, tenant, role=role, scopes=["api", "read"])
    async with client_of(server) as http:
        r = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(rec.client_id, secret))
    assert r.status_code == 200, r.text
    return rec.client_id, secret, r.json()["access_token"]


OPERATOR_PASSWORD = "correct horse battery staple"


async def sign_in(
    server: CloudServer, http: httpx.AsyncClient, name: str, *, tenant: str = "acme", role: str = "admin"
) -> str:
    """Create operator ``name`` when missing and sign ``http`` in as it (a session cookie); its CSRF token."""
    admin.ensure_operator(identity_of(server).db, tenant, name, lambda: OPERATOR_PASSWORD, role=role)
    r = await http.post("/auth/signin", json={"tenant": tenant, "username": name, "password": OPERATOR_PASSWORD})
    assert r.status_code == 200, r.text
    csrf: str = r.json()["csrf_token"]
    return csrf


async def operator_token(server: CloudServer, tenant: str = "acme", role: str = "admin", name: str = "") -> str:
    """An operator's access token, the real way: sign in, then ``POST /auth/token`` with the CSRF token."""
    async with client_of(server) as http:
        csrf = await sign_in(server, http, name or f"{role}-of-{tenant}", tenant=tenant, role=role)
        r = await http.post("/auth/token", headers={"X-Roost-CSRF": csrf})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


async def enroll_by_device(
    server: CloudServer, *, tenant: str = "acme", hardware_id: str = "10000000feedbeef"
) -> dict[str, Any]:
    """The token response of a gateway enrolled through the device flow and an admin's approval over HTTP."""
    admin_token = await operator_token(server, tenant)
    async with client_of(server) as http:
        r = await http.post(
            "/oauth/device_authorization",
            data={"client_id": "roost-gateway", "hardware_id": hardware_id, "public_key": "PEM"},
        )
        assert r.status_code == 200, r.text
        code = r.json()
        r = await http.post(
            "/api/v1/enrollments/approve",
            json={"user_code": code["user_code"], "tenant": tenant},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert r.status_code == 200, r.text
        r = await http.post(
            "/oauth/token",
            data={"grant_type": DEVICE_GRANT, "client_id": "roost-gateway", "device_code": code["device_code"]},
        )
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens
