"""The gateway's own identity end to end: enrollment (claim token, device flow), token refresh, revocation.

Real ``roost cloud serve`` and ``roost gateway run`` processes on loopback; the gateway has no
``cloud.password_file`` and enrolls with the cloud's authorization server. The test plays the operator
through ``cloud.identity.admin`` on the cloud's identity database.

Where the cloud's broker does not accept access tokens at CONNECT yet (it authenticated by its allow-list
only before token validation was wired in), the tests that need a token connection skip, saying so.
"""

from __future__ import annotations

import asyncio
import json
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.identity import admin
from tests.e2e.harness import Sensor, Site, wait_for_readings

pytestmark = pytest.mark.slow

TENANT = "default"
BROKER_REFUSES = "broker does not accept tokens yet"


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[list[Site]]:
    """Sites made by the test (a gateway without a password), stopped afterwards."""
    made: list[Site] = []
    try:
        yield made
    finally:
        for s in made:
            s.stop_all()


def _site(sites: list[Site], tmp: Path, *, ttl_s: int = 600) -> Site:
    s = Site(
        tmp,
        gateway_password=False,
        cloud_extra=f"[identity]\naccess_token_ttl_s = {ttl_s}\ndevice_poll_interval_s = 1\n",
    )
    sites.append(s)
    return s


def _log(site: Site) -> str:
    try:
        return site.gateway.log.read_text(errors="replace")
    except OSError:
        return ""


async def _wait_log(site: Site, pattern: str, timeout: float, *, count: int = 1) -> list[re.Match[str]]:
    """The matches of ``pattern`` in the gateway's log once there are ``count`` (fails the test on timeout)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        found = list(rx.finditer(_log(site)))
        if len(found) >= count:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{pattern!r} ({count}x) not in the gateway's log:\n{site.gateway.tail(60)}")
        await asyncio.sleep(0.2)


async def _connected_with_token_or_skip(site: Site, timeout: float = 25.0) -> None:
    """Wait for the uplink's connection after enrollment; skip when the broker refuses the token."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log(site)
        after = text.split("identity: enrolled as gateway", 1)[-1]
        if "uplink: connected to" in after:
            return
        await asyncio.sleep(0.2)
    text = _log(site)
    if re.search(r"uplink: MQTT .*(?:[Nn]ot authori[sz]ed|[Bb]ad user name or password|code:13[45]|code:[45]\b)", text):
        pytest.skip(f"{BROKER_REFUSES}: the cloud's broker refused the gateway's access token at CONNECT")
    raise AssertionError("the gateway did not connect after enrolling:\n" + site.gateway.tail(60))


def _claim(site: Site) -> None:
    admin.ensure_tenant(site.identity_db, TENANT)
    _rec, token = admin.create_claim_token(site.identity_db, TENANT, max_uses=1, ttl_s=600)
    (site.tmp / "claim.token").write_text(token + "\n")
    site.write_gateway_config('[identity]\nclaim_token_file = "claim.token"\n')


def _stored_tokens(site: Site) -> dict[str, object]:
    path = site.gateway_state_dir / "identity" / "tokens.json"
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


