"""What the console's browser tests share: a cloud with the console, an operator, Chromium, axe-core.

The cloud and gateway are real processes (tests/e2e/harness.py ``Site``); the browser is Debian's Chromium
driven by Playwright. Every request the page makes is recorded, so a test can show it loads nothing from
outside the server. Screenshots go to tests/artifacts/console/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from cloud.console import DIST
from cloud.identity import admin
from tests.browser import chromium, needs_chromium  # noqa: F401
from tests.e2e.harness import Site

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
TENANT = "default"
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""

needs_browser = [
    *needs_chromium,
    pytest.mark.skipif(not (DIST / "index.html").is_file(), reason="the console is not built (make console)"),
    pytest.mark.skipif(not AXE.is_file(), reason="console/node_modules has no axe-core (make console runs npm ci)"),
]


def console_site(
    tmp: Path, *, updates: bool = False, gateway_password: bool = True, token_ttl_s: int = 600, located: bool = False
) -> Site:
    """A Site whose cloud has identity (sessions; access tokens for ``token_ttl_s``) and, with ``updates``, a
    bundle signing key; with ``located``, the gateway has a configured latitude and longitude (Berlin)."""
    extra = f"[identity]\naccess_token_ttl_s = {token_ttl_s}\ndevice_poll_interval_s = 1\n"
    if updates:
        key = Ed25519PrivateKey.generate()
        (tmp / "update.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        (tmp / "update.pub").write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
        extra += '[updates]\nkey_file = "update.key"\nfolder = "bundles"\n'
    site = Site(tmp, cloud_extra=extra, gateway_password=gateway_password)
    if located:
        config = tmp / "gateway.toml"
        config.write_text(
            config.read_text().replace("[gateway]\n", "[gateway]\nlatitude = 52.52\nlongitude = 13.40\n", 1)
        )
    return site


def operator(site: Site, name: str = "olga", role: str = "owner") -> str:
    """An operator of the tenant (created in the cloud's identity database); their username."""
    admin.ensure_tenant(site.identity_db, TENANT)
    admin.ensure_operator(site.identity_db, TENANT, name, lambda: PASSWORD, role=role)
    return name


@dataclass
class Console:
    """A page of the console in its own browser context, and every URL it asked for."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        """Requests to anywhere but the server (http(s) and ws(s) of the same host and port)."""
        host = self.base.split("://", 1)[1]
        return [
            u for u in self.requests if u.split("://", 1)[-1].split("/", 1)[0] != host and not u.startswith("data:")
        ]

    async def go(self, route: str, heading: str) -> None:
        """Open a route (``#/alerts``) and wait for its heading."""
        await self.page.goto(f"{self.base}/console/{route}")
        await self.page.get_by_role("heading", level=1, name=heading).wait_for(timeout=15_000)

    async def axe(self, name: str) -> None:
        """Run axe-core on the page as it is; fail on any serious or critical violation."""
        if not await self.page.evaluate("typeof window.axe !== 'undefined'"):  # a context that bypasses the CSP
            await self.page.add_script_tag(path=str(AXE))
        result = await self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe on {name}: {bad}"

    async def tab_to(self, name: str, limit: int = 60) -> None:
        """Press Tab until the focused control's label (aria-label, else its text) is ``name``."""
        for _ in range(limit):
            await self.page.keyboard.press("Tab")
            label = await self.page.evaluate(
                "() => { const e = document.activeElement;"
                " return e ? (e.getAttribute('aria-label') || e.textContent || '').trim() : ''; }"
            )
            if label == name:
                return
        raise AssertionError(f"{name!r} cannot be reached with the Tab key ({limit} presses)")

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@contextlib.asynccontextmanager
async def signed_in(
    browser: Any, site: Site, username: str, viewport: dict[str, int] = DESKTOP, *, enforce_csp: bool = False
) -> AsyncIterator[Console]:
    """A new browser context, signed in to the console as ``username`` through its sign-in form.

    axe-core is injected as a script tag, which the console's Content-Security-Policy forbids: such contexts
    bypass the policy; ``enforce_csp`` keeps it, and any violation the page reports fails the test.
    """
    context = await browser.new_context(viewport=viewport, bypass_csp=not enforce_csp)
    page = await context.new_page()
    await page.add_init_script(_WATCH_CSP)
    con = Console(page, site.base)
    page.on("request", lambda r: con.requests.append(r.url))
    page.on("websocket", lambda ws: con.requests.append(ws.url))
    page.on("pageerror", lambda e: con.errors.append(str(e)))
    try:
        await page.goto(site.base + "/")
        assert page.url == site.base + "/console/", page.url
        await page.get_by_label("Tenant").fill(TENANT)
        await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await page.get_by_role("heading", level=1, name="Fleet").wait_for(timeout=15_000)
        await page.locator("[data-live=on]").wait_for(timeout=15_000)
        yield con
        if enforce_csp:
            blocked = await page.evaluate("window.__cspViolations")
            assert blocked == [], f"the Content-Security-Policy blocked {blocked}"
        assert not con.errors, f"errors in the page: {con.errors}"
        assert not con.foreign(), f"the page loaded from elsewhere: {con.foreign()}"
    finally:
        await context.close()


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll ``check`` until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last!r})")
