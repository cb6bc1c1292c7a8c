"""``roost image build``'s command line: refusals that need no build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from roost.image import build
from roost.image.tools import BuildError, require


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roost.cli", *args], capture_output=True, text=True, timeout=60)


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    proc = roost("image", "build", "--arch", "amd64", "--ssh-key", str(tmp_path / "nope.pub"))
    assert proc.returncode == 2
    assert "--ssh-key" in proc.stderr and "no such file" in proc.stderr


def test_unknown_architecture_is_refused() -> None:
    proc = roost("image", "build", "--arch", "mips")
    assert proc.returncode == 2
    assert "invalid choice: 'mips'" in proc.stderr


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.os, "geteuid", lambda: 1000)
    with pytest.raises(BuildError, match="needs root"):
        build.build(build.Options(arch="amd64"))


def test_missing_tools_name_their_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildError, match=r"apt-get install .*mtools") as info:
        require("mcopy", "not-a-real-tool-xyz")
    assert "not-a-real-tool-xyz" in str(info.value)


def test_source_date_epoch_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build.source_date_epoch(tmp_path) == 1_700_000_000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="not a whole number"):
        build.source_date_epoch(tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    with pytest.raises(BuildError, match="not a git checkout"):
        build.source_date_epoch(tmp_path)
