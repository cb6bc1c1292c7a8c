"""FAT + ext4 + MBR assembly on a tiny tree with the real tools, read back with mtools and debugfs.

Also the reproducibility of the assembly: the same tree (made in another order, at another time) gives the
same image bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from roost.image import assemble, layout
from roost.image.layout import MIB

EPOCH = 1_700_000_000
TOOLS = ("mkfs.vfat", "mcopy", "mlabel", "mdir", "mtype", "mkfs.ext4", "debugfs", "sfdisk", "xz")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs dosfstools, mtools, e2fsprogs, fdisk and xz-utils (make deps as root)",
)
ROOT_UUID = "5e6f0c2a-9b1d-4f4e-8a43-726f6f737431"
SEED = "2b8f7d1e-6c3a-4e55-9d0b-726f6f737432"


def make_root(root: Path, *, reverse: bool = False) -> Path:
    files = [
        ("etc/hostname", b"roost\n", 0o644),
        ("opt/roost/slots/a/.roost-slot.json", b'{"version": "0.1.0"}\n', 0o644),
        ("opt/roost/slots/a/bin/roost", b"#!/bin/sh\n", 0o755),
        ("var/lib/roost/secret", b"x", 0o600),
        ("usr/share/a file with spaces", b"spaces", 0o644),
    ]
    for rel, data, mode in sorted(files, reverse=reverse):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        time.sleep(0.01)  # different ctimes for each file and each tree
    (root / "var/lib/roost").chmod(0o700)
    (root / "opt/roost/current").symlink_to("slots/a")
    return root


def make_boot(boot: Path) -> Path:
    (boot / "overlays").mkdir(parents=True)
    (boot / "cmdline.txt").write_text("console=ttyS0,115200 root=PARTUUID=526f6f73-02 rw\n")
    (boot / "overlays" / "README").write_text("overlays\n")
    (boot / "vmlinuz").write_bytes(os.urandom(0) + b"\x00kernel" * 1000)
    return boot


def assemble_image(tmp: Path, *, reverse: bool = False) -> tuple[Path, layout.Layout]:
    root = make_root(tmp / "root", reverse=reverse)
    boot = make_boot(tmp / "boot")
    assemble.clamp_times(root, EPOCH)
    assemble.clamp_times(boot, EPOCH)
    disk = layout.compute(0x526F6F73, 40 * MIB, 16 * MIB)
    fat = tmp / "boot.vfat"
    assemble.make_fat(fat, assemble.FatSpec(disk.boot.size, "ROOSTBOOT", "526F4254"), sorted(boot.iterdir()), EPOCH)
    ext4 = tmp / "root.ext4"
    spec = assemble.Ext4Spec(disk.root.size, "ROOSTROOT", ROOT_UUID, SEED, 256)
    skipped = assemble.make_ext4(ext4, spec, root, EPOCH)
    assert skipped == []
    img = tmp / "disk.img"
    assemble.write_image(img, disk, fat, ext4)
    return img, disk


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def debugfs(img: Path, offset: int, request: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", request, f"{img}?offset={offset}"], capture_output=True, check=True, text=True
    ).stdout


def test_image_reads_back(tmp_path: Path) -> None:
    img, disk = assemble_image(tmp_path)
    assert img.stat().st_size == disk.size
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    listing = subprocess.run(
        ["mdir", "-i", f"{img}@@{disk.boot.start}", "::/"], capture_output=True, check=True, text=True, env=env
    ).stdout
    assert "ROOSTBOOT" in listing and "526F-4254" in listing
    assert "cmdline" in listing and "overlays" in listing
    assert assemble.read_fat_file(img, "cmdline.txt", disk.boot.start).startswith(b"console=ttyS0,115200 root=")
    assert assemble.read_fat_file(img, "overlays/README", disk.boot.start) == b"overlays\n"

    off = disk.root.start
    assert debugfs(img, off, "cat /etc/hostname") == "roost\n"
    assert debugfs(img, off, 'cat "/usr/share/a file with spaces"') == "spaces"
    stat = debugfs(img, off, "stat /var/lib/roost/secret")
    assert "Mode:  0600" in stat
    assert f"ctime: 0x{EPOCH:08x}" in stat  # fixed by the debugfs pass
    assert f"mtime: 0x{EPOCH:08x}" in stat
    assert 'Fast link dest: "slots/a"' in debugfs(img, off, "stat /opt/roost/current")
    stats = debugfs(img, off, "stats")
    assert f"Filesystem UUID:          {ROOT_UUID}" in stats
    assert f"Directory Hash Seed:      {SEED}" in stats
    assert "Filesystem volume name:   ROOSTROOT" in stats
    fsck = subprocess.run(["e2fsck", "-fn", f"{tmp_path / 'root.ext4'}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    one, _ = assemble_image(tmp_path / "one")
    time.sleep(1.1)  # another second on the clock: nothing may depend on it
    two, _ = assemble_image(tmp_path / "two", reverse=True)
    assert sha256(one) == sha256(two)
    assert sha256(assemble.compress(one, level=1)) == sha256(assemble.compress(two, level=1))


def test_a_file_system_too_big_for_its_partition_is_refused(tmp_path: Path) -> None:
    disk = layout.compute(0x1, 4 * MIB, 4 * MIB)
    big = tmp_path / "big.fs"
    with big.open("wb") as fh:
        fh.truncate(8 * MIB)
    with pytest.raises(assemble.BuildError, match="does not fit partition 1"):
        assemble.write_image(tmp_path / "x.img", disk, big, big)
