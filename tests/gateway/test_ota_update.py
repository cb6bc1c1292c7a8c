"""Software updates into real A/B virtual environments: install, switch, confirm, roll back, survive kills.

The "new version" in these bundles is a tiny hand-made wheel named roost (module ``fakegw``), so pip
installs it offline in about half a second; the test stands in for systemd by running the boot check and
then ``current/bin/fakegw`` in a loop. Each kill is a SIGKILL at a named checkpoint (``ROOST_OTA_CRASH_AT``),
the updater's view of a power cut; the file system itself is not cut (fsync ordering is not shown here).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.dm.commands import Dispatcher
from gateway.dm.ota import command, health, slots
from gateway.dm.ota.config import UpdateSection
from gateway.dm.ota.updater import CHECKPOINTS, CRASH_ENV, install_slot
from tests.gateway.ota_rig import Keys, RangeServer, make_bundle, make_wheel
from wire.commands import Command

pytestmark = pytest.mark.slow
ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An update root whose slot a holds version 1.0, current and confirmed (what the image ships)."""
    r = tmp_path / "opt-roost"
    install_slot(r, "a", make_wheel(tmp_path / "wheels-1.0", "1.0").parent, "1.0")
    slots.switch(r, "a")
    return r


@pytest.fixture
def served(tmp_path: Path, keys: Keys) -> Any:
    folder = tmp_path / "served"
    folder.mkdir()
    make_bundle(folder, keys, "2.0", name="good.bundle")
    with RangeServer(folder) as srv:
        yield srv


def _update(root: Path, source: str, keys: Keys, *extra: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    argv = [
        sys.executable, "-m", "gateway.dm.ota", "update", "--json", "--root", str(root),
        "--public-key", str(keys.pub_file), "--hardware", "amd64", "--confirm-deadline-s", "60", *extra, source,
    ]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=ROOT_DIR, env=dict(os.environ, **(env or {}))
    )
    lines = out.stdout.strip().splitlines()
    return out.returncode, json.loads(lines[-1]) if lines else out.stderr


