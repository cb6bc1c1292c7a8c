"""The console in a real browser against a real cloud and gateway: sign in, watch the gateway go online,
watch a live value change after a CoAP post, send a command and read its result and the gateway's logs, the
sensor chart, on a desktop and on a phone, with axe-core on each page.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.request
from pathlib import Path

from cloud.console import DIST
from tests.console import rig
from tests.e2e.harness import Sensor
from wire.reading import Reading

pytestmark = rig.needs_browser


def _gzipped(url: str) -> int:
    """The bytes the server sends for ``url`` to a browser that accepts gzip (checked to be gzip)."""
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Encoding"] == "gzip" and "immutable" in r.headers["Cache-Control"]
        body: bytes = r.read()
    gzip.decompress(body)
    return len(body)


async def test_sign_in_see_the_gateway_come_online_and_its_value_change_live(tmp_path: Path) -> None:
    site = rig.console_site(tmp_path, located=True)
    try:
        site.start_cloud()
        user = rig.operator(site)
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            # The first load: the scripts the page fetched, under 300 KB compressed.
            manifest = json.loads((DIST / "manifest.json").read_text())
            assert manifest["first_load_gzip_bytes"] < 300_000
            loaded = [u.rsplit("/", 1)[1] for u in con.requests if re.search(r"/console/assets/[^/]+\.js$", u)]
            assert set(manifest["first_load"]) <= set(loaded)
            sent = [_gzipped(site.base + "/console/assets/" + f) for f in manifest["first_load"]]
            assert sum(sent) < 300_000, f"the first load sends {sum(sent)} bytes of compressed script"
            assert await page.locator("[data-count=online]").inner_text() == "0"
            await con.axe("sign-in and empty fleet")

            await site.start_gateway()
            row = page.locator(f"tr[data-gateway='{site.gateway_id}'] td[data-status]")
            await row.and_(page.locator("[data-status=online]")).wait_for(timeout=30_000)
            assert await page.locator("[data-count=online]").inner_text() == "1"
            pin = page.get_by_role("link", name=f"{site.gateway_id} (online)")
            await pin.wait_for(timeout=15_000)  # on the map, where its configured latitude and longitude are
            assert await page.locator(".map svg").get_attribute("data-pins") == "1"
            await con.shot("fleet-desktop")
            await con.axe("fleet")

            await page.get_by_role("link", name=site.gateway_id, exact=True).click()
            await page.get_by_role("heading", level=1, name=f"Gateway {site.gateway_id}").wait_for()
            async with Sensor(site.coap_port, "probe-1") as sensor:
                for value in (21.5, 22.75):
                    now = round(time.time(), 3)
                    resp = await sensor.post([Reading("probe-1", "temperature", value, now, "Cel")])
                    assert resp.code.is_successful()
                    cell = page.locator("[data-live-key='probe-1:temperature']")
                    await page.locator(f"[data-live-key='probe-1:temperature'][data-value='{value}']").wait_for(
                        timeout=15_000
                    )
                    assert await cell.inner_text() == str(value)
            await con.axe("gateway")

            # A command and its result; the gateway's recent logs.
            await page.get_by_label("Command", exact=True).select_option("ping")
            await page.get_by_role("button", name="Send").click()
            result = page.locator("[data-command-result]")
            await result.wait_for(timeout=20_000)
            assert await result.get_attribute("data-command-result") == "ok", await result.inner_text()
            assert "uptime_s" in await result.inner_text()
            await page.get_by_role("button", name="Fetch recent logs").click()
            logs = page.locator("pre[data-log-lines]")
            await logs.wait_for(timeout=25_000)
            assert int(await logs.get_attribute("data-log-lines") or 0) > 0
            assert "uplink" in await logs.inner_text()
            await con.shot("gateway-desktop")

            # The sensor's chart, from the readings API, and its live value joining it.
            await page.get_by_role("link", name="Chart of probe-1 temperature").click()
            chart = page.locator(".chart[data-points]")
            await chart.wait_for(timeout=15_000)
            assert int(await chart.get_attribute("data-points") or 0) >= 2
            assert await page.locator("canvas").count() >= 1
            await page.get_by_role("button", name="Zoom in").click()
            await page.get_by_role("button", name="7 days").click()  # over a day: from the cloud's rollups
            await page.locator(".chart[data-resolution='1m']").wait_for(timeout=15_000)
            assert int(await chart.get_attribute("data-points") or 0) >= 2
            await page.get_by_text("from the cloud's rollups").wait_for(timeout=15_000)
            await con.axe("sensor")
            await con.shot("sensor-desktop")

        # The same on a phone.
        async with rig.chromium() as browser, rig.signed_in(browser, site, user, rig.PHONE) as con:
            page = con.page
            await page.locator("[data-status=online]").first.wait_for(timeout=15_000)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= rig.PHONE["width"], f"the fleet page is {width} px wide on a {rig.PHONE['width']} px phone"
            await con.axe("fleet on a phone")
            await con.shot("fleet-phone")
            await con.go(f"#/gateways/{site.gateway_id}", f"Gateway {site.gateway_id}")
            await page.locator("[data-live-key='probe-1:temperature']").wait_for(timeout=15_000)
            await con.axe("gateway on a phone")
            await con.shot("gateway-phone")

        # With the console's Content-Security-Policy in force: it loads, signs in and goes live, and nothing is blocked.
        async with rig.chromium() as browser, rig.signed_in(browser, site, user, enforce_csp=True) as con:
            await con.go(f"#/gateways/{site.gateway_id}", f"Gateway {site.gateway_id}")
            await con.page.locator("[data-live-key='probe-1:temperature']").wait_for(timeout=15_000)
            await con.go("#/gateways/gw-e2e/sensors/probe-1/temperature", "probe-1 · temperature")
            await con.page.locator(".chart[data-points]").wait_for(timeout=15_000)
            await con.go("#/", "Fleet")
            await con.page.locator(".map svg[data-pins]").wait_for(timeout=15_000)
    finally:
        site.stop_all()


async def test_live_data_goes_on_across_token_renewals(tmp_path: Path) -> None:
    """Access tokens of 12 s: the page opens a new connection with a fresh token before each expires."""
    site = rig.console_site(tmp_path, token_ttl_s=12)
    try:
        site.start_cloud()
        user = rig.operator(site, "vera", "viewer")
        await site.start_gateway()
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            await con.go(f"#/gateways/{site.gateway_id}", f"Gateway {site.gateway_id}")
            badge = page.locator("[data-live]")

            async def renewed() -> bool:
                return int(await badge.get_attribute("data-renewals") or 0) >= 2

            await rig.until(renewed, 40, "two renewals of the live connection")
            assert await badge.get_attribute("data-live") == "on"
            async with Sensor(site.coap_port, "probe-2") as sensor:
                await sensor.post([Reading("probe-2", "humidity", 55.5, round(time.time(), 3), "%RH")])
                await page.locator("[data-live-key='probe-2:humidity'][data-value='55.5']").wait_for(timeout=15_000)
            # A viewer may look but not command: the cloud's refusal is shown.
            await page.get_by_label("Command", exact=True).select_option("ping")
            await page.get_by_role("button", name="Send").click()
            refusal = page.locator("#main p.error[role=alert]")
            await refusal.wait_for(timeout=15_000)
            assert "may not" in await refusal.inner_text()
    finally:
        site.stop_all()
