"""Cloud rules on a real cloud: rules spanning gateways over the ingest stream, fed by gateways over MQTT.

A real CloudServer (embedded broker, SQLite store, identity for an admin's token) with ``[rules]``
enabled; seven gateways connect over MQTT over WebSockets (``allow_any_gateway``), an admin tags them
with sites and tags and writes the rule files through ``PUT /api/v1/rules/{name}``. Windows are seconds
long here instead of minutes. Shows: (a) the average of the freezers of a site raises one alert for
that site only, and its command reaches the named gateway; (b) four gateways of a site going offline
raise an alert; (c) a cold-chain gateway that stops sending raises an absence alert; (d) the alerts are
in /api/v1/alerts under the gateway ``cloud``, can be acknowledged, and clear. Also: a client calling
itself ``cloud`` cannot store anything, and a broken rule file is refused with the checker's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import httpx
import pytest

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from cloud.store import EventWrite, Store
from tests.cloud.helpers import eventually, http, mqtt, next_message
from tests.cloud.identity.conftest import identity_of, operator_token
from tests.console import rig
from wire import events as wire_events
from wire import senml
from wire.commands import decode_command
from wire.reading import Reading

pytestmark = pytest.mark.slow
F = TypeVar("F")

CONFIG = """
[server]
port = 0

[ingest]
batch_max_delay_ms = 2

[auth]
allow_any_gateway = true

[identity]
throttle_burst = 50

