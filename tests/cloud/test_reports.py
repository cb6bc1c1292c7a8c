"""Daily reports: figures of a small known day checked by hand, the API, the HTML, the schedule and the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cloud.config import load, loads
from cloud.server import CloudServer
from cloud.store import EventWrite, PackWrite
from tests.cloud.helpers import BASE_CONFIG, GW_PASSWORD, OTHER_TOKEN, eventually, http, mqtt
from wire import senml
from wire.events import Event
from wire.reading import Reading

DAY = "2026-11-18"
D0 = 1_794_960_000.0  # 2026-11-18T00:00:00Z
ROOT = Path(__file__).resolve().parents[2]
GAP = range(600, 720)  # gw-1 is silent from 10:00 to 12:00
GW1_VALUES = [float(m % 50) for m in range(1440) if m not in GAP]


def _alert(i: int, ts: float, state: str) -> Event:
    return Event(id=f"a{i}", kind="alert", ts=ts, key="warm/s1", rule="warm", state=state, severity="warning")  # type: ignore[arg-type]


async def _known_day(server: CloudServer) -> None:
    """gw-1 (site north): s1 every minute but 10:00-12:00; gw-2 (site south): heard the first half of the day only;
    gw-3 (no site): nothing but three messages the traffic counters saw."""
    gw1 = [Reading("s1", "temp", float(m % 50), D0 + 60 * m, "Cel") for m in range(1440) if m not in GAP]
    gw1 += [Reading("s1", "temp", 1000.0, D0 - 0.000001, "Cel"), Reading("s1", "temp", -1000.0, D0 + 86_400, "Cel")]
    gw2 = [Reading("s2", "hum", 40.0 + i % 3, D0 + 300 * i, "%RH") for i in range(144)]
    gw2 += [Reading("door", "open", i % 2 == 0, D0 + 600 * i, None) for i in range(72)]
    alerts = [_alert(1, D0 + 8 * 3600, "raised"), _alert(2, D0 + 9 * 3600, "cleared")]
    alerts += [_alert(0, D0 - 1, "raised"), _alert(3, D0 + 86_400, "raised")]  # the days before and after
    await server.store.commit(
        [
            PackWrite("default", "gw-1", gw1),
            PackWrite("default", "gw-2", gw2),
            PackWrite("other", "gw-x", [Reading("s1", "temp", 5.0, D0 + 10, "Cel")]),
        ],
        [EventWrite("default", "gw-1", alerts)],
        now=time.time(),
    )
    await server.registry.set_tags("default", "gw-1", ["freezers"], "north")
    await server.registry.set_tags("default", "gw-2", [], "south")
    for hour in range(3):
        server.reports.traffic.add("default", "gw-3", 100, at=D0 + 3600 * hour + 1)


def _close(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-9


def _check_figures(report: dict[str, Any]) -> None:
    sites = {s["site"]: s for s in report["sites"]}
    gateways = {g["gateway"]: g for g in report["gateways"]}
    sensors = {(s["gateway"], s["sensor"], s["metric"]): s for s in report["sensors"]}
    assert set(sites) == {"north", "south", "(no site)"}
    assert set(sensors) == {("gw-1", "s1", "temp"), ("gw-2", "s2", "hum"), ("gw-2", "door", "open")}

    s1 = sensors[("gw-1", "s1", "temp")]
    assert (s1["readings"], s1["min"], s1["max"], s1["unit"]) == (1320, 0.0, 49.0, "Cel")
    assert _close(s1["avg"], statistics.fmean(GW1_VALUES))
    # Typical interval 60 s: 1440 expected, 1320 received (the two-hour gap).
    assert (s1["interval_s"], s1["expected"]) == (60.0, 1440)
    assert _close(s1["completeness"], 1320 / 1440)
    hum, door = sensors[("gw-2", "s2", "hum")], sensors[("gw-2", "door", "open")]
    assert (hum["readings"], hum["expected"], hum["min"], hum["max"]) == (144, 288, 40.0, 42.0)
    assert _close(hum["completeness"], 0.5)
    assert (door["readings"], door["numbers"], door["min"], door["expected"]) == (72, 0, None, 144)

    assert _close(gateways["gw-1"]["uptime"], 264 / 288)  # 24 five-minute slots of silence
    assert _close(gateways["gw-2"]["uptime"], 0.5)  # silent half the day
    assert _close(gateways["gw-3"]["uptime"], 3 / 288)  # heard three times, by the traffic counters only
    assert (gateways["gw-1"]["alerts_raised"], gateways["gw-1"]["alerts_cleared"]) == (1, 1)
    assert (gateways["gw-3"]["bytes"], gateways["gw-3"]["messages"], gateways["gw-3"]["site"]) == (300, 3, "(no site)")
    assert _close(gateways["gw-2"]["completeness"], (144 + 72) / (288 + 144))

    north, south = sites["north"], sites["south"]
    assert (north["gateways"], north["readings"], north["expected"], north["alerts_raised"]) == (1, 1320, 1440, 1)
    assert _close(north["completeness"], 1320 / 1440)
    assert (south["series"], south["readings"]) == (2, 216)
    assert _close(south["uptime"], 0.5)
    assert sites["(no site)"]["completeness"] is None  # no readings: nothing was expected either
    assert sites["(no site)"]["bytes"] == 300


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _check_html(text: str) -> None:
    page = _Page()
    page.feed(text)
    page.close()
    assert page.tags[0] == "html" and "svg" in page.tags
    assert page.tags.count("svg") >= 2 + 2  # uptime and completeness bars, and the hourly charts of s1 and hum
    assert "polygon" in page.tags and "script" not in page.tags and "link" not in page.tags  # drawn, self-contained
    assert "Site north" in text and "(no site)" in text


async def test_report_of_a_known_day(cloud: CloudServer) -> None:
    await _known_day(cloud)
    async with http(cloud) as api:
        made = await api.post("/api/v1/reports", json={"day": DAY})
        again = await api.post("/api/v1/reports", json={"tenant": "default", "day": DAY})
        rid = made.json()["id"]
        figures = await api.get(f"/api/v1/reports/{rid}")
        html = await api.get(f"/api/v1/reports/{rid}/report.html")
        sites_csv = await api.get(f"/api/v1/reports/{rid}/sites.csv")
        sensors_csv = await api.get(f"/api/v1/reports/{rid}/sensors.csv")
        missing = await api.get(f"/api/v1/reports/{rid}/passwords.csv")
        none_yet = await api.get("/api/v1/reports/default_2026-11-17")
    assert made.status_code == 201, made.text
    assert rid == "default_2026-11-18"
    assert again.status_code == 200 and again.json()["created"] is False
    assert figures.status_code == 200
    _check_figures(figures.json())
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    _check_html(html.text)
    sites = {r["site"]: r for r in csv.DictReader(io.StringIO(sites_csv.text))}
    assert sites["north"]["readings"] == "1320" and float(sites["south"]["uptime"]) == 0.5
    sensors = list(csv.DictReader(io.StringIO(sensors_csv.text)))
    assert {(r["gateway"], r["sensor"], r["readings"]) for r in sensors} == {
        ("gw-1", "s1", "1320"), ("gw-2", "s2", "144"), ("gw-2", "door", "72"),
    }  # fmt: skip
    assert missing.status_code == 404 and none_yet.status_code == 404


async def test_reports_are_authorized_and_checked(cloud: CloudServer) -> None:
    async with http(cloud) as api, http(cloud, token=OTHER_TOKEN) as other:
        assert (await api.post("/api/v1/reports", json={"day": DAY})).status_code == 201
        refused = await other.post("/api/v1/reports", json={"tenant": "default", "day": DAY})
        peek = await other.get("/api/v1/reports/default_2026-11-18/report.html")
        bad_day = await api.post("/api/v1/reports", json={"day": "2026-13-45"})
        bad_id = await api.get("/api/v1/reports/nonsense")
    assert refused.status_code == 403 and peek.status_code == 403
    assert bad_day.status_code == 400 and bad_day.json()["parameter"] == "day"
    assert bad_id.status_code == 400 and bad_id.json()["parameter"] == "id"


async def test_bytes_received_over_mqtt_are_counted_per_day(cloud: CloudServer) -> None:
    pack = senml.encode([Reading("s1", "temp", 20.0 + i, time.time() + i, "Cel") for i in range(5)])
    async with mqtt(cloud, "gw-1", username="gw-1", password=GW_PASSWORD) as client:
        await client.publish("roost/default/gw-1/telemetry/b1", pack, qos=1)

    async def stored() -> bool:
        return cloud.stats.readings >= 5

    await eventually(stored)
    await cloud.reports.traffic.flush()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    counted = (await cloud.reports.traffic.day("default", today))["gw-1"]
    assert (counted.bytes, counted.messages, len(counted.slots)) == (len(pack), 1, 1)


_SCHEDULED = BASE_CONFIG + '\n[reports]\nenabled = true\nat = "00:00"\ntenants = ["default"]\n'


async def test_the_schedule_makes_yesterdays_report_once(tmp_path: Path) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    report = tmp_path / "state" / "reports" / "default" / yesterday / "report.json"
    async with CloudServer(loads(_SCHEDULED, base_dir=tmp_path)) as server:

        async def made() -> bool:  # report.json is written before the counter moves: wait for both
            return report.exists() and server.reports.made >= 1

        await eventually(made, timeout=30)
        assert server.reports.made == 1
    first = report.read_bytes()
    async with CloudServer(loads(_SCHEDULED, base_dir=tmp_path)) as server:  # a restart: not made twice

        async def ran() -> bool:
            return server.reports.runs >= 1

        await eventually(ran, timeout=30)
        assert server.reports.made == 0
    assert report.read_bytes() == first
    assert json.loads(first)["day"] == yesterday


async def _roost(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", *args, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_cli_report_end_to_end(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(BASE_CONFIG, encoding="utf-8")
    async with CloudServer(load(cfg)) as server:
        await _known_day(server)
        await server.reports.traffic.flush()  # the CLI reads what the running cloud has written
        out_dir = tmp_path / "out"
        code, out, err = await _roost("cloud", "report", "-c", str(cfg), "--tenant", "default", "--day", DAY,
                                      "--out", str(out_dir))  # fmt: skip
        assert code == 0, err
        summary = json.loads(out)
        assert summary["id"] == "default_2026-11-18" and summary["folder"] == str(out_dir)
        _check_figures(json.loads((out_dir / "report.json").read_text(encoding="utf-8")))
        _check_html((out_dir / "report.html").read_text(encoding="utf-8"))
        assert {p.name for p in out_dir.iterdir()} >= {"sites.csv", "gateways.csv", "sensors.csv", "readings.parquet"}
        code, _, err = await _roost("cloud", "report", "-c", str(cfg), "--tenant", "default", "--day", "18/11/2026")
        assert code == 1 and "YYYY-MM-DD" in err
