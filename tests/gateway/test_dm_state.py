"""Device management on the gateway, without processes: desired state planned, applied and rolled back; the
network trial with a fake NetworkManager; wipe; the log ring never keeps a credential."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from gateway import config as gwconfig
from gateway.dm import wipe
from gateway.dm.logring import LogRing, scrub
from gateway.dm.network import FakeNetworkManager, NetworkChanger, NetworkError
from gateway.dm.state import DesiredState, plan


def _base(tmp_path: Path, extra: str = "") -> gwconfig.GatewayConfig:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw-t"\nstate_dir = "st"\n[adapters.coap]\nport = 0\n' + extra)
    return gwconfig.load(path)


def test_a_desired_config_is_applied_unit_by_unit_and_the_rest_rejected_with_reasons(tmp_path: Path) -> None:
    base = _base(tmp_path)
    p = plan(
        base,
        {
            "uplink": {"batch_max_delay_ms": 500, "inflight": 0},
            "adapters": {"coap": {"enabled": False}},
            "cloud": {"url": "http://elsewhere", "keepalive_s": 60},
            "gateway": {"state_dir": "/tmp/x"},
            "paired": ["th-1", "th-2"],
        },
    )
    assert p.applied == ["uplink.batch_max_delay_ms", "adapters.coap", "cloud.keepalive_s", "paired"]
    assert "between 1 and 1000" in p.rejected["uplink.inflight"]
    assert "not settable" in p.rejected["cloud.url"] and "not settable" in p.rejected["gateway.state_dir"]
    state = DesiredState(base.gateway.state_dir, rollback_after_s=5)
    state.overlay = p.overlay
    eff = state.effective(base)
    assert eff.uplink.batch_max_delay_ms == 500 and eff.uplink.inflight == base.uplink.inflight
    assert not eff.adapters.coap.enabled and eff.cloud.keepalive_s == 60 and eff.paired == ("th-1", "th-2")
    assert eff.gateway.state_dir == base.gateway.state_dir


async def test_a_config_that_never_reaches_the_cloud_is_rolled_back_and_not_tried_again(tmp_path: Path) -> None:
    base = _base(tmp_path)
    state = DesiredState(base.gateway.state_dir, rollback_after_s=0.5)
    _, changed = await state.apply(base, {"version": 1, "config": {"uplink": {"batch_max_delay_ms": 300}}})
    assert changed
    await state.probation(lambda: True, lambda why: None)  # reached the cloud: kept
    assert state.pending() is None and state.switches.version == 1
    _, changed = await state.apply(
        base, {"version": 2, "config": {"cloud": {"mqtt_url": "ws://127.0.0.1:9/mqtt"}}, "rules": "[x]\n"}
    )
    assert changed and state.pending() is not None
    assert (state.folder / "rules.toml").read_text() == "[x]\n"
    restarts: list[str] = []
    await state.probation(lambda: False, restarts.append)
    assert restarts == ["roll back"]
    assert state.overlay == {"uplink": {"batch_max_delay_ms": 300}} and state.switches.version == 1
    assert "2" in state.switches.failed and state.rolled_back is not None
    assert json.loads((state.folder / "desired.json").read_text()) == state.overlay  # on disk, atomically
    # The retained desired state of the failed version comes again on reconnect: not applied again.
    p, changed = await state.apply(base, {"version": 2, "config": {"cloud": {"mqtt_url": "ws://127.0.0.1:9/mqtt"}}})
    assert not changed and "rolled back" in p.rejected["*"]
    # A restarted gateway reads what it runs from disk.
    again = DesiredState(base.gateway.state_dir, rollback_after_s=0.5)
    again.load()
    assert again.overlay == state.overlay and again.switches.version == 1


async def test_lock_and_disabled_adapters_leave_them_out(tmp_path: Path) -> None:
    base = _base(tmp_path, '[[adapters.serial]]\npath = "/dev/ttyUSB0"\nprotocol = "roost"\n')
    state = DesiredState(base.gateway.state_dir, rollback_after_s=5)
    await state.set_switch(disabled=["serial"])
    eff = state.effective(base)
    assert eff.adapters.serial == () and eff.adapters.coap.enabled
    await state.set_switch(locked=True)
    eff = state.effective(base)
    assert not eff.adapters.coap.enabled and state.switches.features()["local-page"] is False


async def test_network_settings_that_lose_the_cloud_are_rolled_back(tmp_path: Path) -> None:
    nm = FakeNetworkManager(tmp_path, loses_cloud=["cafe-guest"])

    async def no_wait(_s: float) -> None:
        await asyncio.sleep(0)

    # The probe URL of a cloud that answers is not needed: the fake cuts the cloud off for cafe-guest.
    changer = NetworkChanger(nm, tmp_path, "http://127.0.0.1:9/.well-known/roost", rollback_after_s=0.2, sleep=no_wait)
    await nm.apply({"wifi": {"ssid": "office", "psk": "s3cret-passphrase"}})
    with pytest.raises(NetworkError, match="rolled back"):
        await changer.change({"wifi": {"ssid": "cafe-guest", "psk": "another-passphrase"}})
    assert (await nm.current())["wifi"]["ssid"] == "office", "the previous settings are active again"
    assert changer.rollbacks == 1 and not (tmp_path / "network-pending.json").exists()
    with pytest.raises(NetworkError, match=r"ipv4\.gateway"):
        await changer.change({"ipv4": {"method": "static", "address": "10.0.0.5/24", "gateway": "10.1.0.1"}})


async def test_a_trial_cut_short_by_a_restart_is_rolled_back_at_start(tmp_path: Path) -> None:
    nm = FakeNetworkManager(tmp_path, loses_cloud=["bad"])
    await nm.apply({"wifi": {"ssid": "bad", "psk": "whatever-long"}})
    (tmp_path / "network-pending.json").write_text(json.dumps({"previous": {"wifi": {"ssid": "good"}}, "until": 0}))
    await NetworkChanger(nm, tmp_path, "http://127.0.0.1:9/", rollback_after_s=5).resume()
    assert (await nm.current())["wifi"]["ssid"] == "good"


def test_wipe_overwrites_and_removes_every_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "identity").mkdir(parents=True)
    (state / "identity" / "key.pem").write_bytes(b"PRIVATE KEY" * 10)
    (state / "identity" / "tokens.json").write_text('{"refresh_token": "x"}')
    (state / "buffer.sqlite").write_bytes(b"rows")
    (state / "buffer.sqlite-wal").write_bytes(b"wal")
    outside = tmp_path / "gw.password"
    outside.write_text("pw")
    erased = wipe.erase(state, [outside])
    assert wipe.remaining(state) == [] and state.is_dir() and not outside.exists()
    assert "identity/key.pem" in erased and str(outside) in erased


def test_the_log_ring_is_bounded_and_never_keeps_a_credential() -> None:
    ring = LogRing(capacity=3)
    log = logging.getLogger("test.ring")
    log.addHandler(ring)
    log.setLevel(logging.INFO)
    try:
        jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJndy0xIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
        log.info("token %s", jwt)
        log.warning("refresh_token=abcdef0123456789 and password: hunter2hunter2")
        log.info("three")
        log.info("four")
        lines = ring.tail(10)
        assert len(lines) == 3 and lines[-1]["message"] == "four"
        text = json.dumps(lines)
        assert jwt not in text and "abcdef0123456789" not in text and "hunter2" not in text
        assert [r["message"] for r in ring.tail(10, level="WARNING")] == [
            "refresh_token=[redacted] and password: [redacted]"
        ]
    finally:
        log.removeHandler(ring)
    assert scrub("Authorization: Bearer abc.def.ghi-123") == "Authorization: Bearer [redacted]"
