"""Assemble the disk image from files, without loop devices or mounts.

The FAT boot file system is made as a file (mkfs.vfat) and filled with mtools (mcopy); the ext4 root is made
as a file from a directory (``mkfs.ext4 -d``); sfdisk writes the MBR on the image file; dd copies both file
systems in at their offsets. Every identifier and time is fixed (volume id, UUID, hash seed, SOURCE_DATE_EPOCH),
so the same tree gives the same bytes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from roost.image.layout import Layout
from roost.image.tools import BuildError, require, run

__all__ = ["BuildError", "Ext4Spec", "FatSpec", "compress", "make_ext4", "make_fat", "write_image"]

XZ_THREADS = "2"  # fixed (not 0 = one per core): xz's output depends on its block layout, so on the thread mode


@dataclass(frozen=True, slots=True)
class FatSpec:
    size: int
    label: str
    volume_id: str  # 8 hex digits


@dataclass(frozen=True, slots=True)
class Ext4Spec:
    size: int
    label: str
    uuid: str
    hash_seed: str
    inodes: int


def _env(epoch: int) -> dict[str, str]:
    return {"SOURCE_DATE_EPOCH": str(epoch), "E2FSPROGS_FAKE_TIME": str(epoch), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}


def make_fat(path: Path, spec: FatSpec, sources: list[Path], epoch: int, log: Path | None = None) -> None:
    """A FAT32 file system in ``path`` holding ``sources`` (files and folders) at its top level."""
    require("mkfs.vfat", "mcopy", "mlabel")
    path.unlink(missing_ok=True)
    env = _env(epoch)
    # --invariant fixes the label entry's time (mkfs would use the clock); mlabel then sets our serial number.
    run(
        ["mkfs.vfat", "-C", "-F", "32", "-n", spec.label, "--invariant", path, str(spec.size // 1024)],
        step="making the boot file system (mkfs.vfat)",
        env=env,
        log=log,
    )
    run(
        ["mlabel", "-i", path, "-N", spec.volume_id, f"::{spec.label}"],
        step="setting the boot file system's serial number (mlabel)",
        env=env,
        log=log,
    )
    for src in sorted(sources, key=lambda p: p.name):
        run(
            ["mcopy", "-s", "-p", "-m", "-Q", "-i", path, src, "::/"],
            step=f"copying {src.name} to the boot file system (mcopy)",
            env=env,
            log=log,
        )


def clamp_times(root: Path, epoch: int) -> int:
    """Set every access and modification time under ``root`` newer than ``epoch`` to ``epoch``; returns how many."""
    changed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if st.st_mtime > epoch or st.st_atime != epoch:
                os.utime(full, (epoch, min(st.st_mtime, epoch)), follow_symlinks=False)
                changed += 1
    st = os.lstat(root)
    os.utime(root, (epoch, min(st.st_mtime, epoch)), follow_symlinks=False)
    return changed


def _debugfs_quote(rel: str) -> str | None:
    """A path as debugfs reads it (double-quoted), or None when it cannot be said (holds a quote or newline)."""
    if '"' in rel or "\n" in rel:
        return None
    return f'"/{rel}"'


def fix_ctimes(image: Path, root: Path, epoch: int, log: Path | None = None) -> list[str]:
    """Set the inode change and access times of every file in the ext4 ``image`` (made from ``root``) to ``epoch``.

    mkfs.ext4 -d copies each source file's ctime, which no program can set, so debugfs writes it afterwards.
    Returns the paths it could not name (left with their real ctime).
    """
    require("debugfs")
    skipped: list[str] = []
    script = image.with_name(image.name + ".debugfs")
    with script.open("w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(f"sif / ctime @{epoch}\nsif / atime @{epoch}\n")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                quoted = _debugfs_quote(rel)
                if quoted is None:
                    skipped.append(rel)
                    continue
                # atime too: mkfs.ext4 reading the source folders updates theirs
                fh.write(f"sif {quoted} ctime @{epoch}\nsif {quoted} atime @{epoch}\n")
    try:
        run(["debugfs", "-w", "-f", script, image], step="fixing inode times (debugfs)", env=_env(epoch), capture=True)
    finally:
        script.unlink(missing_ok=True)
    return skipped


def make_ext4(path: Path, spec: Ext4Spec, root: Path, epoch: int, log: Path | None = None) -> list[str]:
    """An ext4 file system of ``spec.size`` bytes in ``path`` with the tree under ``root``; see :func:`fix_ctimes`."""
    require("mkfs.ext4", "debugfs")
    path.unlink(missing_ok=True)
    run(
        [
            "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", str(spec.inodes),
            "-L", spec.label, "-U", spec.uuid, "-E", f"hash_seed={spec.hash_seed},root_owner=0:0,lazy_itable_init=0",
            "-d", root, path, f"{spec.size // 1024}k",
        ],
        step="making the root file system (mkfs.ext4 -d)",
        env=_env(epoch),
        log=log,
    )  # fmt: skip
    return fix_ctimes(path, root, epoch, log)


def write_image(path: Path, layout: Layout, boot_fs: Path, root_fs: Path, log: Path | None = None) -> None:
    """The disk image: a sparse file of the layout's size, its MBR (sfdisk), and both file systems (dd)."""
    require("sfdisk")
    for fs, part in ((boot_fs, layout.boot), (root_fs, layout.root)):
        if fs.stat().st_size > part.size:
            raise BuildError(f"{fs.name} ({fs.stat().st_size} bytes) does not fit partition {part.number}")
    path.unlink(missing_ok=True)
    with path.open("wb") as fh:
        fh.truncate(layout.size)
    _sfdisk(path, layout)
    for fs, part in ((boot_fs, layout.boot), (root_fs, layout.root)):
        copy_at(fs, path, part.start)


def _sfdisk(path: Path, layout: Layout) -> None:
    proc = subprocess.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", os.fspath(path)],
        input=layout.sfdisk_script().encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError("writing the partition table (sfdisk) failed: " + proc.stderr.decode(errors="replace"))


def copy_at(src: Path, dest: Path, offset: int) -> None:
    """Copy ``src`` into ``dest`` at byte ``offset`` without truncating it, leaving runs of zeros as holes (dd)."""
    require("dd")
    run(
        ["dd", f"if={src}", f"of={dest}", "bs=4M", f"seek={offset}", "oflag=seek_bytes", "conv=notrunc,sparse",
         "status=none"],
        step=f"copying {src.name} into the image (dd)",
    )  # fmt: skip


def compress(path: Path, level: int = 6) -> Path:
    """``path``.xz next to it (xz with a fixed thread count, so the same image gives the same file)."""
    require("xz")
    out = path.with_name(path.name + ".xz")
    out.unlink(missing_ok=True)
    run(["xz", "-z", "-k", "-f", f"-{level}", f"--threads={XZ_THREADS}", path], step="compressing the image (xz)")
    out.chmod(0o644)  # a release file, readable by whoever downloads it
    return out


def read_fat_file(image: Path, name: str, offset: int = 0) -> bytes:
    """One file of a FAT file system (in a disk image at ``offset``), read with mtools."""
    target = f"{image}@@{offset}" if offset else os.fspath(image)
    proc = subprocess.run(["mtype", "-i", target, f"::/{name}"], capture_output=True, check=False,
                          env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(f"reading {name} from the boot file system failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout
