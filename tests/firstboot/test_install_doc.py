"""docs/install.md shows what the code does: its roost.toml checks out, its check output is the real one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gateway.firstboot.validate import check_text

DOC = Path(__file__).parents[2] / "docs/install.md"


def _example() -> str:
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL) if "[wifi]" in b]
    return str(block)


def test_the_typical_file_checks_out(tmp_path: Path) -> None:
    checked = check_text(_example(), base_dir=tmp_path)
    assert checked.ok, [str(p) for p in checked.problems.items]


def test_the_check_output_shown_is_the_real_one(tmp_path: Path) -> None:
    text = DOC.read_text()
    shown = re.search(r"\$ roost firstboot check \S+\n(.*?)```", text, re.DOTALL)
    assert shown is not None
    bad = _example().replace('country = "DE"', 'country = "XX"').replace('pin = "482913"', 'pin = "12"')
    (tmp_path / "roost.toml").write_text(bad)
    done = subprocess.run(
        [sys.executable, "-m", "roost.cli", "firstboot", "check", str(tmp_path / "roost.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == shown.group(1)
