"""RabbitMQ's HTTP auth backend endpoints, the management client, the closer and the revocation watcher.

The endpoints are asked over real HTTP of a cloud on loopback (its own tokens, its own decision point); the
source-address check and the management API through httpx's in-process transports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from cloud.authz import Principal
from cloud.broker.rabbitmq_admin import ConnectionCloser, RabbitMQManagement, RevocationWatcher
from cloud.broker.rabbitmq_auth import RabbitMQAuth, rabbitmq_auth_router, routing_key_topic
from cloud.config import RabbitMQSection, loads
from cloud.errors import ConfigError
from cloud.identity import admin
from cloud.server import CloudServer
from cloud.stats import Stats
from tests.cloud.helpers import BASE_CONFIG, GW_PASSWORD, TOKEN, WAIT
from tests.cloud.identity.conftest import IDENTITY_CONFIG, enroll_by_device, identity_of

RABBITMQ_CONFIG = """
[rabbitmq]
enabled = true
vhost = "roost"
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud serving the RabbitMQ auth endpoints, with tenants ``acme`` and ``other``."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG + RABBITMQ_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        admin.create_tenant(identity_of(server).db, "other")
        yield server


class Broker:
    """Asks the cloud what RabbitMQ would ask, as RabbitMQ 3.10 does (form-encoded POSTs)."""

    def __init__(self, http: httpx.AsyncClient, username: str, client_id: str, vhost: str = "roost") -> None:
        self.http, self.username, self.client_id, self.vhost = http, username, client_id, vhost

    async def ask(self, endpoint: str, **form: str) -> str:
        r = await self.http.post(f"/rabbitmq/auth/{endpoint}", data=form)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        return r.text

    async def user(self, password: str) -> str:
        return await self.ask(
            "user", username=self.username, password=password, vhost=self.vhost, client_id=self.client_id
        )

    async def vhost_(self, vhost: str | None = None) -> str:
        return await self.ask(
            "vhost",
            username=self.username,
            vhost=vhost or self.vhost,
            ip="127.0.0.1",
            tags="",
            client_id=self.client_id,
        )

    async def resource(self, resource: str, name: str, permission: str, vhost: str | None = None) -> str:
        return await self.ask(
            "resource",
            username=self.username,
            vhost=vhost or self.vhost,
            resource=resource,
            name=name,
            permission=permission,
            tags="",
            client_id=self.client_id,
        )

    async def topic(self, routing_key: str, permission: str, vhost: str | None = None) -> str:
        return await self.ask(
            "topic",
            **{
                "username": self.username,
                "vhost": vhost or self.vhost,
                "resource": "topic",
                "name": "amq.topic",
                "permission": permission,
                "tags": "",
                "routing_key": routing_key,
                "variable_map.client_id": self.client_id,
                "variable_map.username": self.username,
                "variable_map.vhost": vhost or self.vhost,
            },
        )


def http_of(server: CloudServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.info.base_url, timeout=WAIT)


async def gateway(server: CloudServer, tenant: str = "acme", hw: str = "10000000feedbeef") -> tuple[str, str]:
    """(gateway id, access token) of a gateway enrolled the real way."""
    tokens = await enroll_by_device(server, tenant=tenant, hardware_id=hw)
    return tokens["gateway_id"], tokens["access_token"]


def resigned(server: CloudServer, token: str, **changes: Any) -> str:
    """``token``'s claims with ``changes``, signed by the cloud's own current key."""
    claims = dict(identity_of(server).verifier.verify(token).claims)
    claims.update(changes)
    return identity_of(server).keys.sign(claims)


def test_routing_keys_read_back_as_mqtt_topics() -> None:
    assert routing_key_topic("roost.acme.gw-1.telemetry.b1") == "roost/acme/gw-1/telemetry/b1"
    assert routing_key_topic("roost.acme.*.telemetry.#") == "roost/acme/+/telemetry/#"
    assert routing_key_topic("roost.acme.gw-1.state.reported") == "roost/acme/gw-1/state/reported"


