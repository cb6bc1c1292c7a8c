"""The wired page with a real Modbus RTU unit (pymodbus's own server at the far end of a pty pair) and a serial
port: settings as configured, the state of each, and a test read through the running adapter's line.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway.modbus_peer import PtyBridge, RtuServer, registers, unit
from tests.localpage import rig


@pytest.fixture
async def meter() -> AsyncIterator[PtyBridge]:
    bridge = PtyBridge()
    bridge.open()
    server = RtuServer(bridge.server_path, [unit(1, holding=[registers(0, [2301, 152])])])
    await server.start()
    try:
        yield bridge
    finally:
        await server.stop()
        bridge.close()


async def test_modbus_test_read_and_serial_settings(tmp_path: Path, meter: PtyBridge) -> None:
    port = rig.free_port()
    extra_adapters = (
        f'[[adapters.modbus]]\npath = "{meter.client_path}"\nunit = 1\nname = "meter"\nbaud = 19200\n'
        'parity = "none"\ninterval_s = 60\ntimeout_s = 0.3\nretries = 1\n'
        '[[adapters.modbus.registers]]\nname = "voltage"\naddress = 0\nscale = 0.1\nunit = "V"\n'
        '[[adapters.modbus.registers]]\nname = "current"\naddress = 1\nscale = 0.01\nunit = "A"\n'
        '[[adapters.serial]]\npath = "/dev/ttyROOSTMISSING0"\nprotocol = "nmea"\nbaud = 9600\nsensor = "gps"\n'
    )
    cfg = rig.write_config(tmp_path, port, ble=False)
    text = cfg.read_text().replace("[local]", extra_adapters + "[local]")
    cfg.write_text(text)
    async with rig.gateway(cfg, port):
        browser = rig.Browser(port, tmp_path / "state")
        try:
            await browser.sign_in()
            page = (await browser.get("/wired"))[1]
            assert f"<code>{meter.client_path}</code> unit 1" in page and "19200 8N1" in page
            assert "voltage, current" in page
            assert "<code>/dev/ttyROOSTMISSING0</code>" in page and "nmea" in page and "9600" in page
            assert "Serial devices send on their own" in page
            token = rig.csrf_of(page)
            status, page = await browser.post("/wired/test", {"sensor": "meter-1"}, csrf=token)
            assert status == 200
            result = page.split('id="test-result"')[1].split("</div>", 1)[0]
            assert "Test read of meter-1" in result
            assert re.search(r'data-label="Register">voltage</td><td data-label="Value">230.1 V', result), result
            assert re.search(r'data-label="Register">current</td><td data-label="Value">1.52 A', result), result
            meter.cut = True  # the unit stops answering: the page says so
            status, page = await browser.post("/wired/test", {"sensor": "meter-1"}, csrf=token)
            m = re.search(r'<p class="flash error" role="alert">(.*?)</p>', page)
            assert m is not None and html.unescape(m.group(1)).startswith("Test read: meter-1: "), page[:600]
            status, page = await browser.post("/wired/test", {"sensor": "meter-9"}, csrf=token)
            assert "Test read: Unit: no Modbus unit &#x27;meter-9&#x27; is configured" in page
        finally:
            await browser.close()
