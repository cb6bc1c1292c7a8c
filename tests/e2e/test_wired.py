"""Wired devices end to end: emulated I2C and SPI chips, a Roost serial node and a GPS on ptys, into the cloud.

Real ``roost cloud serve`` and ``roost gateway run`` processes; the serial devices are emulators
on the master side of real pty pairs, the gateway opens the slave side through a symlink that
stands in for ``/dev/serial/by-id/...``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from drivers.nmea_talker import LiveReceiver, Position
from drivers.ptylink import PtyLink
from drivers.roostserial.node_emulator import NodeEmulator
from tests.e2e.harness import Site

pytestmark = pytest.mark.slow


def _wired_config(node: Path, gps: Path) -> str:
    return f"""
[[adapters.i2c]]
chip = "bme280"
emulated = true
interval_s = 0.5

[[adapters.spi]]
chip = "mcp3008"
inputs = ["ch0", "ch1"]
emulated = true
interval_s = 0.5

[[adapters.serial]]
path = "{node}"
protocol = "roost"
accept = "any"

[[adapters.serial]]
path = "{gps}"
protocol = "nmea"
baud = 9600
sensor = "gps"
"""


def _operator_token(site: Site) -> str:
    from cloud.identity import admin

    admin.ensure_tenant(site.identity_db, "default")
    admin.ensure_operator(site.identity_db, "default", "tess", lambda: "correct horse battery staple", role="operator")
    return admin.operator_token(
        site.identity_db, "default", "tess", ttl_s=600, issuer=site.base, audience="roost", keep_retired_s=3600
    ).access_token


async def _command(site: Site, token: str, command: str, args: dict[str, Any]) -> tuple[int, Any]:
    def call() -> tuple[int, Any]:
        req = urllib.request.Request(
            f"{site.base}/api/v1/gateways/{site.gateway_id}/commands",
            data=json.dumps({"command": command, "args": args, "wait_s": 20}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    return await asyncio.to_thread(call)


async def _wait_for(site: Site, want: set[tuple[str, str]], timeout: float = 60.0) -> dict[tuple[str, str], dict]:
    deadline = time.monotonic() + timeout
    seen: dict[tuple[str, str], dict] = {}
    while time.monotonic() < deadline:
        for item in await asyncio.to_thread(site.readings):
            seen[(item["sensor"], item["metric"])] = item
        if want <= set(seen):
            return seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"missing in the cloud: {sorted(want - set(seen))}\n" + site.gateway.tail())


async def test_chips_a_serial_node_and_a_gps_reach_the_cloud(site: Site, tmp_path: Path) -> None:
    by_id = tmp_path / "serial-by-id"
    by_id.mkdir()
    node_link, gps_link = by_id / "usb-Roost_node-7-if00", by_id / "usb-u-blox_GNSS-if00"
    here = Position(48.1173, 11.5167, 545.4)
    node = NodeEmulator("node-7", interval_s=1, seed=7, outputs=2)
    async with (
        PtyLink(node, link=node_link),
        PtyLink(LiveReceiver(here, interval_s=0.5), link=gps_link),
    ):
        site.write_gateway_config(_wired_config(node_link, gps_link))
        site.start_cloud()
        await site.start_gateway()
        seen = await _wait_for(
            site,
            {
                ("i2c-1-0x76", "temperature"),
                ("i2c-1-0x76", "pressure"),
                ("i2c-1-0x76", "humidity"),
                ("spi0.0-ch0", "voltage"),
                ("spi0.0-ch1", "voltage"),
                ("gps", "latitude"),
                ("gps", "longitude"),
                ("gps", "altitude"),
            },
        )
        node_metrics = {m for s, m in seen if s == "node-7"}
        for _ in range(60):
            if node_metrics:
                break
            await asyncio.sleep(0.5)
            node_metrics = {m for item in site.readings(sensor="node-7") for m in [item["metric"]]}
        # An operator switches the node's output 1 on from the cloud, and asks where the gateway is.
        token = _operator_token(site)
        status, done = await _command(
            site, token, "actuate", {"sensor": "node-7", "action": "on", "args": {"output": 1}}
        )
        assert (status, done["status"]) == (200, "ok"), done
        assert node.output_values == {1: 1}
        # The heartbeat carries the machine's figures, each adapter's state and the GPS location.
        for _ in range(40):
            (gw,) = site.api("/api/v1/gateways")["items"]
            health = gw.get("health") or {}
            if health.get("location"):
                break
            await asyncio.sleep(0.25)
        assert {"chips", "serial"} <= set(health["adapters"]), health.get("adapters")
        assert health["adapters"]["chips"]["devices"]["i2c-1-0x76"]["available"] is True
        assert health["system"]["disk_free_mb"] > 0 and health["system"]["process_rss_mb"] > 0
        assert health["location"]["lat"] == pytest.approx(here.lat, abs=1e-5)
        assert health["versions"]["roost"]
        status, state = await _command(site, token, "report-state", {})
        assert status == 200 and state["result"]["location"]["source"] == "gps"
        assert state["result"]["location"]["lat"] == pytest.approx(here.lat, abs=1e-5)
    assert node_metrics, "the serial node's readings did not reach the cloud:\n" + site.gateway.tail()
    assert seen[("i2c-1-0x76", "temperature")]["unit"] == "Cel"
    assert 10 < seen[("i2c-1-0x76", "temperature")]["value"] < 35
    assert seen[("spi0.0-ch0", "voltage")]["unit"] == "V"
    assert seen[("gps", "latitude")]["value"] == pytest.approx(here.lat, abs=1e-5)
    assert seen[("gps", "longitude")]["value"] == pytest.approx(here.lon, abs=1e-5)
    assert seen[("gps", "altitude")]["value"] == pytest.approx(here.alt_m, abs=0.05)
    assert all(item["gateway"] == site.gateway_id for item in seen.values())
