"""The console's other pages in a real browser: approving a gateway's enrollment (device flow), starting
and halting an update campaign, acknowledging an alert, and editing the policies (a validation error shown,
the diff, a new version in the history), registering an API client and seeing its usage; axe-core on each
page.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cloud.store import EventWrite, Store
from tests.console import rig
from tests.e2e.harness import Site
from tests.gateway.ota_rig import Keys, make_bundle
from wire.events import Event

pytestmark = rig.needs_browser


def _gateway_log(site: Site) -> str:
    try:
        text: str = site.gateway.log.read_text(errors="replace")
    except OSError:
        return ""
    return text


async def test_approve_a_gateway_in_the_device_flow_from_its_code(tmp_path: Path) -> None:
    site = rig.console_site(tmp_path, gateway_password=False)
    try:
        site.start_cloud()
        user = rig.operator(site, "adam", "admin")
        await site.start_gateway()

        async def code() -> str | None:
            m = re.search(r"Enroll this gateway: open (\S+) and enter ([A-Z0-9-]+)", _gateway_log(site))
            return f"{m.group(1)}?user_code={m.group(2)}" if m else None

        link = await rig.until(code, 30, "the gateway showing its enrollment code")
        user_code = link.rsplit("=", 1)[1]
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            await page.goto(link)  # the device flow's verification_uri_complete
            await page.get_by_role("heading", level=1, name="Enrollment").wait_for(timeout=15_000)
            assert await page.get_by_label("Code shown by the gateway").input_value() == user_code
            await page.get_by_label("Gateway id (optional: the gateway's own by default)").fill(site.gateway_id)
            await con.axe("enrollment")
            await page.get_by_role("button", name="Approve").click()
            done = page.locator(f"li[data-code='{user_code}']")
            await done.wait_for(timeout=15_000)
            assert f"gateway {site.gateway_id} joins tenant default" in await done.inner_text()
            await con.shot("enrollment")
            # A code that does not exist: the cloud's answer is shown.
            await page.get_by_label("Code shown by the gateway").fill("ZZZZ-ZZZZ")
            await page.get_by_role("button", name="Approve").click()
            await page.locator("p.error[role=alert]").wait_for(timeout=15_000)
            # The enrolled gateway comes online on the fleet page.
            await con.go("#/", "Fleet")
            row = page.locator(f"tr[data-gateway='{site.gateway_id}'] td[data-status=online]")
            await row.wait_for(timeout=40_000)
    finally:
        site.stop_all()


async def test_upload_a_bundle_start_a_campaign_halt_and_resume_it(tmp_path: Path) -> None:
    site = rig.console_site(tmp_path, updates=True)
    bundle = make_bundle(tmp_path / "built", Keys(tmp_path), "2.0", platform="linux_x86_64")
    try:
        site.start_cloud()
        user = rig.operator(site, "olga", "owner")
        await site.start_gateway()
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            await page.locator(f"tr[data-gateway='{site.gateway_id}'] td[data-status=online]").wait_for(timeout=30_000)
            # Offline from here on: its update waits, so the campaign stays running until halted.
            site.gateway.stop()
            await page.locator(f"tr[data-gateway='{site.gateway_id}'] td[data-status=offline]").wait_for(timeout=30_000)
            await con.go("#/campaigns", "Update campaigns")
            await page.get_by_label("Bundle file").set_input_files(str(bundle))
            await page.get_by_role("button", name="Upload").click()
            await page.get_by_text("Uploaded ").wait_for(timeout=15_000)
            await page.get_by_label("Bundle", exact=True).wait_for(timeout=15_000)
            await page.get_by_label("Stages (percent of the gateways)").fill("50, 100")
            await con.axe("campaigns")
            await page.get_by_label("Stages (percent of the gateways)").fill("50, 100, 90")
            await page.get_by_role("button", name="Start the campaign").click()
            await page.locator("p.error[role=alert]").wait_for(timeout=15_000)
            assert "stages" in (await page.locator("p.error[role=alert]").inner_text()).lower()
            await page.get_by_label("Stages (percent of the gateways)").fill("100")
            await page.get_by_role("button", name="Start the campaign").click()
            await page.get_by_role("heading", level=1, name=re.compile("^Campaign ")).wait_for(timeout=15_000)
            await page.locator("[data-campaign-state=running]").wait_for(timeout=15_000)
            await page.locator(f"tr[data-target='{site.gateway_id}']").wait_for(timeout=15_000)
            await con.axe("campaign")
            await page.get_by_role("button", name="Halt").click()
            await page.locator("[data-campaign-state=halted]").wait_for(timeout=15_000)
            assert "halted from the console" in await page.locator("dl.facts").inner_text()
            await con.shot("campaign-halted")
            await page.get_by_role("button", name="Resume", exact=True).click()
            await page.locator("[data-campaign-state=running]").wait_for(timeout=15_000)
            await con.go("#/campaigns", "Update campaigns")
            await page.locator("tr[data-campaign][data-state=running]").wait_for(timeout=15_000)
    finally:
        site.stop_all()


async def _raise_alert(db: Path, gateway: str) -> None:
    store = Store(db)
    await store.open()
    try:
        now = time.time()
        events = [
            Event(id="a1", kind="alert", ts=now - 60, key="freezer-warm/freezer-1", rule="freezer-warm", state="raised",
                  severity="critical", message="freezer warm", sensor="freezer-1", metric="temperature", value=-8.5),
            Event(id="a2", kind="alert", ts=now - 50, key="door-open/door-2", rule="door-open", state="raised",
                  severity="warning", message="door-2 open", sensor="door-2", metric="open", value=1),
            Event(id="a3", kind="alert", ts=now - 40, key="door-open/door-2", rule="door-open", state="cleared",
                  severity="warning", message="door-2 closed", sensor="door-2", metric="open", value=0),
        ]  # fmt: skip
        await store.commit_all([], [EventWrite(rig.TENANT, gateway, events)], now=now)
    finally:
        await store.close()


async def test_acknowledge_an_alert_and_edit_the_policies(tmp_path: Path) -> None:
    site = rig.console_site(tmp_path)
    await _raise_alert(tmp_path / "cloud.sqlite", site.gateway_id)
    try:
        site.start_cloud()
        user = rig.operator(site, "olga", "owner")
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            assert await page.locator("[data-count=alerts]").inner_text() == "1"
            # With the keyboard alone: the skip link first, then the pages' links, then the alert's button.
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
            await con.tab_to("Alerts")
            await page.keyboard.press("Enter")
            await page.get_by_role("heading", level=1, name="Alerts").wait_for(timeout=15_000)
            row = page.locator("tr[data-alert='freezer-warm/freezer-1']")
            await row.wait_for(timeout=15_000)
            assert await row.get_attribute("data-state") == "open"
            await con.axe("alerts")
            await con.tab_to(f"Acknowledge freezer-warm/freezer-1 on {site.gateway_id}")
            await page.keyboard.press("Enter")
            await page.get_by_role("button", name="Acknowledged").click()
            acked = page.locator("tr[data-alert='freezer-warm/freezer-1'][data-state=acknowledged]")
            await acked.wait_for(timeout=15_000)
            assert "operator:default/olga" in await acked.inner_text()
            await page.get_by_role("button", name="Cleared").click()
            await page.locator("tr[data-alert='door-open/door-2'][data-state=cleared]").wait_for(timeout=15_000)
            await con.shot("alerts")

            await con.go("#/policies", "Policies")
            editor = page.get_by_label("Policy set (Cedar)")
            await editor.wait_for(timeout=15_000)
            active = await editor.input_value()
            assert "permit" in active
            await con.axe("policies")
            await editor.fill(active + '\n@id("broken")\npermit (principal, action, resource) when { nonsense };\n')
            await page.get_by_label("Why (kept in the history)").fill("try a broken one")
            assert await page.locator("pre.diff ins").count() >= 1
            await page.get_by_role("button", name="Replace the policy set").click()
            problems = page.locator("#policy-problems [role=alert]")
            await problems.wait_for(timeout=15_000)
            assert "broken" in await problems.inner_text()
            await con.shot("policies-invalid")
            await editor.fill(active + '\n@id("console-test")\nforbid (principal, action, resource) when { false };\n')
            await page.get_by_label("Why (kept in the history)").fill("a harmless forbid")
            await page.get_by_role("button", name="Replace the policy set").click()
            await page.get_by_text(re.compile(r"Saved as version \d+")).wait_for(timeout=15_000)
            await page.locator("tr[data-version]").nth(1).wait_for(timeout=15_000)
            assert "a harmless forbid" in await page.get_by_role("table", name="Policy history").inner_text()
            await con.axe("policies after a change")

        # Every page on a phone: readable without sideways scrolling of the page, and axe finds nothing serious.
        pages = {
            "#/alerts": "Alerts",
            "#/enroll": "Enrollment",
            "#/campaigns": "Update campaigns",
            "#/policies": "Policies",
            "#/apps": "API clients",
            f"#/gateways/{site.gateway_id}": f"Gateway {site.gateway_id}",
        }
        async with rig.chromium() as browser, rig.signed_in(browser, site, user, rig.PHONE) as con:
            for route, heading in pages.items():
                await con.go(route, heading)
                await con.page.wait_for_load_state("networkidle")
                width = await con.page.evaluate("document.documentElement.scrollWidth")
                assert width <= rig.PHONE["width"], f"{route} is {width} px wide on a {rig.PHONE['width']} px phone"
                await con.axe(f"{route} on a phone")
                await con.shot(f"phone-{route.strip('#/').replace('/', '-')}")
    finally:
        site.stop_all()


def _client_call(site: Site, client_id: str, secret: str, times: int = 1) -> int:
    """Exchange an application's credentials for a token and read the readings with it ``times`` times in a row:
    the HTTP status of the last call (a 429 stops the run and is returned with its Retry-After checked)."""
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    ).encode()
    with urllib.request.urlopen(urllib.request.Request(site.base + "/oauth/token", data=form), timeout=10) as r:
        token = json.loads(r.read())["access_token"]
    req = urllib.request.Request(site.base + "/api/v1/readings?limit=5", headers={"Authorization": f"Bearer {token}"})
    status = 0
    for _ in range(times):
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = int(r.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            if status == 429:
                assert int(exc.headers["Retry-After"]) >= 1 and "RateLimit" in exc.headers, dict(exc.headers)
                return status
    return status


async def test_register_an_api_client_see_its_usage_rotate_and_delete_it(tmp_path: Path) -> None:
    site = rig.console_site(tmp_path)
    try:
        site.start_cloud()
        user = rig.operator(site, "olga", "owner")
        async with rig.chromium() as browser, rig.signed_in(browser, site, user) as con:
            page = con.page
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
            await con.go("#/apps", "API clients")
            await page.get_by_label("Name").fill("weather-feed")
            await page.get_by_label("Read readings (readings:read)").check()
            await con.axe("API clients")
            await page.get_by_role("button", name="Register the application").click()
            shown = page.locator("[data-secret-for]")
            await shown.wait_for(timeout=15_000)
            client_id = await shown.get_attribute("data-secret-for") or ""
            secret = await page.locator("code[data-secret]").inner_text()
            assert await asyncio.to_thread(_client_call, site, client_id, secret) == 200
            # Its plan is free (5 requests a second, 10 at once): a burst of 40 is throttled.
            assert await asyncio.to_thread(_client_call, site, client_id, secret, 40) == 429
            await page.get_by_role("button", name="I have copied it").click()
            row = page.locator("tr[data-app='weather-feed']")
            await row.wait_for(timeout=15_000)
            # Its calls show in the usage (per client and endpoint).
            await page.get_by_role("button", name="Last hour").click()

            async def counted() -> bool:
                await page.get_by_role("button", name="Last day").click()
                await page.get_by_role("button", name="Last hour").click()
                rows: int = await page.locator(f"tr[data-usage='GET /api/v1/readings']:has-text('{client_id}')").count()
                return rows > 0

            await rig.until(counted, 30, "the application's call in the usage table")

            async def throttled_shown() -> bool:
                await page.get_by_role("button", name="Last day").click()
                await page.get_by_role("button", name="Last hour").click()
                cells = page.locator(f"tr[data-usage='GET /api/v1/readings']:has-text('{client_id}') td")
                return await cells.count() >= 4 and int(await cells.nth(4).inner_text()) >= 1

            await rig.until(throttled_shown, 30, "the throttled calls in the usage table")
            await con.shot("apps")
            # A new secret: the old one stops working.
            await page.get_by_role("button", name="Rotate the secret of weather-feed").click()
            await page.locator(f"[data-secret-for='{client_id}']").wait_for(timeout=15_000)
            fresh = await page.locator("code[data-secret]").inner_text()
            assert fresh != secret
            assert await asyncio.to_thread(_client_call, site, client_id, fresh) == 200
            await page.get_by_role("button", name="I have copied it").click()
            await page.get_by_label("Plan of weather-feed").select_option("standard")
            await page.get_by_role("button", name="Delete weather-feed").click()
            await row.wait_for(state="detached", timeout=15_000)
            await con.axe("API clients after a delete")
    finally:
        site.stop_all()


async def test_sign_in_with_single_sign_on_through_the_clouds_openid_provider(tmp_path: Path) -> None:
    """The console as the OpenID Connect public client: code flow with PKCE, back to the page asked for."""
    site = rig.console_site(tmp_path)
    try:
        site.start_cloud()
        user = rig.operator(site, "olga", "operator")
        async with rig.chromium() as browser:
            context = await browser.new_context(viewport=rig.DESKTOP)
            page = await context.new_page()
            try:
                await page.goto(site.base + "/console/#/alerts")
                await page.get_by_role("button", name="Sign in with single sign-on").click()
                await page.get_by_role("heading", name="Sign in to Roost").wait_for(timeout=15_000)
                assert "/oauth/authorize?" in page.url and "code_challenge_method=S256" in page.url
                await page.get_by_label("Tenant").fill(rig.TENANT)
                await page.get_by_label("Username").fill(user)
                await page.get_by_label("Password").fill(rig.PASSWORD)
                await page.get_by_role("button", name="Sign in", exact=True).click()
                await page.wait_for_load_state()
                await page.get_by_role("heading", level=1, name="Alerts").wait_for(timeout=15_000)
                await page.wait_for_url(re.compile(r"/console/"), timeout=15_000)
                assert page.url == site.base + "/console/#/alerts"
                assert "olga" in await page.locator("header .who").inner_text()
                await page.locator("[data-live=on]").wait_for(timeout=15_000)
                # A way back that this page did not start is refused, and says so.
                await page.get_by_role("button", name="Sign out").click()
                await page.goto(site.base + "/console/callback?code=forged&state=forged")
                await page.get_by_text("this sign-in was not started here").wait_for(timeout=15_000)
            finally:
                await context.close()
    finally:
        site.stop_all()
