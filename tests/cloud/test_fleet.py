"""The fleet manager: registry view, tags, desired state (retained, re-sent on connect), reported state, bulk
commands by tag with per-gateway results, the audit trail, tenant isolation, and revoking a stolen gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.identity.errors import NotFound
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, WAIT, eventually, http, mqtt, next_message
from tests.cloud.identity.conftest import DEVICE_GRANT, client_of, enroll_by_device, identity_of, operator_token
from wire.commands import Result, decode_command

IDENTITY_CONFIG = """
[identity]
throttle_burst = 50
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        for tenant in ("default", "acme", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        yield server


async def _answer_commands(client: aiomqtt.Client, gateway: str, ran: list[str]) -> None:
    """A stand-in gateway: answers every command with ok (each request id once)."""
    async for message in client.messages:
        topic = str(message.topic)
        if "/cmd/" not in topic:
            continue
        rid = topic.rsplit("/", 1)[1]
        cmd = decode_command(bytes(message.payload))  # type: ignore[arg-type]
        if rid not in ran:
            ran.append(rid)
        result = Result(request_id=rid, status="ok", result={"gateway": gateway, "command": cmd.command}, finished=1.0)
        await client.publish(f"roost/default/{gateway}/cmd-result/{rid}", result.encode(), qos=1)


async def test_registry_tags_desired_reported_and_bulk_commands_by_tag(cloud: CloudServer) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    ran: dict[str, list[str]] = {"gw-1": [], "gw-2": []}
    async with (
        mqtt(cloud) as gw1,
        mqtt(cloud, "gw-2", username="gw-2", password="pw-gw-2-secret") as gw2,
        http(cloud, olga) as api,
    ):
        await gw1.subscribe("roost/default/gw-1/cmd/+", qos=1)
        await gw2.subscribe("roost/default/gw-2/cmd/+", qos=1)
        await gw1.subscribe("roost/default/gw-1/state/desired", qos=1)
        await gw1.publish("roost/default/gw-1/status", b"online", qos=1, retain=True)
        await gw2.publish("roost/default/gw-2/status", b"online", qos=1, retain=True)
        reported = {"version": 0, "versions": {"roost": "1.2.3"}, "sensors": [{"id": "th-7", "adapter": "serial",
                    "management": "semi", "available": True}], "location": {"lat": 52.5, "lon": 13.4}}  # fmt: skip
        await gw1.publish("roost/default/gw-1/state/reported", json.dumps(reported).encode(), qos=1, retain=True)

        # Tags by an admin; the registry view filters by them, by version and by text.
        r = await api.put("/api/v1/gateways/gw-1/tags", json={"tags": ["north", "pilot"], "site": "plant-1"})
        assert r.status_code == 200, r.text
        r = await api.put("/api/v1/gateways/gw-2/tags", json={"tags": ["north"]})
        assert r.status_code == 200

        async def reported_in() -> bool:
            items = (await api.get("/api/v1/fleet/gateways", params={"version": "1.2.3"})).json()["items"]
            return [g["id"] for g in items] == ["gw-1"]

        await eventually(reported_in)
        items = (await api.get("/api/v1/fleet/gateways", params={"tag": "north"})).json()["items"]
        assert [g["id"] for g in items] == ["gw-1", "gw-2"]
        (one,) = (await api.get("/api/v1/fleet/gateways", params={"q": "th-7"})).json()["items"]
        assert one["id"] == "gw-1" and one["site"] == "plant-1" and one["location"]["lat"] == 52.5
        assert one["sensors"][0]["management"] == "semi"
        assert (await api.get("/api/v1/fleet/gateways", params={"tag": ["north", "pilot"]})).json()["items"][0][
            "id"
        ] == "gw-1"

        # Desired state: numbered by the cloud, published retained.
        r = await api.put("/api/v1/gateways/gw-1/desired", json={"config": {"uplink": {"batch_max_delay_ms": 500}}})
        assert r.status_code == 200 and r.json()["version"] == 1
        message = await next_message(gw1)
        assert str(message.topic) == "roost/default/gw-1/state/desired"
        assert json.loads(message.payload)["config"] == {"uplink": {"batch_max_delay_ms": 500}}  # type: ignore[arg-type]
        # ... and re-sent when the gateway says it is online again.
        await gw1.publish("roost/default/gw-1/status", b"online", qos=1, retain=True)
        again = await next_message(gw1)
        assert json.loads(again.payload)["version"] == 1  # type: ignore[arg-type]
        state = (await api.get("/api/v1/gateways/gw-1/state")).json()
        assert state["desired"]["version"] == 1 and state["in_sync"] is False

        # Bulk: one command to every gateway tagged north, each with its own request id and result.
        answering = [asyncio.create_task(_answer_commands(c, g, ran[g])) for c, g in ((gw1, "gw-1"), (gw2, "gw-2"))]
        try:
            r = await api.post(
                "/api/v1/fleet/commands",
                json={"selector": {"tags": ["north"]}, "command": "ping", "wait_s": 5},
            )
        finally:
            for t in answering:
                t.cancel()
        assert r.status_code == 200, r.text
        bulk = r.json()
        assert bulk["selected"] == 2 and bulk["summary"] == {"ok": 2}
        assert {i["gateway"]: i["result"]["gateway"] for i in bulk["items"]} == {"gw-1": "gw-1", "gw-2": "gw-2"}
        assert len({i["request_id"] for i in bulk["items"]}) == 2
        r = await api.post("/api/v1/fleet/commands", json={"selector": {}, "command": "ping"})
        assert r.status_code == 400, "a bulk command to everything must say so"

        # The audit trail: who did what.
        trail = (await api.get("/api/v1/fleet/audit")).json()["items"]
        assert [e["action"] for e in trail][:4] == ["bulk:ping", "set-desired", "set-tags", "set-tags"]
        assert all(e["who"] == "operator:default/olga" for e in trail)

    # Another tenant sees none of it, and a viewer cannot tag or set desired state.
    other = await operator_token(cloud, "other", "admin", "otto")
    async with http(cloud, other) as api:
        assert (await api.get("/api/v1/fleet/gateways")).json()["items"] == []
        r = await api.get("/api/v1/fleet/gateways", params={"tenant": "default"})
        assert r.status_code == 403
    vera = await operator_token(cloud, "default", "viewer", "vera")
    async with http(cloud, vera) as api:
        assert (await api.put("/api/v1/gateways/gw-1/tags", json={"tags": ["x"]})).status_code == 403
        assert (await api.put("/api/v1/gateways/gw-1/desired", json={"config": {}})).status_code == 403
        assert (await api.get("/api/v1/fleet/gateways")).status_code == 200


async def test_reported_state_from_another_client_is_ignored(cloud: CloudServer) -> None:
    async with mqtt(cloud, "gw-2", username="gw-2", password="pw-gw-2-secret") as gw2:
        await gw2.publish("roost/default/gw-1/state/reported", b'{"version": 9}', qos=1)
        await asyncio.sleep(0.3)
    assert (await cloud.registry.get("default", "gw-1")).reported is None


async def _device_code(cloud: CloudServer, hardware_id: str) -> Any:
    async with client_of(cloud) as c:
        return await c.post(
            "/oauth/device_authorization",
            data={"client_id": "roost-gateway", "hardware_id": hardware_id, "public_key": "PEM"},
        )


async def test_revoking_a_stolen_gateway_blocks_its_hardware_and_tells_it_to_wipe(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feedbeef")
    gw = tokens["gateway_id"]
    boss = await operator_token(cloud, "acme", "admin", "ada")
    async with http(cloud, boss) as api:
        r = await api.post(f"/api/v1/gateways/{gw}/revoke", json={"stolen": True, "wipe": True})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["stolen"] and out["hardware_blocked"] == "10000000feedbeef" and out["wipe_request_id"]
        queued = (await api.get(f"/api/v1/gateways/{gw}/commands/{out['wipe_request_id']}")).json()
        assert queued["command"] == "wipe" and queued["status"] == "pending" and queued["deadline"] > 86400 * 20
        trail = (await api.get("/api/v1/fleet/audit")).json()["items"]
        assert trail[0]["action"] == "revoke" and trail[0]["who"] == "operator:acme/ada"
    # The gateway's refresh token is answered with the wipe instruction.
    async with client_of(cloud) as c:
        r = await c.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "roost-gateway",
                "refresh_token": tokens["refresh_token"],
            },
        )
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant", "error_description": "revoked: wipe"}
    # Re-enrollment with the same hardware id is refused: device flow and claim token alike.
    r = await _device_code(cloud, "10000000feedbeef")
    assert r.status_code in (400, 403) and r.json()["error"] == "access_denied", r.text
    _claim, claim_token = admin.create_claim_token(identity_of(cloud).db, "acme")
    async with client_of(cloud) as c:
        r = await c.post(
            "/oauth/token",
            data={
                "grant_type": "urn:roost:claim-token",
                "client_id": "roost-gateway",
                "claim_token": claim_token,
                "hardware_id": "10000000feedbeef",
                "gateway_id": "gw-new-name",
            },
        )
    assert r.status_code == 400 and "blocked" in r.json()["error_description"], r.text
    # Until an operator allows it: then it enrolls again under its old id.
    assert admin.allow_hardware(identity_of(cloud).db, "10000000feedbeef") == [gw]
    again = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feedbeef")
    assert again["gateway_id"] == gw
    with pytest.raises(NotFound):
        admin.allow_hardware(identity_of(cloud).db, "10000000feedbeef")
    assert DEVICE_GRANT and WAIT


