"""Zigbee wiring: config, lazy imports, radio libraries, the control socket and the CLI, backups."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.adapters.zigbee.config import ZigbeeSection
from gateway.control import SOCKET_NAME, ControlError, ControlServer, handlers_for, request
from gateway.registry import Registry
from tests.gateway.zigbee_rig import everything, running
from wire.typedconfig import ConfigValueError

ROOT = Path(__file__).resolve().parents[2]


def _imports(toml: str, tmp: Path) -> bool:
    """Build the daemon's adapters for ``toml`` in a fresh process; whether zigpy got imported."""
    (tmp / "gateway.toml").write_text(toml)
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from gateway import config, daemon
        from gateway.hub import Hub
        from gateway.pairing import Pairing
        cfg = config.load(Path({str(tmp / "gateway.toml")!r}))
        class Sink:
            async def append(self, readings): pass
        daemon._build_adapters(cfg, Hub(Sink()), Pairing(()))
        print('zigpy' in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_zigpy_imported_only_when_zigbee_is_enabled(tmp_path: Path) -> None:
    base = f'[gateway]\nstate_dir = "{tmp_path / "s"}"\n[adapters.coap]\nenabled = false\n'
    assert _imports(base, tmp_path) is False
    assert _imports(base + '[adapters.zigbee]\nenabled = true\nradio = "memory"\n', tmp_path) is True


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"enabled": True, "radio": "znp", "path": "ttyUSB0"}, "path"),
        ({"channel": 27}, "channel"),
        ({"pan_id": 0xFFFF}, "pan_id"),
        ({"permit_join_s": 300}, "permit_join_s"),
        ({"emulate_devices": True}, "emulate_devices"),
        ({"baudrate": 9600}, "baudrate"),
    ],
)
def test_config_refuses(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigValueError) as err:
        ZigbeeSection(**kwargs)  # type: ignore[arg-type]
    assert err.value.key_path == key


def test_missing_radio_library_names_the_extra() -> None:
    from gateway.adapters.zigbee.errors import RadioLibraryMissing
    from gateway.adapters.zigbee.radios import radio_class

    try:
        import zigpy_znp  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(RadioLibraryMissing, match=r"roost\[zigbee-znp\]"):
            radio_class("znp")
    else:  # pragma: no cover - only where the extra is installed
        assert radio_class("znp").__name__ == "ControllerApplication"
    assert radio_class("memory").__name__ == "MemoryRadio"


async def test_unreadable_backup_is_never_overwritten(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "zigbee-backup.json").write_text("{not json")
    with pytest.raises(TimeoutError):
        async with running(tmp_path, wait_s=1.0):
            pass
    assert (state / "zigbee-backup.json").read_text() == "{not json"


async def test_pair_and_devices_through_the_control_socket(tmp_path: Path) -> None:
    device = everything()
    async with running(tmp_path, devices=[device]) as rig:
        sock = tmp_path / "state" / SOCKET_NAME
        server = ControlServer(sock, handlers_for([rig.adapter], rig.adapter.registry))
        task = asyncio.create_task(server.run())
        try:
            await asyncio.wait_for(server.wait_started(), 5)
            assert (sock.stat().st_mode & 0o077) == 0
            opened = await request(
                sock, {"op": "pair", "kind": "zigbee", "seconds": 90, "name": "Hall", "location": "1F"}
            )
            assert opened["seconds"] == 90 and rig.radio.permits[-1] == 90
            assert rig.radio.join(device)
            ieee = str(device.ieee)
            await rig.until(lambda: (rig.adapter.registry.get("zigbee", ieee) or {}).get("model") is not None)
            listed = await request(sock, {"op": "devices", "kind": "zigbee"})
            assert [(d["id"], d["name"], d["location"], d["model"]) for d in listed] == [
                (ieee, "Hall", "1F", "RIG-ALL")
            ]
            await request(sock, {"op": "label", "kind": "zigbee", "id": ieee, "location": "2F"})
            assert rig.adapter.registry.get("zigbee", ieee)["location"] == "2F"  # type: ignore[index]
            with pytest.raises(ControlError, match="no 'ble' adapter"):
                await request(sock, {"op": "pair", "kind": "ble"})
            with pytest.raises(ControlError, match="0 to 254"):
                await request(sock, {"op": "pair", "kind": "zigbee", "seconds": 600})
            # the command line, in its own process, against the running daemon's socket
            cfg = tmp_path / "gateway.toml"
            cfg.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n')
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "roost.cli", "gateway", "devices", "-c", str(cfg), "--json",
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert json.loads(out)[0]["name"] == "Hall"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "roost.cli", "gateway", "pair", "zigbee", "-c", str(cfg), "--seconds", "30",
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert b"pairing open for 30 s" in out and rig.radio.permits[-1] == 30
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert not sock.exists()


def test_pair_without_a_daemon_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", "gateway", "pair", "zigbee", "-c", str(cfg)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 1 and "not running" in out.stderr


def test_registry_is_small_readable_json(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "devices.json", clock=lambda: 100.0)
    reg.upsert("zigbee", "00:11", name="A", model="M")
    reg.upsert("ble", "AA:BB", name="B")
    assert [d["id"] for d in reg.devices()] == ["AA:BB", "00:11"]
    assert reg.touch("zigbee", "00:11", 200.0) and not reg.touch("zigbee", "00:11", 300.0)  # once per interval
    with pytest.raises(ValueError, match="unknown registry field"):
        reg.upsert("zigbee", "00:11", colour="red")
    reg.close()
    doc = json.loads((tmp_path / "devices.json").read_text())
    assert {d["name"] for d in doc["devices"].values()} == {"A", "B"}
