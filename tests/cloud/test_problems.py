"""The API's conventions on a real cloud: errors as RFC 9457 problem details (OAuth's own shape kept), cursor
paging of every list, and an OpenAPI document that describes it all (docs/api.md)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import FastAPI

from cloud.api import encode_key
from cloud.config import loads
from cloud.errors import ApiError
from cloud.identity import admin
from cloud.openapi_doc import OAUTH_PATHS
from cloud.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES, TYPE_BASE, install_problem_handlers
from cloud.server import CloudServer
from cloud.store import PackWrite
from tests.cloud.helpers import BASE_CONFIG, http, readings
from tests.cloud.identity.conftest import identity_of, operator_token

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[identity]
throttle_burst = 50

[updates]
key_file = "update.key"
folder = "bundles"
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "update.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    async with CloudServer(loads(BASE_CONFIG + CONFIG, base_dir=tmp_path)) as server:
        for tenant in ("default", "acme", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        yield server


def assert_problem(resp: httpx.Response, status: int, slug: str, parameter: str | None = None) -> dict[str, Any]:
    """``resp`` is the problem ``slug`` with ``status``, in RFC 9457's shape and the legacy members."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = resp.json()
    kind = PROBLEM_TYPES[slug]
    assert body["type"] == TYPE_BASE + slug and body["title"] == kind.title and body["status"] == status, body
    assert body["instance"] == resp.request.url.path
    assert body["detail"] and body["message"] == body["detail"] == body["error"]["message"]
    assert body["error"]["status"] == status
    assert body.get("parameter") == parameter and body["error"].get("parameter") == parameter, body
    return body


async def test_errors_are_problem_details(cloud: CloudServer) -> None:
    async with http(cloud, None) as anonymous:
        resp = await anonymous.get("/api/v1/readings")
        assert_problem(resp, 401, "unauthenticated")
        assert resp.headers["www-authenticate"] == "Bearer"
        body = assert_problem(await anonymous.get("/api/v1/no-such-thing"), 404, "not-found")
        assert "/api/v1/no-such-thing" in body["detail"]
        resp = await anonymous.delete("/healthz")
        body = assert_problem(resp, 405, "method-not-allowed")
        assert resp.headers["allow"] == "GET" and "DELETE" in body["detail"]
        assert_problem(
            await anonymous.post("/auth/signin", json={"tenant": "acme"}), 400, "invalid-request", "username"
        )
        resp = await anonymous.post("/auth/signin", json={"tenant": "acme", "username": "nobody", "password": "x"})
        assert_problem(resp, 401, "unauthenticated")
    async with http(cloud) as api:  # the observer of tenant default
        body = assert_problem(await api.get("/api/v1/readings?limit=0"), 400, "invalid-request", "limit")
        assert body["errors"][0] == {"location": "query", "parameter": "limit", "problem": body["errors"][0]["problem"]}
        assert_problem(await api.get("/api/v1/readings?since=yesterday"), 400, "invalid-request", "since")
        assert_problem(await api.get("/api/v1/gateways?cursor=bm9wZQ"), 400, "invalid-request", "cursor")
        # found by fuzzing: times and cursor keys beyond what SQLite stores were a 500 (OverflowError)
        for path, parameter in (
            ("/api/v1/readings?since=1e300", "since"),
            ("/api/v1/events?until=-1e300", "until"),
            (f"/api/v1/readings?cursor={encode_key([10**30, 'default', 'gw-1', 's', 'm'])}", "cursor"),
            (f"/api/v1/events?cursor={encode_key([-(10**30), 'default', 'gw-1', 'e1'])}", "cursor"),
        ):
            assert_problem(await api.get(path), 400, "invalid-request", parameter)
        body = assert_problem(await api.get("/api/v1/readings?tenant=other"), 403, "policy-denied", "tenant")
        assert body["action"] == "read_readings" and body["tenant"] == "other"
    token = await operator_token(cloud, "default", role="owner")
    async with http(cloud, token) as owner:
        assert_problem(await owner.get("/api/v1/campaigns/nope"), 404, "not-found", "id")
        body = assert_problem(
            await owner.put("/api/v1/policies", json={"text": "permit("}), 400, "policy-invalid", "text"
        )
        assert body["problems"] and body["error"]["problems"] == body["problems"]
        resp = await owner.put("/api/v1/policies", content=b"{", headers={"content-type": "application/json"})
        assert_problem(resp, 400, "invalid-request", "body")
        # found by probing: JSON that Python reads but cannot write back was a 500 (or stored as null)
        json_body = {"content-type": "application/json"}
        for method, path, raw, parameter in (
            ("POST", "/api/v1/gateways/gw-1/commands", b'{"command": "ping", "args": {"x": 1e999}}', "args"),
            ("POST", "/api/v1/gateways/gw-1/commands", b'{"command": "ping", "args": {"x": ["\\ud800"]}}', "args"),
            ("PUT", "/api/v1/gateways/gw-1/desired", b'{"config": {"x": NaN}}', "config"),
            (
                "POST",
                "/api/v1/fleet/commands",
                b'{"selector": {"all": 1}, "command": "ping", "args": {"\\udc00": 1}}',
                "args",
            ),
        ):
            body = assert_problem(
                await owner.request(method, path, content=raw, headers=json_body), 400, "invalid-request", parameter
            )
            assert "Value error" not in body["detail"], body
        assert (await owner.get("/api/v1/gateways/gw-1/state")).json()["desired"] is None  # nothing was stored


