"""Events in the cloud: ingest over MQTT (acked after the commit, idempotent, malformed refused), the store's
alert states (raise, clear, raise again, late re-sends), schema 1 migration, and the events and alerts API with
its tenant isolation and the acknowledge action's roles."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud import store as store_module
from cloud.config import loads
from cloud.eventstore import AlertQuery, EventQuery
from cloud.identity import admin
from cloud.server import CloudServer
from cloud.store import EventWrite, Store
from tests.cloud.helpers import BASE_CONFIG, OTHER_TOKEN, eventually, http, mqtt, next_message
from tests.cloud.identity.conftest import identity_of
from tests.cloud.test_enforcement import api_token, operator_token
from wire import envelopes, events
from wire.events import Event

ACK = "roost/default/gw-1/ack"
EVENTS = "roost/default/gw-1/events"
T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z


def alert(i: int, state: str = "raised", *, key: str = "freezer-warm/freezer-1", severity: str = "critical") -> Event:
    """Alert event ``a{i}`` at T0 + i s."""
    return Event(
        id=f"a{i}",
        kind="alert",
        ts=T0 + i,
        key=key,
        rule=key.split("/", maxsplit=1)[0],
        state=state,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        message=f"{key} {state} ({i})",
        sensor="freezer-1",
        metric="temperature",
        value=-12.5,
        data={"threshold": -15},
    )


def note(i: int) -> Event:
    """Annotation ``n{i}`` at T0 + i s."""
    return Event(id=f"n{i}", kind="annotation", ts=T0 + i, key="door/log", message=f"door {i}", value=True)


# ------------------------------------------------------------------------------------------------ the store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An open store in a temporary folder."""
    s = Store(tmp_path / "store.sqlite")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_events_are_stored_once_and_read_back(store: Store) -> None:
    pack = [alert(1), note(2), Event(id="d3", kind="device", ts=T0 + 3, key="node-1", message="joined")]
    _, new = await store.commit_all([], [EventWrite("default", "gw-1", pack)], now=time.time())
    assert new == [3]
    _, new = await store.commit_all([], [EventWrite("default", "gw-1", pack)], now=time.time())
    assert new == [0], "a re-sent pack stores nothing"
    _, new = await store.commit_all([], [EventWrite("default", "gw-2", pack[:1])], now=time.time())
    assert new == [1], "ids are unique per gateway only"
    rows = await store.events(EventQuery(tenant="default", gateway="gw-1"))
    assert [r.id for r in rows] == ["a1", "n2", "d3"]
    assert rows[0].value == -12.5 and rows[0].data == {"threshold": -15} and rows[0].severity == "critical"
    assert rows[1].value is True
    assert [r.id for r in await store.events(EventQuery(kind="device"))] == ["d3"]
    alerts = await store.alerts(AlertQuery(tenant="default", state="all"))
    assert sorted(a.gateway for a in alerts) == ["gw-1", "gw-2"] and all(a.raises == 1 for a in alerts)
    gateways = {g.id: g.counters for g in await store.gateways("default")}
    assert gateways["gw-1"]["events"] == 3


async def test_alert_state_raise_clear_raise_and_late_resends(store: Store) -> None:
    async def commit(*evs: Event) -> None:
        await store.commit_all([], [EventWrite("default", "gw-1", list(evs))], now=time.time())

    async def state() -> Any:
        (a,) = await store.alerts(AlertQuery(tenant="default", state="all"))
        return a

    await commit(alert(1))
    a = await state()
    assert (a.state, a.first_raised_us, a.last_change_us, a.event_id) == (
        "raised",
        (T0 + 1) * 1e6,
        (T0 + 1) * 1e6,
        "a1",
    )
    await commit(alert(2, severity="warning"))  # raised again while open: same incident, new severity
    a = await state()
    assert (a.state, a.severity, a.first_raised_us, a.raises) == ("raised", "warning", (T0 + 1) * 1e6, 2)
    rows = await store.acknowledge_alert("default", None, a.key, by="operator:default/olga", at=T0 + 2.5)
    assert rows[0].acknowledged_by == "operator:default/olga"
    await commit(alert(3, "cleared"))
    a = await state()
    assert (a.state, a.last_change_us, a.acknowledged_by) == ("cleared", (T0 + 3) * 1e6, "operator:default/olga")
    assert await store.alerts(AlertQuery(tenant="default", state="open")) == []
    await commit(alert(2, severity="warning"), alert(0))  # late re-sends: one a duplicate, one never seen, older
    a = await state()
    assert a.state == "cleared" and a.event_id == "a3", "an older event never turns the state back"
    await commit(alert(5))  # a new incident
    a = await state()
    assert (a.state, a.first_raised_us, a.acknowledged_by, a.raises) == ("raised", (T0 + 5) * 1e6, None, 4)
    assert len(await store.events(EventQuery(kind="alert"))) == 5


