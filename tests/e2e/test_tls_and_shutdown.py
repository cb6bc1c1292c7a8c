"""TLS with a pinned CA, and clean shutdown, end to end with the real ``roost`` processes on loopback.

The certificates are made here with ``cryptography``: a CA, a server certificate for 127.0.0.1 it
signs, and an unrelated second CA a misconfigured gateway pins instead.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest

from tests.e2e.harness import Sensor, Site, assert_exactly_once, key, wait_for_readings
from tests.pki import Pki, make_ca, make_pki

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT_S = 5.0  # gateway.shutdown_timeout_s as the harness writes it
CLOUD_SHUTDOWN_TIMEOUT_S = 5.0  # server.shutdown_timeout_s (the default)


def tls_site(tmp: Path, pki: Pki, *, ca_file: Path | None = None) -> Site:
    """A site whose cloud serves https/wss with ``pki``'s certificate; its gateway pins ``ca_file`` or pki's CA."""
    return Site(tmp, certfile=pki.cert, keyfile=pki.key, ca_file=ca_file or pki.ca, client_ca_file=pki.ca)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls(tmp_path: Path, pki: Pki) -> Iterator[Site]:
    s = tls_site(tmp_path, pki)
    try:
        yield s
    finally:
        s.stop_all()


async def _gateway_entry(site: Site, timeout: float, want_online: bool = True) -> dict[str, Any] | None:
    """The gateway's row on /api/v1/gateways once it is online (with a health report), or the last seen row."""
    deadline = time.monotonic() + timeout
    gw: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        items = (await asyncio.to_thread(site.api, "/api/v1/gateways"))["items"]
        gw = next((g for g in items if g["id"] == site.gateway_id), None)
        if gw is not None and gw["online"] == want_online and (not want_online or gw["health"]):
            return gw
        await asyncio.sleep(0.3)
    return gw


# ----------------------------------------------------------------------------- TLS


async def test_wss_with_a_pinned_ca_delivers_and_reports_health(tls: Site) -> None:
    assert tls.base.startswith("https://")
    assert (tls.tmp / "gateway.toml").read_text().count(f'ca_file = "{tls.ca_file}"') == 1
    tls.start_cloud()
    await tls.start_gateway()
    async with Sensor(tls.coap_port, "tls-th1") as s:
        for _ in range(5):
            assert (await s.post(s.next_readings(4))).code == aiocoap.CHANGED
        items = await wait_for_readings(tls, s, timeout=30)
    assert {key(r) for r in s.acked} <= {key(i) for i in items}, tls.gateway.tail()
    assert len(items) == 20
    gw = await _gateway_entry(tls, timeout=15)
    assert gw is not None and gw["online"] is True, (gw, tls.gateway.tail())
    assert gw["health"]["counters"]["reconnects"] == 0, gw
    assert gw["ingest"]["readings"] >= 20, gw
    log = tls.gateway.log.read_text()
    assert "uplink: connected to wss://127.0.0.1:" in log, tls.gateway.tail()
    assert "not trusted" not in log


async def _wait_for_log(site: Site, words: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = site.gateway.log.read_text(errors="replace")
        if words in log:
            break
        await asyncio.sleep(0.2)
    return log


async def test_a_gateway_pinning_another_ca_does_not_deliver_and_keeps_the_readings(tmp_path: Path, pki: Pki) -> None:
    other = tmp_path / "other-ca.pem"
    make_ca(other, "Somebody else's CA")
    site = tls_site(tmp_path, pki, ca_file=other)
    try:
        site.start_cloud()
        await site.start_gateway()
        async with Sensor(site.coap_port, "tls-wrong-1") as s:
            for _ in range(5):
                assert (await s.post(s.next_readings(4))).code == aiocoap.CHANGED
            await asyncio.sleep(4)
            assert site.gateway.alive, site.gateway.tail()
            assert await asyncio.to_thread(site.readings, sensor="tls-wrong-1") == []
            assert not any(g["id"] == site.gateway_id for g in site.api("/api/v1/gateways")["items"])
            log = site.gateway.log.read_text()
            assert "WARNING" in log and "not trusted" in log and "cloud.ca_file" in log, site.gateway.tail()
            # The readings were buffered, not lost: pin the right CA and they arrive.
            assert site.gateway.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT_S + 3) == 0
            site.ca_file = pki.ca
            site.write_gateway_config()
            await site.start_gateway()
            items = await wait_for_readings(site, s, timeout=30)
        assert {key(r) for r in s.acked} <= {key(i) for i in items}, site.gateway.tail()
        assert len(items) == 20
    finally:
        site.stop_all()


async def test_a_gateway_whose_ca_no_longer_matches_says_not_trusted(tls: Site, tmp_path: Path) -> None:
    """Connected once (the discovery document is cached), then pinned to another CA: the wss connect is refused."""
    tls.start_cloud()
    await tls.start_gateway()
    assert await _gateway_entry(tls, timeout=15) is not None, tls.gateway.tail()
    assert tls.gateway.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT_S + 3) == 0
    other = tmp_path / "other-ca.pem"
    make_ca(other, "Somebody else's CA")
    tls.ca_file = other
    tls.write_gateway_config()
    await tls.start_gateway()
    async with Sensor(tls.coap_port, "tls-swapped-1") as s:
        assert (await s.post(s.next_readings(4))).code == aiocoap.CHANGED
        log = await _wait_for_log(tls, "not trusted", timeout=10)
        assert "not trusted" in log and "cloud.ca_file" in log, tls.gateway.tail()
        await asyncio.sleep(1)
        assert await asyncio.to_thread(tls.readings, sensor="tls-swapped-1") == []


