"""The root file system hash: one SHA-256 over the sorted tree (paths, types, modes, owners, contents, links).

Two builds from the same inputs should give the same hash; when they do not, the per-entry listing
(:func:`tree_entries`, written next to the image as ``*.tree.txt``) shows which files differ. Modification
times are left out (the build clamps them to SOURCE_DATE_EPOCH anyway); extended attributes (file
capabilities) are in.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: str) -> str:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return ""
    parts = []
    for name in names:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        parts.append(f"{name}={value.hex()}")
    return ",".join(parts)


def _entry(root: str, rel: str) -> str:
    full = os.path.join(root, rel) if rel else root
    st = os.lstat(full)
    mode = stat.S_IMODE(st.st_mode)
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISREG(kind):
        what = f"file {_file_sha256(full)} {st.st_size}"
    elif stat.S_ISDIR(kind):
        what = "dir"
    elif stat.S_ISLNK(kind):
        what = f"link {os.readlink(full)}"
    elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        what = f"{'char' if stat.S_ISCHR(kind) else 'block'} {os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    elif stat.S_ISFIFO(kind):
        what = "fifo"
    else:
        what = "socket"
    xattrs = _xattrs(full) if not stat.S_ISLNK(kind) else ""
    line = f"/{rel} {what} {mode:04o} {st.st_uid}:{st.st_gid}"
    return line + (f" xattr {xattrs}" if xattrs else "")


def _walk(root: str, rel: str) -> Iterator[str]:
    full = os.path.join(root, rel) if rel else root
    with os.scandir(full) as it:
        names = sorted(e.name for e in it)
    for name in names:
        child = os.path.join(rel, name) if rel else name
        yield child
        if os.path.isdir(os.path.join(root, child)) and not os.path.islink(os.path.join(root, child)):
            yield from _walk(root, child)


def tree_entries(root: Path) -> Iterator[str]:
    """One line per entry under ``root`` (root itself first), in sorted order: what the hash is made of."""
    base = os.fspath(root)
    yield _entry(base, "")
    for rel in _walk(base, ""):
        yield _entry(base, rel)


def tree_hash(root: Path, listing: Path | None = None) -> str:
    """The SHA-256 (hex) of the tree under ``root``; writes the per-entry lines to ``listing`` when given."""
    h = hashlib.sha256()
    out = listing.open("w", encoding="utf-8", errors="surrogateescape") if listing is not None else None
    try:
        for line in tree_entries(root):
            data = line.encode("utf-8", errors="surrogateescape") + b"\n"
            h.update(data)
            if out is not None:
                out.write(line + "\n")
    finally:
        if out is not None:
            out.close()
    return h.hexdigest()
