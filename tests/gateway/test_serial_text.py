"""The serial adapter's text protocols over real pty pairs: metric=value lines, and NMEA 0183 from a GPS talker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from drivers.line_talker import LineTalker
from drivers.nmea_talker import frame
from drivers.ptylink import PtyLink
from tests.gateway.serial_rig import eventually, port, rig


async def test_line_protocol_readings_and_bad_lines_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "usb-Arduino_Uno-if00"
    lines = ["temp=21.5,hum=40", "temp=oops", "door=true", "x" * 300, "temp=22.0", "\xff\xfe=1"]
    talker = LineTalker([], interval_s=0.02, repeat=False)  # silent until the gateway listens
    caplog.set_level(logging.INFO, logger="gateway.adapters.serial")
    section = port(link, protocol="line", sensor="arduino-1", max_line=64)
    async with rig(tmp_path, [section]) as r, PtyLink(talker, link=link):
        await eventually(lambda: r.adapter.port(str(link)).state == "open", what="the port to open")
        talker.lines = lines
        await eventually(lambda: r.adapter.accepted >= 4 and r.adapter.rejected_total >= 3, what="all lines")
        stored = await r.stored()
    got = [(x.sensor, x.metric, x.value) for x in stored]
    assert got == [
        ("arduino-1", "temp", 21.5),
        ("arduino-1", "hum", 40.0),
        ("arduino-1", "door", True),
        ("arduino-1", "temp", 22.0),
    ]
    assert r.adapter.rejected["malformed"] == 2 and r.adapter.rejected["oversize"] == 1
    warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert any("'temp=oops'" in w for w in warnings)


GOOD = [
    frame("GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A"),
    frame("GPGGA,123520.00,4807.040,N,01131.002,E,1,08,0.9,545.4,M,46.9,M,,"),
    frame("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),  # not decoded: ignored
    frame("PUBX,00,123520.00,4807.040,N"),  # proprietary: ignored
]


async def test_nmea_talker_gives_readings_and_the_gateway_location(tmp_path: Path) -> None:
    link = tmp_path / "usb-u-blox_GNSS-if00"
    corrupted = GOOD[1].replace("4807.040", "4807.041")  # checksum no longer matches
    talker = LineTalker([], interval_s=0.02, repeat=False)
    async with rig(tmp_path, [port(link, protocol="nmea", sensor="gps", baud=9600)]) as r:
        async with PtyLink(talker, link=link):
            await eventually(lambda: r.adapter.port(str(link)).state == "open", what="the port to open")
            talker.lines = [*GOOD, corrupted, GOOD[0]]
            await eventually(lambda: talker.done, what="the talker to finish")
            await eventually(lambda: r.adapter.rejected_total >= 1, what="the corrupted sentence counted")
            await eventually(lambda: r.adapter.stats()["ports"][str(link)]["lines"] >= 6, what="every line")  # type: ignore[index]
            stored = await r.stored()
        stats = r.adapter.stats()["ports"][str(link)]  # type: ignore[index]
    assert {x.sensor for x in stored} == {"gps"}
    metrics = {x.metric for x in stored}
    assert {"latitude", "longitude", "altitude", "satellites"} <= metrics
    lat = [x for x in stored if x.metric == "latitude"]
    assert lat[0].unit == "lat" and lat[0].value == pytest.approx(48 + 7.038 / 60)
    fix = r.adapter.last_fix
    assert fix is not None and fix.lat == pytest.approx(48 + 7.038 / 60) and fix.lon == pytest.approx(11 + 31 / 60)
    assert r.adapter.last_fix_at is not None
    assert r.adapter.rejected == {"malformed": 1}
    assert stats["ignored"] == 2
