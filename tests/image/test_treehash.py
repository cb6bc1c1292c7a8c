"""The root file system hash: same tree, same hash, whatever the order files were made in or their times."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roost.image.treehash import tree_entries, tree_hash


def make_tree(root: Path, *, reverse: bool = False, when: int = 1_700_000_000) -> Path:
    files = {"etc/hostname": b"roost\n", "usr/bin/tool": b"\x7fELF...", "a b/c": b"space", "etc/empty": b""}
    items = sorted(files.items(), reverse=reverse)
    for rel, data in items:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "usr/bin/tool").chmod(0o755)
    (root / "etc/hostname").chmod(0o644)
    (root / "etc/empty").chmod(0o600)
    (root / "link").symlink_to("usr/bin/tool")
    (root / "var/lib/roost").mkdir(parents=True, mode=0o700)
    (root / "var/lib/roost").chmod(0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    return root


def test_same_tree_same_hash_whatever_the_order_and_times(tmp_path: Path) -> None:
    one = tree_hash(make_tree(tmp_path / "one"))
    two = tree_hash(make_tree(tmp_path / "two", reverse=True, when=1_800_000_000))
    assert one == two
    assert len(one) == 64


@pytest.mark.parametrize("change", ["content", "mode", "link", "new file", "rename", "owner"])
def test_any_change_changes_the_hash(tmp_path: Path, change: str) -> None:
    root = make_tree(tmp_path / "t")
    before = tree_hash(root)
    match change:
        case "content":
            (root / "etc/hostname").write_bytes(b"roosT\n")
        case "mode":
            (root / "usr/bin/tool").chmod(0o750)
        case "link":
            (root / "link").unlink()
            (root / "link").symlink_to("etc/hostname")
        case "new file":
            (root / "etc/new").write_bytes(b"")
        case "rename":
            (root / "etc/empty").rename(root / "etc/empty2")
        case "owner":
            if os.geteuid() != 0:
                pytest.skip("changing a file's owner needs root")
            os.chown(root / "etc/hostname", 1234, 1234)
    assert tree_hash(root) != before


def test_listing_shows_each_entry_sorted(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    listing = tmp_path / "tree.txt"
    digest = tree_hash(root, listing)
    lines = listing.read_text().splitlines()
    assert lines == list(tree_entries(root))
    assert digest == tree_hash(root)
    paths = [line.split(" ")[0] for line in lines]
    assert paths[0] == "/"
    assert "/a" in paths and "/link" in paths
    tool = next(line for line in lines if line.startswith("/usr/bin/tool "))
    assert " file " in tool and " 0755 " in tool
    assert next(line for line in lines if line.startswith("/link ")).split(" ")[1:3] == ["link", "usr/bin/tool"]
    assert " 0700 " in next(line for line in lines if line.startswith("/var/lib/roost "))
