"""Roost's units under a real systemd: the amd64 image booted in qemu, checked from inside by a oneshot unit.

Builds the image as tests/image does (cached), adds tests/systemd/image_check.sh as a unit that runs after
roost-gateway.service, writes a roost.toml with an emulated sensor and an unreachable cloud (the gateway
buffers), boots it, and reads the check's lines from the serial console: the gateway is active through
Type=notify with its STATUS line, its exposure score inside the image, its credentials (groups, one
capability, no new privileges, seccomp), journal fields, `systemd-analyze verify` in the image, polkit
refusing user roost anything but the four privileged units, roost-priv@restart restarting the gateway,
and the watchdog killing and restarting a gateway that stopped answering (SIGSTOP).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.systemd.rig import ROOT

TOOLS = ("mmdebstrap", "mcopy", "mkfs.vfat", "sfdisk", "mkfs.ext4", "debugfs", "xz", "qemu-system-x86_64")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
WANTS = "/etc/systemd/system/multi-user.target.wants"
TIMEOUT_S = float(os.environ.get("ROOST_IMAGE_BOOT_TIMEOUT", "900"))
CHECK_UNIT = """[Unit]
Description=Roost unit checks (test only)
After=roost-gateway.service multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/sbin/roost-check.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=10min
[Install]
WantedBy=multi-user.target
"""
ROOST_TOML = """timezone = "Etc/UTC"
[cloud]
url = "https://10.0.2.2:9"
tenant = "default"
[enrollment]
method = "claim-token"
claim_token = "not-a-real-token-0123456789"
[local]
pin = "246810"
[[sensors]]
kind = "i2c"
chip = "bme280"
id = "air-1"
interval_s = 5
emulated = true
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root (it unpacks files of other users)"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (make deps as root installs them)"),
]


def _accel() -> list[str]:
    if os.environ.get("ROOST_IMAGE_ACCEL") == "kvm" and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg", "-cpu", "max"]


def _debugfs(disk: Path, offset: int, commands: list[str], work: Path) -> None:
    script = work / "debugfs.cmds"
    script.write_text("\n".join(commands) + "\n")
    subprocess.run(["debugfs", "-w", "-f", str(script), f"{disk}?offset={offset}"], check=True, capture_output=True)


def _checks(console: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"ROOSTCHECK ([^:\n]+): ?([^\n]*)", console)}


def test_units_under_real_systemd(tmp_path: Path) -> None:
    from roost.image import assemble
    from roost.image.build import DEFAULT_CACHE, Options, build

    cache = Path(os.environ.get("ROOST_IMAGE_CACHE", DEFAULT_CACHE))
    image = build(
        Options(arch="amd64", out=tmp_path / "image", cache=cache, keep_raw=True, xz_level=1), say=lambda _t: None
    )
    assert image.image_raw is not None
    disk = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(image.image_raw), str(disk)], check=True)
    image.image_raw.unlink()
    with disk.open("r+b") as fh:
        fh.truncate(image.layout.size + 256 * 1024 * 1024)
    boot, root = image.layout.boot.start, image.layout.root.start
    (tmp_path / "roost.toml").write_text(ROOST_TOML)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{disk}@@{boot}", str(tmp_path / "roost.toml"), "::/roost.toml"],
        check=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
    )  # fmt: skip
    (tmp_path / "roost-check.service").write_text(CHECK_UNIT)
    _debugfs(disk, root, [
        f"write {ROOT / 'tests/systemd/image_check.sh'} /usr/local/sbin/roost-check.sh",
        f"write {tmp_path / 'roost-check.service'} /etc/systemd/system/roost-check.service",
        f"symlink {WANTS}/roost-check.service /etc/systemd/system/roost-check.service",
    ], tmp_path)  # fmt: skip
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    for name in ("vmlinuz", "initrd.img"):
        (kernel / name).write_bytes(assemble.read_fat_file(disk, name, boot))
    cmdline = assemble.read_fat_file(disk, "cmdline.txt", boot).decode().strip()
    console = tmp_path / "console.log"
    argv = [
        "qemu-system-x86_64", *_accel(), "-machine", "q35", "-m", "1024", "-smp", "2", "-nodefaults",
        "-display", "none", "-no-reboot", "-kernel", str(kernel / "vmlinuz"), "-initrd", str(kernel / "initrd.img"),
        "-append", cmdline, "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
        "-serial", f"file:{console}",
    ]  # fmt: skip
    guest = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and guest.poll() is None:
            if console.exists() and "ROOSTCHECK DONE" in console.read_text(errors="replace"):
                break
            time.sleep(2)
        text = console.read_text(errors="replace") if console.exists() else ""
    finally:
        if guest.poll() is None:
            guest.terminate()
            try:
                guest.wait(20)
            except subprocess.TimeoutExpired:
                guest.kill()
                guest.wait(5)
    got = _checks(text)
    tail = "\n".join(text.splitlines()[-40:])
    assert "DONE" in text and got, f"the checks did not finish within {TIMEOUT_S:.0f} s; console:\n{tail}"

    state = got["state"]
    assert "ActiveState=active" in state and "SubState=running" in state, got  # READY=1 arrived (Type=notify)
    assert "WatchdogUSec=30s" in state
    assert re.search(r"StatusText=(online|offline), \d+ adapters?, buffer \d+", state), state
    assert "Result=success" in got["firstboot"]
    score = float(re.search(r"exposure level for roost-gateway.service: (\d+\.\d+)", got["security"]).group(1))  # type: ignore[union-attr]
    print(f"\nroost-gateway.service exposure inside the image: {score}")
    assert score <= 2.5
    creds = got["groups"]
    assert "CapEff: 0000000000000400" in creds and "CapAmb: 0000000000000400" in creds  # CAP_NET_BIND_SERVICE only
    assert "NoNewPrivs: 1" in creds and "Seccomp: 2" in creds
    # First boot's drop-in trims the groups to the buses configured (I2C here): no dialout (gid 20).
    groups = re.search(r"Groups:\s*([\d ]*?)\s+CapEff", creds)
    assert groups is not None and groups.group(1).split() and "20" not in groups.group(1).split(), creds
    assert "CODE_FUNC=" in got["journal fields"]
    assert got["verify"].strip() == ""
    for refused in ("polkit bogus", "polkit stop", "polkit ssh.service"):
        assert "Interactive authentication required" in got[refused] or "Access denied" in got[refused], got[refused]
        assert not got[refused].rstrip().endswith("rc=0"), got[refused]
    assert got["polkit restart"].strip() == "rc=0", got["polkit restart"]
    before, after = re.search(r"pid (\d+) -> (\d+)", got["after restart"]).groups()  # type: ignore[union-attr]
    assert before != after and "ActiveState=active" in got["after restart"]
    assert "Result=success" in got["priv@restart"]
    assert "Watchdog timeout" in got["watchdog log"], got["watchdog log"]
    assert "NRestarts=1" in got["after watchdog"] and "ActiveState=active" in got["after watchdog"]
