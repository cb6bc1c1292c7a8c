"""Volume limits on device-flow enrollment, and the periodic purge of expired identity records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG
from tests.cloud.identity.conftest import client_of, identity_of

DEVICE_REQUEST = {"client_id": "roost-gateway", "hardware_id": "10000000cafe0001", "public_key": "PUBKEY"}


async def _cloud(tmp_path: Path, extra: str) -> CloudServer:
    server = CloudServer(loads(BASE_CONFIG + "\n[identity]\n" + extra, base_dir=tmp_path))
    await server.__aenter__()
    admin.create_tenant(identity_of(server).db, "acme")
    return server


async def test_device_authorization_counts_every_request_per_address(tmp_path: Path) -> None:
    server = await _cloud(tmp_path, "device_authorizations_per_minute = 3\n")
    try:
        async with client_of(server) as http:
            statuses = [
                (await http.post("/oauth/device_authorization", data=DEVICE_REQUEST)).status_code for _ in range(5)
            ]
            assert statuses == [200, 200, 200, 429, 429], "successful requests count too, not only failures"
            r = await http.post("/oauth/device_authorization", data=DEVICE_REQUEST)
            assert r.json()["error"] == "slow_down" and "this address" in r.json()["error_description"]
            assert int(r.headers["retry-after"]) >= 1
        assert identity_of(server).db.pending_devices(time.time()) == 3, "refused requests leave no code behind"
    finally:
        await server.__aexit__(None, None, None)


async def test_codes_waiting_for_approval_are_capped(tmp_path: Path) -> None:
    server = await _cloud(tmp_path, "pending_device_codes_max = 2\ndevice_authorizations_per_minute = 100\n")
    try:
        async with client_of(server) as http:
            for _ in range(2):
                assert (await http.post("/oauth/device_authorization", data=DEVICE_REQUEST)).status_code == 200
            r = await http.post("/oauth/device_authorization", data=DEVICE_REQUEST)
            assert r.status_code == 503
            assert r.json()["error"] == "temporarily_unavailable"
            assert "2 enrollments are already waiting for approval" in r.json()["error_description"]
    finally:
        await server.__aexit__(None, None, None)


async def test_expired_records_are_purged_while_the_cloud_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = await _cloud(tmp_path, "purge_interval_s = 1\ndevice_code_ttl_s = 1\n")
    db = identity_of(server).db
    try:
        async with client_of(server) as http:
            assert (await http.post("/oauth/device_authorization", data=DEVICE_REQUEST)).status_code == 200
        count = lambda: db._one("SELECT COUNT(*) FROM device_codes", ())[0]  # noqa: E731
        assert count() == 1
        # The purge keeps a day's grace; make the code look two days old.
        with db._tx() as conn:
            conn.execute("UPDATE device_codes SET expires = ?", (time.time() - 2 * 86400,))
        for _ in range(40):
            if count() == 0:
                break
            await asyncio.sleep(0.1)
        assert count() == 0, "the periodic purge did not remove an expired device code"
    finally:
        await server.__aexit__(None, None, None)
