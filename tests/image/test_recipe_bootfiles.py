"""The recipe (image/recipe.toml) and the boot files made from it: cmdline.txt, config.txt, fstab."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.image import bootfiles, recipe
from roost.image.tools import BuildError

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "image" / "recipe.toml"


@pytest.fixture(params=["amd64", "arm64"])
def rec(request: pytest.FixtureRequest) -> recipe.Recipe:
    return recipe.load(RECIPE, request.param, "bookworm")


def test_recipe_per_architecture() -> None:
    amd = recipe.load(RECIPE, "amd64", "bookworm")
    arm = recipe.load(RECIPE, "arm64", "bookworm")
    assert "linux-image-amd64" in amd.packages and "raspi-firmware" not in amd.packages
    assert {"linux-image-arm64", "raspi-firmware"} <= set(arm.packages)
    assert "non-free-firmware" in arm.components
    for r in (amd, arm):
        assert {"systemd", "systemd-sysv", "udev", "openssh-server", "python3", "python3-venv"} <= set(r.packages)
        assert list(r.packages) == sorted(set(r.packages))
    assert amd.base_key() != arm.base_key()
    assert amd.base_key() == recipe.load(RECIPE, "amd64", "bookworm").base_key()
    assert arm.sources()[0] == "deb http://deb.debian.org/debian bookworm main non-free-firmware"
    assert amd.sources()[2].startswith("deb http://deb.debian.org/debian-security bookworm-security ")


def test_cmdline_names_the_root_by_partuuid_and_ends_on_the_serial_console(rec: recipe.Recipe) -> None:
    line = bootfiles.cmdline(rec)
    assert line.endswith("\n") and line.count("\n") == 1  # the Pi's firmware reads one line
    words = line.split()
    assert "root=PARTUUID=526f6f73-02" in words
    consoles = [w for w in words if w.startswith("console=")]
    assert consoles[-1] == f"console={rec.console}"
    assert "rootwait" in words and "rw" in words
    assert not any(w.startswith("cma=") for w in words)  # a Pi 4 does not boot with raspi-firmware's cma=64M


def test_config_txt_boots_the_debian_kernel() -> None:
    text = bootfiles.config_txt("6.1.0-28-arm64")
    lines = text.splitlines()
    assert "arm_64bit=1" in lines and "enable_uart=1" in lines
    assert "kernel=vmlinuz-6.1.0-28-arm64" in lines
    assert "initramfs initrd.img-6.1.0-28-arm64" in lines
    assert "dtparam=i2c_arm=on" in lines and "dtparam=spi=on" in lines


def test_raspi_firmware_defaults_keep_the_same_root() -> None:
    rec = recipe.load(RECIPE, "arm64", "bookworm")
    text = bootfiles.raspi_firmware_defaults(rec)
    assert 'ROOTPART="PARTUUID=526f6f73-02"' in text
    assert "ttyS1,115200" in text
    assert "CMA=0" in text.splitlines()


def test_fstab_mounts_both_partitions_by_partuuid(rec: recipe.Recipe) -> None:
    rows = [line.split() for line in bootfiles.fstab(rec).splitlines() if not line.startswith("#")]
    assert rows[0][:3] == ["PARTUUID=526f6f73-02", "/", "ext4"]
    assert rows[1][:3] == ["PARTUUID=526f6f73-01", "/boot/firmware", "vfat"]
    assert "umask=0077" in rows[1][3]  # roost.toml holds the claim token and Wi-Fi password


def test_bad_recipes_are_named(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="unknown architecture"):
        recipe.load(RECIPE, "mips", "bookworm")
    with pytest.raises(BuildError, match="unsupported Debian suite"):
        recipe.load(RECIPE, "amd64", "sid")
    with pytest.raises(BuildError, match="recipe is missing"):
        recipe.load(tmp_path / "nope.toml", "amd64", "bookworm")
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.read_text().replace('disk_id = "0x526f6f73"', 'disk_id = "0xZZ"'))
    with pytest.raises(BuildError, match="disk_id"):
        recipe.load(bad, "amd64", "bookworm")
    bad.write_text(RECIPE.read_text().replace("root_uuid = ", 'root_uuid = "nope"\nx = '))
    with pytest.raises(BuildError, match="not a UUID"):
        recipe.load(bad, "amd64", "bookworm")
    bad.write_text("[image\n")
    with pytest.raises(BuildError, match="not valid TOML"):
        recipe.load(bad, "amd64", "bookworm")
