"""Commands end to end: an operator sends them through the API, the gateway's DM agent runs them over MQTT.

Real ``roost cloud serve`` and ``roost gateway run`` processes; the gateway enrolled with a claim token.
``rotate-credentials`` gives the gateway a new key pair and tokens while readings keep flowing.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud.identity import admin
from tests.e2e.harness import Sensor, Site, assert_exactly_once, wait_for_readings
from tests.e2e.test_enrollment import TENANT, _claim, _connected_with_token_or_skip, _site, _wait_log, sites  # noqa: F401

pytestmark = pytest.mark.slow


def _token(site: Site, name: str, role: str) -> str:
    admin.ensure_operator(site.identity_db, TENANT, name, lambda: "correct horse battery staple", role=role)
    minted = admin.operator_token(
        site.identity_db, TENANT, name, ttl_s=600, issuer=site.base, audience="roost", keep_retired_s=3600
    )
    return minted.access_token


def _call(site: Site, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        site.base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def _send(site: Site, token: str, command: str, **body: Any) -> tuple[int, Any]:
    payload = {"command": command, "wait_s": 20, **body}
    return await asyncio.to_thread(_call, site, token, "POST", f"/api/v1/gateways/{site.gateway_id}/commands", payload)


async def test_an_operator_commands_the_gateway_and_rotates_its_credentials(
    sites: list[Site],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = _site(sites, tmp_path)
    site.start_cloud()
    _claim(site)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    await _connected_with_token_or_skip(site)
    olga = _token(site, "olga", "operator")

    status, ping = await _send(site, olga, "ping")
    assert (status, ping["status"]) == (200, "ok"), ping
    assert ping["result"]["gateway"] == "gw-e2e" and ping["issued_by"] == "operator:default/olga"

    status, state = await _send(site, olga, "report-state")
    assert status == 200 and state["result"]["identity"]["state"] == "enrolled"
    assert "rotate-credentials" in state["result"]["commands"]

    status, unknown = await _send(site, olga, "self-destruct")
    assert (status, unknown["status"]) == (200, "unknown") and "rotate-credentials" in unknown["error"]

    key_before = (site.gateway_state_dir / "identity" / "key.pem").read_bytes()
    pub_before = admin.list_all(site.identity_db, TENANT).gateways[0].public_key
    async with Sensor(site.coap_port, "rot-th1") as sensor:
        stop = asyncio.Event()
        stream = asyncio.create_task(sensor.stream(stop, every=0.05, n=2))
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        status, rotated = await _send(site, olga, "rotate-credentials", timeout_s=60)
        assert (status, rotated["status"]) == (200, "ok"), rotated
        assert time.monotonic() - t0 < 8, "the result comes on the new connection, not after a resend"
        await asyncio.sleep(2.0)  # the old token's connection closes; the gateway reconnects with the new one
        stop.set()
        await stream
        items = await wait_for_readings(site, sensor, timeout=40)
    assert len(sensor.acked) > 40
    assert_exactly_once(sensor, items)  # every reading acknowledged around the rotation reached the cloud, once
    assert (site.gateway_state_dir / "identity" / "key.pem").read_bytes() != key_before
    assert admin.list_all(site.identity_db, TENANT).gateways[0].public_key != pub_before
    await _wait_log(site, r"identity: rotated this gateway's key pair", 5)
    await _wait_log(site, r"uplink: the credentials were renewed: reconnecting", 10)  # the old token is revoked
    cloud_log = site.cloud.log.read_text(errors="replace")
    assert "gw-e2e rotated its key pair" in cloud_log

    # The list shows what was sent, by whom, and how it ended.
    status, listing = await asyncio.to_thread(_call, site, olga, "GET", f"/api/v1/gateways/{site.gateway_id}/commands")
    assert status == 200
    assert [c["command"] for c in listing["items"]][:2] == ["rotate-credentials", "self-destruct"]

    # A viewer reads but never commands.
    vera = _token(site, "vera", "viewer")
    status, refused = await _send(site, vera, "ping")
    assert status == 403 and "may not send_command" in refused["error"]["message"]


async def test_a_command_to_an_offline_gateway_times_out(sites: list[Site], tmp_path: Path) -> None:  # noqa: F811
    site = _site(sites, tmp_path)
    site.start_cloud()
    admin.ensure_tenant(site.identity_db, TENANT)
    olga = _token(site, "olga", "operator")
    started = time.monotonic()
    status, pending = await _send(site, olga, "ping", timeout_s=1, wait_s=3)
    assert status == 200 and pending["status"] == "timeout", pending
    assert time.monotonic() - started < 10