async def test_enrolled_gateway_gets_what_mqtt_needs_and_its_own_prefix(cloud: CloudServer) -> None:
    gw, token = await gateway(cloud)
    async with http_of(cloud) as http:
        rmq = Broker(http, gw, gw)
        assert await rmq.user(token) == "allow"  # no tags: no management access
        assert await rmq.vhost_() == "allow"
        # What the MQTT plugin needs: the exchange, and the client's own subscription queues.
        assert await rmq.resource("exchange", "amq.topic", "write") == "allow"
        assert await rmq.resource("exchange", "amq.topic", "read") == "allow"
        for permission in ("configure", "read", "write"):
            assert await rmq.resource("queue", f"mqtt-subscription-{gw}qos1", permission) == "allow"
            assert await rmq.resource("queue", f"mqtt-subscription-{gw}qos0", permission) == "allow"
        # ... and nothing else.
        assert await rmq.resource("exchange", "amq.topic", "configure") == "deny"
        assert await rmq.resource("exchange", "amq.fanout", "write") == "deny"
        assert await rmq.resource("queue", "mqtt-subscription-gw-2qos1", "read") == "deny"
        assert await rmq.resource("queue", "amq.gen-x", "configure") == "deny"
        # Topics: its own uplink, its own downlink.
        assert await rmq.topic(f"roost.acme.{gw}.telemetry.b-1", "write") == "allow"
        assert await rmq.topic(f"roost.acme.{gw}.state.reported", "write") == "allow"
        assert await rmq.topic(f"roost.acme.{gw}.cmd.#", "read") == "allow"
        assert await rmq.topic(f"roost.acme.{gw}.cmd.*", "read") == "allow"
        # Outside its prefix, or the wrong direction.
        assert await rmq.topic("roost.acme.gw-2.telemetry.b-1", "write") == "deny"
        assert await rmq.topic(f"roost.acme.{gw}.cmd.r1", "write") == "deny"
        assert await rmq.topic(f"roost.acme.{gw}.state.desired", "write") == "deny"
        assert await rmq.topic("roost.acme.*.telemetry.#", "read") == "deny"
        assert await rmq.topic("roost.acme.gw-2.cmd.#", "read") == "deny"
        assert await rmq.topic("#", "read") == "deny"
        assert await rmq.topic("other.topic", "write") == "deny"
        assert await rmq.topic(f"roost.acme.{gw}.telemetry", "configure") == "deny"
    # Every deny is counted and the decision point audited the topic denies.
    auth = cloud.rabbitmq_auth
    assert auth is not None
    assert auth.counts[("topic", "allow")] == 4 and auth.counts[("topic", "deny")] == 8
    assert auth.counts[("resource", "deny")] == 4
    denied = {e["what"]["resource"] for e in cloud.policy.decision_point.audit.recent("deny")}  # type: ignore[union-attr]
    assert {"roost/acme/gw-2/telemetry/b-1", f"roost/acme/{gw}/cmd/r1", "roost/acme/+/telemetry/#"} <= denied
    assert cloud.stats.denied_publishes == 4 and cloud.stats.denied_subscribes == 3


@pytest.mark.parametrize("spoil", ["forged", "expired", "audience", "issuer", "revoked", "garbage", "other-client"])
async def test_bad_credentials_are_denied_at_user(cloud: CloudServer, spoil: str) -> None:
    gw, token = await gateway(cloud)
    client_id = gw
    if spoil == "forged":  # the real claims and kid, another key
        claims = identity_of(cloud).verifier.verify(token).claims
        kid = identity_of(cloud).keys.current_kid
        token = jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, ECKey.generate_key("P-256"))
    elif spoil == "expired":  # past the 60 s leeway
        token = resigned(cloud, token, exp=int(time.time()) - 120, iat=int(time.time()) - 720)
    elif spoil == "audience":
        token = resigned(cloud, token, aud="someone-else")
    elif spoil == "issuer":
        token = resigned(cloud, token, iss="https://evil.example")
    elif spoil == "revoked":
        identity_of(cloud).revoke_gateway(gw)
    elif spoil == "garbage":
        token = "a.b.c"
    elif spoil == "other-client":  # a gateway's client id must be its gateway id
        client_id = "someone-else"
    async with http_of(cloud) as http:
        rmq = Broker(http, gw, client_id)
        assert await rmq.user(token) == "deny"
        # Not admitted: the later questions are denied too.
        assert await rmq.vhost_() == "deny"
        assert await rmq.topic(f"roost.acme.{gw}.telemetry.b-1", "write") == "deny"
    assert cloud.stats.denied_connects == 1
    entry = [e for e in cloud.policy.decision_point.audit.recent("deny") if e["what"]["action"] == "connect"]  # type: ignore[union-attr]
    assert entry and entry[0]["who"] == f"rabbitmq:{gw}" and entry[0]["transport"] == "rabbitmq"


