"""Operators' tokens at the enforcement points: a viewer's JWT reads its tenant through the API and MQTT and
never writes; other tenants are denied; a policy replaced through the API removes live subscriptions it now
denies, without the subscriber reconnecting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.policy import DecisionPoint, Subject, default_policies
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, GW_PASSWORD, TOKEN, WAIT, eventually, http, mqtt, next_message, readings
from tests.cloud.identity.conftest import OPERATOR_PASSWORD, client_of, identity_of, operator_token, sign_in
from wire import senml

IDENTITY_CONFIG = """
[identity]
throttle_burst = 50
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud with the allow-list of the other tests, and tenants ``default``, ``acme`` and ``other``."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        for tenant in ("default", "acme", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        yield server


def _failed(granted: Any) -> bool:
    (code,) = granted
    return bool(getattr(code, "is_failure", False)) or code == 0x80


async def _counters(server: CloudServer) -> dict[str, int]:
    async with http(server) as api:
        found: dict[str, int] = (await api.get("/api/v1/stats")).json()["counters"]
        return found


async def _quiet(client: aiomqtt.Client, seconds: float) -> list[str]:
    """Topics ``client`` receives within ``seconds`` (an empty list: nothing came)."""
    got: list[str] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                got.append(str(message.topic))
    return got


async def test_a_viewer_token_reads_its_tenant_over_mqtt_and_the_api_and_never_writes(cloud: CloudServer) -> None:
    viewer = await operator_token(cloud, "default", "viewer", "vera")
    async with mqtt(cloud, "vera-laptop", username="vera", password=viewer) as watcher:
        assert not _failed(await watcher.subscribe("roost/default/#", qos=1))
        assert _failed(await watcher.subscribe("roost/acme/#", qos=1))  # another tenant
        assert _failed(await watcher.subscribe("roost/+/gw-1/telemetry/#", qos=1))  # a tenant wildcard
        async with mqtt(cloud) as gw:  # gw-1 of tenant default publishes: the viewer sees it
            await gw.subscribe("roost/default/gw-1/ack", qos=1)
            await gw.publish("roost/default/gw-1/telemetry/b1", senml.encode(readings(1)), qos=1)
            message = await next_message(watcher)
            assert str(message.topic) == "roost/default/gw-1/telemetry/b1"
            await next_message(gw)  # the cloud's ack: stored
        before = await _counters(cloud)
        await watcher.publish("roost/default/gw-1/telemetry/forged", senml.encode(readings(1, sensor="forged")), qos=1)
        await watcher.publish("roost/default/gw-1/state/desired", b"{}", qos=1)

        async def denied() -> bool:
            return (await _counters(cloud))["denied_publishes"] == before["denied_publishes"] + 2

        await eventually(denied)
    async with http(cloud, viewer) as api:
        assert (await api.get("/api/v1/readings")).status_code == 200
        assert (await api.get("/api/v1/gateways")).status_code == 200
        assert {i["sensor"] for i in (await api.get("/api/v1/readings")).json()["items"]} == {"s1"}
        r = await api.get("/api/v1/readings", params={"tenant": "acme"})
        assert r.status_code == 403 and "tenant-isolation-api" in r.json()["error"]["message"]
        r = await api.get("/api/v1/policies")
        assert r.status_code == 403 and "viewer-never-writes" in r.json()["error"]["message"]
    assert cloud.policy is not None
    denies = cloud.policy.decision_point.audit.recent("deny")
    assert any(e["who"] == "operator:default/vera" and e["what"]["action"] == "publish" for e in denies)


async def test_an_operator_token_connects_only_under_its_own_subject(cloud: CloudServer) -> None:
    viewer = await operator_token(cloud, "default", "viewer", "vera")
    for username in ("someone-else", "gw-1", None):
        with pytest.raises(aiomqtt.MqttError):
            async with mqtt(cloud, "vera-laptop", username=username, password=viewer):
                pass


async def test_an_admin_of_another_tenant_sees_nothing_of_this_one(cloud: CloudServer) -> None:
    stranger = await operator_token(cloud, "other", "admin", "oscar")
    async with mqtt(cloud, "oscar-laptop", username="oscar", password=stranger) as c:
        assert _failed(await c.subscribe("roost/default/#", qos=1))
        assert not _failed(await c.subscribe("roost/other/#", qos=1))
    async with http(cloud, stranger) as api:
        assert (await api.get("/api/v1/readings", params={"tenant": "default"})).status_code == 403
        assert (await api.get("/api/v1/gateways", params={"tenant": "default"})).status_code == 403


def test_a_viewer_never_writes_even_when_a_policy_permits_operators_to() -> None:
    loose = (
        default_policies()
        + '\n@id("operators-publish")\npermit (principal is Operator, action == Action::"publish", resource is Topic)'
        + " when { principal in resource.tenant };\n"
        + '@id("operators-command")\npermit (principal is Operator, action in Action::"command", resource is Tenant)'
        + " when { principal in resource };\n"
    )
    dp = DecisionPoint(loose)
    viewer = Subject("operator", "vera", "default", role="viewer")
    op = Subject("operator", "otto", "default", role="operator")
    topic = "roost/default/gw-1/cmd/r1"
    assert dp.decide_publish(op, topic).allowed
    decision = dp.decide_publish(viewer, topic)
    assert not decision.allowed and decision.reasons == ("viewer-never-writes",)
    assert not dp.decide_api(viewer, "send_command", "default").allowed
    assert dp.decide_api(viewer, "read_readings", "default").allowed
    assert dp.decide_subscribe(viewer, "roost/default/+/telemetry/#").allowed