def _running_version(root: Path) -> str:
    """What ``current`` starts: its entry point prints the version."""
    out = subprocess.run([str(root / "current" / "bin" / "fakegw")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_good_bundle_installs_into_the_other_slot_switches_and_confirms(root: Path, keys: Keys, served: Any) -> None:
    code, out = _update(root, f"{served.base}/good.bundle", keys)
    assert code == 0 and out["ok"], out
    assert out["result"]["version"] == "2.0" and out["result"]["slot"] == "b"
    assert slots.active_slot(root) == "b" and _running_version(root) == "2.0"
    state = slots.load_state(root)
    assert state["phase"] == "switched" and state["update"]["from_slot"] == "a"
    assert slots.boot_check(root)["action"] == "probation start 1 of 3"
    assert slots.confirm(root)["phase"] == "confirmed"
    assert slots.status(root)["version"] == "2.0" and slots.status(root)["slots"]["a"]["version"] == "1.0"
    assert not (root / "staging").exists() and not (root / "downloads" / "bundle.tar").exists()


def test_refused_bundles_touch_nothing(root: Path, keys: Keys, served: Any, tmp_path: Path) -> None:
    make_bundle(served.folder, keys, "3.0", platform="linux_aarch64", name="arm.bundle")
    make_bundle(served.folder, keys, "0.9", name="old.bundle")
    make_bundle(served.folder, Keys(tmp_path), "4.0", name="forged.bundle")
    cases = [
        ("forged.bundle", (), "bad-signature"),
        ("arm.bundle", (), "wrong-hardware"),
        ("old.bundle", (), "lower-version"),
        ("good.bundle", ("--sha256", "0" * 64), "hash-mismatch"),
        ("missing.bundle", (), "download"),
    ]
    for name, extra, reason in cases:
        code, out = _update(root, f"{served.base}/{name}", keys, *extra)
        assert code == 3 and out["reason"] == reason, (name, out)
        assert slots.active_slot(root) == "a" and _running_version(root) == "1.0"
        state = slots.load_state(root)
        assert state["phase"] == "failed" and state["reason"].startswith(reason)
    assert not (root / "slots" / "b").exists()  # nothing was installed for a refused bundle
    code, out = _update(root, f"{served.base}/old.bundle", keys, "--force")
    assert code == 0 and _running_version(root) == "0.9"


def test_a_version_that_never_confirms_is_rolled_back(root: Path, keys: Keys, served: Any) -> None:
    assert _update(root, f"{served.base}/good.bundle", keys)[0] == 0
    # The supervisor loop standing in for systemd: ExecStartPre boot check, then the service (which never confirms).
    started: list[str] = []
    for _ in range(5):
        slots.boot_check(root, max_boots=2)
        started.append(_running_version(root))
        if slots.load_state(root)["phase"] == "rolled-back":
            break
    assert started == ["2.0", "2.0", "1.0"]
    state = slots.load_state(root)
    assert slots.active_slot(root) == "a" and "started 2 times without confirming" in state["reason"]
    assert state["history"][-1]["outcome"] == "rolled-back"
    # and the next update goes into slot b again
    make_bundle(served.folder, keys, "2.1", name="fixed.bundle")
    assert _update(root, f"{served.base}/fixed.bundle", keys)[0] == 0 and _running_version(root) == "2.1"


def test_past_its_deadline_an_unconfirmed_version_is_rolled_back(root: Path, keys: Keys, served: Any) -> None:
    assert _update(root, f"{served.base}/good.bundle", keys)[0] == 0
    deadline = slots.load_state(root)["update"]["deadline"]
    assert slots.boot_check(root, now=deadline - 1)["slot"] == "b"
    out = slots.boot_check(root, now=deadline + 1)
    assert out == {"slot": "a", "phase": "rolled-back", "action": "rolled back to slot a"}
    assert "within its deadline" in slots.load_state(root)["reason"] and _running_version(root) == "1.0"
    assert slots.confirm(root)["phase"] == "rolled-back"  # a late confirmation changes nothing


@pytest.mark.parametrize("point", CHECKPOINTS)
def test_killed_at_any_step_the_gateway_comes_back_on_one_version(
    root: Path, keys: Keys, served: Any, point: str
) -> None:
    code, _out = _update(root, f"{served.base}/good.bundle", keys, env={CRASH_ENV: point})
    assert code == -signal.SIGKILL
    _assert_bootable(root)
    slots.confirm(root)  # the version that came up (if it is the new one) confirms itself
    code, out = _update(root, f"{served.base}/good.bundle", keys, "--force")  # and it can still update
    assert code == 0 and _running_version(root) == "2.0", out


def test_killed_during_pip_install_the_gateway_comes_back_on_the_old_version(
    root: Path, keys: Keys, served: Any
) -> None:
    argv = [
        sys.executable, "-m", "gateway.dm.ota", "update", "--root", str(root), "--public-key", str(keys.pub_file),
        "--hardware", "amd64", f"{served.base}/good.bundle",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and slots.load_state(root)["phase"] != "installing":
            time.sleep(0.005)
        assert slots.load_state(root)["phase"] == "installing"
        time.sleep(0.15)  # into venv creation or pip
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    out = _assert_bootable(root)
    assert out["slot"] == "a" and slots.load_state(root)["phase"] == "failed"


def _assert_bootable(root: Path) -> dict[str, Any]:
    out = slots.boot_check(root)
    slot = slots.active_slot(root)
    assert slot is not None
    info = slots.slot_info(root, slot)
    assert info is not None, f"current points at an incomplete slot {slot}"
    assert _running_version(root) == info["version"]
    state = slots.load_state(root)
    assert state["phase"] in {"failed", "switched", "idle"}, state
    if state["phase"] == "switched":
        assert slot == state["update"]["to_slot"] == "b"
    else:
        assert slot == "a"
    json.dumps(state)
    return out


async def test_the_dm_update_command_answers_then_restarts(root: Path, keys: Keys, served: Any) -> None:
    cfg = UpdateSection(root=root, public_key_file=keys.pub_file, hardware="amd64", restart_delay_s=0.1)
    agent = Dispatcher()
    restarts: list[float] = []
    command.register(agent, cfg, restart=lambda: restarts.append(time.time()))

    async def send(rid: str, name: str, args: dict[str, Any]) -> Any:
        result = await agent.handle(f"request-{rid}", Command(command=name, args=args).encode())
        assert result is not None
        return result

    bad = await send("r1", "update", {"url": f"{served.base}/nope.bundle"})
    assert bad.status == "error" and bad.error.startswith("download:") and "404" in bad.error
    invalid = await send("r2", "update", {"url": "file:///etc/passwd"})
    assert invalid.status == "invalid"
    ok = await send("r3", "update", {"url": f"{served.base}/good.bundle"})
    assert ok.status == "ok" and ok.result["version"] == "2.0" and ok.result["from_version"] == "1.0", ok
    await asyncio.sleep(0.3)
    assert len(restarts) == 1
    st = await send("r4", "update-status", {})
    assert st.result["current"] == "b" and st.result["phase"] == "switched"
    busy = await send("r5", "update", {"url": f"{served.base}/good.bundle", "force": True})
    assert busy.status == "error" and "probation" in (busy.error or "")


async def test_the_new_version_confirms_itself_once_connected_with_adapters_running(
    root: Path, keys: Keys, served: Any
) -> None:
    assert _update(root, f"{served.base}/good.bundle", keys)[0] == 0
    adapter = asyncio.create_task(asyncio.sleep(3600))
    connected = False

    def up() -> bool:
        return connected

    waiter = asyncio.create_task(health.confirm_when_healthy(root, connected=up, parts=[adapter], healthy_for_s=0.6))
    await asyncio.sleep(1.2)
    assert slots.load_state(root)["phase"] == "switched"  # not connected yet: no confirmation
    connected = True
    await asyncio.wait_for(waiter, 5)
    assert slots.load_state(root)["phase"] == "confirmed"
    adapter.cancel()
    # nothing on probation: returns at once
    await asyncio.wait_for(health.confirm_when_healthy(root, connected=up, parts=[]), 1)


async def test_a_new_version_that_stays_unhealthy_ends_itself_at_the_deadline(
    root: Path, keys: Keys, served: Any
) -> None:
    assert _update(root, f"{served.base}/good.bundle", keys)[0] == 0
    deadline = slots.load_state(root)["update"]["deadline"]
    with pytest.raises(health.NotHealthy):
        await health.confirm_when_healthy(
            root, connected=lambda: False, parts=[], clock=lambda: deadline + 1, healthy_for_s=0
        )
    assert slots.load_state(root)["phase"] == "switched"
    assert slots.boot_check(root)["slot"] == "b"  # the restart that follows: past the deadline? not by the real clock
    assert slots.boot_check(root, now=deadline + 1)["slot"] == "a"
