"""Zigbee pairing through the page: a real zigpy ControllerApplication on the in-memory radio with emulated
devices. Permit-join opens the network, and devices that join show on the pairing page and in its live stream.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path

from tests.localpage import rig


async def test_permit_join_and_joining_devices_appear(tmp_path: Path) -> None:
    port = rig.free_port()
    cfg = rig.write_config(tmp_path, port, ble=False)
    zigbee = '[adapters.zigbee]\nenabled = true\nradio = "memory"\n'
    cfg.write_text(cfg.read_text().replace("[local]", zigbee + "[local]"))
    async with rig.gateway(cfg, port) as daemon:
        browser = rig.Browser(port, tmp_path / "state")
        try:
            await browser.sign_in()
            zb = next(a for a in daemon.adapters if a.name == "zigbee")
            await rig.until(lambda: zb.stats()["state"] == "running", timeout=30, what="the Zigbee network")
            stream = await browser.session.get(f"{browser.base}/api/live", ssl=browser.tls, server_hostname=rig.HOST)
            try:
                page = (await browser.get("/pairing"))[1]
                assert "Allow joining for (seconds, 1-254)" in page
                _status, page = await browser.post("/pairing/zigbee", {"seconds": "60", "name": "Hall"},
                                                  csrf=rig.csrf_of(page))  # fmt: skip
                m = re.search(r'<p class="flash ok" role="status">(.*?)</p>', page)
                assert m is not None, page[:600]
                assert html.unescape(m.group(1)).startswith("Zigbee: joining allowed for 60 s (until ")
                assert zb.pairing_open()
                # An emulated device asks to join now: the open window lets it in.
                from gateway.adapters.zigbee.emulated import demo_devices

                newcomer = demo_devices()[0]
                events: list[dict[str, object]] = []
                assert zb.app.join(newcomer)  # type: ignore[union-attr]
                async with asyncio.timeout(20):
                    async for line in stream.content:
                        if line.startswith(b"data: ["):
                            events += [m for m in json.loads(line[6:]) if m.get("type") == "event"]
                        if any(e["sensor"] == str(newcomer.ieee) for e in events):
                            break
                joined = next(e for e in events if e["sensor"] == str(newcomer.ieee))
                assert joined["kind"] == "device" and "Zigbee device" in str(joined["message"])
                page = (await browser.get("/pairing"))[1]
                listed = page.split('id="joining"')[1].split("</ul>")[0]
                assert f"Zigbee device {newcomer.ieee}" in listed
            finally:
                stream.close()
        finally:
            await browser.close()