async def test_a_schema_1_store_is_migrated_keeping_its_old_event_payloads(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    raw = sqlite3.connect(path)
    old_schema = store_module._SCHEMA + (
        "CREATE TABLE events (tenant TEXT NOT NULL, gateway TEXT NOT NULL, batch TEXT, received REAL NOT NULL,"
        " payload BLOB NOT NULL);"
        "CREATE UNIQUE INDEX events_by_batch ON events (tenant, gateway, batch) WHERE batch IS NOT NULL;"
    )
    raw.executescript(old_schema)
    raw.execute("INSERT INTO events VALUES ('default', 'gw-1', 'b1', 1.0, x'00')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    s = Store(path)
    await s.open()
    try:
        _, new = await s.commit_all([], [EventWrite("default", "gw-1", [alert(1)])], now=time.time())
        assert new == [1]
    finally:
        await s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
        assert conn.execute("SELECT batch FROM event_payloads_v1").fetchall() == [("b1",)]
        assert conn.execute("SELECT id FROM events").fetchall() == [("a1",)]


# ------------------------------------------------------------------------------------------------ ingest


async def _stats(server: CloudServer) -> dict[str, int]:
    async with http(server) as api:
        counters: dict[str, int] = (await api.get("/api/v1/stats")).json()["counters"]
        return counters


async def test_ingest_acks_after_storing_once_and_refuses_malformed_packs(cloud: CloudServer) -> None:
    pack = events.encode([alert(1), note(2)])
    async with mqtt(cloud) as gw:
        await gw.subscribe(ACK, qos=1)
        await gw.publish(f"{EVENTS}/ev-1", pack, qos=1)
        ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
        assert ack == {"batches": ["ev-1"], "rejected": []}
        rows = await cloud.store.events(EventQuery(tenant="default"))
        assert [r.id for r in rows] == ["a1", "n2"], "stored before the ack went out"
        await gw.publish(f"{EVENTS}/ev-1", pack, qos=1)  # a re-send after a lost ack
        assert envelopes.decode_ack((await next_message(gw)).payload)["batches"] == ["ev-1"]  # type: ignore[arg-type]
        for i, bad in enumerate([b'[{"bn":"s1:","n":"alert","vs":"hot"}]', b"\xff\x00", b"[]", b'[{"id":1}]']):
            await gw.publish(f"{EVENTS}/bad-{i}", bad, qos=1)
            ack = envelopes.decode_ack((await next_message(gw)).payload)  # type: ignore[arg-type]
            assert ack == {"batches": [], "rejected": [f"bad-{i}"]}
        await gw.publish(EVENTS, events.encode([note(3)]), qos=1)  # no batch id: stored, nothing to ack
    stats = await _stats(cloud)
    assert stats["events"] == 2 and stats["event_duplicates"] == 2 and stats["rejected_event_packs"] == 4

    async def third_stored() -> bool:
        return len(await cloud.store.events(EventQuery(tenant="default"))) == 3

    await eventually(third_stored)
    assert cloud.ingest.last_store_error is None


# ------------------------------------------------------------------------------------------------ the API

IDENTITY_CONFIG = """
[identity]
throttle_burst = 50
"""


@pytest.fixture
async def idcloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """A running cloud with identity (operators' tokens) and tenants ``default`` and ``other``, seeded with events."""
    config = loads(BASE_CONFIG + IDENTITY_CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        for tenant in ("default", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        await server.store.commit_all(
            [],
            [
                EventWrite(
                    "default", "gw-1", [alert(1), note(2), alert(3, key="door-open/door-1"), alert(4, "cleared")]
                ),
                EventWrite("default", "gw-2", [alert(5, key="door-open/door-1", severity="warning")]),
                EventWrite("other", "gw-x", [alert(6, key="secret/x"), note(7)]),
            ],
            now=time.time(),
        )
        yield server


async def _get(server: CloudServer, path: str, token: str | None = None, **params: Any) -> Any:
    async with http(server, *((token,) if token else ())) as api:
        resp = await api.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_events_pages_filters_and_tenant_isolation(idcloud: CloudServer) -> None:
    body = await _get(idcloud, "/api/v1/events")
    assert [e["id"] for e in body["items"]] == ["a1", "n2", "a3", "a4", "a5"] and body["next"] is None
    first = body["items"][0]
    assert first["ts"] == "2026-11-18T11:06:41.000000Z" and first["state"] == "raised"
    assert first["gateway"] == "gw-1" and first["data"] == {"threshold": -15} and first["severity"] == "critical"
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await _get(idcloud, "/api/v1/events", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["a1", "n2", "a3", "a4", "a5"]
    assert [e["id"] for e in (await _get(idcloud, "/api/v1/events", kind="annotation"))["items"]] == ["n2"]
    assert [e["id"] for e in (await _get(idcloud, "/api/v1/events", gateway="gw-2"))["items"]] == ["a5"]
    ids = [e["id"] for e in (await _get(idcloud, "/api/v1/events", since=str(T0 + 2), until=str(T0 + 4)))["items"]]
    assert ids == ["n2", "a3"]
    other = await _get(idcloud, "/api/v1/events", OTHER_TOKEN)
    assert [e["id"] for e in other["items"]] == ["a6", "n7"]
    async with http(idcloud) as api:
        denied = await api.get("/api/v1/events", params={"tenant": "other"})
        assert denied.status_code == 403
        assert (await api.get("/api/v1/alerts", params={"tenant": "other"})).status_code == 403
        for params, parameter in [({"kind": "nope"}, "kind"), ({"cursor": "zzz"}, "cursor"), ({"since": "x"}, "since")]:
            resp = await api.get("/api/v1/events", params=params)
            assert resp.status_code == 400 and resp.json()["error"]["parameter"] == parameter
        assert (await api.get("/api/v1/alerts", params={"state": "shut"})).status_code == 400
    async with http(idcloud, None) as api:
        assert (await api.get("/api/v1/events")).status_code == 401
        spec = (await api.get("/openapi.json")).json()["paths"]
        assert {"/api/v1/events", "/api/v1/alerts", "/api/v1/alerts/{key}/acknowledge"} <= set(spec)


async def test_alerts_current_state(idcloud: CloudServer) -> None:
    open_ = (await _get(idcloud, "/api/v1/alerts"))["items"]
    assert [(a["gateway"], a["key"]) for a in open_] == [("gw-2", "door-open/door-1"), ("gw-1", "door-open/door-1")]
    assert all(a["state"] == "open" and a["acknowledged_by"] is None for a in open_)
    cleared = (await _get(idcloud, "/api/v1/alerts", state="cleared"))["items"]
    assert len(cleared) == 1
    c = cleared[0]
    assert (c["key"], c["state"], c["message"]) == (
        "freezer-warm/freezer-1",
        "cleared",
        "freezer-warm/freezer-1 cleared (4)",
    )
    assert c["first_raised"] == "2026-11-18T11:06:41.000000Z" and c["last_change"] == "2026-11-18T11:06:44.000000Z"
    assert len((await _get(idcloud, "/api/v1/alerts", state="all", gateway="gw-1"))["items"]) == 2
    assert [a["key"] for a in (await _get(idcloud, "/api/v1/alerts", OTHER_TOKEN, state="all"))["items"]] == [
        "secret/x"
    ]


async def test_acknowledge_needs_a_role_that_may_command(idcloud: CloudServer) -> None:
    path = "/api/v1/alerts/door-open/door-1/acknowledge"
    viewer = operator_token(idcloud, "vic", "viewer")
    olga = operator_token(idcloud, "olga", "operator")
    intruder = operator_token(idcloud, "ivan", "admin", tenant="other")
    _, reader = await api_token(idcloud, "default", scopes=["events:read"])
    async with http(idcloud) as api:  # the observer token: read-only
        assert (await api.post(path, params={"gateway": "gw-1"})).status_code == 403
    async with http(idcloud, viewer) as api:
        assert len((await api.get("/api/v1/alerts")).json()["items"]) == 2, "a viewer reads"
        resp = await api.post(path, params={"gateway": "gw-1"})
        assert resp.status_code == 403 and "acknowledge_alerts" in resp.json()["error"]["message"]
    async with http(idcloud, reader) as api:
        assert len((await api.get("/api/v1/events")).json()["items"]) == 5, "a client with events:read reads"
        assert (await api.post(path, params={"gateway": "gw-1"})).status_code == 403
    async with http(idcloud, intruder) as api:
        assert (await api.post(path, params={"gateway": "gw-1", "tenant": "default"})).status_code == 403
        assert (await api.post(path, params={"gateway": "gw-1"})).status_code == 404, "not in its own tenant"
    async with http(idcloud, olga) as api:
        resp = await api.post(path)
        assert resp.status_code == 409 and resp.json()["error"]["parameter"] == "gateway"
        assert (await api.post("/api/v1/alerts/no/such/acknowledge")).status_code == 404
        resp = await api.post(path, params={"gateway": "gw-1"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["acknowledged_by"] == "operator:default/olga" and body["acknowledged_at"].endswith("Z")
        assert body["state"] == "open" and body["gateway"] == "gw-1"
    items = {a["gateway"]: a for a in (await _get(idcloud, "/api/v1/alerts"))["items"]}
    assert items["gw-1"]["acknowledged_by"] == "operator:default/olga" and items["gw-2"]["acknowledged_by"] is None
