"""Growing the root file system: the commands a device gets, where they come from, and sfdisk for real."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.firstboot.resize import (
    Command,
    ResizeError,
    RootPartition,
    SkipResizer,
    SystemResizer,
    find_root,
    plan,
    run_command,
)


def _sysfs(tmp_path: Path, disk: str, part: str, number: int) -> Path:
    """A /sys/class/block with ``part`` as partition ``number`` of ``disk`` (links into devices/, as the kernel's)."""
    device = tmp_path / "devices/platform/emmc" / disk / part
    device.mkdir(parents=True)
    (device / "partition").write_text(f"{number}\n")
    block = tmp_path / "class/block"
    block.mkdir(parents=True)
    (block / part).symlink_to(device)
    return block


class FakeSystem:
    """Answers findmnt like a Pi booted from its SD card; records everything else."""

    def __init__(self, source: str = "/dev/mmcblk0p2 ext4") -> None:
        self.source = source
        self.ran: list[Command] = []

    def __call__(self, command: Command) -> str:
        self.ran.append(command)
        return self.source + "\n" if command.argv[0] == "findmnt" else ""


def test_plan_grows_partition_then_kernel_view_then_file_system() -> None:
    commands = plan(RootPartition("/dev/mmcblk0p2", "/dev/mmcblk0", 2, "ext4"))
    assert [c.argv for c in commands] == [
        ("sfdisk", "--force", "--no-reread", "-N", "2", "/dev/mmcblk0"),
        ("partx", "--update", "--nr", "2", "/dev/mmcblk0"),
        ("resize2fs", "/dev/mmcblk0p2"),
    ]
    assert commands[0].stdin == ",+\n"


def test_system_resizer_on_a_pi(tmp_path: Path) -> None:
    system = FakeSystem()
    note = SystemResizer(runner=system, sysfs=_sysfs(tmp_path, "mmcblk0", "mmcblk0p2", 2)).expand()
    assert note == "root file system /dev/mmcblk0p2 grown to fill /dev/mmcblk0"
    assert [c.argv[0] for c in system.ran] == ["findmnt", "sfdisk", "partx", "resize2fs"]
    assert system.ran[1].argv[-1] == "/dev/mmcblk0" and system.ran[3].argv[-1] == "/dev/mmcblk0p2"


def test_usb_boot_disk_and_other_file_systems(tmp_path: Path) -> None:
    system = FakeSystem("/dev/sda2 ext4")
    assert find_root(system, _sysfs(tmp_path, "sda", "sda2", 2)) == RootPartition("/dev/sda2", "/dev/sda", 2, "ext4")
    system = FakeSystem("/dev/sda2 btrfs")
    note = SystemResizer(runner=system, sysfs=tmp_path / "class/block").expand()
    assert "btrfs, not ext4" in note and [c.argv[0] for c in system.ran] == ["findmnt"]


@pytest.mark.parametrize("source", ["overlay overlay", "", "/dev/root ext4"])
def test_root_that_is_not_a_partition(source: str, tmp_path: Path) -> None:
    (tmp_path / "class/block").mkdir(parents=True)
    with pytest.raises(ResizeError, match="not"):
        SystemResizer(runner=FakeSystem(source), sysfs=tmp_path / "class/block").expand()


def test_skip_says_why() -> None:
    assert SkipResizer("a directory-tree run").expand() == "root file system not grown: a directory-tree run"


def test_failing_command_is_a_resize_error() -> None:
    with pytest.raises(ResizeError, match="failed"):
        run_command(Command(("sh", "-c", "echo no space >&2; exit 3")))
    with pytest.raises(ResizeError, match="could not run"):
        run_command(Command(("/nonexistent/sfdisk",)))


@pytest.mark.skipif(shutil.which("sfdisk") is None, reason="sfdisk (util-linux fdisk) is not installed")
def test_sfdisk_command_grows_the_last_partition_of_a_disk_image(tmp_path: Path) -> None:
    image = tmp_path / "sd.img"
    with image.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    layout = "label: dos\nstart=2048, size=16384, type=c\nstart=18432, size=32768, type=83\n"
    subprocess.run(["sfdisk", "-q", str(image)], input=layout, text=True, check=True, timeout=30)
    grow = plan(RootPartition("/dev/none", str(image), 2, "ext4"))[0]
    run_command(grow)
    dump = subprocess.run(["sfdisk", "-d", str(image)], capture_output=True, text=True, check=True, timeout=30)
    second = next(line for line in dump.stdout.splitlines() if line.startswith(f"{image}2"))
    assert "start=       18432" in second and "size=      112640" in second  # to the last sector (131071)
    run_command(grow)  # nothing left to grow: the same table, no error
    again = subprocess.run(["sfdisk", "-d", str(image)], capture_output=True, text=True, check=True, timeout=30)
    assert again.stdout == dump.stdout
