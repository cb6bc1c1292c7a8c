"""The unit files, sysusers/tmpfiles and polkit rule, checked by the real tools (systemd-analyze, node).

This machine does not run systemd as PID 1, so `systemd-analyze verify` runs against a temporary root
holding the host's own unit directory, the units under test and stub executables at the paths the
units start (/opt/roost/current/bin/roost, /usr/bin/python3, /bin/sh).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import config as gwconfig
from gateway import systemd_units
from tests.systemd.rig import ROOT

UNITS = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (make deps installs it)")
HOST_UNITS = Path("/usr/lib/systemd/system")
UNIT_NAMES = ["roost-gateway.service", "roost-firstboot.service", "roost-priv@reboot.service", "roost-cloud.service"]


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture
def image_root(tmp_path: Path) -> Iterator[Path]:
    """A root with the host's units, Roost's units and stubs for what they execute."""
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    if not HOST_UNITS.is_dir():
        pytest.skip(f"no {HOST_UNITS} on this machine to stand in for the image's units")
    shutil.copytree(HOST_UNITS, units, symlinks=True)
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, units / unit.name)
    for exe in ("opt/roost/current/bin/roost", "usr/bin/python3", "bin/sh", "usr/bin/systemctl"):
        _stub(root / exe)
    yield root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", f"--root={root}", "--man=no", "--generators=no", unit],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_analyze
@pytest.mark.parametrize("unit", UNIT_NAMES)
def test_systemd_analyze_verify_passes(image_root: Path, unit: str) -> None:
    done = verify(image_root, unit)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr + done.stdout


@needs_analyze
def test_verify_would_catch_a_bad_unit(image_root: Path) -> None:
    units = image_root / "usr/lib/systemd/system"
    text = (units / "roost-gateway.service").read_text()
    (units / "roost-gateway.service").write_text(text.replace("UMask=0077", "UMask=0077\nProtectSystemm=strict"))
    done = verify(image_root, "roost-gateway.service")
    assert "Unknown key" in done.stderr
    (image_root / "opt/roost/current/bin/roost").unlink()
    done = verify(image_root, "roost-gateway.service")
    assert done.returncode != 0 and "/opt/roost/current/bin/roost" in done.stderr


@needs_analyze
def test_the_bus_groups_dropin_verifies_on_top_of_the_unit(image_root: Path, tmp_path: Path) -> None:
    cfg = gwconfig.loads('[[adapters.i2c]]\nchip = "bme280"\nsensor = "air-1"\n', base_dir=tmp_path)
    dropin = image_root / str(systemd_units.DROPIN_PATH).lstrip("/")
    dropin.parent.mkdir(parents=True)
    dropin.write_text(systemd_units.groups_dropin(cfg))
    done = verify(image_root, "roost-gateway.service")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@needs_analyze
def test_gateway_unit_exposure_is_within_the_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    level = systemd_units.exposure(UNITS / "roost-gateway.service")
    with capsys.disabled():
        print(f"\nroost-gateway.service exposure: {level:.1f} (ceiling {systemd_units.CEILING})")
    assert 0 < level <= systemd_units.CEILING


@needs_analyze
def test_score_command_prints_and_fails_above_the_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    assert systemd_units.main(["score", str(UNITS / "roost-gateway.service")]) == 0
    assert capsys.readouterr().out.startswith("roost-gateway.service exposure: ")
    # The first-boot unit runs as root with few restrictions: far above the gateway's ceiling.
    assert systemd_units.main(["score", str(UNITS / "roost-firstboot.service")]) == 1
    assert "ABOVE THE CEILING" in capsys.readouterr().out
    assert systemd_units.main(["score", str(UNITS / "no-such.service")]) == 1
    assert "no such unit file" in capsys.readouterr().err


def test_gateway_unit_keeps_what_the_image_and_ota_rely_on() -> None:
    text = (UNITS / "roost-gateway.service").read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "Restart=always",
        "User=roost",
        "ExecStartPre=/usr/bin/python3 -I /opt/roost/boot-check.py --root /opt/roost --max-boots 3",
        "ExecStart=/opt/roost/current/bin/roost gateway run --config /etc/roost/gateway.toml",
        "ReadWritePaths=/var/lib/roost /opt/roost",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "MemoryDenyWriteExecute=yes",
        "SupplementaryGroups=dialout i2c spi bluetooth",
    ):
        assert line in text.splitlines(), line
    firstboot = (UNITS / "roost-firstboot.service").read_text().splitlines()
    assert "ConditionPathExists=!/var/lib/roost/firstboot.done" in firstboot
    assert "ExecStart=/opt/roost/current/bin/roost firstboot run --boot-dir /boot/firmware" in firstboot
    assert any(x.startswith("Before=") and "roost-gateway.service" in x for x in firstboot)
    cloud = (UNITS / "roost-cloud.service").read_text().splitlines()
    assert "ExecStart=/opt/roost/current/bin/roost cloud serve --config /etc/roost/cloud.toml" in cloud


# -- the privileged helper and its polkit rule ---------------------------------------------------------------


def _priv_script() -> list[str]:
    """roost-priv@.service's ExecStart as argv (continuation lines joined, systemd's $$ unescaped)."""
    lines = (UNITS / "roost-priv@.service").read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("ExecStart="))
    cmd = ""
    for line in lines[start:]:
        cmd += line[:-1] if line.endswith("\\") else line
        if not line.endswith("\\"):
            break
    return shlex.split(cmd.removeprefix("ExecStart=").replace("$$", "$"))


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reboot", "--no-block reboot"),
        ("restart", "--no-block restart roost-gateway.service"),
        ("ssh-on", "enable --now ssh.service"),
        ("ssh-off", "disable --now ssh.service"),
    ],
)
def test_each_privileged_action_asks_systemd_for_one_thing(tmp_path: Path, action: str, expected: str) -> None:
    record = tmp_path / "systemctl.args"
    fake = tmp_path / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    fake.chmod(0o755)
    argv = [a.replace("/usr/bin/systemctl", str(fake)).replace("%i", action) for a in _priv_script()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    assert record.read_text().strip() == expected


def test_an_unknown_privileged_action_does_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "systemctl"
    fake.write_text(f"#!/bin/sh\ntouch {tmp_path / 'called'}\n")
    fake.chmod(0o755)
    argv = [a.replace("/usr/bin/systemctl", str(fake)).replace("%i", "rm-rf") for a in _priv_script()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 2 and "unknown action rm-rf" in done.stderr
    assert not (tmp_path / "called").exists()


NODE = shutil.which("node")
POLKIT_HARNESS = """
const fs = require("fs");
let rule = null;
const polkit = {Result: {YES: "yes", NO: "no", NOT_HANDLED: null}, addRule: (f) => { rule = f; }};
eval(fs.readFileSync(process.argv[2], "utf8"));
const out = [];
for (const [user, id, verb, unit] of JSON.parse(process.argv[3])) {
  const action = {id, lookup: (k) => ({verb, unit})[k]};
  out.push(rule(action, {user}));
}
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed: the polkit rule (JavaScript) cannot be run")
def test_polkit_lets_roost_start_only_the_four_actions(tmp_path: Path) -> None:
    import json

    manage = "org.freedesktop.systemd1.manage-units"
    cases = [
        ("roost", manage, "start", "roost-priv@reboot.service", "yes"),
        ("roost", manage, "start", "roost-priv@restart.service", "yes"),
        ("roost", manage, "start", "roost-priv@ssh-on.service", "yes"),
        ("roost", manage, "start", "roost-priv@ssh-off.service", "yes"),
        ("roost", manage, "stop", "roost-priv@reboot.service", None),
        ("roost", manage, "start", "roost-priv@rm-rf.service", None),
        ("roost", manage, "start", "ssh.service", None),
        ("roost", "org.freedesktop.login1.reboot", "start", "roost-priv@reboot.service", None),
        ("mallory", manage, "start", "roost-priv@reboot.service", None),
    ]
    harness = tmp_path / "harness.js"
    harness.write_text(POLKIT_HARNESS)
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(harness), str(UNITS / "polkit/50-roost-priv.rules"), json.dumps([c[:4] for c in cases])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == [c[4] for c in cases]


