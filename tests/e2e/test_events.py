"""Events end to end: the gateway's hub -> buffer -> MQTT over WebSockets -> cloud ingest -> store -> API, across
a cloud outage.

The cloud is the real ``roost cloud serve`` process; the gateway runs in this process through
``gateway.daemon.run`` (its ``ready`` callback hands over the hub), so the test can publish events the way the
rules engine does. Every event whose ``publish_events`` returned must be stored exactly once, and the alerts'
final states must be what the last events said.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from gateway import daemon as gateway_daemon
from gateway.config import load
from tests.e2e.harness import Site
from wire.events import Event

pytestmark = pytest.mark.slow

TEMP = "e2e-temp/th-1"
DOOR = "e2e-door/door-1"


def _alert(i: int, key: str, state: str, severity: str = "warning") -> Event:
    return Event(
        id=f"ev-{i}",
        kind="alert",
        ts=round(time.time(), 6),
        key=key,
        rule=key.split("/", maxsplit=1)[0],
        state=state,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        message=f"{key} {state} #{i}",
        sensor=key.split("/")[1],
    )


def _events(site: Site, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = site.api("/api/v1/events", limit=500, cursor=cursor, **params)
        items.extend(page["items"])
        cursor = page.get("next")
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


async def test_events_survive_a_cloud_outage_and_are_stored_exactly_once(site: Site) -> None:
    await asyncio.to_thread(site.start_cloud)
    config = load(site.tmp / "gateway.toml")
    ready: asyncio.Future[gateway_daemon.Daemon] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(gateway_daemon.run(config, ready=ready.set_result), name="e2e-gateway")
    published: list[Event] = []
    during_outage = 0
    try:
        d = await asyncio.wait_for(ready, 30)
        deadline = time.monotonic() + 30
        while not d.uplink.connected:
            assert time.monotonic() < deadline, "the gateway did not connect"
            assert not gateway.done(), "the gateway stopped"
            await asyncio.sleep(0.1)

        async def publish(events: list[Event]) -> None:
            await d.hub.publish_events(events)  # returns once durable in the gateway's buffer
            published.extend(events)

        seq = 0
        outage_at, back_at = 40, 160
        for step in range(220):
            if step == outage_at:
                await asyncio.to_thread(site.cloud.stop)
            if step == back_at:
                await asyncio.to_thread(site.start_cloud)
            batch: list[Event] = []
            for _ in range(3):
                seq += 1
                batch.append(Event(id=f"ev-{seq}", kind="annotation", ts=round(time.time(), 6), key="e2e/log"))
            if step % 10 == 0:
                seq += 1
                batch.append(_alert(seq, TEMP, "raised" if step % 20 == 0 else "cleared"))
            await publish(batch)
            if outage_at <= step < back_at:
                during_outage += len(batch)
            await asyncio.sleep(0.03)
        assert during_outage > 100
        seq += 1
        await publish([_alert(seq, DOOR, "raised", "info")])
        seq += 1
        await publish([_alert(seq, TEMP, "raised", "critical")])
        seq += 1
        await publish([_alert(seq, DOOR, "cleared", "info")])

        want = {e.id for e in published}
        deadline = time.monotonic() + 60
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            items = await asyncio.to_thread(_events, site, gateway=site.gateway_id)
            if want <= {i["id"] for i in items} and d.buffer.stats()["events_buffered"] == 0:
                break
            await asyncio.sleep(0.5)
        ids = [i["id"] for i in items]
        assert len(ids) == len(set(ids)), "an event was stored twice"
        missing = want - set(ids)
        assert not missing, f"{len(missing)} of {len(want)} durable events never reached the store"
        assert set(ids) == want
        assert d.buffer.stats()["events_buffered"] == 0, "acknowledged events are deleted from the buffer"
        assert d.uplink.reconnects >= 1 and d.uplink.events_sent >= len(want)

        alerts = {a["key"]: a for a in site.api("/api/v1/alerts", state="all")["items"]}
        temp, door = alerts[TEMP], alerts[DOOR]
        assert (temp["state"], temp["severity"]) == ("open", "critical")
        assert temp["message"] == f"{TEMP} raised #{seq - 1}"
        assert (door["state"], door["message"]) == ("cleared", f"{DOOR} cleared #{seq}")
        assert [a["key"] for a in site.api("/api/v1/alerts")["items"]] == [TEMP]
        deadline = time.monotonic() + 15
        while True:  # the gateway's health report carries its event counters (every second here)
            gw = next(g for g in site.api("/api/v1/gateways")["items"] if g["id"] == site.gateway_id)
            reported = (gw.get("health") or {}).get("events") or {}
            if reported.get("sent", 0) >= len(want) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        assert gw["ingest"]["events"] == len(want)
        assert reported["sent"] >= len(want) and reported["dropped"] == 0 and reported["rejected"] == 0
    finally:
        gateway.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(gateway, 20)
