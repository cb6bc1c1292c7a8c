"""The enforcement points against a real cloud: access tokens from /oauth/token at the broker and the API,
decisions by the policy decision point, revocation and expiry closing live connections, policies changed
through the API deciding the next broker request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from cloud.config import loads
from cloud.identity import admin
from cloud.identity.oauth import Client, Subject
from cloud.policy.decision import default_policies
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, TOKEN, eventually, http, mqtt, next_message, readings
from tests.cloud.identity.conftest import client_of, enroll_by_device, identity_of
from wire import envelopes, senml

IDENTITY_CONFIG = """
[identity]
throttle_burst = 50
"""
READ_SCOPES = ["readings:read", "gateways:read", "topics:read"]


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud with the allow-list of the other tests, and tenants ``acme`` and ``other``."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        admin.create_tenant(identity_of(server).db, "other")
        yield server


def _failed(granted: Any) -> bool:
    (code,) = granted
    return bool(getattr(code, "is_failure", False)) or code == 0x80


async def api_token(
    server: CloudServer, tenant: str = "acme", *, scopes: list[str] = READ_SCOPES, role: str = "viewer"
) -> tuple[str, str]:
    """(client id, access token) of a new API client, through the real token endpoint (client_credentials)."""
    rec, secret = admin.create_client(identity_of(server).db, tenant, role=role, scopes=scopes)
    async with client_of(server) as c:
        r = await c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(rec.client_id, secret))
    assert r.status_code == 200, r.text
    return rec.client_id, r.json()["access_token"]


def operator_token(server: CloudServer, name: str, role: str, tenant: str = "default") -> str:
    """An operator's access token, signed by the server's key ring (no operator sign-in grant exists yet)."""
    tokens = identity_of(server).issue_tokens(
        issuer=server.info.base_url,
        client=Client("roost-console", tenant, role, ("api",)),
        subject=Subject("operator", name, tenant, (role,)),
        scope="api",
        include_refresh_token=False,
    )
    token: str = tokens["access_token"]
    return token


def signed(server: CloudServer, **changes: Any) -> str:
    """A token signed by the server's real key with some claims changed (expired, other audience, ...)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": server.info.base_url,
        "sub": "c1",
        "aud": "roost",
        "exp": now + 600,
        "iat": now,
        "jti": f"jti-{now}-{len(changes)}",
        "client_id": "c1",
        "scope": " ".join(READ_SCOPES),
        "tenant": "acme",
        "roles": ["viewer"],
    }
    claims.update(changes)
    return identity_of(server).keys.sign(claims)


async def counters(server: CloudServer) -> dict[str, int]:
    async with http(server) as api:
        found: dict[str, int] = (await api.get("/api/v1/stats")).json()["counters"]
        return found


async def closed(client: aiomqtt.Client, timeout: float) -> float:
    """Seconds until the broker closes ``client``'s connection (TimeoutError if it does not)."""
    start = time.monotonic()
    with pytest.raises(aiomqtt.MqttError):
        async with asyncio.timeout(timeout):
            async for _ in client.messages:
                pass
    return time.monotonic() - start


async def test_client_token_is_an_mqtt_password_and_an_api_bearer_of_its_tenant(cloud: CloudServer) -> None:
    client_id, token = await api_token(cloud)
    async with mqtt(cloud, client_id, username=client_id, password=token) as c:
        assert not _failed(await c.subscribe("roost/acme/+/telemetry/#", qos=1))
        assert _failed(await c.subscribe("roost/acme/+/cmd/#", qos=1))  # client-watches-data: data only
        assert _failed(await c.subscribe("roost/other/#", qos=1))  # tenant isolation
        assert _failed(await c.subscribe("roost/default/#", qos=1))
    async with http(cloud, token) as api:
        assert (await api.get("/api/v1/readings")).status_code == 200
        assert (await api.get("/api/v1/gateways")).status_code == 200
        r = await api.get("/api/v1/readings", params={"tenant": "other"})
        assert r.status_code == 403
        error = r.json()["error"]
        assert error["parameter"] == "tenant" and "tenant-isolation-api" in error["message"]
        assert (await api.get("/api/v1/gateways", params={"tenant": "default"})).status_code == 403
        assert (await api.get("/api/v1/policies")).status_code == 403  # client-never-administers
    # A client without the readings scope: no readings, by the policies.
    _, narrow = await api_token(cloud, scopes=["gateways:read"])
    async with http(cloud, narrow) as api:
        r = await api.get("/api/v1/readings")
        assert r.status_code == 403 and "no policy permits it" in r.json()["error"]["message"]
        assert (await api.get("/api/v1/gateways")).status_code == 200


async def test_username_must_be_the_tokens_subject(cloud: CloudServer) -> None:
    client_id, token = await api_token(cloud)
    with pytest.raises(aiomqtt.MqttError):
        async with mqtt(cloud, client_id, username="someone-else", password=token):
            pass
    assert (await counters(cloud))["denied_connects"] == 1


