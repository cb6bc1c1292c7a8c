"""Token refresh over MQTT against a real cloud: a token-authenticated gateway publishes on its ``token`` topic
and gets what ``POST /oauth/token`` would answer on ``token-result``, with rotation and reuse detection."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

import aiomqtt
import pytest

from cloud.server import CloudServer
from tests.cloud.helpers import mqtt, next_message
from tests.cloud.identity.conftest import client_of, enroll_by_device


async def _refresh_over_mqtt(
    client: aiomqtt.Client, gw: str, refresh_token: str, tenant: str = "acme"
) -> dict[str, Any]:
    request_id = secrets.token_hex(8)
    body = {"request_id": request_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    await client.publish(f"roost/{tenant}/{gw}/token", json.dumps(body).encode(), qos=1)
    message = await next_message(client, timeout=10)
    assert message.topic.value == f"roost/{tenant}/{gw}/token-result"
    assert not message.retain
    answer = json.loads(message.payload)  # type: ignore[arg-type]
    assert isinstance(answer, dict) and answer["request_id"] == request_id
    return answer


async def _connect_works(server: CloudServer, gw: str, access: str) -> bool:
    try:
        async with mqtt(server, gw, username=gw, password=access):
            return True
    except aiomqtt.MqttError:
        return False


async def test_refresh_over_mqtt_rotates_and_a_replay_revokes_the_family(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0a01")
    gw, access, refresh = tokens["gateway_id"], tokens["access_token"], tokens["refresh_token"]
    async with mqtt(cloud, gw, username=gw, password=access) as c:
        await c.subscribe(f"roost/acme/{gw}/token-result", qos=1)
        new = await _refresh_over_mqtt(c, gw, refresh)
    assert "error" not in new, new
    assert new["gateway_id"] == gw and new["tenant"] == "acme" and new["token_type"] == "Bearer"
    assert new["expires_in"] > 0
    assert new["refresh_token"] != refresh and new["access_token"] != access
    # The new access token works at the broker (and the next refresh over MQTT with it).
    async with mqtt(cloud, gw, username=gw, password=new["access_token"]) as c:
        await c.subscribe(f"roost/acme/{gw}/token-result", qos=1)
        newer = await _refresh_over_mqtt(c, gw, new["refresh_token"])
    assert "error" not in newer, newer
    # A replay of a used refresh token: invalid_grant, and the whole family is revoked, the connection's
    # own access token with it (so the broker may close the connection before the answer arrives).
    replay: dict[str, Any] = {}
    with contextlib.suppress(aiomqtt.MqttError):
        async with mqtt(cloud, gw, username=gw, password=newer["access_token"]) as c:
            await c.subscribe(f"roost/acme/{gw}/token-result", qos=1)
            replay = await _refresh_over_mqtt(c, gw, refresh)
    if replay:
        assert replay["error"] == "invalid_grant"
        assert {"request_id", "error"} <= set(replay) <= {"request_id", "error", "error_description"}
    async with client_of(cloud) as http:
        r = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": newer["refresh_token"], "client_id": "roost-gateway"},
        )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert not await _connect_works(cloud, gw, newer["access_token"])


async def test_another_gateways_refresh_token_is_refused_and_left_alone(cloud: CloudServer) -> None:
    mine = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0a02")
    theirs = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0a03")
    gw = mine["gateway_id"]
    assert theirs["gateway_id"] != gw
    async with mqtt(cloud, gw, username=gw, password=mine["access_token"]) as c:
        await c.subscribe(f"roost/acme/{gw}/token-result", qos=1)
        answer = await _refresh_over_mqtt(c, gw, theirs["refresh_token"])
        assert answer["error"] == "invalid_grant"
        bad = await _refresh_over_mqtt(c, gw, "not-a-token")
        assert bad["error"] == "invalid_grant"
    # The other gateway's refresh token was not used up: it still refreshes over HTTP.
    async with client_of(cloud) as http:
        r = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": theirs["refresh_token"],
                "client_id": "roost-gateway",
            },
        )
    assert r.status_code == 200, r.text


async def test_a_password_gateway_gets_no_answer(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0a04")
    # gw-1 of the allow-list (tenant default) connects with a password: it is not token-authenticated.
    async with mqtt(cloud) as c:
        await c.subscribe("roost/default/gw-1/token-result", qos=1)
        body = {"request_id": "r1", "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        await c.publish("roost/default/gw-1/token", json.dumps(body).encode(), qos=1)
        with pytest.raises(TimeoutError):
            await next_message(c, timeout=1.0)
