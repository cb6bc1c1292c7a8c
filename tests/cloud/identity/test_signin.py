"""Operators' sign-in, dashboard sessions (cookie flags, CSRF, expiry, sign-out) and operator tokens, over HTTP
against a real cloud; session timing with a test clock."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.identity.db import IdentityDB
from cloud.identity.sessions import Sessions
from cloud.identity.verify import StaticKeys, TokenVerifier
from cloud.server import CloudServer
from tests.cloud.helpers import BASE_CONFIG, WAIT
from tests.cloud.identity.conftest import OPERATOR_PASSWORD, client_of, identity_of, sign_in
from tests.pki import make_pki


def _cookies(r: httpx.Response) -> dict[str, SimpleCookie]:
    """Each Set-Cookie header of a response, parsed, by cookie name."""
    found: dict[str, SimpleCookie] = {}
    for header in r.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        (name,) = jar.keys()
        found[name] = jar
    return found


def _flags(r: httpx.Response, name: str) -> str:
    return next(h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")).lower()


async def test_sign_in_answers_with_a_strict_httponly_session_cookie(cloud: CloudServer) -> None:
    admin.create_operator(identity_of(cloud).db, "acme", "alice", OPERATOR_PASSWORD, role="admin")
    async with client_of(cloud) as http:
        r = await http.post("/auth/signin", json={"tenant": "acme", "username": "alice", "password": OPERATOR_PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["operator"], body["tenant"], body["role"]) == ("alice", "acme", "admin")
        assert r.headers["cache-control"] == "no-store"
        session = _flags(r, "roost_session")
        assert "httponly" in session and "samesite=strict" in session and "path=/" in session
        assert "secure" not in session, "plain http on loopback: a Secure cookie would never come back"
        csrf = _flags(r, "roost_csrf")
        assert "httponly" not in csrf and "samesite=strict" in csrf, "the page must be able to read the CSRF token"
        assert _cookies(r)["roost_csrf"]["roost_csrf"].value == body["csrf_token"]
        session_id = _cookies(r)["roost_session"]["roost_session"].value
        r = await http.get("/auth/session")
        assert r.status_code == 200
        assert (r.json()["operator"], r.json()["tenant"], r.json()["role"]) == ("alice", "acme", "admin")
    # Stored hashed: the database holds neither the session id nor the CSRF token.
    dump = "\n".join(sqlite3.connect(cloud.config.identity_db_path).iterdump())
    assert session_id not in dump and body["csrf_token"] not in dump
    assert OPERATOR_PASSWORD not in dump


async def test_a_form_signs_in_too_and_email_may_name_the_operator(cloud: CloudServer) -> None:
    admin.create_operator(identity_of(cloud).db, "acme", "bea@acme.example", OPERATOR_PASSWORD, role="viewer")
    async with client_of(cloud) as http:
        form = {"tenant": "acme", "email": "bea@acme.example", "password": OPERATOR_PASSWORD}
        r = await http.post("/auth/signin", data=form)
        assert r.status_code == 200, r.text
        assert (await http.get("/auth/session")).json()["role"] == "viewer"


@pytest.mark.parametrize(
    ("tenant", "username", "password"),
    [
        ("acme", "alice", "not the password at all"),
        ("other", "alice", OPERATOR_PASSWORD),  # the right password, the wrong tenant
        ("acme", "nobody", OPERATOR_PASSWORD),
    ],
)
async def test_a_wrong_sign_in_gets_no_session(cloud: CloudServer, tenant: str, username: str, password: str) -> None:
    admin.create_operator(identity_of(cloud).db, "acme", "alice", OPERATOR_PASSWORD, role="owner")
    async with client_of(cloud) as http:
        r = await http.post("/auth/signin", json={"tenant": tenant, "username": username, "password": password})
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "wrong tenant, username or password"  # says not which one
        assert "set-cookie" not in r.headers
        assert (await http.get("/auth/session")).status_code == 401
        assert (await http.get("/api/v1/readings")).status_code == 401  # and the API stays closed


async def test_a_sign_in_body_without_a_field_is_a_400(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        r = await http.post("/auth/signin", json={"tenant": "acme", "username": "alice"})
        assert r.status_code == 400 and r.json()["error"]["parameter"] == "password"
        r = await http.post("/auth/signin", content=b"tenant=acme", headers={"content-type": "text/plain"})
        assert r.status_code == 400


async def test_failed_sign_ins_are_throttled_even_with_the_right_password_next(cloud: CloudServer) -> None:
    admin.create_operator(identity_of(cloud).db, "acme", "carol", OPERATOR_PASSWORD, role="viewer")
    async with client_of(cloud) as http:
        wrong = {"tenant": "acme", "username": "carol", "password": "guess-guess-guess"}
        statuses = [(await http.post("/auth/signin", json=wrong)).status_code for _ in range(7)]
        assert statuses == [401] * 6 + [429]  # identity.throttle_burst = 6 in these tests
        right = {**wrong, "password": OPERATOR_PASSWORD}
        r = await http.post("/auth/signin", json=right)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "set-cookie" not in r.headers


async def test_a_cookie_request_with_an_unsafe_method_needs_the_csrf_token(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        csrf = await sign_in(cloud, http, "olga", role="owner")
        assert (await http.get("/api/v1/readings")).status_code == 200  # safe methods: the cookie is enough
        policies = (await http.get("/api/v1/policies")).json()
        put = {"text": policies["text"], "comment": "same again"}
        r = await http.put("/api/v1/policies", json=put)
        assert r.status_code == 403 and "X-Roost-CSRF" in r.json()["error"]["message"]
        r = await http.put("/api/v1/policies", json=put, headers={"X-Roost-CSRF": csrf[:-1] + "x"})
        assert r.status_code == 403
        r = await http.put(
            "/api/v1/policies", json=put, headers={"X-Roost-CSRF": csrf, "Origin": "https://evil.example"}
        )
        assert r.status_code == 403 and "cross-origin" in r.json()["error"]["message"]
        assert (await http.post("/auth/token")).status_code == 403
        r = await http.put("/api/v1/policies", json=put, headers={"X-Roost-CSRF": csrf})
        assert r.status_code == 200, r.text
        assert r.json()["by"] == "operator:acme/olga"


async def test_sign_in_from_another_origin_is_refused(cloud: CloudServer) -> None:
    admin.create_operator(identity_of(cloud).db, "acme", "alice", OPERATOR_PASSWORD, role="viewer")
    async with client_of(cloud) as http:
        creds = {"tenant": "acme", "username": "alice", "password": OPERATOR_PASSWORD}
        r = await http.post("/auth/signin", data=creds, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = await http.post("/auth/signin", data=creds, headers={"Origin": cloud.info.base_url})
        assert r.status_code == 200


async def test_sign_out_ends_the_session_everywhere(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        csrf = await sign_in(cloud, http, "dora", role="viewer")
        stolen = http.cookies.get("roost_session")
        assert (await http.post("/auth/signout")).status_code == 403, "sign-out too needs the CSRF token"
        r = await http.post("/auth/signout", headers={"X-Roost-CSRF": csrf})
        assert r.status_code == 204
        cleared = _flags(r, "roost_session")
        assert "max-age=0" in cleared or "expires=" in cleared
    async with client_of(cloud) as other:  # the same cookie, replayed by someone who copied it
        other.cookies.set("roost_session", stolen or "")
        assert (await other.get("/auth/session")).status_code == 401
        assert (await other.get("/api/v1/readings")).status_code == 401


async def test_the_operator_token_is_a_short_lived_jwt_of_the_operator(cloud: CloudServer) -> None:
    async with client_of(cloud) as http:
        csrf = await sign_in(cloud, http, "erin", role="viewer")
        r = await http.post("/auth/token", headers={"X-Roost-CSRF": csrf})
        assert r.status_code == 200, r.text
        issued = r.json()
        jwks = (await http.get("/jwks.json")).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 600 and issued["sub"] == "erin"
    verifier = TokenVerifier(StaticKeys(jwks), audience="roost", issuers={cloud.info.base_url})
    claims = verifier.verify(issued["access_token"])  # the gateways' signer, checked through the public JWKS
    assert (claims.subject, claims.tenant, claims.roles) == ("erin", "acme", ("viewer",))
    assert claims.client_id == "roost-console" and claims.expires - claims.issued_at == 600
    async with client_of(cloud) as http:
        assert (await http.post("/auth/token")).status_code == 401  # not signed in
        headers = {"Authorization": f"Bearer {issued['access_token']}"}
        assert (await http.get("/api/v1/readings", headers=headers)).status_code == 200


async def test_an_idle_session_ends(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + "\n[identity]\nsession_idle_s = 1\n", base_dir=tmp_path)
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        async with client_of(server) as http:
            await sign_in(server, http, "fred", role="viewer")
            assert (await http.get("/auth/session")).status_code == 200
            await asyncio.sleep(1.2)
            r = await http.get("/auth/session")
            assert r.status_code == 401 and "sign in again" in r.json()["error"]["message"]


async def test_the_session_cookie_is_secure_over_https(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config = loads(
        BASE_CONFIG.replace("port = 0", f'port = 0\ncertfile = "{pki.cert}"\nkeyfile = "{pki.key}"'),
        base_dir=tmp_path,
    )
    async with CloudServer(config) as server:
        admin.create_tenant(identity_of(server).db, "acme")
        admin.create_operator(identity_of(server).db, "acme", "gus", OPERATOR_PASSWORD, role="viewer")
        tls = ssl.create_default_context(cafile=str(pki.ca))
        async with httpx.AsyncClient(base_url=server.info.base_url, verify=tls, timeout=WAIT) as http:
            r = await http.post(
                "/auth/signin", json={"tenant": "acme", "username": "gus", "password": OPERATOR_PASSWORD}
            )
            assert r.status_code == 200, r.text
            assert "secure" in _flags(r, "roost_session") and "secure" in _flags(r, "roost_csrf")


# -- session timing, with a test clock -----------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> IdentityDB:
    conn = IdentityDB(tmp_path / "identity.sqlite")
    conn.open()
    admin.create_tenant(conn, "acme")
    admin.create_operator(conn, "acme", "hana", OPERATOR_PASSWORD, role="admin")
    return conn


def test_a_session_lasts_its_lifetime_and_no_longer(db: IdentityDB) -> None:
    clock = _Clock()
    sessions = Sessions(db, ttl_s=3600, idle_s=600, clock=clock)
    op = db.operator("hana")
    assert op is not None
    new = sessions.start(op)
    for _ in range(7):  # active all along: the idle timeout never strikes
        clock.now += 500
        assert sessions.lookup(new.session_id) is not None
    clock.now = new.record.expires
    assert sessions.lookup(new.session_id) is None


def test_an_idle_session_ends_and_a_request_keeps_one_alive(db: IdentityDB) -> None:
    clock = _Clock()
    sessions = Sessions(db, ttl_s=3600, idle_s=600, clock=clock)
    op = db.operator("hana")
    assert op is not None
    busy, idle = sessions.start(op), sessions.start(op)
    clock.now += 599
    assert sessions.lookup(busy.session_id) is not None
    clock.now += 2
    assert sessions.lookup(idle.session_id) is None
    assert sessions.lookup(busy.session_id) is not None


def test_ending_sessions_and_changing_the_password(db: IdentityDB) -> None:
    sessions = Sessions(db, ttl_s=3600, idle_s=600)
    op = db.operator("hana")
    assert op is not None
    one, two, three = sessions.start(op), sessions.start(op), sessions.start(op)
    assert sessions.end(one.session_id) and not sessions.end(one.session_id)
    assert sessions.lookup(one.session_id) is None and sessions.lookup(two.session_id) is not None
    admin.set_password(db, "hana", "a new password, long enough")
    assert sessions.lookup(two.session_id) is None and sessions.lookup(three.session_id) is None
    assert admin.check_operator(db, "hana", OPERATOR_PASSWORD) is None
    assert admin.check_operator(db, "hana", "a new password, long enough") is not None


def test_a_schema_1_database_gains_the_sessions_table(tmp_path: Path) -> None:
    path = tmp_path / "identity.sqlite"
    with IdentityDB(path) as conn:
        admin.create_tenant(conn, "acme")
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE sessions")
    raw.execute("DROP TABLE blocked_hardware")  # schema 3's
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with IdentityDB(path) as conn:  # what a cloud of the previous release left behind
        assert conn.tenant("acme") is not None
        admin.create_operator(conn, "acme", "ivan", OPERATOR_PASSWORD)
        op = conn.operator("ivan")
        assert op is not None
        assert Sessions(conn, ttl_s=60, idle_s=60).start(op).record.username == "ivan"
        assert not conn.hardware_blocked("anything")  # schema 3's table came with the upgrade
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
