"""Device management end to end: real ``roost cloud serve`` and ``roost gateway run`` processes on loopback.

The gateway enrolls with a claim token and runs its privileged actions and NetworkManager through the fakes
(``[dm] privileged = "fake"``, ``network = "fake"``). Each command goes through the API, over MQTT, to the
DM agent and back; desired state is set through the API and reported back; a config and network settings
that lose the cloud are rolled back; the same request id published twice acts once; lock, unlock and wipe;
and a gateway revoked as stolen wipes itself when the cloud tells it so.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import aiocoap
import aiomqtt
import pytest

from cloud.policy.decision import default_policies
from gateway.dm.privileged import recorded
from tests.e2e.harness import Sensor, Site, free_port
from tests.e2e.test_commands import _call, _send, _token
from tests.e2e.test_enrollment import TENANT, _connected_with_token_or_skip, _site, _wait_log, sites  # noqa: F401
from wire.commands import Command

pytestmark = pytest.mark.slow

DM = """
[dm]
privileged = "fake"
network = "fake"
fake_network_loses_cloud = ["cafe-guest"]
rollback_after_s = 5.0
"""


def _enrolled_site(sites: list[Site], tmp_path: Path) -> Site:  # noqa: F811
    from cloud.identity import admin

    site = _site(sites, tmp_path)
    site.start_cloud()
    admin.ensure_tenant(site.identity_db, TENANT)
    _rec, token = admin.create_claim_token(site.identity_db, TENANT, max_uses=1, ttl_s=600)
    (site.tmp / "claim.token").write_text(token + "\n")
    site.write_gateway_config('[identity]\nclaim_token_file = "claim.token"\n' + DM)
    return site


async def _state(site: Site, token: str) -> dict[str, Any]:
    status, body = await asyncio.to_thread(_call, site, token, "GET", f"/api/v1/gateways/{site.gateway_id}/state")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last})")


async def _coap_answers(site: Site) -> bool:
    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{site.coap_port}/.well-known/core")
        try:
            resp = await asyncio.wait_for(ctx.request(msg).response, 1.5)
        except Exception:
            return False
        return bool(resp.code.is_successful())
    finally:
        await ctx.shutdown()


async def test_every_command_desired_state_and_roll_backs_end_to_end(sites: list[Site], tmp_path: Path) -> None:  # noqa: F811
    site = _enrolled_site(sites, tmp_path)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    await _connected_with_token_or_skip(site)
    olga = _token(site, "olga", "admin")
    gw = site.gateway_id

    # logs: the gateway's own recent log, without a token in it.
    status, logs = await _send(site, olga, "logs", args={"lines": 200})
    assert (status, logs["status"]) == (200, "ok"), logs
    text = json.dumps(logs["result"]["lines"])
    assert "enrolled as gateway" in text and "eyJ" not in text
    tokens = json.loads((site.gateway_state_dir / "identity" / "tokens.json").read_text())
    assert tokens["refresh_token"] not in text and tokens["access_token"] not in text

    # locate: no GPS and no configured position here, and it says so; pair/unpair a sensor by id.
    status, where = await _send(site, olga, "locate")
    assert where["status"] == "error" and "does not know where it is" in where["error"], where
    status, paired = await _send(site, olga, "pair", args={"kind": "sensor", "id": "late-th9", "name": "Shed"})
    assert paired["status"] == "ok" and paired["result"]["paired"] is True, paired
    status, unpaired = await _send(site, olga, "unpair", args={"kind": "sensor", "id": "late-th9"})
    assert unpaired["status"] == "ok" and unpaired["result"]["paired"] is False, unpaired

    # Reported state arrives on connect: sensors with management levels, versions, features.
    first = await _until(lambda: _state(site, olga), 15, "the first reported state")
    assert (await _until(lambda: _has_reported(site, olga), 15, "reported"))["reported"]["features"]["coap"] is True
    assert first["gateway"] == gw

    # Desired state: what can be applied is, the rest is rejected with reasons.
    desired = {"config": {"uplink": {"batch_max_delay_ms": 80}, "cloud": {"url": "http://elsewhere:1"},
                          "adapters": {"coap": {"max_records": 0}}}, "rules": "[[rules]]\nname = 'x'\n"}  # fmt: skip
    status, body = await asyncio.to_thread(_call, site, olga, "PUT", f"/api/v1/gateways/{gw}/desired", desired)
    assert status == 200 and body["version"] == 1, body

    async def synced() -> dict[str, Any] | None:
        state = await _state(site, olga)
        return state if state["in_sync"] and state["reported"] else None

    state = await _until(synced, 30, "desired version 1 reported")
    reported = state["reported"]
    assert reported["applied"] == ["uplink.batch_max_delay_ms", "rules"]
    assert "not settable" in reported["rejected"]["cloud.url"]
    assert "max_records" in reported["rejected"]["adapters.coap"]
    assert (site.gateway_state_dir / "dm" / "rules.toml").read_text().startswith("[[rules]]")

    # A config that loses the cloud (a broker URL nobody answers) is rolled back after rollback_after_s.
    dead = f"ws://127.0.0.1:{free_port()}/mqtt"
    status, body = await asyncio.to_thread(
        _call, site, olga, "PUT", f"/api/v1/gateways/{gw}/desired", {"config": {"cloud": {"mqtt_url": dead}}}
    )
    assert status == 200 and body["version"] == 2

    async def rolled_back() -> dict[str, Any] | None:
        rep = (await _state(site, olga))["reported"]
        return rep if rep.get("rolled_back", {}).get("version") == 2 else None

    rep = await _until(rolled_back, 40, "the roll-back of version 2")
    assert rep["version"] == 1 and "could not reach the cloud" in rep["rolled_back"]["reason"]
    await _wait_log(site, r"dm: desired version 2 rolled back", 5)

    # Network settings through the fake NetworkManager: a network that loses the cloud is rolled back.
    status, bad = await _send(site, olga, "network", args={"wifi": {"ssid": "cafe-guest", "psk": "guest-passphrase"}},
                              timeout_s=60, wait_s=25)  # fmt: skip
    assert (status, bad["status"]) == (200, "error") and "rolled back" in bad["error"], bad
    assert "guest-passphrase" not in json.dumps(bad)
    status, good = await _send(site, olga, "network", args={"wifi": {"ssid": "plant-wifi", "psk": "plant-passphrase"}})
    assert good["status"] == "ok" and good["result"]["applied"]["wifi"] == {"ssid": "plant-wifi", "psk_set": True}
    fake_nm = json.loads((site.gateway_state_dir / "fake-network.json").read_text())
    assert fake_nm["wifi"]["ssid"] == "plant-wifi"

    # enable / disable a feature; reboot and restart through the (fake) privileged helper.
    status, off = await _send(site, olga, "disable", args={"feature": "coap"})
    assert off["status"] == "ok" and off["result"]["features"]["coap"] is False
    await _until(lambda: _not(_coap_answers(site)), 20, "the CoAP adapter stopping")
    status, on = await _send(site, olga, "enable", args={"feature": "coap"})
    assert on["status"] == "ok"
    await _until(lambda: _coap_answers(site), 20, "the CoAP adapter starting again")
    for command in ("reboot", "restart"):
        status, done = await _send(site, olga, command)
        assert (status, done["status"]) == (200, "ok"), done
    assert [a["action"] for a in recorded(site.gateway_state_dir)] == ["reboot", "restart"]
    status, cfg = await _send(site, olga, "set-config", args={"config": {"uplink": {"health_interval_s": 2.0}}})
    assert cfg["status"] == "ok" and cfg["result"]["applied"] == ["uplink.health_interval_s"], cfg

    # lock: adapters and data flow stop, only the DM channel answers; unlock brings them back.
    status, locked = await _send(site, olga, "lock", args={"reason": "suspicious"})
    assert locked["status"] == "ok" and locked["result"]["locked"] is True
    await _until(lambda: _not(_coap_answers(site)), 20, "the adapters stopping on lock")
    status, ping = await _send(site, olga, "ping")
    assert ping["status"] == "ok", "the DM channel stays while locked"
    status, unlocked = await _send(site, olga, "unlock")
    assert unlocked["status"] == "ok"
    await _until(lambda: _coap_answers(site), 20, "the adapters after unlock")
    async with Sensor(site.coap_port, "after-unlock") as sensor:
        resp = await sensor.post(sensor.next_readings(3))
        assert resp.code == aiocoap.CHANGED

    # Idempotency: the same command published twice, as the cloud does when it resends, acts once.
    owner = _token(site, "oskar", "owner")
    policy = default_policies() + (
        '\n@id("test-owner-publishes-commands")\npermit (principal is Operator, action == Action::"publish", '
        'resource is Topic) when { principal.role == "owner" && resource.kind == "cmd" };\n'
    )
    status, body = await asyncio.to_thread(_call, site, owner, "PUT", "/api/v1/policies", {"text": policy})
    assert status == 200, body
    rid = secrets.token_hex(8)
    cmd = Command(command="enable", args={"feature": "ssh"}, deadline=time.time() + 60, issued_by="test").encode()
    results: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", site.http_port, transport="websockets", websocket_path="/mqtt",
                              identifier="oskar-test", username="oskar", password=owner) as client:  # fmt: skip
        await client.subscribe(f"roost/{TENANT}/{gw}/cmd-result/{rid}", qos=1)
        for _ in range(2):
            await client.publish(f"roost/{TENANT}/{gw}/cmd/{rid}", cmd, qos=1)
            await asyncio.sleep(0.3)
        async with asyncio.timeout(15):
            async for message in client.messages:
                if not str(message.topic).endswith(f"/cmd-result/{rid}"):
                    continue
                results.append(bytes(message.payload))  # type: ignore[arg-type]
                if len(results) == 2:
                    break
    assert results[0] == results[1] and json.loads(results[0])["status"] == "ok"
    assert [a["action"] for a in recorded(site.gateway_state_dir)].count("ssh-on") == 1, "acted once"

    # ... and across a power cut: the gateway is killed, starts again, and the same request id still acts once
    # (the command journal on disk), answered with the first result.
    connects = len(await _wait_log(site, r"uplink: connected to", 5))
    site.gateway.kill()
    await site.start_gateway()
    await _wait_log(site, r"uplink: connected to", 30, count=connects + 1)
    async with aiomqtt.Client("127.0.0.1", site.http_port, transport="websockets", websocket_path="/mqtt",
                              identifier="oskar-test", username="oskar", password=owner) as client:  # fmt: skip
        await client.subscribe(f"roost/{TENANT}/{gw}/cmd-result/{rid}", qos=1)
        await client.publish(f"roost/{TENANT}/{gw}/cmd/{rid}", cmd, qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                if str(message.topic).endswith(f"/cmd-result/{rid}"):
                    after_reboot = bytes(message.payload)  # type: ignore[arg-type]
                    break
    assert after_reboot == results[0], "the first result, from the journal"
    assert [a["action"] for a in recorded(site.gateway_state_dir)].count("ssh-on") == 1, "not run again after reboot"

    # wipe: credentials, keys, buffer, pairings and state erased; then factory state.
    key_before = (site.gateway_state_dir / "identity" / "key.pem").read_bytes()
    status, wiped = await _send(site, olga, "wipe", args={"confirm": "wipe"})
    assert wiped["status"] == "ok", wiped
    (match,) = await _wait_log(site, r"wipe \(by command\): erased (\d+) files; this gateway is in factory state", 20)
    assert int(match.group(1)) >= 8
    state_dir = site.gateway_state_dir
    assert not (state_dir / "identity" / "tokens.json").exists() and not (state_dir / "dm").exists()
    assert not (state_dir / "fake-network.json").exists() and not (state_dir / "privileged-actions.jsonl").exists()
    assert not (site.tmp / "claim.token").exists(), "the claim token is a credential too"
    # Factory state: no claim token left, so it asks to be enrolled through the device flow, with a new key.
    await _wait_log(site, r"Enroll this gateway: open", 30)
    key_after = state_dir / "identity" / "key.pem"
    assert not key_after.exists() or key_after.read_bytes() != key_before


async def _has_reported(site: Site, token: str) -> dict[str, Any] | None:
    state = await _state(site, token)
    return state if state["reported"] else None


async def _not(awaitable: Any) -> bool:
    return not await awaitable


async def test_a_gateway_revoked_as_stolen_wipes_itself(sites: list[Site], tmp_path: Path) -> None:  # noqa: F811
    from cloud.identity import admin

    site = _enrolled_site(sites, tmp_path)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    await _connected_with_token_or_skip(site)
    key_before = (site.gateway_state_dir / "identity" / "key.pem").read_bytes()
    ada = _token(site, "ada", "admin")
    status, out = await asyncio.to_thread(
        _call, site, ada, "POST", f"/api/v1/gateways/{site.gateway_id}/revoke", {"stolen": True, "wipe": False}
    )
    # No wipe command queued: the instruction comes from the token endpoint ("revoked: wipe") alone.
    assert status == 200 and out["stolen"] and "wipe_request_id" not in out, out
    await _wait_log(site, r"the cloud revoked this gateway as stolen: wiping it", 60)
    await _wait_log(site, r"this gateway is in factory state", 20)
    key = site.gateway_state_dir / "identity" / "key.pem"
    assert not key.exists() or key.read_bytes() != key_before, "the old key is gone (a new one may be made to enroll)"
    assert not (site.gateway_state_dir / "identity" / "tokens.json").exists()
    assert not (site.tmp / "claim.token").exists()
    # It cannot come back with the same hardware until an operator allows it.
    blocked = admin.list_all(site.identity_db, TENANT)
    assert blocked.gateways[0].revoked is not None