async def test_a_fresh_gateway_pinning_another_ca_says_not_trusted(tmp_path: Path, pki: Pki) -> None:
    other = tmp_path / "other-ca.pem"
    make_ca(other, "Somebody else's CA")
    site = tls_site(tmp_path, pki, ca_file=other)
    try:
        site.start_cloud()
        await site.start_gateway()
        log = await _wait_for_log(site, "buffering and retrying", timeout=10)
        assert "not trusted" in log, "the log does not say in plain words why:\n" + site.gateway.tail()
        assert "cloud.ca_file" in log and log.count("unable to get local issuer certificate") == 1, site.gateway.tail()
    finally:
        site.stop_all()


# ----------------------------------------------------------------------------- clean shutdown


async def _stop_timed(site: Site, which: str, sig: int, budget: float) -> tuple[int | None, float]:
    proc = site.gateway if which == "gateway" else site.cloud
    t0 = time.monotonic()
    # Wait a little longer than the budget so an overrun shows as a time, not as a SIGKILL's -9.
    code = await asyncio.to_thread(proc.stop, sig, budget + 5)
    return code, time.monotonic() - t0


async def test_sigterm_stops_the_gateway_cleanly_and_loses_nothing_acknowledged(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    stop = asyncio.Event()
    async with Sensor(site.coap_port, "shutdown-1") as s:
        task = asyncio.create_task(s.stream(stop, every=0.005))
        try:
            await asyncio.sleep(2)
            assert len(s.acked) > 50
            # The sensor keeps posting while the gateway shuts down.
            code, took = await _stop_timed(site, "gateway", signal.SIGTERM, SHUTDOWN_TIMEOUT_S + 3)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        assert code == 0, site.gateway.tail()
        assert took < SHUTDOWN_TIMEOUT_S + 3, f"the gateway took {took:.1f} s to stop"
        await site.start_gateway()
        items = await wait_for_readings(site, s, timeout=30)
    assert_exactly_once(s, items)
    gw = await _gateway_entry(site, timeout=15)
    assert gw is not None and gw["online"] is True


async def test_sigint_stops_the_gateway_cleanly(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    async with Sensor(site.coap_port, "shutdown-2") as s:
        for _ in range(5):
            assert (await s.post(s.next_readings(4))).code == aiocoap.CHANGED
        code, took = await _stop_timed(site, "gateway", signal.SIGINT, SHUTDOWN_TIMEOUT_S + 3)
        assert code == 0, site.gateway.tail()
        assert took < SHUTDOWN_TIMEOUT_S + 3, f"the gateway took {took:.1f} s to stop"
        await site.start_gateway()
        items = await wait_for_readings(site, s, timeout=30)
    assert {key(r) for r in s.acked} <= {key(i) for i in items}
    assert "Traceback" not in site.gateway.log.read_text(), site.gateway.tail()


async def test_sigterm_stops_the_cloud_cleanly_and_the_gateway_shows_offline(site: Site) -> None:
    site.start_cloud()
    await site.start_gateway()
    stop = asyncio.Event()
    async with Sensor(site.coap_port, "shutdown-3") as s:
        task = asyncio.create_task(s.stream(stop, every=0.005))
        try:
            await asyncio.sleep(2)
            code, took = await _stop_timed(site, "cloud", signal.SIGTERM, CLOUD_SHUTDOWN_TIMEOUT_S + 3)
            assert code == 0, site.cloud.tail()
            assert took < CLOUD_SHUTDOWN_TIMEOUT_S + 3, f"the cloud took {took:.1f} s to stop"
            await asyncio.sleep(1)
            assert site.gateway.alive, site.gateway.tail()
            site.start_cloud()
            await asyncio.sleep(1)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        items = await wait_for_readings(site, s, timeout=60)
    assert_exactly_once(s, items)
    # The gateway stops cleanly (SIGTERM) and the cloud records it offline.
    code, took = await _stop_timed(site, "gateway", signal.SIGTERM, SHUTDOWN_TIMEOUT_S + 3)
    assert code == 0 and took < SHUTDOWN_TIMEOUT_S + 3, (code, took, site.gateway.tail())
    gw = await _gateway_entry(site, timeout=10, want_online=False)
    assert gw is not None and gw["online"] is False, gw
    code, took = await _stop_timed(site, "cloud", signal.SIGTERM, CLOUD_SHUTDOWN_TIMEOUT_S + 3)
    assert code == 0 and took < CLOUD_SHUTDOWN_TIMEOUT_S + 3, (code, took, site.cloud.tail())
    assert "Traceback" not in site.cloud.log.read_text(), site.cloud.tail()
