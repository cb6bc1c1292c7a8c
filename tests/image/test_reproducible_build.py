"""Two builds of the amd64 image from the same inputs give the same root file system and the same image bytes.

Both builds use the same cached Debian base tarball and dependency wheels (``~/.cache/roost-image``, or
ROOST_IMAGE_CACHE; the first build of a cold cache makes them), so this shows what the Roost layer and
the assembly do: the wheel, the slot's virtual environment and its bytecode, the user, the units, the file
systems and the partition table. It does not show that two mmdebstrap runs on different days agree (the
Debian mirror moves on; image/README.md says what differs).
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from roost.image.build import DEFAULT_CACHE, Options, build, build_wheel, source_date_epoch

TOOLS = ("mmdebstrap", "mcopy", "mkfs.vfat", "sfdisk", "mkfs.ext4", "debugfs", "xz")
MISSING = [t for t in TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root (it unpacks files of other users)"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (make deps as root installs them)"),
]


ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_is_reproducible(tmp_path: Path) -> None:
    epoch = source_date_epoch(ROOT)
    # From one copy of the sources, so an edit in the working tree between the two builds cannot differ them.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "*cache*", "dist", "build", "*.egg-info", "node_modules", "var")
    shutil.copytree(ROOT, src, ignore=skip, symlinks=True)
    one = build_wheel(src, tmp_path / "one", epoch, tmp_path / "log")
    two = build_wheel(src, tmp_path / "two", epoch, tmp_path / "log")
    assert one.name == two.name
    assert one.read_bytes() == two.read_bytes()


def test_two_builds_give_the_same_bytes(tmp_path: Path) -> None:
    cache = Path(os.environ.get("ROOST_IMAGE_CACHE", DEFAULT_CACHE))
    # One wheel for both (its own reproducibility is the test above): the checkout may change in between.
    wheel = build_wheel(ROOT, tmp_path / "dist", source_date_epoch(ROOT), tmp_path / "log")
    opts = Options(arch="amd64", cache=cache, compress=False, wheel=wheel)
    one = build(replace(opts, out=tmp_path / "one"), say=lambda _t: None)
    two = build(replace(opts, out=tmp_path / "two"), say=lambda _t: None)
    if one.rootfs_sha256 != two.rootfs_sha256:
        diff = difflib.unified_diff(
            one.tree_listing.read_text().splitlines(), two.tree_listing.read_text().splitlines(), lineterm="", n=0
        )
        pytest.fail("the root file systems differ:\n" + "\n".join(list(diff)[:40]))
    assert one.image_sha256 == two.image_sha256, "same tree, different image bytes"
    m1 = json.loads(one.manifest_json.read_text())
    m2 = json.loads(two.manifest_json.read_text())
    assert m1 == m2
    assert m1["rootfs_sha256"] == one.rootfs_sha256
    print(f"\nrootfs {one.rootfs_sha256}\nimage  {one.image_sha256}\ntimings {one.timings} / {two.timings}")
    for result in (one, two):
        if result.image_raw is not None:
            result.image_raw.unlink()  # 1.7 GiB each (sparse)