@pytest.mark.skipif(NODE is None, reason="node is not installed: the polkit rule (JavaScript) cannot be run")
def test_polkit_lets_roost_change_network_connections_and_nothing_else(tmp_path: Path) -> None:
    import json

    cases = [
        ("roost", "org.freedesktop.NetworkManager.settings.modify.system", "", "", "yes"),
        ("roost", "org.freedesktop.NetworkManager.network-control", "", "", "yes"),
        ("roost", "org.freedesktop.NetworkManager.wifi.share.open", "", "", None),
        ("roost", "org.freedesktop.NetworkManager.sleep-wake", "", "", None),
        ("roost", "org.freedesktop.systemd1.manage-units", "start", "ssh.service", None),
        ("mallory", "org.freedesktop.NetworkManager.settings.modify.system", "", "", None),
    ]
    harness = tmp_path / "harness.js"
    harness.write_text(POLKIT_HARNESS)
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(harness), str(UNITS / "polkit/50-roost-network.rules"), json.dumps([c[:4] for c in cases])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == [c[4] for c in cases]


# -- sysusers.d and tmpfiles.d -------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)
def test_sysusers_and_tmpfiles_make_the_user_and_the_state_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(UNITS / "roost.sysusers.conf")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert users["roost"][5:] == ["/var/lib/roost", "/usr/sbin/nologin"]
    uid = int(users["roost"][2])
    assert 0 < uid < 1000, "a system user"
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert groups["dialout"][2] == "20", "an existing group is kept as it is"
    assert {"i2c", "spi", "bluetooth", "roost"} <= set(groups)
    subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(UNITS / "roost.tmpfiles.conf")],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    state = (root / "var/lib/roost").stat()
    assert (state.st_mode & 0o7777, state.st_uid) == (0o700, uid)
    assert ((root / "opt/roost").stat().st_uid, (root / "opt/roost").stat().st_mode & 0o7777) == (uid, 0o755)
    etc = (root / "etc/roost").stat()
    assert (etc.st_uid, etc.st_gid, etc.st_mode & 0o7777) == (0, int(groups["roost"][2]), 0o750)


