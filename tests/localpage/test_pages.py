"""Every page of the local page, against a real gateway daemon with a BLE adapter replaying an encrypted and a
plain BTHome sensor, no cloud (nothing listens at its URL): status, pairing (BLE with a bind key, I2C scan,
Zigbee when it is off), sensors (naming and locating), live readings over Server-Sent Events, and the
technician's CLI ``roost gateway status`` through the control socket.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.localpage import cert
from gateway.registry import Registry
from tests.localpage import rig
from tests.localpage.conftest import Site

ROOT = Path(__file__).resolve().parents[2]
KEY_HEX = rig.ble_rig.KEY.hex()


async def _signed_in(site: Site) -> None:
    status, _ = await site.browser.sign_in()
    assert status == 200


async def _flash(site: Site, page: str, action: str, form: dict[str, str]) -> str:
    """Send a form of ``page`` to ``action``; the message shown on the page it leads back to."""
    token = await site.browser.csrf(page)
    status, text = await site.browser.post(action, form, csrf=token)
    assert status == 200, text[:500]
    m = re.search(r'<p class="flash (ok|error)" role="\w+">(.*?)</p>', text)
    assert m is not None, f"no message on {text[:800]!r}"
    return f"{m.group(1)}: {html.unescape(m.group(2))}"


async def test_status_shows_cloud_buffer_adapters_enrollment_first_boot_and_the_fingerprint(site: Site) -> None:
    identity = site.state / "identity"
    identity.mkdir(exist_ok=True)
    pending = {"state": "pending", "user_code": "WDJB-MJHT", "verification_uri": "https://cloud.example/device"}
    (identity / "enrollment.json").write_text(json.dumps(pending))
    (site.state / "firstboot-report.json").write_text(json.dumps({"ok": False, "at": time.time(), "errors": [
        {"key": "wifi.psk", "message": "must be 8 to 63 characters"}]}))  # fmt: skip
    await _signed_in(site)
    await rig.until(lambda: site.daemon.adapters[0].stats()["scanner"]["state"] == "scanning", what="scanning")
    status, text = await site.browser.get("/")
    assert status == 200
    assert '<p class="big bad">not connected</p>' in text
    assert "WDJB-MJHT" in text and "https://cloud.example/device" in text
    assert "First boot found problems" in text and "<code>wifi.psk</code>: must be 8 to 63 characters" in text
    assert "Readings waiting</dt><dd>" in text
    assert re.search(r'<td data-label="Adapter">ble</td><td data-label="State"><span class="state scanning">', text)
    fingerprint = cert.read_fingerprint(site.state / "local")
    assert fingerprint is not None and fingerprint in text
    assert f"https://{rig.HOST}:{site.port}/" in text
    api = json.loads((await site.browser.get("/api/status"))[1])
    assert api["cloud"]["connected"] is False and api["enrollment"]["user_code"] == "WDJB-MJHT"
    assert api["firstboot"] == {"ok": False, "errors": [{"key": "wifi.psk", "message": "must be 8 to 63 characters"}],
                                "at": api["firstboot"]["at"]}  # fmt: skip
    # Approved: the code is no longer shown.
    (identity / "enrollment.json").write_text(json.dumps({"state": "enrolled", "user_code": "WDJB-MJHT"}))
    assert "WDJB-MJHT" not in (await site.browser.get("/"))[1]


async def test_ble_pairing_through_the_page_with_a_bind_key_and_readings_go_live(site: Site) -> None:
    await _signed_in(site)
    hub_readings: list[tuple[str, str]] = []
    site.daemon.hub.readings.subscribe(on_next=lambda r: hub_readings.append((r.sensor, r.metric)))

    async def nearby() -> str:
        return (await site.browser.get("/pairing"))[1]

    page = await rig.until(lambda: _both_heard(nearby()), what="both sensors in the nearby list")
    assert "encrypted: needs its bind key" in page and "Bind key (32 hex characters)" in page
    assert "temperature 18.5 Cel" in page, "the plain sensor's decoded preview"
    assert "Zigbee is not enabled" in page

    # Bad input is named, and the key never comes back in a page.
    msg = await _flash(site, "/pairing", "/pairing/ble", {"mac": "54:48:E6:8F", "key": KEY_HEX})
    assert msg.startswith("error: Bluetooth address: ") and "is not a Bluetooth address" in msg
    msg = await _flash(site, "/pairing", "/pairing/ble", {"mac": rig.MAC, "key": "abc123"})
    assert msg == "error: Bind key must be 32 hex characters (16 bytes), got 6 characters"
    msg = await _flash(site, "/pairing", "/pairing/ble", {"mac": "", "key": KEY_HEX})
    assert msg.startswith("error: Bluetooth address: missing")
    assert ("ble", rig.MAC) not in {(k, i) for k, i in _registry(site)}

    msg = await _flash(site, "/pairing", "/pairing/ble", {"mac": rig.MAC, "key": KEY_HEX,
                                           "name": "Porch sensor", "location": "Front door"})  # fmt: skip
    assert msg == (f"ok: {rig.MAC} added with its bind key: its readings appear on Live readings from its next "
                   "advertisement")  # fmt: skip
    await rig.until(lambda: (rig.MAC, "temperature") in hub_readings, what="the paired sensor's readings")
    for path in ("/", "/pairing", "/sensors", "/live", "/api/status", "/api/nearby"):
        assert KEY_HEX not in (await site.browser.get(path))[1].lower(), path
    live = (await site.browser.get("/live"))[1]
    assert f'data-key="{rig.MAC}|temperature"' in live and f'data-key="{rig.MAC}|humidity"' in live
    assert "40 %RH" in live
    assert rig.MAC not in (await site.browser.get("/api/nearby"))[1], "a paired device is no longer 'nearby'"
    sensors = (await site.browser.get("/sensors"))[1]
    assert "Porch sensor" in sensors and "Front door" in sensors


async def _both_heard(page: object) -> str | None:
    text = await page  # type: ignore[misc]
    return text if rig.MAC in text and rig.PLAIN_MAC in text else None


def _registry(site: Site) -> list[tuple[str, str]]:
    registry = Registry.in_state_dir(site.state)
    try:
        return [(d["kind"], d["id"]) for d in registry.devices(None)]
    finally:
        registry.close()


@pytest.mark.page_config(extra="live_clients = 1\n")
async def test_the_live_stream_sends_readings_needs_a_session_and_is_bounded(site: Site) -> None:
    await _signed_in(site)
    await _flash(site, "/pairing", "/pairing/ble", {"mac": rig.PLAIN_MAC})
    got: list[dict[str, object]] = []
    url = f"{site.browser.base}/api/live"
    async with asyncio.timeout(20):
        async with site.browser.session.get(url, ssl=site.browser.tls, server_hostname=rig.HOST) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
            async for line in r.content:
                if line.startswith(b"data: ["):
                    got.extend(json.loads(line[6:]))
                if any(m.get("sensor") == rig.PLAIN_MAC and m.get("metric") == "temperature" for m in got):
                    break
            # While it is open, the only slot is taken.
            status, text = await site.browser.get("/api/live")
            assert status == 503 and "1 live pages are open already" in text
            # Quiet from now on: nothing but the 15 s keep-alive would make the stream notice it is gone.
            await site.daemon.adapters[0].unpair_device(rig.PLAIN_MAC)  # type: ignore[attr-defined]
    reading = next(m for m in got if m.get("sensor") == rig.PLAIN_MAC)
    assert reading["type"] == "reading" and reading["value"] == 18.5 and reading["unit"] == "Cel"

    async def slot_free() -> bool:
        async with site.browser.session.get(url, ssl=site.browser.tls, server_hostname=rig.HOST) as again:
            return again.status == 200

    # Closed by the browser, the slot is free again at once (not at the next keep-alive, 15 s later).
    await rig.until(slot_free, timeout=5, what="the closed stream's slot")
    # A stream needs a session.
    stranger = site.another_browser()
    try:
        assert (await stranger.get("/api/live"))[0] == 401
    finally:
        await stranger.close()


async def test_i2c_scan_from_the_page_names_chips_and_bad_input(site: Site) -> None:
    await _signed_in(site)
    token = await site.browser.csrf("/pairing")
    status, text = await site.browser.post("/pairing/i2c", {"bus": "1", "emulated": "1"}, csrf=token)
    assert status == 200
    result = text.split('id="i2c-result"')[1]
    assert "Bus emulated: 3 device(s) answered" in result
    for address, chip in (("0x44", "SHT3x"), ("0x48", "ADS1115"), ("0x76", "BME280")):
        assert re.search(rf'data-label="Address">{address}</td><td data-label="Chip">{chip}', result), chip
    msg = await _flash(site, "/pairing", "/pairing/i2c", {"bus": "abc"})
    assert msg == "error: Bus number: 'abc' is not a whole number (1 on a Raspberry Pi)"
    msg = await _flash(site, "/pairing", "/pairing/i2c", {"bus": "500"})
    assert msg == "error: Bus number: must be between 0 and 99"
    msg = await _flash(site, "/pairing", "/pairing/i2c", {"bus": "97"})
    assert msg.startswith("error: /dev/i2c-97 does not exist: enable I2C")


async def test_zigbee_permit_join_is_refused_clearly_when_zigbee_is_off(site: Site) -> None:
    await _signed_in(site)
    msg = await _flash(site, "/pairing", "/pairing/zigbee", {"seconds": "60"})
    assert msg == "error: Zigbee: no 'zigbee' adapter is running that can pair (running: none)"
    msg = await _flash(site, "/pairing", "/pairing/zigbee", {"seconds": "999"})
    assert msg == "error: Seconds: a Zigbee pairing window lasts 1 to 254 seconds"
    msg = await _flash(site, "/pairing", "/pairing/zigbee", {"seconds": "soon"})
    assert msg == "error: Seconds: 'soon' is not a whole number (1-254)"


async def test_naming_and_locating_a_sensor(site: Site) -> None:
    await _signed_in(site)
    await _flash(site, "/pairing", "/pairing/ble", {"mac": rig.PLAIN_MAC, "name": "Shed"})
    assert "Shed" in (await site.browser.get("/sensors"))[1]
    msg = await _flash(site, "/sensors", "/sensors/label", {"kind": "ble", "id": rig.PLAIN_MAC.lower(),
                                          "name": "Greenhouse", "location": "Back garden"})  # fmt: skip
    assert msg == f"ok: {rig.PLAIN_MAC}: name 'Greenhouse', location 'Back garden'"
    page = (await site.browser.get("/sensors"))[1]
    assert 'value="Greenhouse"' in page and 'value="Back garden"' in page
    msg = await _flash(site, "/sensors", "/sensors/label", {"kind": "ble", "id": rig.PLAIN_MAC,
                                          "name": "x" * 65})  # fmt: skip
    assert msg == "error: Name: one line of at most 64 characters"
    msg = await _flash(site, "/sensors", "/sensors/label", {"kind": "ble", "id": "nope", "name": "a"})
    assert msg.startswith("error: 'nope' is not a Bluetooth address")


async def test_wired_page_without_serial_or_modbus_says_what_to_configure(site: Site) -> None:
    await _signed_in(site)
    page = (await site.browser.get("/wired"))[1]
    assert "No serial port is configured ([[adapters.serial]] in gateway.toml)." in page
    assert "No Modbus unit is configured ([[adapters.modbus]] in gateway.toml)." in page
    msg = await _flash(site, "/wired", "/wired/test", {"sensor": "rtu0-1"})
    assert msg == "error: Test read: Modbus is not running: add an [[adapters.modbus]] unit to gateway.toml"


async def test_static_files_are_served_by_the_gateway_and_nothing_else_is_loaded(site: Site) -> None:
    await _signed_in(site)
    for path in ("/", "/pairing", "/wired", "/live", "/sensors"):
        page = (await site.browser.get(path))[1]
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
        for url in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert url.startswith(("/", "#")), f"{path} loads {url}"
        assert "<script>" not in page and "style=" not in page
        for m in re.finditer(r'<input id="([^"]+)"', page):
            assert f'<label for="{m.group(1)}">' in page or m.group(1).startswith("key-"), f"{path}: {m.group(1)}"
    js = await site.browser.get("/static/app.js")
    css = await site.browser.get("/static/style.css")
    assert js[0] == 200 and "EventSource" in js[1] and css[0] == 200 and "@media" in css[1]
    assert (await site.browser.get("/static/../gateway.toml"))[0] == 404


async def test_roost_gateway_status_prints_what_the_status_page_shows(site: Site) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", "gateway", "status", "-c", str(site.config),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"gateway    {rig.GATEWAY_ID} (tenant default" in text
    assert "cloud      NOT connected to http://127.0.0.1:" in text
    assert re.search(r"adapter    ble +\w+", text)
    assert f"local page https://{rig.HOST}:{site.port}/" in text
    assert f"certificate SHA-256 {cert.read_fingerprint(site.state / 'local')}" in text
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", "gateway", "status", "-c", str(site.config), "--json",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    doc = json.loads(out)
    assert doc["gateway"]["id"] == rig.GATEWAY_ID and doc["adapters"][0]["name"] == "ble"


async def test_roost_gateway_status_when_the_gateway_is_not_running(tmp_path: Path) -> None:
    cfg = rig.write_config(tmp_path, rig.free_port(), ble=False)
    report = {"ok": False, "at": 1, "errors": [{"key": "local.pin", "message": "must be 6 to 12 digits"}]}
    (tmp_path / "state" / "firstboot-report.json").write_text(json.dumps(report))
    made = cert.make(tmp_path / "state" / "local", rig.HOST)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", "gateway", "status", "-c", str(cfg),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode().startswith("roost gateway status: the gateway is not running, or not here")
    assert out.decode().splitlines() == [
        "first boot found 1 problem(s) in roost.toml:",
        "           - local.pin: must be 6 to 12 digits",
        f"local page certificate SHA-256 {made.fingerprint}",
    ]


async def test_the_page_runs_with_mdns_off_and_the_certificate_is_kept(site: Site) -> None:
    folder = site.state / "local"
    assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600
    assert aiohttp.__version__  # the client is the library the server uses; the certificate is what it checks
    pem = (folder / "cert.pem").read_bytes()
    from cryptography import x509

    c = x509.load_pem_x509_certificate(pem)
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [rig.HOST]
    assert c.subject.rfc4514_string() == f"CN={rig.HOST}"
