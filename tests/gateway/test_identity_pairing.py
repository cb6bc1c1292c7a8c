"""The gateway's id and the pairing allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import identity
from gateway.pairing import MAX_PENDING, Pairing


def test_pi_serial_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 00000000a1b2c3d4\nModel\t: Pi\n")
    assert identity.hardware_serial(cpuinfo, tmp_path / "none") == "00000000a1b2c3d4"
    dt = tmp_path / "serial-number"
    dt.write_bytes(b"10000000deadbeef\x00")
    assert identity.hardware_serial(cpuinfo, dt) == "10000000deadbeef"
    cpuinfo.write_text("Serial\t: 0000000000000000\n")
    assert identity.hardware_serial(cpuinfo, tmp_path / "none") is None


def test_generated_id_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "hardware_serial", lambda: None)
    first = identity.gateway_id(tmp_path)
    assert first.startswith("gw-")
    assert identity.gateway_id(tmp_path) == first
    assert (tmp_path / "gateway-id").stat().st_mode & 0o777 == 0o600
    assert identity.gateway_id(tmp_path, "barn-gw") == "barn-gw"
    with pytest.raises(ValueError, match="gateway id"):
        identity.gateway_id(tmp_path, "bad/id")


def test_pairing_lists_unknown_senders_boundedly() -> None:
    p = Pairing(["a"])
    assert p.allows("a") and not p.allows("b")
    for i in range(MAX_PENDING + 50):
        p.note_unknown(f"s{i}", "coap 127.0.0.1", 2)
    assert len(p.pending) == MAX_PENDING
    assert p.refused_readings == 2 * (MAX_PENDING + 50)
    p.pair("s1")
    assert p.allows("s1") and "s1" not in p.pending
    p.unpair("a")
    assert not p.allows("a")
    assert Pairing([], accept_any=True).allows("anything")