def _without_observer_subscriptions() -> str:
    text = default_policies().replace('@id("observer-watches-topics")', '@id("observer-watches-nothing")')
    text = text.replace(
        'permit (principal is Observer, action == Action::"subscribe", resource is TopicFilter)\n'
        "when { resource has tenant && principal in resource.tenant };",
        'permit (principal is Observer, action == Action::"subscribe", resource is TopicFilter)\nwhen { false };',
    )
    assert text != default_policies()
    return text


async def test_a_policy_change_removes_live_subscriptions_it_now_denies(cloud: CloudServer) -> None:
    owner = await operator_token(cloud, "default", "owner", "olivia")
    viewer = await operator_token(cloud, "default", "viewer", "vera")
    async with (
        mqtt(cloud, None, username="ops", password=TOKEN) as observer,
        mqtt(cloud, "vera-laptop", username="vera", password=viewer) as operator,
        mqtt(cloud, "gw-1", username="gw-1", password=GW_PASSWORD) as gw,
    ):
        assert not _failed(await observer.subscribe("roost/default/#", qos=1))
        assert not _failed(await operator.subscribe("roost/default/+/telemetry/#", qos=1))
        await gw.publish("roost/default/gw-1/telemetry/b1", senml.encode(readings(1)), qos=1)
        # The observer sees everything of the tenant: the pack, then the cloud's ack of it.
        assert str((await next_message(observer)).topic) == "roost/default/gw-1/telemetry/b1"
        assert str((await next_message(observer)).topic) == "roost/default/gw-1/ack"
        assert str((await next_message(operator)).topic) == "roost/default/gw-1/telemetry/b1"
        async with http(cloud, owner) as api:
            r = await api.put("/api/v1/policies", json={"text": _without_observer_subscriptions()})
            assert r.status_code == 200, r.text
        # The same connections, no re-subscription: the observer's subscription is gone, the viewer's stays.
        await gw.publish("roost/default/gw-1/telemetry/b2", senml.encode(readings(1, t0=1_795_000_100.0)), qos=1)
        assert str((await next_message(operator)).topic) == "roost/default/gw-1/telemetry/b2"
        assert await _quiet(observer, 1.0) == []
        await observer.publish("roost/default/gw-1/status", b"online", qos=1)  # still connected: the call works
    counters = await _counters(cloud)
    assert counters["removed_subscriptions"] == 1
    assert cloud.policy is not None
    (entry,) = cloud.policy.decision_point.audit.recent("subscription_removed")
    assert entry["who"] == "observer:default/ops" and entry["what"]["resource"] == "roost/default/#"
    assert entry["version"] == 2 and "policy version 2" in entry["why"]


async def test_a_policy_change_that_still_allows_a_subscription_keeps_it(cloud: CloudServer) -> None:
    owner = await operator_token(cloud, "default", "owner", "olivia")
    async with (
        mqtt(cloud, None, username="ops", password=TOKEN) as observer,
        mqtt(cloud, "gw-1", username="gw-1", password=GW_PASSWORD) as gw,
    ):
        assert not _failed(await observer.subscribe("roost/default/gw-1/telemetry/#", qos=1))
        async with http(cloud, owner) as api:
            text = default_policies() + '\n@id("nothing-new")\nforbid (principal, action, resource) when { false };\n'
            assert (await api.put("/api/v1/policies", json={"text": text})).status_code == 200
        await gw.publish("roost/default/gw-1/telemetry/b3", senml.encode(readings(1)), qos=1)
        message = await next_message(observer, WAIT)
        assert str(message.topic) == "roost/default/gw-1/telemetry/b3"
    assert (await _counters(cloud))["removed_subscriptions"] == 0


async def test_a_disabled_operator_is_locked_out_everywhere_at_once(cloud: CloudServer) -> None:
    db = cloud.config.identity_db_path  # another connection, as `roost cloud admin operator-disable` opens
    token = await operator_token(cloud, "default", "viewer", "vic")
    async with client_of(cloud) as browser:
        csrf = await sign_in(cloud, browser, "vic", tenant="default", role="viewer")
        assert (await browser.get("/auth/session")).status_code == 200
        async with mqtt(cloud, "vic-laptop", username="vic", password=token) as watcher:
            assert not _failed(await watcher.subscribe("roost/default/#", qos=1))
            done = admin.disable_operator(db, "default", "vic")
            assert done.sessions_ended >= 1 and done.tokens_revoked >= 1

            async def closed() -> bool:
                try:
                    await watcher.publish("roost/default/ping", b"", qos=1, timeout=1)
                except aiomqtt.MqttError:
                    return True
                return False

            await eventually(closed)  # the broker closed the disabled operator's MQTT connection
        assert (await browser.get("/auth/session")).status_code == 401, "the dashboard session ended"
        assert (await browser.post("/auth/token", headers={"X-Roost-CSRF": csrf})).status_code == 401
    async with http(cloud, token) as api:
        assert (await api.get("/api/v1/readings")).status_code == 401, "the access token was revoked"
    async with client_of(cloud) as browser:
        r = await browser.post(
            "/auth/signin", json={"tenant": "default", "username": "vic", "password": OPERATOR_PASSWORD}
        )
        assert r.status_code == 401, "a disabled operator cannot sign in"
        admin.enable_operator(db, "default", "vic")
        r = await browser.post(
            "/auth/signin", json={"tenant": "default", "username": "vic", "password": OPERATOR_PASSWORD}
        )
        assert r.status_code == 200, "enabled again, the operator signs in"
    with pytest.raises(Exception, match="no operator 'nobody'"):
        admin.disable_operator(db, "default", "nobody")
    with pytest.raises(Exception, match="no operator 'vic' in tenant 'acme'"):
        admin.disable_operator(db, "acme", "vic")