async def test_a_device_behind_a_gateway_is_commanded_over_http(cloud: CloudServer) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    ran: list[str] = []
    seen: list[dict[str, Any]] = []
    async with mqtt(cloud) as gw1, http(cloud, olga) as api:
        await gw1.subscribe("roost/default/gw-1/cmd/+", qos=1)

        # No answer yet: 202 with the command pending and where to poll for its result.
        on = {"action": "on", "args": {"output": 1}}
        r = await api.post("/api/v1/gateways/gw-1/sensors/pump-1/commands", json=on)
        assert r.status_code == 202, r.text
        pending = r.json()
        assert pending["status"] == "pending" and pending["command"] == "actuate"
        assert r.headers["location"] == f"/api/v1/gateways/gw-1/commands/{pending['request_id']}"
        message = await next_message(gw1)
        cmd = decode_command(bytes(message.payload))  # type: ignore[arg-type]
        assert cmd.command == "actuate" and cmd.args == {"sensor": "pump-1", "action": "on", "args": {"output": 1}}
        seen.append(cmd.args)

        # The stand-in gateway answers: the poll URL has the result; with wait_s the answer comes in the request.
        answering = asyncio.create_task(_answer_commands(gw1, "gw-1", ran))
        try:
            await gw1.publish(
                f"roost/default/gw-1/cmd-result/{pending['request_id']}",
                Result(request_id=pending["request_id"], status="ok", result={"on": True}, finished=1.0).encode(),
                qos=1,
            )

            async def answered() -> bool:
                return bool((await api.get(r.headers["location"])).json()["status"] == "ok")

            await eventually(answered)
            r = await api.post("/api/v1/gateways/gw-1/sensors/pump-1/commands", json={"action": "off", "wait_s": 5})
            assert r.status_code == 200 and r.json()["status"] == "ok" and "location" not in r.headers, r.text
        finally:
            answering.cancel()

        bad = await api.post("/api/v1/gateways/gw-1/sensors/has%20space/commands", json={"action": "on"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "sensor"
        bad = await api.post("/api/v1/gateways/gw-1/sensors/pump-1/commands", json={"action": "Rm -rf"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "action"
    vera = await operator_token(cloud, "default", "viewer", "vera")
    async with http(cloud, vera) as api:
        r = await api.post("/api/v1/gateways/gw-1/sensors/pump-1/commands", json={"action": "on"})
        assert r.status_code == 403  # viewers never act on devices
    assert seen and ran
