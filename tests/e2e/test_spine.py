"""The spine end to end: CoAP sensor -> gateway -> MQTT over WebSockets -> cloud -> store -> API.

Every test runs the real ``roost cloud serve`` and ``roost gateway run`` processes on loopback
and real CoAP clients (aiocoap, and libcoap's ``coap-client-notls`` where installed).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiocoap
import pytest

from tests.e2e.harness import Sensor, Site, assert_exactly_once, key, wait_for_readings
from wire.reading import Reading

pytestmark = pytest.mark.slow


async def test_readings_come_back_from_the_api_with_the_same_values_and_timestamps(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    async with Sensor(site.coap_port, "kitchen-th1") as s:
        ts = round(time.time() - 5, 6)
        sent = [
            Reading("kitchen-th1", "temperature", 21.37, ts, "Cel"),
            Reading("kitchen-th1", "humidity", 44.5, ts, "%RH"),
            Reading("kitchen-th1", "door", True, ts + 0.5),
            Reading("kitchen-th1", "state", "ok", ts + 0.75),
        ]
        assert (await s.post(sent[:2], cbor=True)).code == aiocoap.CHANGED
        assert (await s.post(sent[2:], cbor=False)).code == aiocoap.CHANGED
        items = await wait_for_readings(site, s, timeout=30)
    got = {key(i): i for i in items}
    for r in sent:
        item = got[key(r)]
        assert item["value"] == r.value
        assert item["unit"] == r.unit
        assert item["gateway"] == site.gateway_id
        assert item["ts"].endswith("Z")
        assert datetime.fromisoformat(item["ts"].replace("Z", "+00:00")).timestamp() == pytest.approx(r.ts, abs=1e-6)
    assert len(items) == len(sent)


async def test_plain_text_post_names_its_sensor_in_the_path(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(
            code=aiocoap.POST,
            uri=f"coap://127.0.0.1:{site.coap_port}/telemetry/uno-7",
            payload=b"temp=19.5,light=312\n",
        )
        msg.opt.content_format = 0
        resp = await asyncio.wait_for(ctx.request(msg).response, 10)
        assert resp.code == aiocoap.CHANGED
    finally:
        await ctx.shutdown()
    deadline = time.monotonic() + 30
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(items) < 2:
        items = await asyncio.to_thread(site.readings, sensor="uno-7")
        await asyncio.sleep(0.3)
    assert {(i["metric"], i["value"]) for i in items} == {("temp", 19.5), ("light", 312.0)}


async def _libcoap_post(site: Site, senml_json: str) -> subprocess.CompletedProcess[str]:
    """POST a SenML JSON pack with libcoap's client, as a technician would (payload from a file: -e decodes %)."""
    path = site.tmp / f"pack-{time.monotonic_ns()}.json"
    path.write_text(senml_json)
    argv = [
        "coap-client-notls",
        "-m",
        "post",
        "-t",
        "110",
        "-f",
        str(path),
        f"coap://127.0.0.1:{site.coap_port}/telemetry",
    ]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(
    shutil.which("coap-client-notls") is None,
    reason="libcoap's coap-client-notls is not installed (Debian libcoap3-bin; make test installs it as root)",
)
async def test_libcoap_client_posts_reach_the_api(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    good = await _libcoap_post(site, '[{"bn":"libcoap-1:","n":"temperature","u":"Cel","v":23.125}]')
    assert good.returncode == 0, good.stderr
    out = await _libcoap_post(site, '[{"bn":"libcoap-1:",')
    assert "4.00" in out.stdout + out.stderr
    deadline = time.monotonic() + 30
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline and not items:
        items = await asyncio.to_thread(site.readings, sensor="libcoap-1")
        await asyncio.sleep(0.3)
    assert [i["value"] for i in items] == [23.125]


async def _stream_through(
    site: Site, sensor: str, disrupt: Callable[[Sensor], Awaitable[None]], *, every: float = 0.005
) -> Sensor:
    """Stream readings from a CoAP sensor, ``disrupt`` the site mid-stream, and check that every
    reading the gateway acknowledged is stored exactly once."""
    site.start_cloud()
    await site.start_gateway()
    stop = asyncio.Event()
    async with Sensor(site.coap_port, sensor) as s:
        task = asyncio.create_task(s.stream(stop, every=every))
        await asyncio.sleep(3)
        await disrupt(s)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.wait_for(task, 10)
        items = await wait_for_readings(site, s, timeout=60)
    assert len(s.acked) > 100
    assert_exactly_once(s, items)
    return s


async def test_cloud_outage_of_10s_loses_nothing_acknowledged(site: Site) -> None:
    async def outage(s: Sensor) -> None:
        site.cloud.stop()
        acked_before = len(s.acked)
        await asyncio.sleep(10)
        assert len(s.acked) > acked_before, "the gateway stopped acknowledging while the cloud was down"
        site.start_cloud()

    await _stream_through(site, "outage-1", outage, every=0.02)
    gw = next(g for g in site.api("/api/v1/gateways")["items"] if g["id"] == site.gateway_id)
    assert gw["health"]["counters"]["reconnects"] >= 1


async def test_gateway_sigkill_mid_stream_loses_nothing_acknowledged(site: Site) -> None:
    """SIGKILL shows process-crash durability (the acknowledged rows were committed); it cannot
    tell synchronous=FULL from NORMAL, which only a power cut distinguishes."""

    async def power_cut(_s: Sensor) -> None:
        site.gateway.kill()
        await asyncio.sleep(1)
        await site.start_gateway()

    await _stream_through(site, "gwkill-1", power_cut)


async def test_cloud_sigkill_mid_stream_loses_nothing_acknowledged(site: Site) -> None:
    async def crash(_s: Sensor) -> None:
        site.cloud.kill()
        await asyncio.sleep(2)
        site.start_cloud()

    await _stream_through(site, "cloudkill-1", crash)


async def test_full_buffer_drops_oldest_and_the_cloud_learns_the_count(site: Site) -> None:
    site.write_gateway_config('[buffer]\nmax_bytes = 16384\npolicy = "drop-oldest"\n')
    site.start_cloud()
    await site.start_gateway()
    site.cloud.stop()
    async with Sensor(site.coap_port, "full-1") as s:
        for _ in range(100):
            assert (await s.post(s.next_readings(20))).code == aiocoap.CHANGED
        newest = s.acked[-20:]
    site.start_cloud()
    deadline = time.monotonic() + 60
    dropped = 0
    while time.monotonic() < deadline:
        gws = {g["id"]: g for g in site.api("/api/v1/gateways")["items"]}
        health = (gws.get(site.gateway_id) or {}).get("health") or {}
        dropped = (health.get("counters") or {}).get("dropped", 0)
        if dropped:
            break
        await asyncio.sleep(0.5)
    assert dropped > 0, "the dropped count did not reach the cloud"
    # Health comes first after a reconnect; the buffered packs follow: wait for the newest to land.
    want = {key(r) for r in newest}
    stored: set[tuple[str, str, int]] = set()
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline and not want <= stored:
        items = site.readings(sensor="full-1")
        stored = {key(i) for i in items}
        await asyncio.sleep(0.3)
    assert 0 < len(items) < 2000
    assert {key(r) for r in newest} <= stored, "drop-oldest must keep the newest readings"
    assert key(s.acked[0]) not in stored, "drop-oldest must drop the oldest readings"


async def test_bad_input_is_refused_clearly_and_loses_nothing(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    uri = f"coap://127.0.0.1:{site.coap_port}/telemetry"
    cases: list[tuple[bytes, int | None, aiocoap.Code, str]] = [
        (b'[{"bn":"bad-1:",', 110, aiocoap.BAD_REQUEST, "does not parse"),
        (b"\x9f\x01", 112, aiocoap.BAD_REQUEST, "CBOR"),
        (b'{"n":"x"}', 110, aiocoap.BAD_REQUEST, "array"),
        (b'[{"n":"nocolon","v":1}]', 110, aiocoap.BAD_REQUEST, "sensor"),
        (b'[{"bn":"a:","n":"t","v":"warm"}]', 110, aiocoap.BAD_REQUEST, "number"),
        (b"hello", 42, aiocoap.UNSUPPORTED_CONTENT_FORMAT, "content-format"),
        (b"[" + b" " * 100_000 + b"]", 110, aiocoap.REQUEST_ENTITY_TOO_LARGE, "limit"),
        (b"temp=abc", 0, aiocoap.BAD_REQUEST, "sensor"),
    ]
    ctx = await aiocoap.Context.create_client_context()
    try:
        async with Sensor(site.coap_port, "good-1") as good:
            for payload, cf, code, words in cases:
                msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload)
                if cf is not None:
                    msg.opt.content_format = cf
                resp = await asyncio.wait_for(ctx.request(msg).response, 20)
                assert resp.code == code, (payload[:30], resp.code, resp.payload)
                assert words in resp.payload.decode(), resp.payload
                assert (await good.post(good.next_readings(3))).code == aiocoap.CHANGED
            items = await wait_for_readings(site, good, timeout=30)
    finally:
        await ctx.shutdown()
    assert site.gateway.alive
    assert_exactly_once(good, items)
    assert len(items) == 3 * len(cases)


def test_invalid_gateway_config_names_file_key_and_allowed_values(site: Site) -> None:
    bad = site.tmp / "bad.toml"
    bad.write_text('[buffer]\npolicy = "drop-everything"\n')
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "bad.toml: buffer.policy" in out.stderr and "drop-oldest" in out.stderr
    bad.write_text("[adapters.coap]\nport = 70000\n")
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "adapters.coap.port" in out.stderr