async def test_claim_token_enrollment_connects_with_its_token_and_readings_arrive(
    sites: list[Site], tmp_path: Path
) -> None:
    site = _site(sites, tmp_path)
    site.start_cloud()
    _claim(site)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e of tenant default", 30)
    # The store: folder 0700, files 0600, and neither a token nor the key in the log.
    folder = site.gateway_state_dir / "identity"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("tokens.json", "key.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    tokens = _stored_tokens(site)
    assert tokens["gateway_id"] == "gw-e2e" and tokens["tenant"] == TENANT
    gateways = admin.list_all(site.identity_db, TENANT).gateways
    assert [g.id for g in gateways] == ["gw-e2e"]
    assert gateways[0].public_key and "BEGIN PUBLIC KEY" in gateways[0].public_key
    await _connected_with_token_or_skip(site)
    async with Sensor(site.coap_port, "claim-th1") as s:
        for _ in range(3):
            await s.post(s.next_readings(5))
        items = await wait_for_readings(site, s, timeout=30)
    assert len(items) == 15 and {i["gateway"] for i in items} == {"gw-e2e"}
    text = _log(site)
    for secret in (str(tokens["access_token"]), str(tokens["refresh_token"])):
        assert secret not in text
    assert "BEGIN PRIVATE KEY" not in text


async def test_device_flow_shows_a_code_and_readings_buffered_before_approval_arrive(
    sites: list[Site], tmp_path: Path
) -> None:
    site = _site(sites, tmp_path)
    site.start_cloud()
    admin.ensure_tenant(site.identity_db, TENANT)
    await site.start_gateway()
    (match,) = await _wait_log(site, r"Enroll this gateway: open (\S+) and enter ([A-Z0-9-]+)", 30)
    assert match.group(1).endswith("/enroll")
    user_code = match.group(2)
    status = json.loads((site.gateway_state_dir / "identity" / "enrollment.json").read_text())
    assert status["state"] == "waiting-for-approval" and status["user_code"] == user_code
    async with Sensor(site.coap_port, "device-th1") as s:
        for _ in range(4):
            await s.post(s.next_readings(5))  # buffered: the gateway has no credentials yet
        assert len(s.acked) == 20
        await asyncio.sleep(2)
        assert await asyncio.to_thread(site.readings, sensor="device-th1") == []
        gw = admin.approve_device(site.identity_db, user_code, TENANT, gateway_id="gw-e2e")
        assert gw.id == "gw-e2e"
        await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
        status = json.loads((site.gateway_state_dir / "identity" / "enrollment.json").read_text())
        assert status["state"] == "enrolled"
        await _connected_with_token_or_skip(site)
        items = await wait_for_readings(site, s, timeout=30)
    assert len(items) == 20
    # One code, logged once.
    assert _log(site).count("Enroll this gateway") == 1


async def test_readings_keep_flowing_across_token_refreshes(sites: list[Site], tmp_path: Path) -> None:
    site = _site(sites, tmp_path, ttl_s=5)
    site.start_cloud()
    _claim(site)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    await _connected_with_token_or_skip(site)
    first = _stored_tokens(site)
    stop = asyncio.Event()
    async with Sensor(site.coap_port, "refresh-th1") as s:
        streaming = asyncio.create_task(s.stream(stop, every=0.05))
        await _wait_log(site, r"identity: access token refreshed", 30, count=3)
        await _wait_log(site, r"credentials were renewed: reconnecting", 15, count=3)
        await asyncio.sleep(1.0)
        stop.set()
        await streaming
        items = await wait_for_readings(site, s, timeout=40)
    assert len(s.acked) > 50
    assert len({(i["sensor"], i["ts"]) for i in items}) == len(s.acked)
    latest = _stored_tokens(site)
    assert latest["refresh_token"] != first["refresh_token"]  # rotated, and the new one stored
    assert len(re.findall(r"uplink: connected to", _log(site).split("enrolled as gateway", 1)[1])) >= 3


async def test_a_revoked_gateway_stops_using_its_refresh_token_and_asks_to_be_enrolled(
    sites: list[Site], tmp_path: Path
) -> None:
    site = _site(sites, tmp_path, ttl_s=5)
    site.start_cloud()
    _claim(site)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    assert admin.revoke_gateway(site.identity_db, "gw-e2e") >= 1
    await _wait_log(site, r"ERROR.*must be enrolled again", 20)
    assert not (site.gateway_state_dir / "identity" / "tokens.json").exists()
    # Back to enrollment: the single-use claim token is spent, so the device flow shows a code.
    await _wait_log(site, r"Enroll this gateway: open", 20)
    await asyncio.sleep(6)  # longer than the access token's lifetime: no further refresh is tried
    text = _log(site)
    assert text.count("refused this gateway's refresh token") == 1
    assert "access token refreshed" not in text.split("refused this gateway's refresh token", 1)[1]
    status = json.loads((site.gateway_state_dir / "identity" / "enrollment.json").read_text())
    assert status["state"] == "waiting-for-approval"
    assert site.gateway.alive
