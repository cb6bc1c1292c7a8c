"""The partition table: offsets, sizes, alignment, PARTUUIDs, and what sfdisk makes of the script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from roost.image import layout
from roost.image.layout import MIB, SECTOR

DISK_ID = 0x526F6F73


def test_partitions_are_aligned_and_do_not_overlap() -> None:
    disk = layout.compute(DISK_ID, 256 * MIB, 1000 * MIB + 1, 4 * MIB)
    assert disk.boot.start == 4 * MIB
    assert disk.boot.size == 256 * MIB
    assert disk.root.start == 260 * MIB
    assert disk.root.size == 1004 * MIB  # 1000 MiB and one byte, rounded up to the next 4 MiB
    assert disk.size == disk.root.end == 1264 * MIB
    for p in (disk.boot, disk.root):
        assert p.start % (4 * MIB) == 0 and p.size % (4 * MIB) == 0
    assert disk.boot.end <= disk.root.start


def test_partuuids_are_the_disk_signature_and_the_index() -> None:
    disk = layout.compute(DISK_ID, 64 * MIB, 64 * MIB)
    assert disk.boot.partuuid == "526f6f73-01"
    assert disk.root.partuuid == "526f6f73-02"
    assert disk.boot.bootable and not disk.root.bootable
    assert (disk.boot.type, disk.root.type) == ("c", "83")


def test_sfdisk_script_in_sectors() -> None:
    disk = layout.compute(DISK_ID, 256 * MIB, 512 * MIB)
    script = disk.sfdisk_script()
    assert "label: dos\nlabel-id: 0x526f6f73\nunit: sectors\n" in script
    assert f"start={4 * MIB // SECTOR}, size={256 * MIB // SECTOR}, type=c, bootable" in script
    assert f"start={260 * MIB // SECTOR}, size={512 * MIB // SECTOR}, type=83" in script


@pytest.mark.parametrize(
    ("boot", "root", "alignment"),
    [(0, MIB, 4 * MIB), (MIB, -1, 4 * MIB), (MIB, MIB, 1000), (MIB, MIB, 0)],
)
def test_bad_sizes_are_refused(boot: int, root: int, alignment: int) -> None:
    with pytest.raises(ValueError):
        layout.compute(DISK_ID, boot, root, alignment)


def test_too_big_for_mbr_and_bad_disk_id() -> None:
    with pytest.raises(ValueError, match="2 TiB"):
        layout.compute(DISK_ID, MIB, 3 * 1024 * 1024 * MIB)
    with pytest.raises(ValueError, match="32 bits"):
        layout.compute(2**32, MIB, MIB)


def test_root_size_leaves_room_for_overhead_and_free_space() -> None:
    size = layout.root_fs_size(700 * MIB, 20000, 512 * MIB)
    assert size % (4 * MIB) == 0
    assert size >= 700 * MIB + 512 * MIB + 64 * MIB
    assert layout.align_up(1, 4096) == 4096 and layout.align_up(8192, 4096) == 8192


@pytest.mark.skipif(shutil.which("sfdisk") is None, reason="sfdisk (fdisk package) is not installed")
def test_sfdisk_writes_that_table_on_an_image_file(tmp_path: Path) -> None:
    from roost.image.assemble import _sfdisk

    disk = layout.compute(DISK_ID, 32 * MIB, 40 * MIB)
    img = tmp_path / "disk.img"
    with img.open("wb") as fh:
        fh.truncate(disk.size)
    _sfdisk(img, disk)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(img)], capture_output=True, check=True).stdout)
    pt = table["partitiontable"]
    assert pt["label"] == "dos" and pt["id"] == "0x526f6f73"
    got = [(p["start"], p["size"], p["type"]) for p in pt["partitions"]]
    assert got == [
        (disk.boot.start_sector, disk.boot.sectors, "c"),
        (disk.root.start_sector, disk.root.sectors, "83"),
    ]
    assert pt["partitions"][0].get("bootable") is True
