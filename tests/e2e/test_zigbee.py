"""Zigbee end to end: the in-memory network's devices report into the cloud, and an operator's command
switches the metered plug and dims the bulb through the gateway's Zigbee adapter (ZCL default response
as the result). Real ``roost cloud serve`` and ``roost gateway run`` processes on loopback.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.harness import Site
from tests.e2e.test_wired import _command, _operator_token

pytestmark = pytest.mark.slow

PLUG, BULB, CLIMATE = "00:12:4b:00:1c:a1:b2:05", "00:12:4b:00:1c:a1:b2:06", "00:12:4b:00:1c:a1:b2:01"


async def test_zigbee_readings_reach_the_cloud_and_commands_reach_the_devices(site: Site) -> None:
    site.write_gateway_config(
        '[adapters.zigbee]\nenabled = true\nradio = "memory"\nemulate_devices = true\n'
        "emulate_interval_s = 0.5\ndatabase = false\n"
    )
    site.start_cloud()
    await site.start_gateway()
    deadline = time.monotonic() + 60
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline and not {(CLIMATE, "temperature"), (PLUG, "power")} <= seen:
        seen = {(i["sensor"], i["metric"]) for i in await asyncio.to_thread(site.readings)}
        await asyncio.sleep(0.5)
    assert {(CLIMATE, "temperature"), (PLUG, "power")} <= seen, sorted(seen)[:20]
    token = _operator_token(site)
    status, done = await _command(site, token, "actuate", {"sensor": PLUG, "action": "off"})
    assert (status, done["status"]) == (200, "ok"), done
    status, dimmed = await _command(
        site, token, "actuate", {"sensor": BULB, "action": "level", "args": {"percent": 40}}
    )
    assert (status, dimmed["status"]) == (200, "ok"), dimmed
    status, refused = await _command(site, token, "actuate", {"sensor": CLIMATE, "action": "on"})
    assert (status, refused["status"]) == (200, "error") and "can be acted on now" in refused["error"], refused
