"""Uplink over wss:// to an amqtt broker whose certificate comes from a CA generated in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.buffer import DurableBuffer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink import Uplink
from tests.gateway.test_uplink import GW, TENANT, Acker, BrokerProc, key, readings, running, until
from tests.pki import make_ca, make_pki


@pytest.fixture
async def tls_setup(tmp_path: Path) -> AsyncIterator[tuple[BrokerProc, Path, Path]]:
    """A broker with a wss listener; yields it, the pinned CA file and an unrelated CA file."""
    pki = make_pki(tmp_path / "pki")
    ca_file, other_ca = pki.ca, tmp_path / "someone-else-ca.pem"
    make_ca(other_ca, "someone-else-ca")
    broker = BrokerProc(certfile=pki.cert, keyfile=pki.key)
    await broker.start()
    try:
        yield broker, ca_file, other_ca
    finally:
        await broker.stop()


def _uplink(buffer: DurableBuffer, state: Path, url: str, ca_file: Path | None) -> Uplink:
    cloud = CloudSection(mqtt_url=url, ca_file=ca_file, connect_timeout_s=3, backoff_initial_s=0.05, backoff_max_s=0.2)
    return Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(batch_max_delay_ms=10),
        buffer=buffer,
        state_dir=state,
    )


async def test_wss_with_pinned_ca(tls_setup: tuple[BrokerProc, Path, Path], tmp_path: Path) -> None:
    broker, ca_file, _ = tls_setup
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=0) as buffer:
        acker = Acker(broker.tcp_port)
        up = _uplink(buffer, tmp_path, f"wss://127.0.0.1:{broker.ws_port}/mqtt", ca_file)
        async with running(acker.run(), up.run()):
            await until(lambda: acker.client is not None and up.connected, what="a wss connection")
            await buffer.append(readings(300))
            await until(lambda: buffer.stats()["buffered"] == 0, what="readings over wss")
    assert sorted(map(key, acker.readings)) == sorted(map(key, readings(300)))


@pytest.mark.parametrize("pin", ["system-cas", "another-ca"])
async def test_wss_with_untrusted_certificate_fails_clearly(
    tls_setup: tuple[BrokerProc, Path, Path], tmp_path: Path, pin: str
) -> None:
    broker, _, other_ca = tls_setup
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=0) as buffer:
        up = _uplink(
            buffer, tmp_path, f"wss://127.0.0.1:{broker.ws_port}/mqtt", None if pin == "system-cas" else other_ca
        )
        async with running(up.run()):
            await until(lambda: up.connect_failures >= 2, what="failed attempts")
        assert not up.connected and up.reconnects == 0
        assert up.last_error is not None
        assert "certificate" in up.last_error and "cloud.ca_file" in up.last_error, up.last_error


async def test_missing_ca_file_is_reported(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buffer:
        up = _uplink(buffer, tmp_path, "wss://127.0.0.1:1/mqtt", tmp_path / "no-such-ca.pem")
        async with running(up.run()):
            await until(lambda: up.connect_failures >= 1, what="a failed attempt")
        assert up.last_error is not None and "no-such-ca.pem" in up.last_error
