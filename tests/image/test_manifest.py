"""The build manifest: Debian packages from dpkg, Python distributions from the slot's metadata, sorted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from roost.image import manifest

DPKG_OUT = "systemd\t252.36-1~deb12u1\tamd64\tii \nbash\t5.2.15-2+b8\tamd64\tii \nold-lib\t1.0\tamd64\trc \n"

STATUS = """Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b8
Description: GNU Bourne Again SHell
 a continuation line: with a colon

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1

Package: apt
Status: install ok installed
Architecture: amd64
Version: 2.6.1
"""


def test_dpkg_query_output_keeps_installed_packages_sorted() -> None:
    pkgs = manifest.parse_dpkg_query(DPKG_OUT)
    assert [(p.name, p.version, p.arch) for p in pkgs] == [
        ("bash", "5.2.15-2+b8", "amd64"),
        ("systemd", "252.36-1~deb12u1", "amd64"),
    ]
    with pytest.raises(ValueError, match="unexpected dpkg-query line"):
        manifest.parse_dpkg_query("just one field\n")


def test_status_file_parsing() -> None:
    pkgs = manifest.parse_dpkg_status(STATUS)
    assert [(p.name, p.version) for p in pkgs] == [("apt", "2.6.1"), ("bash", "5.2.15-2+b8")]


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query is not installed (not a Debian machine)")
def test_dpkg_query_on_a_database_folder(tmp_path: Path) -> None:
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text(STATUS)
    out = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", manifest.DPKG_FORMAT], capture_output=True, check=True
    ).stdout.decode()
    assert [p.name for p in manifest.parse_dpkg_query(out)] == ["apt", "bash"]


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_python_distributions_from_site_packages(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist(site, "Roost", "0.1.0")
    _dist(site, "pyserial-asyncio-fast", "0.16")
    _dist(site, "cbor2", "6.3.0")
    dists = manifest.python_distributions(site)
    assert [(d.name, d.version) for d in dists] == [
        ("cbor2", "6.3.0"),
        ("pyserial-asyncio-fast", "0.16"),
        ("roost", "0.1.0"),
    ]


def test_manifest_json_and_text_are_sorted_and_stable(tmp_path: Path) -> None:
    pkgs = manifest.parse_dpkg_query(DPKG_OUT)
    dists = [manifest.PythonDistribution("roost", "0.1.0"), manifest.PythonDistribution("cbor2", "6.3.0")]
    doc = manifest.Manifest("roost", "0.1.0", "amd64", "bookworm", 1_700_000_000, "abc123", "f" * 64,
                            list(reversed(pkgs)), dists, {"x.img.xz": {"sha256": "0" * 64, "size": 3}})  # fmt: skip
    one, two = tmp_path / "a", tmp_path / "b"
    doc.write(one.with_suffix(".json"), one.with_suffix(".txt"))
    doc.write(two.with_suffix(".json"), two.with_suffix(".txt"))
    assert one.with_suffix(".json").read_bytes() == two.with_suffix(".json").read_bytes()
    data = json.loads(one.with_suffix(".json").read_text())
    assert data["rootfs_sha256"] == "f" * 64
    assert [p["name"] for p in data["debian_packages"]] == ["bash", "systemd"]
    assert [p["name"] for p in data["python_distributions"]] == ["cbor2", "roost"]
    text = one.with_suffix(".txt").read_text()
    assert "root file system sha256: " + "f" * 64 in text
    assert "bash 5.2.15-2+b8 amd64\nsystemd 252.36-1~deb12u1 amd64" in text
    assert "cbor2==6.3.0\nroost==0.1.0" in text