async def test_gateway_token_publishes_only_under_its_prefix(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0001")
    gw = tokens["gateway_id"]
    access = tokens["access_token"]
    with pytest.raises(aiomqtt.MqttError):  # a gateway's client id is its gateway id
        async with mqtt(cloud, "not-the-gateway", username=gw, password=access):
            pass
    async with mqtt(cloud, gw, username=gw, password=access) as c:
        assert not _failed(await c.subscribe(f"roost/acme/{gw}/ack", qos=1))
        assert not _failed(await c.subscribe(f"roost/acme/{gw}/ack/#", qos=1))  # allowed by the policies
        assert _failed(await c.subscribe("roost/acme/gw-other/cmd/#", qos=1))
        assert _failed(await c.subscribe(f"roost/other/{gw}/ack", qos=1))
        assert _failed(await c.subscribe("roost/acme/+/ack", qos=1))
        await c.publish(f"roost/other/{gw}/telemetry/x1", senml.encode(readings(1, sensor="forged")), qos=1)
        await c.publish("roost/acme/gw-other/telemetry/x2", senml.encode(readings(1, sensor="forged")), qos=1)
        await c.publish(f"roost/acme/{gw}/cmd/x3", b"{}", qos=1)
        await c.publish(f"roost/acme/{gw}/telemetry/mine", senml.encode(readings(2)), qos=1)
        ack = envelopes.decode_ack((await next_message(c)).payload)  # type: ignore[arg-type]
        assert ack["batches"] == ["mine"]

        async def denied() -> bool:
            return (await counters(cloud))["denied_publishes"] == 3

        await eventually(denied)
    _, reader = await api_token(cloud)
    async with http(cloud, reader) as api:
        items = (await api.get("/api/v1/readings")).json()["items"]
    assert {i["gateway"] for i in items} == {gw} and {i["sensor"] for i in items} == {"s1"}


@pytest.mark.parametrize("kind", ["forged", "expired", "audience", "issuer", "revoked", "unknown-kid"])
async def test_bad_tokens_are_refused_at_the_broker_and_the_api(cloud: CloudServer, kind: str) -> None:
    _, good = await api_token(cloud)
    if kind == "forged":
        header = jwt.decode(good, identity_of(cloud).keys.public_key_set()).header
        key = ECKey.generate_key("P-256", parameters={"kid": header["kid"]})
        claims = jwt.decode(good, identity_of(cloud).keys.public_key_set()).claims
        token = jwt.encode({"alg": "ES256", "kid": header["kid"], "typ": "at+jwt"}, claims, key)
    elif kind == "unknown-kid":
        key = ECKey.generate_key("P-256", parameters={"kid": "not-ours"})
        claims = jwt.decode(good, identity_of(cloud).keys.public_key_set()).claims
        token = jwt.encode({"alg": "ES256", "kid": "not-ours", "typ": "at+jwt"}, claims, key)
    elif kind == "expired":
        token = signed(cloud, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)
    elif kind == "audience":
        token = signed(cloud, aud="someone-else")
    elif kind == "issuer":
        token = signed(cloud, iss="https://evil.example")
    else:  # revoked through the real revocation endpoint (RFC 7009), by the client that holds it
        rec, secret = admin.create_client(identity_of(cloud).db, "acme", scopes=READ_SCOPES)
        async with client_of(cloud) as c:
            auth = (rec.client_id, secret)
            r = await c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)
            token = r.json()["access_token"]
            r = await c.post("/oauth/revoke", data={"token": token, "token_type_hint": "access_token"}, auth=auth)
        assert r.status_code == 200, r.text
    sub = _claims_unverified(token)["sub"]
    before = await counters(cloud)
    with pytest.raises(aiomqtt.MqttError) as refused:
        async with mqtt(cloud, sub, username=sub, password=token):
            pass
    assert "5" in str(refused.value) or "authori" in str(refused.value).lower()
    async with http(cloud, token) as api:
        r = await api.get("/api/v1/readings")
    assert r.status_code == 401
    after = await counters(cloud)
    assert after["denied_connects"] == before["denied_connects"] + 1
    assert after["refused_tokens"] >= before["refused_tokens"] + 2


def _claims_unverified(token: str) -> dict[str, Any]:
    import base64
    import json

    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def test_other_tenants_token_reads_nothing_of_this_tenant(cloud: CloudServer) -> None:
    other_id, other = await api_token(cloud, "other")
    async with mqtt(cloud, other_id, username=other_id, password=other) as c:
        assert _failed(await c.subscribe("roost/acme/#", qos=1))
        assert _failed(await c.subscribe("roost/default/gw-1/telemetry/#", qos=1))
        assert not _failed(await c.subscribe("roost/other/+/telemetry/#", qos=1))
        await c.publish("roost/default/gw-1/telemetry/forged", senml.encode(readings(1, sensor="forged")), qos=1)
    async with http(cloud, other) as api:
        for tenant in ("acme", "default"):
            r = await api.get("/api/v1/readings", params={"tenant": tenant})
            assert r.status_code == 403 and r.json()["error"]["parameter"] == "tenant"
    async with http(cloud) as api:  # the observer of tenant default
        assert (await api.get("/api/v1/readings", params={"sensor": "forged"})).json()["items"] == []


