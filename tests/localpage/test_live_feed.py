"""The live feed between the hub and the browsers: bounded per browser, dropping the oldest for a slow one
(counted) rather than holding up the hub, and a cap on open streams. Real Hub over a real DurableBuffer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.hub import Hub
from gateway.localpage.live import LiveFeed, TooManyClients
from tests.gateway import ble_rig
from wire.events import Event
from wire.reading import Reading


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async for h in ble_rig.hub_at(tmp_path / "buf.sqlite"):
        yield h


async def test_a_slow_browser_loses_its_oldest_readings_and_the_hub_never_waits(hub: Hub) -> None:
    feed = LiveFeed(hub, queue_size=8, max_clients=2)
    feed.start()
    try:
        slow, fast = feed.open(), feed.open()
        with pytest.raises(TooManyClients, match="2 live pages are open already"):
            feed.open()
        started = time.monotonic()
        for batch in range(20):
            await hub.publish(
                [Reading("s1", "temperature", float(batch * 5 + i), time.time(), "Cel") for i in range(5)]
            )
            if batch % 2 == 0:
                got = await fast.get(0.1)
                assert got, "the fast browser reads what came"
        assert time.monotonic() - started < 5
        assert len(slow.queue) == 8 and slow.dropped == 92
        left = await slow.get(0.1)
        assert [m["value"] for m in left] == [float(v) for v in range(92, 100)], "the newest are kept"
        assert feed.dropped == 92 + fast.dropped
        assert feed.latest[("s1", "temperature")]["value"] == 99.0
        feed.close(slow)
        feed.open()  # a slot is free again
    finally:
        feed.stop()
    assert not hub.readings.observers, "stopping the page unsubscribes from the hub"


async def test_device_events_reach_the_pairing_page_and_are_remembered(hub: Hub) -> None:
    feed = LiveFeed(hub, queue_size=16, max_clients=1)
    feed.start()
    try:
        c = feed.open()
        joined = Event(id="e1", kind="device", ts=time.time(), key="zigbee/00:12", message="Zigbee device 00:12 joined",
                       sensor="00:12", value="joined", data={"adapter": "zigbee", "nwk": "0x1234"})  # fmt: skip
        alert = Event(id="e2", kind="annotation", ts=time.time(), key="x/y")
        await hub.publish_events([joined, alert])
        async with asyncio.timeout(2):
            got = await c.get(1.0)
        assert [m["what"] for m in got] == ["joined"], "only device events go to the page"
        assert got[0]["message"] == "Zigbee device 00:12 joined" and got[0]["data"]["nwk"] == "0x1234"
        assert list(feed.recent_events) == got
        assert await c.get(0.05) == [], "an empty wait times out with nothing"
    finally:
        feed.stop()