async def test_oauth_endpoints_keep_rfc6749_errors(cloud: CloudServer) -> None:
    async with http(cloud, None) as anonymous:
        resp = await anonymous.post("/oauth/token", data={"grant_type": "no-such-grant"})
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
    assert resp.json()["error"] == "unsupported_grant_type" and "type" not in resp.json()


async def test_an_unexpected_failure_is_a_500_problem_without_internals() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail at /srv/x.py")

    @app.get("/teapot")
    async def teapot() -> None:
        raise ApiError(429, "slow down", headers={"Retry-After": "3"})

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        resp = await client.get("/boom")
        body = assert_problem(resp, 500, "internal-error")
        assert "secret" not in resp.text and "RuntimeError" not in resp.text and "/srv" not in resp.text, body
        resp = await client.get("/teapot")
        assert_problem(resp, 429, "too-many-requests")
        assert resp.headers["retry-after"] == "3"


async def test_every_list_pages_with_a_cursor(cloud: CloudServer) -> None:
    now = time.time()
    await cloud.store.commit(
        [PackWrite("default", gw, readings(2, sensor="s", t0=now - 10)) for gw in ("gw-1", "gw-2", "gw-x")], now=now
    )
    async with http(cloud) as api:
        doc = (await api.get("/openapi.json")).json()
        seen: list[str] = []
        pages: list[list[str]] = []
        cursor: str | None = None
        for _ in range(10):
            body = (
                await api.get("/api/v1/gateways", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            ).json()
            pages.append([g["id"] for g in body["items"]])
            seen += pages[-1]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == [["gw-1", "gw-2"], ["gw-x"]]
        body = (await api.get("/api/v1/readings", params={"limit": 4})).json()
        assert body["next_cursor"] is not None and body["next"] == body["next_cursor"]  # the contract's name too
        sent = [(await cloud.commands.send("default", "gw-1", "ping", {}, timeout_s=60, issued_by="t")).request_id]
        sent += [(await cloud.commands.send("default", "gw-1", "ping", {}, timeout_s=60, issued_by="t")).request_id]
        sent += [(await cloud.commands.send("default", "gw-1", "ping", {}, timeout_s=60, issued_by="t")).request_id]
        first = (await api.get("/api/v1/gateways/gw-1/commands", params={"limit": 2})).json()
        params = {"limit": 2, "cursor": first["next_cursor"]}
        second = (await api.get("/api/v1/gateways/gw-1/commands", params=params)).json()
        assert second["next_cursor"] is None
        assert [c["request_id"] for c in first["items"] + second["items"]] == sent[::-1]  # newest first
    lists = 0
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None or not path.startswith("/api/v1/"):
            continue
        if "application/json" not in op["responses"]["200"].get("content", {}):
            continue  # a file
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        model = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        if model["properties"].get("items", {}).get("type") != "array" or path == "/api/v1/policies":
            continue  # not a list (the policy set's items are the set itself, not a page)
        if set(model.get("required", ())) - {"items", "next_cursor", "next"}:
            continue  # a report that has items among other members (a usage series), not a list
        lists += 1
        params = {p["name"]: p for p in op.get("parameters", [])}
        assert "next_cursor" in model["required"], path
        assert "cursor" in params and params["limit"]["schema"]["maximum"] >= 100, path
    assert lists >= 10


async def test_openapi_describes_every_operation(cloud: CloudServer) -> None:
    async with http(cloud, None) as anonymous:
        doc = (await anonymous.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT" and schemes["sessionCookie"]["in"] == "cookie"
    assert schemes["csrfHeader"]["name"] == "X-Roost-CSRF"
    ids: list[str] = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            ids.append(op["operationId"])
            assert re.fullmatch(r"[a-z][a-z0-9_]*", op["operationId"]), where
            assert op.get("tags"), f"{where} has no tag"
            assert "security" in op, where
            assert "422" not in op["responses"], where
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            if path.startswith("/api/v1/") and ok.get("content"):
                media, content = next(iter(ok["content"].items()))
                assert content["schema"] != {}, f"{where} answers an undescribed {media}"
            if path in OAUTH_PATHS:
                ref = op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/OAuthError"), where
            else:
                problem = op["responses"]["401"]["content"][PROBLEM_MEDIA_TYPE]["schema"]["$ref"]
                assert problem.endswith("/Problem"), where
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    download = doc["paths"]["/api/v1/bundles/{name}"]["get"]["responses"]
    assert download["200"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    for path, method, model in (
        ("/auth/signin", "post", "SignedIn"),
        ("/auth/session", "get", "OperatorSession"),
        ("/oauth/token", "post", "OAuthToken"),
        ("/healthz", "get", "Health"),
    ):
        schema = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/" + model), (path, schema)
    assert {"bearerAuth": []} in doc["paths"]["/api/v1/readings"]["get"]["security"]


def test_every_problem_type_is_documented() -> None:
    """docs/api.md's table lists each type the code has, with its title and status; the code uses no other."""
    text = (ROOT / "docs" / "api.md").read_text()
    rows = {m[0]: (m[1], int(m[2])) for m in re.findall(r"^\| `([a-z-]+)` \| ([^|]+?) \| (\d{3}) \|", text, re.M)}
    assert rows == {slug: (t.title, t.status) for slug, t in PROBLEM_TYPES.items()}
    used: set[str] = set()
    for source in (ROOT / "cloud").rglob("*.py"):
        used |= set(re.findall(r"""problem=["']([a-z-]+)["']""", source.read_text()))
    assert used and used <= set(PROBLEM_TYPES), used - set(PROBLEM_TYPES)