async def test_other_tenant_and_wrong_vhost_are_denied(cloud: CloudServer) -> None:
    gw, token = await gateway(cloud, tenant="other", hw="20000000feedbeef")
    async with http_of(cloud) as http:
        rmq = Broker(http, gw, gw)
        assert await rmq.user(token) == "allow"
        assert await rmq.topic(f"roost.other.{gw}.telemetry.b-1", "write") == "allow"
        assert await rmq.topic(f"roost.acme.{gw}.telemetry.b-1", "write") == "deny"
        assert await rmq.topic("roost.acme.#", "read") == "deny"
        # Only the configured virtual host, for every question.
        assert await rmq.vhost_("/") == "deny"
        assert await rmq.resource("exchange", "amq.topic", "write", vhost="/") == "deny"
        assert await rmq.topic(f"roost.other.{gw}.telemetry.b-1", "write", vhost="/") == "deny"
        assert await rmq.vhost_() == "allow"


async def test_a_token_revoked_after_connect_is_denied_on_the_next_question(cloud: CloudServer) -> None:
    gw, token = await gateway(cloud)
    async with http_of(cloud) as http:
        rmq = Broker(http, gw, gw)
        assert await rmq.user(token) == "allow"
        assert await rmq.topic(f"roost.acme.{gw}.telemetry.b-1", "write") == "allow"
        identity_of(cloud).revoke_gateway(gw)
        assert await rmq.topic(f"roost.acme.{gw}.telemetry.b-2", "write") == "deny"
        assert await rmq.resource("exchange", "amq.topic", "write") == "deny"


async def test_allow_list_credentials_and_amqp_logins(cloud: CloudServer) -> None:
    async with http_of(cloud) as http:
        # The same allow-list as the embedded broker: gateway passwords, observer tokens (any username).
        assert await Broker(http, "gw-1", "gw-1").user(GW_PASSWORD) == "allow"
        assert await Broker(http, "gw-1", "gw-1").user("wrong-password") == "deny"
        observer = Broker(http, "anyone", "dash-1")
        assert await observer.user(TOKEN) == "allow"
        assert await observer.topic("roost.default.*.telemetry.#", "read") == "allow"
        assert await observer.topic("roost.default.gw-1.telemetry.b-1", "write") == "deny"
        # Another observer may use the same username: each (username, client id) keeps its own principal.
        assert await Broker(http, "anyone", "dash-2").user("observer-token-other") == "allow"
        assert await observer.topic("roost.other.#", "read") == "deny"
        # No client id: not an MQTT connection (AMQP, management).
        r = await http.post("/rabbitmq/auth/user", data={"username": "gw-1", "password": GW_PASSWORD})
        assert r.text == "deny"
        # GET with a query string works as POST does.
        r = await http.get(
            "/rabbitmq/auth/vhost",
            params={"username": "gw-1", "vhost": "roost", "ip": "127.0.0.1", "client_id": "gw-1"},
        )
        assert (r.status_code, r.text) == (200, "allow")
        r = await http.get("/rabbitmq/auth/counters")
        counters = r.json()["counters"]
        assert counters["user.allow"] == 3 and counters["user.deny"] == 2 and counters["vhost.allow"] == 1


async def test_dotted_gateway_ids_are_refused(tmp_path: Path) -> None:
    config = loads(
        BASE_CONFIG + RABBITMQ_CONFIG + '[[auth.gateways]]\nid = "gw.7"\npassword = "pw-gw-7-secret"\n',
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server, http_of(server) as http:
        assert await Broker(http, "gw.7", "gw.7").user("pw-gw-7-secret") == "deny"


def _app(auth: RabbitMQAuth) -> FastAPI:
    app = FastAPI()
    app.include_router(rabbitmq_auth_router(auth))
    return app


class _Allow:
    """An authorizer that admits anyone as gateway gw-1 and allows everything."""

    api_requires_token = False

    def authenticate(self, client_id: str, username: str | None, password: str | None) -> Principal | None:
        return Principal("gateway", "gw-1", "default")

    def authenticate_bearer(self, token: str) -> Principal | None:
        return None

    def may_publish(self, principal: Principal, topic: str, *, context: object = None) -> bool:
        return True

    def may_subscribe(self, principal: Principal, topic_filter: str, *, context: object = None) -> bool:
        return True


@pytest.mark.parametrize(
    ("source", "networks", "status"),
    [
        ("203.0.113.9", ("127.0.0.0/8", "::1/128"), 403),
        ("10.1.2.3", ("127.0.0.0/8",), 403),
        ("10.1.2.3", ("10.0.0.0/8",), 200),
        ("::ffff:10.1.2.3", ("10.0.0.0/8",), 200),
        ("::1", ("127.0.0.0/8", "::1/128"), 200),
        ("127.0.0.1", ("127.0.0.0/8",), 200),
    ],
)
async def test_only_allowed_networks_are_answered(source: str, networks: tuple[str, ...], status: int) -> None:
    auth = RabbitMQAuth(RabbitMQSection(enabled=True, allowed_networks=networks), _Allow(), Stats())
    transport = httpx.ASGITransport(app=_app(auth), client=(source, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
        form = {"username": "gw-1", "password": "x", "client_id": "gw-1"}
        r = await http.post("/rabbitmq/auth/user", data=form)
        assert r.status_code == status
        assert r.text == ("deny" if status == 403 else "allow")
        assert (await http.get("/rabbitmq/auth/counters")).status_code == status
    assert auth.refused_sources == (2 if status == 403 else 0)


def test_rabbitmq_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rabbitmq\.allowed_networks\[1\]"):
        loads('[rabbitmq]\nallowed_networks = ["127.0.0.0/8", "not-a-net"]\n', base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"rabbitmq\.management_user"):
        loads('[rabbitmq]\nmanagement_url = "http://127.0.0.1:15672"\n', base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"rabbitmq\.management_password_file: cannot be read"):
        loads(
            '[rabbitmq]\nmanagement_url = "http://127.0.0.1:15672"\nmanagement_user = "a"\n'
            'management_password_file = "missing"\n',
            base_dir=tmp_path,
        )
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = loads(
        '[rabbitmq]\nmanagement_url = "http://127.0.0.1:15672"\nmanagement_user = "a"\n'
        'management_password_file = "pw"\n',
        base_dir=tmp_path,
    )
    assert cfg.rabbitmq.management_password() == "s3cret"


# ---- the management API client, the closer and the watcher -------------------------------------------------------


class FakeManagement:
    """RabbitMQ's management API as an httpx transport: connections per user, DELETE closes; scripted failures.

    As in RabbitMQ 3.10, ``/api/connections/username/{user}`` and ``/api/connections/{name}?disable_stats=true``
    read the connection tracking table (a connection is there as soon as it opens), ``/api/connections/{name}``
    without it the statistics (a connection is there once ``in_stats`` holds it; only they carry the client id).
    """

    def __init__(self) -> None:
        self.connections: dict[str, dict[str, Any]] = {}
        self.in_stats: set[str] = set()
        self.failures = 0
        self.calls: list[tuple[str, str]] = []

    def add(self, name: str, user: str, client_id: str, *, in_stats: bool = True) -> None:
        self.connections[name] = {"name": name, "user": user, "client_properties": {"client_id": client_id}}
        if in_stats:
            self.in_stats.add(name)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        assert request.headers["authorization"].startswith("Basic ")
        if self.failures:
            self.failures -= 1
            return httpx.Response(500, text="boom")
        path = request.url.path
        if request.method == "GET" and path.startswith("/api/connections/username/"):
            user = path.rsplit("/", 1)[1]
            items = [{"name": c["name"], "user": c["user"]} for c in self.connections.values() if c["user"] == user]
            return httpx.Response(200, json=items)
        if path.startswith("/api/connections/"):
            name = httpx.URL(str(request.url)).path.removeprefix("/api/connections/")
            tracked = request.url.params.get("disable_stats") == "true"
            conn = self.connections.get(name) if tracked or name in self.in_stats else None
            if conn is None:
                return httpx.Response(404, json={"error": "Object Not Found"})
            if request.method == "DELETE":
                assert request.headers["x-reason"]
                del self.connections[name]
                self.in_stats.discard(name)
                return httpx.Response(204)
            return httpx.Response(200, json={"name": name, "user": conn["user"]} if tracked else conn)
        return httpx.Response(404)


def _management(fake: FakeManagement) -> RabbitMQManagement:
    return RabbitMQManagement("http://rabbit:15672", "roost-admin", "pw", transport=httpx.MockTransport(fake.handler))


async def test_management_closes_a_users_connections_or_one_client() -> None:
    fake = FakeManagement()
    fake.add("127.0.0.1:1 -> 127.0.0.1:1883", "gw-1", "gw-1")
    fake.add("127.0.0.1:2 -> 127.0.0.1:1883", "alice", "dash-1")
    fake.add("127.0.0.1:3 -> 127.0.0.1:1883", "alice", "dash-2")
    management = _management(fake)
    try:
        assert (await management.close_user("alice", "revoked", client_id="dash-2")).closed == [
            "127.0.0.1:3 -> 127.0.0.1:1883"
        ]
        assert set(fake.connections) == {"127.0.0.1:1 -> 127.0.0.1:1883", "127.0.0.1:2 -> 127.0.0.1:1883"}
        assert len((await management.close_user("gw-1", "revoked")).closed) == 1
        assert (await management.close_user("gw-1", "revoked")).closed == []
        assert list(fake.connections) == ["127.0.0.1:2 -> 127.0.0.1:1883"]
    finally:
        await management.aclose()


async def test_a_connection_not_in_the_statistics_yet_is_closed_by_the_name_the_user_listing_gives() -> None:
    # RabbitMQ 3.10 lists a new MQTT connection under /api/connections/username/{user} at once, but under
    # /api/connections/{name} only after its first statistics (seconds later): a plain DELETE answers 404.
    fake = FakeManagement()
    fake.add("127.0.0.1:1 -> 127.0.0.1:1883", "gw-1", "gw-1", in_stats=False)
    fake.add("127.0.0.1:2 -> 127.0.0.1:1883", "alice", "dash-1", in_stats=False)
    management = _management(fake)
    try:
        assert (await management.close_user("gw-1", "revoked")).closed == ["127.0.0.1:1 -> 127.0.0.1:1883"]
        assert ("DELETE", "/api/connections/127.0.0.1:1 -> 127.0.0.1:1883") in fake.calls
        # One client's connections: its client id is in the statistics only, so it waits for them.
        result = await management.close_user("alice", "expired", client_id="dash-1")
        assert result.closed == [] and result.unresolved == ["127.0.0.1:2 -> 127.0.0.1:1883"]
        assert await management.client_id_of("127.0.0.1:9 -> 127.0.0.1:1883") is None  # gone
        fake.in_stats.add("127.0.0.1:2 -> 127.0.0.1:1883")
        assert (await management.close_user("alice", "expired", client_id="dash-1")).closed == [
            "127.0.0.1:2 -> 127.0.0.1:1883"
        ]
        assert fake.connections == {}
    finally:
        await management.aclose()


async def test_closer_waits_for_a_client_id_and_skips_clients_a_close_of_the_whole_user_covered() -> None:
    fake = FakeManagement()
    fake.add("c1", "alice", "dash-1", in_stats=False)
    stats = Stats()
    closer = ConnectionCloser(_management(fake), stats, retry_delay_s=0.05, unresolved_attempts=40)
    task = asyncio.create_task(closer.run())
    try:
        closer.request("alice", "expired", client_id="dash-1")
        await asyncio.sleep(0.3)  # tried a few times: the client id is not known yet, nothing closed
        assert "c1" in fake.connections and closer.failed == 0
        fake.in_stats.add("c1")
        await asyncio.wait_for(closer.idle(), WAIT)
        assert fake.connections == {} and closer.closed == 1 and closer.failed == 0
        # A revocation of the user's token and the expiry of its client's, seen in the same round: one close.
        fake.add("c2", "gw-1", "gw-1")
        closer.request("gw-1", "revoked")
        closer.request("gw-1", "expired", client_id="gw-1")
        await asyncio.wait_for(closer.idle(), WAIT)
        assert fake.connections == {} and closer.closed == 2 and stats.closed_connections == 2
        assert [c for c in fake.calls if c[1] == "/api/connections/username/gw-1"] == [
            ("GET", "/api/connections/username/gw-1")
        ]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_closer_retries_once_then_gives_up() -> None:
    fake = FakeManagement()
    fake.add("c1", "gw-1", "gw-1")
    stats = Stats()
    closer = ConnectionCloser(_management(fake), stats, retry_delay_s=0.05)
    task = asyncio.create_task(closer.run())
    try:
        fake.failures = 1  # the first attempt fails, the retry closes
        assert closer.request("gw-1", "revoked")
        await asyncio.wait_for(closer.idle(), WAIT)
        assert fake.connections == {} and closer.closed == 1 and stats.closed_connections == 1 and closer.failed == 0
        fake.add("c2", "gw-2", "gw-2")
        fake.failures = 2  # both fail: given up, logged, counted
        closer.request("gw-2", "revoked")
        await asyncio.wait_for(closer.idle(), WAIT)
        assert "c2" in fake.connections and closer.failed == 1
        # Nothing listed yet (RabbitMQ lists a new connection late): looked again once.
        calls = len(fake.calls)
        closer.request("gw-3", "revoked")
        await asyncio.wait_for(closer.idle(), WAIT)
        assert fake.calls[calls:] == [("GET", "/api/connections/username/gw-3")] * 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_watcher_closes_newly_revoked_and_expired_tokens_only() -> None:
    requested: list[tuple[str, str | None]] = []

    class Closer:
        def request(self, username: str, reason: str, *, client_id: str | None = None) -> bool:
            requested.append((username, client_id))
            return True

    revoked = {"jti-old"}
    subjects = {"jti-old": "gw-old", "jti-new": "gw-new"}
    expired = Principal("operator", "alice", "acme", role="viewer", expires=time.time() - 1000, token_id="t1")
    fresh = Principal("gateway", "gw-1", "acme", expires=time.time() + 600, token_id="t2")
    forgotten: list[tuple[str, str]] = []
    watcher = RevocationWatcher(
        Closer(),  # type: ignore[arg-type]
        revoked=lambda: set(revoked),
        subject_of=subjects.get,
        connections=lambda: [("alice", "dash-1", expired), ("gw-1", "gw-1", fresh)],
        still_valid=lambda p: p.expires is not None and p.expires > time.time(),
        forget=lambda user, client: forgotten.append((user, client)),
    )
    await watcher.check()  # learns what was revoked before it started; closes the expired connection
    assert requested == [("alice", "dash-1")] and forgotten == [("alice", "dash-1")]
    requested.clear()
    revoked.add("jti-new")
    await watcher.check()
    assert ("gw-new", None) in requested and ("gw-old", None) not in requested
