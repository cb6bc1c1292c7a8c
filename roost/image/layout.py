"""The partition table: an MBR with the FAT boot partition and the ext4 root, aligned, at fixed offsets.

Everything is computed here (pure) so the unit tests can check offsets, sizes, alignment and the sfdisk
script without touching a disk; :mod:`roost.image.assemble` then writes it with sfdisk on the image file.
"""

from __future__ import annotations

from dataclasses import dataclass

SECTOR = 512
MIB = 1024 * 1024
FAT32_LBA = "c"
LINUX = "83"
MBR_MAX_SECTORS = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: its number, where it starts and how long it is (bytes), its MBR type and PARTUUID."""

    number: int
    start: int
    size: int
    type: str
    partuuid: str
    bootable: bool = False

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def start_sector(self) -> int:
        return self.start // SECTOR

    @property
    def sectors(self) -> int:
        return self.size // SECTOR


@dataclass(frozen=True, slots=True)
class Layout:
    """The whole disk: its signature, total size and the two partitions."""

    disk_id: int
    size: int
    boot: Partition
    root: Partition

    def sfdisk_script(self) -> str:
        """The input sfdisk reads to write this table (sectors, so nothing is left to its rounding)."""
        lines = [
            "label: dos",
            f"label-id: 0x{self.disk_id:08x}",
            "unit: sectors",
            "sector-size: 512",
            "",
        ]
        for p in (self.boot, self.root):
            flag = ", bootable" if p.bootable else ""
            lines.append(f"start={p.start_sector}, size={p.sectors}, type={p.type}{flag}")
        return "\n".join(lines) + "\n"


def align_up(value: int, alignment: int) -> int:
    """``value`` rounded up to a multiple of ``alignment``."""
    if alignment <= 0:
        raise ValueError("alignment must be positive")
    return -(-value // alignment) * alignment


def compute(disk_id: int, boot_size: int, root_size: int, alignment: int = 4 * MIB) -> Layout:
    """The layout for a boot file system of ``boot_size`` and a root of ``root_size`` bytes.

    The first partition starts at ``alignment`` (room for the MBR and, on a Pi, nothing else is needed),
    each partition's start and size are rounded up to ``alignment`` (SD cards erase in 4 MiB blocks), and the
    disk ends where the root ends.
    """
    if alignment % SECTOR:
        raise ValueError(f"alignment {alignment} is not a multiple of the {SECTOR}-byte sector")
    if boot_size <= 0 or root_size <= 0:
        raise ValueError("partition sizes must be positive")
    if not 0 <= disk_id <= 0xFFFFFFFF:
        raise ValueError("the MBR disk id is 32 bits")
    boot = Partition(1, alignment, align_up(boot_size, alignment), FAT32_LBA, f"{disk_id:08x}-01", bootable=True)
    root_start = align_up(boot.end, alignment)
    root = Partition(2, root_start, align_up(root_size, alignment), LINUX, f"{disk_id:08x}-02")
    if root.end // SECTOR > MBR_MAX_SECTORS:
        raise ValueError("the image is larger than an MBR partition table can describe (2 TiB)")
    return Layout(disk_id=disk_id, size=root.end, boot=boot, root=root)


def root_fs_size(content_bytes: int, inodes: int, free_bytes: int, alignment: int = 4 * MIB) -> int:
    """How big to make the ext4 root: the content, ext4's overhead (inode tables, journal) and the free space."""
    inode_tables = inodes * 2 * 256  # room for twice the files there are now, 256-byte inodes
    journal = 64 * MIB
    overhead = content_bytes // 20  # block rounding, directories, group descriptors and bitmaps
    return align_up(content_bytes + overhead + inode_tables + journal + free_bytes, alignment)
