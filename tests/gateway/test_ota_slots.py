"""The boot check turns whatever an interruption left in the update root into a startable state (no venvs here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gateway.dm.ota import slots


def _slot(root: Path, name: str, version: str) -> None:
    (slots.slot_dir(root, name) / "bin").mkdir(parents=True)
    (slots.slot_dir(root, name) / "bin" / "python").write_text("")
    slots.mark_complete(root, name, {"version": version})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "r"
    _slot(r, "a", "1.0")
    _slot(r, "b", "2.0")
    slots.switch(r, "a")
    return r


def _state(root: Path, phase: str, **upd: object) -> None:
    base = {"from_slot": "a", "to_slot": "b", "version": "2.0", "boots": 0, "deadline": time.time() + 60}
    slots.save_state(root, slots.load_state(root), phase, **dict(base, **upd))


def test_current_is_repaired_when_missing_or_at_an_incomplete_slot(root: Path) -> None:
    (root / "current").unlink()
    (root / "current.tmp").symlink_to("slots/b")  # a switch cut between its two steps
    assert slots.boot_check(root)["slot"] == "a" and not (root / "current.tmp").exists()
    slots.switch(root, "b")
    (slots.slot_dir(root, "b") / slots.MARKER).unlink()
    assert slots.boot_check(root)["slot"] == "a"
    (slots.slot_dir(root, "a") / slots.MARKER).unlink()
    with pytest.raises(slots.SlotError, match="no complete software slot"):
        slots.boot_check(root)


@pytest.mark.parametrize("phase", slots.IN_PROGRESS)
def test_an_interrupted_update_ends_as_failed_unless_its_updater_still_runs(root: Path, phase: str) -> None:
    _state(root, phase)
    with slots.update_lock(root):  # a live updater holds the lock: left alone
        assert slots.boot_check(root)["phase"] == phase
    out = slots.boot_check(root)
    assert out == {"slot": "a", "phase": "failed", "action": "ended an interrupted update"}
    assert f"interrupted while {phase}" in slots.load_state(root)["reason"]


def test_an_interrupted_switch_is_completed_or_undone_by_what_current_shows(root: Path) -> None:
    _state(root, "switching")
    assert slots.boot_check(root) == {"slot": "a", "phase": "failed", "action": "undid an interrupted switch"}
    _state(root, "switching")
    slots.switch(root, "b")
    out = slots.boot_check(root)
    assert out["slot"] == "b" and out["phase"] == "switched" and slots.load_state(root)["update"]["boots"] == 1


def test_probation_counts_starts_and_rolls_back(root: Path) -> None:
    _state(root, "switched")
    slots.switch(root, "b")
    assert [slots.boot_check(root, max_boots=2)["slot"] for _ in range(3)] == ["b", "b", "a"]
    assert slots.load_state(root)["phase"] == "rolled-back"
    _state(root, "switched", boots=0)
    slots.switch(root, "b")
    slots.switch(root, "a")  # an operator switched back by hand
    assert slots.boot_check(root)["phase"] == "rolled-back"


def test_confirm_only_confirms_the_switched_slot_and_history_is_bounded(root: Path) -> None:
    _state(root, "switched")
    assert slots.confirm(root)["phase"] == "switched"  # current is still a
    slots.switch(root, "b")
    assert slots.confirm(root)["phase"] == "confirmed"
    for _ in range(slots.HISTORY + 5):
        slots.finish(root, slots.load_state(root), "failed", "x")
    assert len(slots.load_state(root)["history"]) == slots.HISTORY


def test_a_damaged_state_file_reads_as_idle_and_the_slot_in_use_is_never_removed(root: Path) -> None:
    (root / slots.STATE).write_text("{not json")
    assert slots.load_state(root)["phase"] == "idle"
    with pytest.raises(slots.SlotError):
        slots.remove_slot(root, "a")
    slots.remove_slot(root, "b")
    assert not slots.slot_dir(root, "b").exists() and os.readlink(root / "current") == "slots/a"


def test_the_boot_check_runs_as_a_plain_script(root: Path) -> None:
    import subprocess
    import sys

    script = Path(slots.__file__)
    out = subprocess.run(
        [sys.executable, "-I", str(script), "--root", str(root), "boot-check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and '"slot": "a"' in out.stdout, out.stderr
