"""Rules on a running gateway: an emulated sensor crosses a threshold, the alert reaches the cloud, an
emulated actuator (a Roost serial node on a pty) receives its command, and deadband shaping keeps
unchanged readings out of the uplink while the rules still see them.

Real ``roost cloud serve`` and ``roost gateway run`` processes on loopback; the sensor is a real CoAP client.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.ptylink import PtyLink
from drivers.roostserial.node_emulator import NodeEmulator
from tests.e2e.harness import Sensor, Site
from wire.reading import Reading

pytestmark = pytest.mark.slow

RULES = """
version = 1

[[rule]]
name = "freezer-warm"

[rule.select]
sensor = "freezer-*"
metric = "temperature"

[rule.condition]
kind = "threshold"
above = -15.0
clear_below = -17.0
for = "1s"

[[rule.action]]
kind = "alert"
severity = "critical"
message = "{sensor} is at {value:.1f} {unit}"
clear_message = "{sensor} is back at {value:.1f} {unit}"

[[rule.action]]
kind = "command"
target = "alarm-node"
action = "on"
args = { output = 1 }

[[rule]]
name = "freezer-deadband"

[rule.select]
sensor = "freezer-*"
metric = "temperature"

[rule.shape]
kind = "deadband"
delta = 0.5
"""


async def _eventually(check: Any, what: str, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_alert_reaches_the_cloud_and_a_command_reaches_the_actuator(site: Site, tmp_path: Path) -> None:
    (tmp_path / "freezer.toml").write_text(RULES)
    node_link = tmp_path / "by-id" / "usb-Roost_alarm-if00"
    node_link.parent.mkdir()
    node = NodeEmulator("alarm-node", interval_s=60, outputs=2)
    async with PtyLink(node, link=node_link):
        site.write_gateway_config(
            f'[rules]\nfiles = ["{tmp_path / "freezer.toml"}"]\ntick_s = 0.1\n\n'
            f'[[adapters.serial]]\npath = "{node_link}"\nprotocol = "roost"\naccept = "any"\n'
        )
        site.start_cloud()
        await site.start_gateway()
        async with Sensor(site.coap_port, "freezer-1") as sensor:
            t0 = time.time()
            steady = [Reading("freezer-1", "temperature", -20.0, round(t0 + i * 0.01, 6), "Cel") for i in range(20)]
            assert (await sensor.post(steady)).code.is_successful()
            warm = [Reading("freezer-1", "temperature", -12.0, round(time.time(), 6), "Cel")]
            assert (await sensor.post(warm)).code.is_successful()
            for _ in range(15):  # warm for more than a second
                await asyncio.sleep(0.15)
                r = Reading("freezer-1", "temperature", -12.0, round(time.time(), 6), "Cel")
                assert (await sensor.post([r])).code.is_successful()

            def open_alert() -> Any:
                items = site.api("/api/v1/alerts", state="open")["items"]
                return [a for a in items if a["key"] == "freezer-warm/freezer-1"]

            (alert,) = await _eventually(open_alert, "the open alert in the cloud")
            assert alert["severity"] == "critical" and "freezer-1 is at -12.0" in alert["message"]
            await _eventually(lambda: node.output_values.get(1) == 1, "the alarm node's output switched on")

            # Back to cold: the alert clears (below -17, not at -16: hysteresis).
            for value in (-16.0, -18.0):
                r = Reading("freezer-1", "temperature", value, round(time.time(), 6), "Cel")
                assert (await sensor.post([r])).code.is_successful()
                await asyncio.sleep(0.3)

            def cleared() -> Any:
                items = site.api("/api/v1/alerts", state="cleared")["items"]
                return [a for a in items if a["key"] == "freezer-warm/freezer-1"]

            await _eventually(cleared, "the alert cleared in the cloud")
            # Deadband: twenty identical -20.0 readings and fifteen -12.0 ones travel as a handful.
            stored = await asyncio.to_thread(site.readings, sensor="freezer-1")
            assert 3 <= len(stored) <= 8, [i["value"] for i in stored]
            assert {-20.0, -12.0, -18.0} <= {i["value"] for i in stored}
