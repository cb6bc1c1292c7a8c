"""The local page in a real browser: Debian's Chromium driven by Playwright, against a real ``roost gateway run``
process whose BLE adapter replays an encrypted BTHome sensor. Sign in with the PIN, find the sensor among the
nearby devices, add it with its bind key, and watch its readings arrive on the live page; then the same on a
phone-sized screen. Screenshots go to tests/artifacts/localpage/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, needs_chromium
from tests.localpage import rig

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "localpage"

pytestmark = needs_chromium


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``roost gateway run`` in its own process: the page's port and the state folder."""
    port = rig.free_port()
    cfg = rig.write_config(tmp_path, port)
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost.cli", "gateway", "run", "--config", str(cfg)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield port, tmp_path / "state"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        print(f"gateway log: {tmp_path / 'gateway.log'}")


async def _sign_in(page: Any, base: str) -> None:
    await page.goto(base + "/")
    assert page.url.endswith("/signin")
    await page.get_by_label("Setup PIN").fill(rig.PIN)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
    assert page.url == base + "/", await page.locator("main").inner_text()
    assert await page.locator("h1").inner_text() == "Status"


async def test_pair_an_encrypted_sensor_in_chromium_and_see_it_live(gateway_process: tuple[int, Path]) -> None:
    port, _state = gateway_process
    await rig.wait_listening(port, timeout=30)
    base = f"https://127.0.0.1:{port}"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"screenshots: {ARTIFACTS}")
    problems: list[str] = []
    async with chromium() as browser:
        context = await browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)

        await _sign_in(page, base)
        await page.screenshot(path=ARTIFACTS / "1-status.png", full_page=True)

        device = page.locator(f'li.device[data-mac="{rig.MAC}"]')
        for _ in range(60):  # the sensor advertises every 0.5 s; bounded reloads until it is heard
            await page.goto(base + "/pairing")
            if await device.count():
                break
            await asyncio.sleep(0.5)
        assert await device.count() == 1, "the encrypted sensor is not in the nearby list"
        assert "encrypted: needs its bind key" in await device.inner_text()
        await page.screenshot(path=ARTIFACTS / "2-pairing-nearby.png", full_page=True)
        # The list as drawn before the plain sensor was heard: the page then says a device was heard since.
        plain = re.compile(rf'<li class="device" data-mac="{rig.PLAIN_MAC}">.*?</li>', re.S)

        async def drawn_earlier(route: Any) -> None:
            response = await route.fetch()
            await route.fulfill(response=response, body=plain.sub("", await response.text()))

        await page.route(base + "/pairing", drawn_earlier)
        await page.goto(base + "/pairing")
        assert await page.locator(f'li.device[data-mac="{rig.PLAIN_MAC}"]').count() == 0
        note = page.locator("#nearby-new")
        await note.wait_for(state="visible", timeout=10_000)
        assert await note.inner_text() == "1 more device heard: reload the list"
        await page.unroute(base + "/pairing")
        await page.get_by_role("link", name="reload the list").click()
        await device.wait_for()
        assert await page.locator(f'li.device[data-mac="{rig.PLAIN_MAC}"]').count() == 1
        assert await note.is_hidden()
        await device.get_by_label("Bind key").fill(rig.ble_rig.KEY.hex())
        await device.get_by_label("Name").fill("Porch sensor")
        await device.get_by_label("Where it is").fill("Front door")
        await device.get_by_role("button", name=f"Add {rig.MAC}").click()
        flash = page.locator("p.flash")
        await flash.wait_for()
        assert (await flash.inner_text()).startswith(f"{rig.MAC} added with its bind key")
        await page.screenshot(path=ARTIFACTS / "3-pairing-added.png", full_page=True)

        await page.goto(base + "/live")
        await page.wait_for_selector('#live-state[data-state="open"]', timeout=10_000)
        value = page.locator(f'tr[data-key="{rig.MAC}|temperature"] td.value')
        await value.wait_for(timeout=15_000)
        first = await page.locator(f'tr[data-key="{rig.MAC}|temperature"] td.ts').inner_text()
        # Without reloading, a later advertisement updates the row through the event stream.
        await page.wait_for_function(
            "([sel, before]) => { const c = document.querySelector(sel); return c && c.textContent !== before; }",
            arg=[f'tr[data-key="{rig.MAC}|temperature"] td.ts', first],
            timeout=15_000,
        )
        assert (await value.inner_text()).endswith(" Cel")
        humidity = page.locator(f'tr[data-key="{rig.MAC}|humidity"] td.value')
        await humidity.wait_for(timeout=10_000)
        assert await humidity.inner_text() == "40 %RH"
        await page.screenshot(path=ARTIFACTS / "4-live.png", full_page=True)
        await context.close()

        # A phone: the same pages fit its width, and every control is big enough to tap.
        phone = await browser.new_context(
            ignore_https_errors=True, viewport={"width": 390, "height": 844}, device_scale_factor=2,
            is_mobile=True, has_touch=True,
        )  # fmt: skip
        page = await phone.new_page()
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        await _sign_in(page, base)
        for path, shot in (("/", "5-phone-status.png"), ("/pairing", "6-phone-pairing.png"),
                           ("/live", "7-phone-live.png"), ("/sensors", "8-phone-sensors.png")):  # fmt: skip
            await page.goto(base + path)
            if path == "/live":
                await page.locator(f'tr[data-key="{rig.MAC}|temperature"] td.value').wait_for(timeout=15_000)
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow} px wider than the phone"
            small = await page.evaluate(
                """() => [...document.querySelectorAll('button, input:not([type=hidden]), nav a')]
                    .filter(e => e.offsetParent !== null)
                    .map(e => e.type === 'checkbox' ? e.closest('label') : e)  // its label is what one taps
                    .map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect().height])
                    .filter(([, h]) => h < 40)"""
            )
            assert not small, f"{path}: controls too small to tap: {small}"
            await page.screenshot(path=ARTIFACTS / shot, full_page=True)
        assert "Porch sensor" in await page.content()
        await phone.close()
    assert not problems, f"errors in the browser console: {problems}"
    assert not outside, f"the page loaded something from outside the gateway: {outside}"