# -- the bus groups drop-in ----------------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> gwconfig.GatewayConfig:
    return gwconfig.loads(text, base_dir=tmp_path)


def test_groups_dropin_keeps_only_the_configured_buses(tmp_path: Path) -> None:
    none = systemd_units.groups_dropin(_config(tmp_path, ""))
    assert none.splitlines()[-2:] == ["[Service]", "SupplementaryGroups="]
    serial_ble = _config(tmp_path, '[adapters.ble]\nenabled = true\n[[adapters.serial]]\npath = "/dev/ttyUSB0"\n')
    assert systemd_units.bus_groups(serial_ble) == ["dialout", "bluetooth"]
    text = systemd_units.groups_dropin(serial_ble)
    assert text.splitlines()[-3:] == ["[Service]", "SupplementaryGroups=", "SupplementaryGroups=dialout bluetooth"]
    chips = _config(
        tmp_path,
        '[[adapters.i2c]]\nchip = "bme280"\nsensor = "air-1"\n[[adapters.spi]]\nchip = "mcp3008"\n',
    )
    assert systemd_units.bus_groups(chips) == ["i2c", "spi"]
    zigbee = _config(tmp_path, '[adapters.zigbee]\nenabled = true\npath = "/dev/ttyACM0"\n')
    assert systemd_units.bus_groups(zigbee) == ["dialout"]


def test_score_without_systemd_analyze_is_a_note_not_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(systemd_units.NoSystemdAnalyze):
        systemd_units.exposure(UNITS / "roost-gateway.service", systemd_analyze="no-such-systemd-analyze")
