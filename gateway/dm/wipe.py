"""Wipe: erase the gateway's credentials, keys, buffered readings, pairings and state, then factory state.

Each file is overwritten with zeros (and fsynced) before it is unlinked, folders are removed bottom-up,
and the state folder itself stays, empty. What this does *not* promise: an SD card or eMMC remaps blocks
(wear levelling), so an overwrite may leave the old data in a spare block that only the card's firmware
sees. The real guarantee needs the state folder on an encrypted volume whose key is destroyed (issue 9).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

_LOGGER = logging.getLogger(__name__)
CHUNK = 1 << 20
MAX_FILES = 100_000


def overwrite_and_unlink(path: Path) -> bool:
    """Overwrite a regular file with zeros, fsync, unlink; a symlink is only unlinked. False if it was not there."""
    try:
        if path.is_symlink() or not path.is_file():
            path.unlink()
            return True
        size = path.stat().st_size
        fd = os.open(path, os.O_WRONLY)
        try:
            zeros = bytes(min(CHUNK, max(size, 1)))
            left = size
            while left > 0:
                left -= os.write(fd, zeros[: min(left, len(zeros))])
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def erase(state_dir: Path, extra: Iterable[Path | None] = ()) -> list[str]:
    """Erase everything under ``state_dir`` (kept, empty) and the ``extra`` files; the names erased."""
    erased: list[str] = []
    files: list[Path] = []
    folders: list[Path] = []
    if state_dir.is_dir():
        for root, dirs, names in os.walk(state_dir, topdown=False):
            files += [Path(root) / n for n in names]
            folders += [Path(root) / d for d in dirs]
            if len(files) > MAX_FILES:
                break
    for p in extra:
        if p is not None:
            files += [p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")]
    for path in files[:MAX_FILES]:
        try:
            if overwrite_and_unlink(path):
                erased.append(str(path.relative_to(state_dir)) if path.is_relative_to(state_dir) else str(path))
        except OSError as exc:
            _LOGGER.error("wipe: cannot erase %s: %s", path, exc)
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()
    return erased


def remaining(state_dir: Path) -> list[str]:
    """Files still under ``state_dir`` (a wipe leaves none)."""
    if not state_dir.is_dir():
        return []
    return sorted(str(p.relative_to(state_dir)) for p in state_dir.rglob("*") if p.is_file())