async def test_revoking_a_gateway_closes_its_live_connection(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0002")
    gw, access = tokens["gateway_id"], tokens["access_token"]
    async with mqtt(cloud, gw, username=gw, password=access) as c:
        await c.subscribe(f"roost/acme/{gw}/ack", qos=1)
        assert identity_of(cloud).revoke_gateway(gw) >= 1
        assert await closed(c, timeout=5) < 4
    with pytest.raises(aiomqtt.MqttError):  # and it cannot come back with that token
        async with mqtt(cloud, gw, username=gw, password=access):
            pass
    assert (await counters(cloud))["closed_connections"] == 1


async def test_revocation_by_another_process_closes_the_connection(cloud: CloudServer) -> None:
    tokens = await enroll_by_device(cloud, tenant="acme", hardware_id="10000000feed0003")
    gw, access = tokens["gateway_id"], tokens["access_token"]
    db_path = cloud.config.identity_db_path
    async with mqtt(cloud, gw, username=gw, password=access) as c:
        await c.subscribe(f"roost/acme/{gw}/ack", qos=1)
        assert await asyncio.to_thread(admin.revoke_gateway, db_path, gw) >= 1  # `roost cloud admin` does this
        assert await closed(c, timeout=6) < 5


async def test_an_expired_tokens_connection_is_closed(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + "\n[identity]\naccess_token_ttl_s = 2\nleeway_s = 0\n", base_dir=tmp_path)
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        client_id, token = await api_token(server)
        async with mqtt(server, client_id, username=client_id, password=token) as c:
            assert not _failed(await c.subscribe("roost/acme/+/telemetry/#", qos=1))
            assert await closed(c, timeout=6) < 5
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt(server, client_id, username=client_id, password=token):
                pass


async def test_a_policy_changed_through_the_api_decides_the_next_broker_request(cloud: CloudServer) -> None:
    owner = operator_token(cloud, "olivia", "owner")
    admin_op = operator_token(cloud, "adam", "admin")
    viewer = operator_token(cloud, "vera", "viewer")
    async with http(cloud, viewer) as api:
        assert (await api.get("/api/v1/readings")).status_code == 200  # operator-reads
        assert (await api.get("/api/v1/policies")).status_code == 403
    async with http(cloud, admin_op) as api:
        listed = (await api.get("/api/v1/policies")).json()
        assert listed["version"] == 1 and "observer-watches-topics" in {p["id"] for p in listed["items"]}
        r = await api.put("/api/v1/policies", json={"text": listed["text"]})
        assert r.status_code == 403 and "owner" in r.json()["error"]["message"]
    async with mqtt(cloud, None, username="ops", password=TOKEN) as observer:
        assert not _failed(await observer.subscribe("roost/default/#", qos=1))
        without = default_policies().replace('@id("observer-watches-topics")', '@id("observer-watches-nothing")')
        without = without.replace(
            'permit (principal is Observer, action == Action::"subscribe", resource is TopicFilter)\n'
            "when { resource has tenant && principal in resource.tenant };",
            'permit (principal is Observer, action == Action::"subscribe", resource is TopicFilter)\nwhen { false };',
        )
        assert without != default_policies()
        async with http(cloud, owner) as api:
            bad = await api.put("/api/v1/policies", json={"text": without + '\n@id("broken")\npermit (principal'})
            assert bad.status_code == 400
            assert any("broken" in p["policy"] for p in bad.json()["error"]["problems"])
            unknown = (
                without + '\n@id("typo")\npermit (principal is Gateway, action, resource) when { principal.nope };'
            )
            bad = await api.put("/api/v1/policies", json={"text": unknown})
            assert bad.status_code == 400 and bad.json()["error"]["problems"][0]["policy"] == '@id("typo")'
            r = await api.put("/api/v1/policies", json={"text": without, "comment": "no MQTT for observers"})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 2
        # The same connection, the next request: decided by version 2, no restart.
        assert _failed(await observer.subscribe("roost/default/gw-1/telemetry/#", qos=1))
    async with http(cloud, owner) as api:
        history = (await api.get("/api/v1/policies/history")).json()["items"]
    assert [v["version"] for v in history] == [1, 2]
    assert history[1]["by"] == "operator:default/olivia" and history[1]["comment"] == "no MQTT for observers"
    async with http(cloud) as api:  # the observer still reads through the API (observer-reads is unchanged)
        assert (await api.get("/api/v1/readings")).status_code == 200


async def test_observer_static_token_keeps_working(cloud: CloudServer) -> None:
    async with http(cloud) as api:
        assert (await api.get("/api/v1/readings")).status_code == 200
        assert (await api.get("/api/v1/readings", params={"tenant": "other"})).status_code == 403
    async with mqtt(cloud, None, username="observer", password=TOKEN) as observer:
        assert not _failed(await observer.subscribe("roost/default/#", qos=1))
