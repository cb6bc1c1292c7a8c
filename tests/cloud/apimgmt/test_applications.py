"""Applications over HTTP against a real cloud: register, token, throttle by plan, plan changes, rotation, usage."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from tests.cloud.apimgmt.conftest import API_CONFIG, app_token, developer, plain, register
from tests.cloud.helpers import BASE_CONFIG, eventually


async def test_register_token_and_calls_within_the_plan(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    app = await register(cloud, dev, plan="standard")
    assert app["plan"] == "standard" and app["owner"] == "dev" and app["tenant"] == "acme"
    assert app["scopes"] == ["readings:read"] and len(app["client_secret"]) >= 40
    r = await app_token(cloud, app["client_id"], app["client_secret"])
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    async with plain(cloud, token) as http:
        for _ in range(20):
            r = await http.get("/api/v1/readings")
            assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Policy"] == '"standard";q=100;w=2'
        assert r.headers["RateLimit"].startswith('"standard";r=')
        denied = await http.get("/api/v1/gateways")  # the scope readings:read does not cover gateways
        assert denied.status_code == 403
    # the secret is stored hashed only, and never shown again
    async with plain(cloud, dev) as http:
        one = (await http.get(f"/api/v1/applications/{app['id']}")).json()
        listed = (await http.get("/api/v1/applications")).json()
    assert "client_secret" not in one and [a["id"] for a in listed["items"]] == [app["id"]]
    assert cloud.identity is not None
    stored = cloud.identity.db.client(app["client_id"])
    assert stored is not None and app["client_secret"] not in stored.secret_hash


async def test_a_burst_past_the_plan_is_429_with_retry_after_and_ratelimit_fields(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    app = await register(cloud, dev, plan="free")  # 5 a second, 10 at once
    token = (await app_token(cloud, app["client_id"], app["client_secret"])).json()["access_token"]
    async with plain(cloud, token) as http:
        start = time.monotonic()
        answers = await asyncio.gather(*(http.get("/api/v1/readings") for _ in range(25)))
        elapsed = time.monotonic() - start
    statuses = [r.status_code for r in answers]
    refilled = int(elapsed * 5) + 1  # what 5 a second gave back while the burst was answered
    assert 10 <= statuses.count(200) <= 10 + refilled, (statuses, elapsed)  # the burst, plus what refilled
    assert statuses.count(200) + statuses.count(429) == 25
    refused = [r for r in answers if r.status_code == 429]
    first = refused[0]
    assert first.headers["content-type"].startswith("application/problem+json")
    problem = first.json()
    assert problem["status"] == 429 and problem["type"].endswith("/too-many-requests")
    assert "free" in problem["detail"] and problem["plan"] == "free"
    assert first.headers["Retry-After"] == "1"
    assert first.headers["RateLimit-Policy"] == '"free";q=10;w=2'
    assert first.headers["RateLimit"] == '"free";r=0;t=1'


async def test_a_plan_change_at_run_time_applies_to_the_next_request(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    admin_token = await developer(cloud, name="boss", role="admin")
    app = await register(cloud, dev, plan="free")
    token = (await app_token(cloud, app["client_id"], app["client_secret"])).json()["access_token"]
    async with plain(cloud, token) as http:
        statuses = [r.status_code for r in await asyncio.gather(*(http.get("/api/v1/readings") for _ in range(40)))]
        assert 429 in statuses
        # the admin makes "free" far more generous: the very next request passes, no restart
        async with plain(cloud, admin_token) as boss:
            plans = (await boss.get("/api/v1/plans")).json()
            items = [{**p, "rate_per_s": 1000.0, "burst": 2000} if p["name"] == "free" else p for p in plans["items"]]
            r = await boss.put("/api/v1/plans", json={"items": items})
            assert r.status_code == 200, r.text
        r = await http.get("/api/v1/readings")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"free";q=2000;w=2'
        # the developer moves the application to "standard": the next answer names it
        async with plain(cloud, dev) as d:
            moved = await d.put(f"/api/v1/applications/{app['id']}/plan", json={"plan": "standard"})
            assert moved.status_code == 200 and moved.json()["plan"] == "standard"
        r = await http.get("/api/v1/readings")
        assert r.status_code == 200 and r.headers["RateLimit-Policy"].startswith('"standard";')


async def test_plans_are_decided_by_policy(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    app = await register(cloud, dev, plan="free")
    async with plain(cloud, dev) as http:
        r = await http.put(f"/api/v1/applications/{app['id']}/plan", json={"plan": "unlimited"})
        assert r.status_code == 403 and "use_plan" in r.json()["detail"]
        r = await http.put(f"/api/v1/applications/{app['id']}/plan", json={"plan": "gold"})
        assert r.status_code == 400 and r.json()["parameter"] == "plan" and "gold" in r.json()["detail"]
    # an owner permits this one application the unlimited plan in the policy set
    assert cloud.policy is not None
    points = cloud.policy.decision_point
    permit = (
        '\n@id("partner-unlimited")\npermit (principal == Client::"acme/' + app["client_id"] + '", '
        'action == Action::"use_plan", resource is Plan);\n'
    )
    points.replace(points.text() + permit, by="test")
    async with plain(cloud, dev) as http:
        r = await http.put(f"/api/v1/applications/{app['id']}/plan", json={"plan": "unlimited"})
        assert r.status_code == 200, r.text
    token = (await app_token(cloud, app["client_id"], app["client_secret"])).json()["access_token"]
    async with plain(cloud, token) as http:
        answers = await asyncio.gather(*(http.get("/api/v1/readings") for _ in range(30)))
    assert {r.status_code for r in answers} == {200}
    assert "RateLimit" not in answers[0].headers  # an unlimited plan has no quota to describe


async def test_rotating_the_secret_invalidates_the_old_one(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    app = await register(cloud, dev)
    old_token = (await app_token(cloud, app["client_id"], app["client_secret"])).json()["access_token"]
    async with plain(cloud, dev) as http:
        r = await http.post(f"/api/v1/applications/{app['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new_secret = r.json()["client_secret"]
    assert new_secret != app["client_secret"] and r.json()["secret_rotated"] is not None
    refused = await app_token(cloud, app["client_id"], app["client_secret"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert (await app_token(cloud, app["client_id"], new_secret)).status_code == 200

    async def old_token_refused() -> bool:
        async with plain(cloud, old_token) as http:
            return (await http.get("/api/v1/readings")).status_code == 401

    await eventually(old_token_refused)


async def test_delete_and_other_developers(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    other_dev = await developer(cloud, name="eve")
    foreign = await developer(cloud, name="mallory", tenant="other")
    boss = await developer(cloud, name="boss", role="admin")
    viewer = await developer(cloud, name="vic", role="viewer")
    app = await register(cloud, dev)
    for token in (other_dev, foreign):
        async with plain(cloud, token) as http:
            assert (await http.get(f"/api/v1/applications/{app['id']}")).status_code == 404
            assert (await http.delete(f"/api/v1/applications/{app['id']}")).status_code == 404
            assert (await http.get("/api/v1/applications")).json()["items"] == []
    async with plain(cloud, viewer) as http:
        r = await http.post("/api/v1/applications", json={"name": "x", "scopes": ["readings:read"]})
        assert r.status_code == 403
    async with plain(cloud, boss) as http:
        assert [a["id"] for a in (await http.get("/api/v1/applications")).json()["items"]] == [app["id"]]
    async with plain(cloud, dev) as http:
        assert (await http.delete(f"/api/v1/applications/{app['id']}")).status_code == 204
        assert (await http.get(f"/api/v1/applications/{app['id']}")).status_code == 404
    assert (await app_token(cloud, app["client_id"], app["client_secret"])).status_code == 401


async def test_bad_inputs_are_named(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    boss = await developer(cloud, name="boss", role="admin")
    async with plain(cloud, dev) as http:
        cases = [
            ({"name": "x", "scopes": ["everything"]}, "scopes"),
            ({"name": "x", "scopes": []}, "scopes"),
            ({"name": "", "scopes": ["readings:read"]}, "name"),
            ({"name": "x", "scopes": ["readings:read"], "plan": "platinum"}, "plan"),
            ({"name": "x", "scopes": ["readings:read"], "colour": "red"}, "colour"),
        ]
        for body, parameter in cases:
            r = await http.post("/api/v1/applications", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["parameter"] == parameter, (body, r.json())
        r = await http.get("/api/v1/usage", params={"since": "yesterday"})
        assert r.status_code == 400 and r.json()["parameter"] == "since"
        r = await http.get("/api/v1/usage", params={"format": "xml"})
        assert r.status_code == 400 and r.json()["parameter"] == "format"
        one = {"items": [{"name": "free", "rate_per_s": 1, "burst": 1}]}
        assert (await http.put("/api/v1/plans", json=one)).status_code == 403  # developers may not
    async with plain(cloud, boss) as http:
        r = await http.put("/api/v1/plans", json={"items": [{"name": "free", "rate_per_s": 0, "burst": 1}]})
        assert r.status_code == 400 and r.json()["parameter"] == "rate_per_s"
        r = await http.put("/api/v1/plans", json={"items": [{"name": "free", "rate_per_s": 1, "burst": 1}]})
        assert r.status_code == 409 and "operator" in r.json()["detail"]  # the operators' plan must stay
        dup = {"name": "free", "rate_per_s": 1, "burst": 1}
        r = await http.put("/api/v1/plans", json={"items": [dup, dup]})
        assert r.status_code == 400 and "twice" in r.json()["detail"]


async def test_usage_matches_what_was_done_and_exports_as_csv(cloud: CloudServer) -> None:
    dev = await developer(cloud)
    boss = await developer(cloud, name="boss", role="admin")
    app = await register(cloud, dev, plan="standard")
    other = await register(cloud, boss, name="other app", plan="standard")
    token = (await app_token(cloud, app["client_id"], app["client_secret"])).json()["access_token"]
    other_token = (await app_token(cloud, other["client_id"], other["client_secret"])).json()["access_token"]
    since = time.time() - 1
    async with plain(cloud, token) as http:
        for _ in range(7):
            assert (await http.get("/api/v1/readings", params={"limit": 5})).status_code == 200
        for _ in range(3):
            assert (await http.get("/api/v1/gateways")).status_code == 403
        assert (await http.get("/api/v1/readings", params={"limit": 0})).status_code == 400
        assert (await http.get("/api/v1/gateways/gw-1/state")).status_code in (403, 404)
    async with plain(cloud, other_token) as http:
        assert (await http.get("/api/v1/readings")).status_code == 200
    async with plain(cloud, dev) as http:
        r = await http.get(f"/api/v1/applications/{app['id']}/usage")
        assert r.status_code == 200, r.text
        by_endpoint = {i["endpoint"]: i for i in r.json()["items"]}
        mine = (await http.get("/api/v1/usage", params={"since": str(since)})).json()["items"]
        r_csv = await http.get("/api/v1/usage", params={"format": "csv", "endpoint": "GET /api/v1/readings"})
        forbidden = await http.get("/api/v1/usage", params={"client": other["client_id"]})
    readings = by_endpoint["GET /api/v1/readings"]
    assert (readings["calls"], readings["errors_4xx"], readings["errors_5xx"]) == (8, 1, 0)
    assert readings["latency_p50_ms"] is not None and readings["latency_p95_ms"] >= readings["latency_p50_ms"]
    assert by_endpoint["GET /api/v1/gateways"]["calls"] == 3
    assert by_endpoint["GET /api/v1/gateways"]["errors_4xx"] == 3
    assert "GET /api/v1/gateways/{gateway}/state" in by_endpoint  # the route template, not the raw path
    assert {i["client"] for i in mine} == {app["client_id"]}  # a developer sees their own applications only
    assert forbidden.status_code == 404
    assert r_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r_csv.text)))
    assert [(row["client"], row["endpoint"], row["calls"], row["errors_4xx"]) for row in rows] == [
        (app["client_id"], "GET /api/v1/readings", "8", "1")
    ]
    async with plain(cloud, boss) as http:  # an admin sees the whole tenant's
        everyone = (await http.get("/api/v1/usage")).json()["items"]
    clients = {i["client"] for i in everyone}
    assert {app["client_id"], other["client_id"], "dev"} <= clients


async def test_a_client_made_by_an_admin_is_on_the_client_plan(cloud: CloudServer) -> None:
    assert cloud.identity is not None
    rec, secret = admin.create_client(cloud.identity.db, "acme", scopes=["readings:read"])
    token = (await app_token(cloud, rec.client_id, secret)).json()["access_token"]
    operator = await developer(cloud)
    async with plain(cloud, token) as http:
        r = await http.get("/api/v1/readings")
    assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"standard";q=100;w=2'
    async with plain(cloud, operator) as http:
        r = await http.get("/api/v1/readings")
    assert r.status_code == 200 and r.headers["RateLimit-Policy"] == '"operator";q=400;w=2'


async def test_usage_is_written_by_the_background_task_and_survives_a_restart(tmp_path: Path) -> None:
    config = loads(BASE_CONFIG + API_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        assert server.identity is not None and server.managed_api is not None
        admin.create_tenant(server.identity.db, "acme")
        boss = await developer(server, name="boss", role="admin")
        app = await register(server, boss, plan="standard")
        token = (await app_token(server, app["client_id"], app["client_secret"])).json()["access_token"]
        async with plain(server, token) as http:
            for _ in range(4):
                assert (await http.get("/api/v1/readings")).status_code == 200
        async with plain(server, boss) as http:
            plans = (await http.get("/api/v1/plans")).json()["items"]
            changed = [{**p, "burst": 77} if p["name"] == "standard" else p for p in plans]
            assert (await http.put("/api/v1/plans", json={"items": changed})).status_code == 200
        db = server.managed_api.db

        async def written() -> bool:  # no query forces a flush here: the background task writes them
            rows = await asyncio.to_thread(
                db.usage, "acme", clients=[app["client_id"]], endpoint=None, since_minute=None, until_minute=None
            )
            return sum(r.calls for r in rows) == 4

        await eventually(written)
    async with CloudServer(config) as server:  # applications, plans and usage are where they were
        boss = await developer(server, name="boss", role="admin")
        async with plain(server, boss) as http:
            listed = (await http.get("/api/v1/applications")).json()["items"]
            plans = {p["name"]: p for p in (await http.get("/api/v1/plans")).json()["items"]}
            usage = (await http.get("/api/v1/usage", params={"client": app["client_id"]})).json()["items"]
        assert [(a["id"], a["plan"]) for a in listed] == [(app["id"], "standard")]
        assert plans["standard"]["burst"] == 77
        assert [(u["endpoint"], u["calls"]) for u in usage] == [("GET /api/v1/readings", 4)]
        token = (await app_token(server, app["client_id"], app["client_secret"])).json()["access_token"]
        async with plain(server, token) as http:
            r = await http.get("/api/v1/readings")
        assert r.headers["RateLimit-Policy"] == '"standard";q=77;w=2'
