"""Pairing BLE devices at run time: ``roost gateway pair|unpair|devices`` (in a subprocess) through the real
control socket to a BLE adapter replaying encrypted BTHome advertisements into a real Hub and buffer;
and the registry file when the daemon is not running, loaded by the adapter at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.adapters.ble import paired
from gateway.adapters.ble.adapter import BleAdapter
from gateway.adapters.ble.config import BleDeviceSection, BleSection
from gateway.adapters.ble.scanner import RecordedAdvert
from gateway.control import SOCKET_NAME, ControlError, ControlServer, handlers_for, request
from gateway.hub import Hub
from gateway.pairing import Pairing
from gateway.registry import FILE_NAME, Registry
from tests.gateway import ble_rig
from tests.gateway.ble_rig import KEY, OTHER_KEY, buffered, replay_kwargs, timed
from wire.reading import Reading

ROOT = Path(__file__).resolve().parents[2]
MAC1 = "A4:C1:38:0A:1B:2C"
MAC2 = "A4:C1:38:0A:1B:2D"
SECRETS = (KEY.hex(), KEY.hex().upper(), OTHER_KEY.hex(), OTHER_KEY.hex().upper())


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async for h in ble_rig.hub_at(tmp_path / "buf.sqlite"):
        yield h


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n{extra}')
    return cfg


async def _cli(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """``roost gateway ARGS`` in its own process: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roost.cli", "gateway", *args,
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _encrypted(address: str, n: int, *, key: bytes = KEY, step: float = 0.05) -> list[RecordedAdvert]:
    return timed(
        *(ble_rig.bthome(address, 20.0 + i / 100, packet_id=i % 256, key=key, counter=i + 1) for i in range(n)),
        step=step,
    )


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _daemon(adapter: BleAdapter, registry: Registry, sock: Path) -> AsyncIterator[None]:
    """The adapter and the control server, as the daemon runs them."""
    server = ControlServer(sock, handlers_for([adapter], registry))
    tasks = [asyncio.create_task(adapter.run()), asyncio.create_task(server.run())]
    try:
        await asyncio.wait_for(server.wait_started(), 5)
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_pair_at_run_time_bridges_an_encrypted_device_and_unpair_stops_it(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = _config(tmp_path, "[adapters.ble]\nenabled = true\n")
    state = tmp_path / "state"
    registry = Registry.in_state_dir(state)
    adapter = BleAdapter(
        BleSection(enabled=True), hub, Pairing([]), registry=registry, **replay_kwargs(_encrypted(MAC1, 800))
    )
    got: list[Reading] = []

    async def mine() -> list[Reading]:
        got.extend(r for r in await buffered(hub) if r.sensor == MAC1)
        return got

    async with _daemon(adapter, registry, state / SOCKET_NAME):
        # heard, not paired: listed for the technician, nothing bridged
        await _until(lambda: MAC1 in adapter.heard_unpaired)
        rc, out, err = await _cli("devices", "-c", str(cfg), "--kind", "ble", "--json")
        assert rc == 0, err
        assert [(d["id"], d["status"]) for d in json.loads(out)] == [(MAC1, "needs-key")]
        rc, out, err = await _cli("devices", "-c", str(cfg), "--kind", "ble")
        assert rc == 0 and "needs a key" in out, err
        assert await mine() == []

        rc, out, err = await _cli(
            "pair", "ble", "-c", str(cfg), "--mac", MAC1.lower(), "--key", KEY.hex(),
            "--name", "Porch", "--location", "Front door",
        )  # fmt: skip
        assert rc == 0, err
        assert "bind key set" in out and "bridged" in out
        deadline = time.monotonic() + 10
        while not any(r.metric == "temperature" for r in await mine()):
            assert time.monotonic() < deadline, "no readings after pairing"
            await asyncio.sleep(0.05)
        assert MAC1 not in adapter.heard_unpaired

        rc, listing, err = await _cli("devices", "-c", str(cfg), "--kind", "ble", "--json")
        assert rc == 0, err
        [entry] = json.loads(listing)
        assert (entry["id"], entry["name"], entry["location"], entry["status"]) == (
            MAC1,
            "Porch",
            "Front door",
            "paired",
        )
        assert entry["extra"] == {"bind_key_set": True}
        stored = json.loads((state / FILE_NAME).read_text())
        assert KEY.hex() in json.dumps(stored)  # kept in the registry file ...
        assert (state / FILE_NAME).stat().st_mode & 0o777 == 0o600  # ... which only the service user reads

        rc, out2, err = await _cli("unpair", "ble", "-c", str(cfg), "--mac", MAC1)
        assert rc == 0 and "unpaired" in out2, err
        await asyncio.sleep(0.1)  # a batch decoded before the unpair is published by now
        await mine()
        got.clear()
        refused = adapter.rejected["needs-key"]
        await _until(lambda: adapter.rejected["needs-key"] >= refused + 5)
        assert await mine() == []
        assert registry.get("ble", MAC1) is None
        rc, _out, err = await _cli("unpair", "ble", "-c", str(cfg), "--mac", MAC1)
        assert rc == 1 and "not paired" in err

    registry.close()
    for text in (out, listing, out2, err, caplog.text):
        assert not any(s in text for s in SECRETS)


async def test_bad_addresses_and_keys_are_refused_with_clear_errors(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = _config(tmp_path)
    state = tmp_path / "state"
    registry = Registry.in_state_dir(state)
    adapter = BleAdapter(BleSection(enabled=True), hub, Pairing([]), registry=registry, **replay_kwargs([]))
    sock = state / SOCKET_NAME
    async with _daemon(adapter, registry, sock):
        with pytest.raises(ControlError, match="not a Bluetooth address"):
            await request(sock, {"op": "pair", "kind": "ble", "id": "A4:C1:38:0A:1B"})
        with pytest.raises(ControlError, match="must be 32 hex characters") as err:
            await request(sock, {"op": "pair", "kind": "ble", "id": MAC1, "key": KEY.hex()[:24]})
        assert KEY.hex()[:24] not in str(err.value)
        with pytest.raises(ControlError, match="must be 32 hex characters"):
            await request(sock, {"op": "pair", "kind": "ble", "id": MAC1, "key": "zz" * 16})
        rc, _out, err_text = await _cli("pair", "ble", "-c", str(cfg), "--mac", "A4:C1:38:0A:1B:XX")
        assert rc == 1 and "--mac" in err_text and "not a Bluetooth address" in err_text
        rc, _out, err_text = await _cli("pair", "ble", "-c", str(cfg), "--mac", MAC1, "--key", OTHER_KEY.hex()[:30])
        assert rc == 1 and "--key must be 32 hex characters" in err_text
        assert OTHER_KEY.hex()[:30] not in err_text
        assert registry.devices("ble") == []
    registry.close()
    assert KEY.hex()[:24] not in caplog.text and OTHER_KEY.hex()[:30] not in caplog.text

    # a daemon whose BLE adapter is off records the device for later
    registry = Registry.in_state_dir(state)
    server = ControlServer(sock, handlers_for([], registry))
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.wait_started(), 5)
        result = await request(sock, {"op": "pair", "kind": "ble", "id": MAC2.lower(), "key": KEY.hex()})
        assert result["active"] is False and result["id"] == MAC2
        assert not any(s in json.dumps(result) for s in SECRETS)
        assert [d["id"] for d in await request(sock, {"op": "devices", "kind": "ble"})] == [MAC2]
        await request(sock, {"op": "unpair", "kind": "ble", "id": MAC2})
        assert registry.devices("ble") == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        registry.close()


async def test_paired_while_the_daemon_is_off_and_loaded_at_start_config_wins(hub: Hub, tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        f'[adapters.ble]\nenabled = true\n[[adapters.ble.devices]]\naddress = "{MAC2}"\nbind_key = "{KEY.hex()}"\n',
    )
    state = tmp_path / "state"
    # no daemon: the command line writes the registry file (the key from stdin, out of the shell's history)
    rc, out, err = await _cli("pair", "ble", "-c", str(cfg), "--mac", MAC1, "--key", "-", stdin=KEY.hex().encode())
    assert rc == 0, err
    assert "not running" in out and not any(s in out + err for s in SECRETS)
    assert (state / FILE_NAME).stat().st_mode & 0o777 == 0o600
    # gateway.toml lists MAC2: pairing it is refused, and a registry entry for it (here a wrong key) loses
    rc, _out, err = await _cli("pair", "ble", "-c", str(cfg), "--mac", MAC2, "--key", OTHER_KEY.hex())
    assert rc == 1 and "gateway.toml" in err
    rc, out, err = await _cli("devices", "-c", str(cfg), "--kind", "ble", "--json")
    assert rc == 0 and [d["id"] for d in json.loads(out)] == [MAC1], err
    registry = Registry.in_state_dir(state)
    paired.record(registry, MAC2, key=OTHER_KEY.hex(), name="", location="")

    section = BleSection(enabled=True, devices=(BleDeviceSection(address=MAC2, bind_key=KEY.hex()),))
    records = sorted([*_encrypted(MAC1, 5), *_encrypted(MAC2, 5)], key=lambda r: r.t)
    adapter = BleAdapter(section, hub, Pairing([]), registry=registry, **replay_kwargs(records))
    got: list[Reading] = []
    async with _daemon(adapter, registry, state / SOCKET_NAME):
        deadline = time.monotonic() + 10
        while {r.sensor for r in got if r.metric == "temperature"} != {MAC1, MAC2}:
            assert time.monotonic() < deadline, f"readings: {got}"
            got.extend(await buffered(hub))
            await asyncio.sleep(0.05)
        with pytest.raises(ControlError, match=r"gateway\.toml"):
            await request(state / SOCKET_NAME, {"op": "unpair", "kind": "ble", "id": MAC2})
    assert adapter.rejected["needs-key"] == 0 and adapter.rejected["bad-mic"] == 0
    registry.close()