[rules]
enabled = true
folder = "rules"
tick_s = 0.05
watch_s = 0.2
tags_refresh_s = 0.1
"""

SITE_FREEZERS = """
[[rule]]
name = "site-freezers-warm"
group_by = "tag:site"
[rule.select]
sensor = "*/freezer-*"
metric = "temperature"
[rule.window]
kind = "tumbling"
size = "1s"
[rule.aggregate]
fn = "avg"
[rule.condition]
kind = "threshold"
above = -15.0
clear_below = -17.0
[[rule.action]]
kind = "alert"
severity = "critical"
message = "The freezers of site {subject} average {value:.1f} {unit}"
[[rule.action]]
kind = "command"
target = "a1/buzzer-1"
action = "on"
"""

SITE_OFFLINE = """
[[rule]]
name = "site-gateways-offline"
group_by = "tag:site"
[rule.select]
metric = "online"
tags = { kind = "gateway" }
value = false
[rule.window]
kind = "sliding"
size = "20s"
every = "1s"
[rule.aggregate]
fn = "count_distinct"
[rule.condition]
kind = "threshold"
above = 3.0
[[rule.action]]
kind = "alert"
message = "{value:.0f} gateways of site {subject} went offline"
"""

COLD_CHAIN = """
[[rule]]
name = "cold-chain-silent"
group_by = "tag:gateway"
[rule.select]
metric = "temperature"
tags = { cold-chain = "true" }
[rule.condition]
kind = "absence"
for = "1.5s"
[[rule.action]]
kind = "alert"
message = "Gateway {subject} has sent no temperature"
"""

SITES = {"a1": "A", "a2": "A", "a3": "A", "a4": "A", "b1": "B", "c1": "C", "c2": "C"}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    async with CloudServer(loads(CONFIG, base_dir=tmp_path)) as server:
        admin.create_tenant(identity_of(server).db, "default")
        yield server


def gateway(server: CloudServer, gw: str, **kwargs: Any) -> aiomqtt.Client:
    return mqtt(server, gw, username=gw, password="any", **kwargs)


async def send(client: aiomqtt.Client, gw: str, batch: str, readings: list[Reading]) -> None:
    await client.publish(f"roost/default/{gw}/telemetry/{batch}", senml.encode(readings), qos=1)


async def alerts(api: httpx.AsyncClient, state: str = "all") -> dict[str, dict[str, Any]]:
    r = await api.get("/api/v1/alerts", params={"state": state})
    assert r.status_code == 200, r.text
    return {a["key"]: a for a in r.json()["items"]}


async def keep_sending(client: aiomqtt.Client, gw: str, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        await send(client, gw, f"k{n}", [Reading("t1", "temperature", 4.0, time.time(), "Cel")])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                await stop.wait()


async def test_rules_spanning_gateways_raise_store_and_clear_cloud_alerts(cloud: CloudServer) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(http(cloud, olga))
        gws = {gw: await stack.enter_async_context(gateway(cloud, gw)) for gw in SITES}
        await gws["a1"].subscribe("roost/default/a1/cmd/+", qos=1)
        for gw, site in SITES.items():
            tags = ["cold-chain", "region=north"] if site == "C" else []
            r = await api.put(f"/api/v1/gateways/{gw}/tags", json={"tags": tags, "site": site})
            assert r.status_code == 200, r.text

        # A broken file is refused with the checker's words; nothing is saved.
        r = await api.put("/api/v1/rules/bad", content=SITE_OFFLINE.replace("count_distinct", "count_distinctt"))
        assert r.status_code == 400, r.text
        assert r.json()["problems"][0].startswith("bad.toml:14: rule 'site-gateways-offline': aggregate.fn:")
        for name, text in (("freezers", SITE_FREEZERS), ("offline", SITE_OFFLINE), ("cold-chain", COLD_CHAIN)):
            r = await api.put(f"/api/v1/rules/{name}", content=text, headers={"Content-Type": "application/toml"})
            assert r.status_code == 200, r.text
            assert r.json()["reloaded"] is True

        async def tagged() -> bool:
            body = (await api.get("/api/v1/rules")).json()
            return bool(body["gateways_tagged"] == len(SITES))

        await eventually(tagged)
        listing = (await api.get("/api/v1/rules")).json()
        assert [x["name"] for x in listing["rules"]] == [
            "cold-chain-silent",
            "site-freezers-warm",
            "site-gateways-offline",
        ]
        assert (await api.get("/api/v1/rules/freezers")).text == SITE_FREEZERS

        # (c) Both cold-chain gateways send; c2 goes on, c1 stops.
        stop = asyncio.Event()
        c2_task = asyncio.create_task(keep_sending(gws["c2"], "c2", stop))
        await send(gws["c1"], "c1", "c1-1", [Reading("t1", "temperature", 4.0, time.time(), "Cel")])

        # (a) Site A's two freezers on two gateways average -14 °C; site B's is at -20.
        now = time.time()
        await send(gws["a1"], "a1", "f1", [Reading("freezer-1", "temperature", -20.0, now, "Cel")])
        await send(gws["a2"], "a2", "f2", [Reading("freezer-2", "temperature", -8.0, now, "Cel")])
        await send(gws["b1"], "b1", "f3", [Reading("freezer-3", "temperature", -20.0, now, "Cel")])

        async def freezer_alert() -> bool:
            return "site-freezers-warm/A" in await alerts(api, "open")

        await eventually(freezer_alert, timeout=10)
        found = await alerts(api)
        a = found["site-freezers-warm/A"]
        assert (a["gateway"], a["state"], a["severity"], a["value"]) == ("cloud", "open", "critical", -14.0)
        assert a["message"] == "The freezers of site A average -14.0 Cel"
        assert "site-freezers-warm/B" not in found, "site B's freezers are cold"
        # ... and its command went to the gateway it names, through the fleet's command path.
        message = await next_message(gws["a1"], timeout=10)
        cmd = decode_command(bytes(message.payload))  # type: ignore[arg-type]
        assert (cmd.command, cmd.args) == ("actuate", {"sensor": "buzzer-1", "action": "on", "args": {}})
        assert cmd.issued_by == "cloud rule site-freezers-warm"

        # (c) c1 said nothing for 1.5 s: an absence alert for c1 only.
        async def silent_alert() -> bool:
            return "cold-chain-silent/c1" in await alerts(api, "open")

        await eventually(silent_alert, timeout=10)
        assert "cold-chain-silent/c2" not in await alerts(api)

        # (b) Four gateways of site A go offline within the window (their status, and the disconnects).
        for gw in ("a1", "a2", "a3", "a4"):
            await gws[gw].publish(f"roost/default/{gw}/status", b"offline", qos=1, retain=True)

        async def offline_alert() -> bool:
            return "site-gateways-offline/A" in await alerts(api, "open")

        await eventually(offline_alert, timeout=10)
        off = (await alerts(api))["site-gateways-offline/A"]
        assert (
            off["gateway"] == "cloud" and off["value"] == 4.0 and off["message"] == "4 gateways of site A went offline"
        )

        # (d) Acknowledged like a gateway alert; then the freezers cool and c1 sends again: both clear.
        r = await api.post("/api/v1/alerts/site-freezers-warm/A/acknowledge", params={"gateway": "cloud"})
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged_by"]
        now = time.time()
        await send(gws["b1"], "b1", "f4", [Reading("freezer-3", "temperature", -20.0, now, "Cel")])
        await send(gws["a2"], "a2", "f5", [Reading("freezer-2", "temperature", -20.0, now, "Cel")])
        await send(gws["c1"], "c1", "c1-2", [Reading("t1", "temperature", 4.0, time.time(), "Cel")])

        async def cleared() -> bool:
            found = await alerts(api)
            return bool(
                found["site-freezers-warm/A"]["state"] == "cleared"
                and found["cold-chain-silent/c1"]["state"] == "cleared"
            )

        await eventually(cleared, timeout=10)
        stop.set()
        await c2_task
        events = (await api.get("/api/v1/events", params={"gateway": "cloud", "kind": "alert"})).json()["items"]
        keys = {(e["key"], e["state"]) for e in events}
        assert ("site-freezers-warm/A", "raised") in keys and ("site-freezers-warm/A", "cleared") in keys
        stats = (await api.get("/api/v1/rules")).json()
        assert stats["runner"]["commands_sent"] == 1 and stats["runner"]["batches_dropped"] == 0
        assert stats["last_error"] is None


async def test_no_client_can_store_as_the_cloud(cloud: CloudServer) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    event = wire_events.Event(id="fake-1", kind="alert", ts=time.time(), key="site-freezers-warm/A", state="raised",
                              severity="critical", message="forged")  # fmt: skip
    async with gateway(cloud, "cloud") as fake, http(cloud, olga) as api:
        await fake.publish("roost/default/cloud/events/e1", wire_events.encode([event]), qos=1)
        await fake.publish(
            "roost/default/cloud/telemetry/t1", senml.encode([Reading("s", "m", 1.0, time.time())]), qos=1
        )

        async def refused() -> bool:
            return cloud.ingest.reserved_refused == 2

        await eventually(refused)
        assert await alerts(api) == {}
        r = await api.get("/api/v1/readings", params={"gateway": "cloud"})
        assert r.json()["items"] == []


async def test_rules_are_off_unless_enabled(tmp_path: Path) -> None:
    async with CloudServer(loads(CONFIG.replace("enabled = true", "enabled = false"), base_dir=tmp_path)) as server:
        admin.create_tenant(identity_of(server).db, "default")
        olga = await operator_token(server, "default", "admin", "olga")
        async with http(server, olga) as api:
            r = await api.get("/api/v1/rules")
            assert r.status_code == 404 and "[rules] enabled" in r.text
            assert json.loads(r.text)["status"] == 404


def needs_browser(fn: F) -> F:
    """Skipped, saying why, without Chromium or a built console (tests/console/rig.py)."""
    for mark in rig.needs_browser:
        fn = mark(fn)
    return fn


@needs_browser
async def test_the_console_marks_a_cloud_rules_alert(tmp_path: Path) -> None:
    """The alerts page shows a cloud rule's alert beside a gateway's, marked "cloud rule" (real Chromium)."""
    site = rig.console_site(tmp_path)
    store = Store(tmp_path / "cloud.sqlite")
    await store.open()
    try:
        now = time.time()
        cloud_alert = wire_events.Event(id="c1", kind="alert", ts=now - 30, key="site-freezers-warm/A",
                                        rule="site-freezers-warm", state="raised", severity="critical",
                                        message="The freezers of site A average -14.0 Cel",
                                        sensor="a2/freezer-2", metric="temperature", value=-14.0)  # fmt: skip
        gw_alert = wire_events.Event(id="g1", kind="alert", ts=now - 20, key="freezer-warm/freezer-1",
                                     rule="freezer-warm", state="raised", severity="warning",
                                     message="warm")  # fmt: skip
        await store.commit_all([], [EventWrite(rig.TENANT, "cloud", [cloud_alert]),
                                    EventWrite(rig.TENANT, site.gateway_id, [gw_alert])], now=now)  # fmt: skip
    finally:
        await store.close()
    try:
        site.start_cloud()
        user = rig.operator(site, "olga", "owner")
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            await con.go("#/alerts", "Alerts")
            row = con.page.locator("tr[data-alert='site-freezers-warm/A']")
            await row.wait_for(timeout=15_000)
            assert await row.locator("[data-cloud-rule]").inner_text() == "cloud rule"
            assert "The freezers of site A average -14.0 Cel" in await row.inner_text()
            other = con.page.locator("tr[data-alert='freezer-warm/freezer-1']")
            assert await other.locator("[data-cloud-rule]").count() == 0
            assert await other.locator("a").inner_text() == site.gateway_id
            await con.axe("alerts with a cloud rule")
            await con.tab_to("Acknowledge site-freezers-warm/A on cloud")
            await con.page.keyboard.press("Enter")
            await con.page.get_by_role("button", name="Acknowledged").click()
            await con.page.locator("tr[data-alert='site-freezers-warm/A'][data-state=acknowledged]").wait_for(
                timeout=15_000
            )
            await con.shot("alerts-cloud-rule")
    finally:
        site.stop_all()


async def test_rule_files_through_the_api_and_on_disk(cloud: CloudServer) -> None:
    olga = await operator_token(cloud, "default", "admin", "olga")
    viewer = await operator_token(cloud, "default", "viewer", "vera")
    quiet = COLD_CHAIN.replace('group_by = "tag:gateway"', "").replace(
        'tags = { cold-chain = "true" }', 'sensor = "a1/t1"'
    )
    async with http(cloud, olga) as api, http(cloud, viewer) as ro:
        assert (await ro.put("/api/v1/rules/quiet", content=quiet)).status_code == 403, "a viewer only reads"
        assert (await api.put("/api/v1/rules/..bad", content=quiet)).status_code == 400
        assert (await api.get("/api/v1/rules/none")).status_code == 404
        r = await api.put("/api/v1/rules/quiet.toml", content=quiet)
        assert r.status_code == 200 and r.json()["added"] == ["cold-chain-silent"], r.text

        # a1/t1 is named exactly, so it is expected from the start: silent for 1.5 s, an alert.
        async def raised() -> bool:
            return "cold-chain-silent/a1/t1" in await alerts(api, "open")

        await eventually(raised, timeout=10)
        # Removing the file clears the alerts its rules held open.
        r = await api.delete("/api/v1/rules/quiet")
        assert r.status_code == 200 and r.json()["removed"] == ["cold-chain-silent"], r.text
        assert (await api.delete("/api/v1/rules/quiet")).status_code == 404

        async def cleared() -> bool:
            return (await alerts(api))["cold-chain-silent/a1/t1"]["state"] == "cleared"

        await eventually(cleared)
        # A file put in the folder is picked up within watch_s; a broken one is reported, the rules stay.
        folder = cloud.config.rules.folder / "default"
        (folder / "disk.toml").write_text(SITE_OFFLINE)

        async def listed() -> bool:
            return [x["name"] for x in (await ro.get("/api/v1/rules")).json()["rules"]] == ["site-gateways-offline"]

        await eventually(listed)
        (folder / "disk.toml").write_text(SITE_OFFLINE.replace("above = 3.0", "above = 'three'"))

        async def reported() -> bool:
            return "condition.above: must be a number" in str((await ro.get("/api/v1/rules")).json()["last_error"])

        await eventually(reported)
        assert await listed(), "the rules running before stay"
        r = await api.post("/api/v1/rules/reload")
        assert r.status_code == 200 and r.json()["reloaded"] is False and "disk.toml:" in r.json()["last_error"]
