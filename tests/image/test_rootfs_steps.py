"""The Roost layer's file steps on a small fake root: units and their companions, boot files, the slot marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.dm.ota import slots
from roost.image import build, recipe, rootfs
from roost.image.tools import BuildError

ROOT = Path(__file__).resolve().parents[2]


def test_units_sysusers_tmpfiles_and_polkit_rules_go_where_systemd_reads_them(tmp_path: Path) -> None:
    src = tmp_path / "systemd"
    (src / "polkit").mkdir(parents=True)
    (src / "roost-gateway.service").write_text("[Service]\n")
    (src / "roost-priv@.service").write_text("[Service]\n")
    (src / "roost.sysusers.conf").write_text("u roost -\n")
    (src / "roost.tmpfiles.conf").write_text("d /var/lib/roost 0700 roost roost -\n")
    (src / "polkit" / "50-roost-priv.rules").write_text("// rule\n")
    (src / "README.md").write_text("not installed\n")
    tree = tmp_path / "tree"
    names = rootfs.install_units(tree, src)
    assert names == ["roost-gateway.service", "roost-priv@.service"]
    assert (tree / "usr/lib/systemd/system/roost-priv@.service").read_text() == "[Service]\n"
    assert (tree / "usr/lib/sysusers.d/roost.conf").read_text() == "u roost -\n"
    assert (tree / "usr/lib/tmpfiles.d/roost.conf").exists()
    assert (tree / "usr/share/polkit-1/rules.d/50-roost-priv.rules").exists()
    assert not list(tree.rglob("README.md"))
    assert rootfs.install_units(tmp_path / "t2", tmp_path / "missing") == []


def test_the_repository_units_include_the_two_the_image_enables(tmp_path: Path) -> None:
    names = rootfs.install_units(tmp_path, ROOT / "systemd")
    rec = recipe.load(ROOT / "image/recipe.toml", "amd64", "bookworm")
    assert set(rec.enable_units) <= set(names)


def test_amd64_boot_partition_gets_kernel_initrd_cmdline_and_example(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot/firmware").mkdir()
    for version in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
        (tree / f"boot/vmlinuz-{version}").write_bytes(b"kernel " + version.encode())
        (tree / f"boot/initrd.img-{version}").write_bytes(b"initrd " + version.encode())
    rec = recipe.load(ROOT / "image/recipe.toml", "amd64", "bookworm")
    staging = tmp_path / "boot"
    build.boot_files(tree, rec, staging, ROOT)
    assert sorted(p.name for p in staging.iterdir()) == ["cmdline.txt", "initrd.img", "roost.toml.example", "vmlinuz"]
    # version order, not text order: 6.1.0-10 is newer than 6.1.0-9
    assert (staging / "vmlinuz").read_bytes() == b"kernel 6.1.0-10-amd64"
    assert "root=PARTUUID=526f6f73-02" in (staging / "cmdline.txt").read_text()
    assert "[cloud]" in (staging / "roost.toml.example").read_text()


def test_no_kernel_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(BuildError, match="no kernel"):
        rootfs.kernel_version(tmp_path)


def test_requirement_and_wheelhouse_key(tmp_path: Path) -> None:
    assert rootfs._requirement("roost-0.1.0-py3-none-any.whl", ("ble", "zigbee")) == "roost[ble,zigbee]==0.1.0"
    assert rootfs._requirement("roost-0.1.0-py3-none-any.whl", (), path="/tmp/r.whl") == "roost @ file:///tmp/r.whl"
    rec = recipe.load(ROOT / "image/recipe.toml", "amd64", "bookworm")
    pins = tmp_path / "constraints.txt"
    pins.write_text("cbor2==6.3.0\n")
    key = rootfs.wheelhouse_key(rec, pins, ["cbor2>=5.6"])
    assert key == rootfs.wheelhouse_key(rec, pins, ["cbor2>=5.6"])
    pins.write_text("cbor2==6.3.1\n")
    assert rootfs.wheelhouse_key(rec, pins, ["cbor2>=5.6"]) != key


def test_the_slot_marker_is_one_the_boot_check_accepts(tmp_path: Path) -> None:
    """What install_roost writes in /opt/roost (marker, current link) is a complete, active slot a."""
    root = tmp_path / "opt/roost"
    (root / "slots/a/bin").mkdir(parents=True)
    (root / "slots/a/bin/python").write_text("")
    marker = {"version": "0.1.0", "installed": 1_700_000_000.0, "image": True}
    (root / "slots/a/.roost-slot.json").write_text(json.dumps(marker))
    (root / "current").symlink_to("slots/a")
    assert slots.active_slot(root) == "a"
    info = slots.slot_info(root, "a")
    assert info is not None and info["version"] == "0.1.0"


def test_pi_boot_partition_gets_what_raspi_firmware_put_there(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    firmware = tree / "boot/firmware"
    firmware.mkdir(parents=True)
    kver = "6.1.0-28-arm64"
    (tree / f"boot/vmlinuz-{kver}").write_bytes(b"kernel")
    for name in ("start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", f"vmlinuz-{kver}", f"initrd.img-{kver}",
                 "config.txt", "cmdline.txt"):  # fmt: skip
        (firmware / name).write_text(f"from raspi-firmware: {name}\n")
    rec = recipe.load(ROOT / "image/recipe.toml", "arm64", "bookworm")
    staging = tmp_path / "boot"
    build.boot_files(tree, rec, staging, ROOT)
    assert list(firmware.iterdir()) == []  # a mount point in the image: nothing hidden under it
    names = {p.name for p in staging.iterdir()}
    assert {"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", f"vmlinuz-{kver}", f"initrd.img-{kver}"} <= names
    assert f"kernel=vmlinuz-{kver}" in (staging / "config.txt").read_text().splitlines()
    cmdline = (staging / "cmdline.txt").read_text()
    assert "root=PARTUUID=526f6f73-02" in cmdline and "console=ttyS1,115200" in cmdline
    assert "roost.toml.example" in names
