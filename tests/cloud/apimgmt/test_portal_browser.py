"""The developer portal in a real browser (Debian's Chromium driven by Playwright) on a phone-sized screen:
sign in by keyboard through the sign-in form, register an application, see its secret once, and check that
nothing is loaded from outside the cloud, no script error happens and no page scrolls sideways.
Screenshots go to tests/artifacts/apimgmt/ (git-ignored with tests/artifacts)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from cloud.identity import admin
from cloud.server import CloudServer
from tests.browser import chromium, needs_chromium
from tests.cloud.identity.conftest import OPERATOR_PASSWORD

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts" / "apimgmt"

pytestmark = needs_chromium


async def _no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 1, f"{page.url} scrolls sideways by {width} px on a phone"


@pytest.mark.timeout(120)
async def test_sign_in_and_register_by_keyboard_on_a_phone(cloud: CloudServer) -> None:
    from playwright.async_api import expect

    assert cloud.identity is not None
    admin.ensure_operator(cloud.identity.db, "acme", "dana", lambda: OPERATOR_PASSWORD, role="operator")
    base = cloud.info.base_url.rstrip("/")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    problems: list[str] = []
    outside: list[str] = []
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = await context.new_page()
        failed: list[tuple[int, str]] = []
        page.on("response", lambda r: failed.append((r.status, r.url.removeprefix(base))) if r.status >= 400 else None)
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)

        await page.goto(base + "/developers")
        assert page.url == base + "/developers/signin"
        await page.keyboard.press("Tab")  # the first stop is the skip link
        assert await page.evaluate("document.activeElement.textContent") == "Skip to the content"
        await page.get_by_label("Tenant").fill("acme")
        await page.get_by_label("Username").fill("dana")
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_label("Password").press("Enter")
        status = page.locator("#signin-status")
        await expect(status).to_contain_text("wrong tenant, username or password")
        await page.get_by_label("Password").fill(OPERATOR_PASSWORD)
        async with page.expect_navigation():
            await page.get_by_label("Password").press("Enter")
        assert page.url == base + "/developers"
        assert await page.locator("h1").inner_text() == "Welcome, dana"
        await _no_sideways_scroll(page)
        await page.screenshot(path=ARTIFACTS / "1-overview.png", full_page=True)

        nav = page.get_by_role("navigation", name="Portal")
        await nav.get_by_role("link", name="My applications").focus()
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await page.get_by_label("Name").fill("Greenhouse dashboard")
        await page.get_by_label("gateways:read", exact=False).check()
        await page.get_by_label("Plan", exact=True).select_option("standard")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Register").press("Enter")
        secret = page.locator("code.secret-value")
        assert len(await secret.inner_text()) >= 40
        await _no_sideways_scroll(page)
        await page.screenshot(path=ARTIFACTS / "2-registered.png", full_page=True)

        await page.goto(base + "/developers/applications")
        assert await page.locator("code.secret-value").count() == 0  # shown once
        await page.get_by_role("link", name="Usage").click()
        assert (await page.locator("h1").inner_text()).startswith("Usage of Greenhouse dashboard")
        await _no_sideways_scroll(page)
        await page.goto(base + "/developers/reference")
        await page.get_by_role("link", name="applications", exact=True).first.click()
        await page.screenshot(path=ARTIFACTS / "3-reference.png")
    assert outside == [], outside
    assert problems == [], problems
    assert failed == [(401, "/auth/signin")], failed  # only the wrong password
