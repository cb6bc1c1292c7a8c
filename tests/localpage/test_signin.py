"""Signing in to the local page over real HTTPS (the page's own self-signed certificate, verified against its
file): the PIN, wrong PINs and their throttling, session cookies and their expiry, CSRF refusals, no PIN set.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.registry import Registry
from tests.localpage import rig
from tests.localpage.conftest import Site


async def test_signed_out_pages_lead_to_sign_in_and_the_pin_opens_them(site: Site) -> None:
    status, text, r = await site.browser.request("GET", "/", allow_redirects=False)
    assert status == 303 and r.headers["Location"] == "/signin"
    assert (await site.browser.get("/api/status"))[0] == 401
    status, text = await site.browser.get("/signin")
    assert status == 200 and 'type="password"' in text and '<label for="pin">Setup PIN</label>' in text
    assert "Sign out" not in text and "/pairing" not in text
    _s, form = await site.browser.get("/signin")
    status, text, r = await site.browser.request(
        "POST", "/signin", data={"pin": rig.PIN, "csrf": rig.csrf_of(form)}, allow_redirects=False
    )
    assert status == 303 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("roost_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie, cookie
    status, text = await site.browser.get("/")
    assert status == 200 and "<h1>Status</h1>" in text
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert (await site.browser.get("/api/status"))[0] == 200


async def test_a_wrong_pin_is_refused_and_says_how_many_tries_are_left(site: Site) -> None:
    status, text = await site.browser.sign_in("0000")
    assert status == 401
    assert "Wrong PIN: 4 attempts left this minute." in text
    status, text = await site.browser.sign_in("")
    assert status == 400 and "Enter the setup PIN." in text
    assert (await site.browser.get("/api/status"))[0] == 401


@pytest.mark.page_config(extra="pin_attempts = 3\nlockout_s = 2\n")
async def test_pin_attempts_are_throttled_then_allowed_again(site: Site) -> None:
    for left in (2, 1):
        status, text = await site.browser.sign_in("1111")
        assert status == 401 and f"{left} attempt" in text
    status, text = await site.browser.sign_in("1111")
    assert status == 429 and "Too many wrong PINs: wait 2 s" in text
    # Even the right PIN waits: guessing cannot go on by trying the right one in between.
    status, text = await site.browser.sign_in(rig.PIN)
    assert status == 429 and "Too many wrong PINs" in text
    other = site.another_browser()  # the same address: the same wait, whatever the cookies
    try:
        status, _ = await other.sign_in(rig.PIN)
        assert status == 429
    finally:
        await other.close()
    await asyncio.sleep(2.1)
    status, text = await site.browser.sign_in(rig.PIN)
    assert status == 200 and "<h1>Status</h1>" in text


async def test_state_changes_without_the_csrf_token_or_from_another_site_are_refused(site: Site) -> None:
    await site.browser.sign_in()
    form = {"mac": rig.MAC, "key": rig.ble_rig.KEY.hex()}
    status, text = await site.browser.post("/pairing/ble", form, csrf="")
    assert status == 403 and "security token is missing or out of date" in json.loads(text)["error"]
    status, text = await site.browser.post("/pairing/ble", form, csrf="not-the-token")
    assert status == 403
    token = await site.browser.csrf()
    status, text = await site.browser.post("/pairing/ble", form, csrf=token, headers={"Origin": "https://evil.example"})
    assert status == 403 and "another site" in json.loads(text)["error"]
    # The header form of the token works too (what a script would send), from the page's own origin.
    status, _ = await site.browser.post(
        "/sensors/label", {"kind": "ble", "id": rig.MAC, "name": "x"}, csrf="", headers={"X-Roost-CSRF": "wrong"}
    )
    assert status == 403
    registry = Registry.in_state_dir(site.state)
    try:
        assert registry.get("ble", rig.MAC) is None, "a refused request paired a device"
    finally:
        registry.close()
    # Signing in needs the sign-in form's own token (bound to its cookie): a cross-site login is refused.
    fresh = site.another_browser()
    try:
        status, text = await fresh.post("/signin", {"pin": rig.PIN}, csrf="forged")
        assert status == 403 and "out of date" in text
    finally:
        await fresh.close()


@pytest.mark.page_config(extra="session_idle_s = 1.5\n")
@pytest.mark.slow  # waits out real deadlines (make test runs it)
async def test_a_session_ends_after_being_idle_and_on_sign_out(site: Site) -> None:
    await site.browser.sign_in()
    for _ in range(3):  # activity keeps it alive past the idle time
        await asyncio.sleep(0.8)
        assert (await site.browser.get("/api/status"))[0] == 200
    await asyncio.sleep(1.8)
    assert (await site.browser.get("/api/status"))[0] == 401
    _status, text = await site.browser.get("/")
    assert "<h1>Sign in</h1>" in text
    await site.browser.sign_in()
    token = await site.browser.csrf()
    _status, text = await site.browser.post("/signout", {}, csrf=token)
    assert "<h1>Sign in</h1>" in text
    assert (await site.browser.get("/api/status"))[0] == 401


@pytest.mark.page_config(pin_set=False)
async def test_without_a_pin_the_page_only_says_how_to_set_one(site: Site) -> None:
    for path in ("/", "/signin", "/pairing", "/live", "/api/status"):
        status, text = await site.browser.get(path)
        assert status == 503, path
        assert "has no setup PIN yet" in text and "[local]\npin = " in text, path
        assert "/pairing" not in text and "csrf" not in text and "Status" not in text.split("<main>")[1]
    status, text = await site.browser.post("/signin", {"pin": rig.PIN}, csrf="x")
    assert status == 503 and "has no setup PIN yet" in text
    # The page reads the PIN file on each request: one written now opens it without a restart.
    rig.pin.write(site.state / "local" / "pin.json", "7777")
    status, text = await site.browser.sign_in("7777")
    assert status == 200 and "<h1>Status</h1>" in text


@pytest.mark.page_config(pin_set=False)
async def test_an_unusable_pin_file_keeps_the_page_locked_and_is_logged(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    path = site.state / "local" / "pin.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scheme": "scrypt", "n": 2**30, "r": 8, "p": 1, "salt": "00" * 16, "hash": "00" * 32}))
    for _ in range(3):
        status, text = await site.browser.get("/")
        assert status == 503 and "has no setup PIN yet" in text
    assert caplog.text.count("n must be a power of 2 up to 131072") == 1, "logged once, not per request"


async def test_turned_off_by_device_management_the_page_only_says_so(tmp_path: Path) -> None:
    # The operator's switch (device management's ``disable local-page``), kept in the state folder.
    port = rig.free_port()
    cfg = rig.write_config(tmp_path, port, ble=False)
    dm = tmp_path / "state" / "dm"
    dm.mkdir(parents=True)
    (dm / "switches.json").write_text(json.dumps({"local_page": False}))
    async with rig.gateway(cfg, port):
        browser = rig.Browser(port, tmp_path / "state")
        try:
            for path in ("/", "/signin", "/api/status"):
                status, text = await browser.get(path)
                assert status == 503 and "The local page is turned off on this gateway" in text, path
            status, text = await browser.post("/signin", {"pin": rig.PIN}, csrf="x")
            assert status == 503 and "turned off" in text
        finally:
            await browser.close()
