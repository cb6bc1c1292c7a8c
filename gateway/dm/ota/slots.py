"""The A/B slots on disk, the update's state file, the switch, and the boot check that rolls back.

Standard library only, on purpose: the service manager runs this module's boot check before every start
of the gateway (``ExecStartPre``), and it must work even when the newest slot is broken. Layout under the
update root (owned by the gateway's user, never root)::

    slots/a/, slots/b/   two virtual environments; a complete one holds .roost-slot.json (written last)
    current              symlink to slots/a or slots/b: what the service starts (flipped by rename, atomic)
    state.json           the update's phase and history (written to a temporary file, fsynced, renamed)
    update.lock          held (flock) by a running updater
    downloads/, staging/ the bundle being fetched, its verified wheels

Phases: ``idle`` → ``downloading`` → ``verified`` → ``installing`` → ``installed`` → ``switching`` →
``switched`` (the new slot is current but on probation until its deadline) → ``confirmed``; or
``failed`` (nothing was switched) or ``rolled-back`` (``current`` is the previous slot again).
:func:`boot_check` turns whatever a power cut left into one of those ends or a running probation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SLOTS = ("a", "b")
MARKER = ".roost-slot.json"
STATE = "state.json"
CURRENT = "current"
LOCK = "update.lock"
HISTORY = 10
IN_PROGRESS = ("downloading", "verified", "installing", "installed")
DEFAULT_MAX_BOOTS = 3


class SlotError(Exception):
    """The slots are not usable (no update root, no complete slot); the message says what to do."""


def slot_dir(root: Path, slot: str) -> Path:
    """The folder of slot ``a`` or ``b``."""
    return root / "slots" / slot


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temporary file, fsync, rename, fsync the folder)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def slot_info(root: Path, slot: str) -> dict[str, Any] | None:
    """The marker of a complete slot (version, when installed), or None for an empty or half-installed one."""
    info = read_json(slot_dir(root, slot) / MARKER)
    if info is None or not (slot_dir(root, slot) / "bin" / "python").exists():
        return None
    return info


def mark_complete(root: Path, slot: str, info: dict[str, Any]) -> None:
    """Write the slot's marker: from now on it may be switched to."""
    write_json(slot_dir(root, slot) / MARKER, info)


def active_slot(root: Path) -> str | None:
    """The slot ``current`` points at, or None when the link is missing or points elsewhere."""
    try:
        target = os.readlink(root / CURRENT)
    except OSError:
        return None
    name = Path(target).name
    return name if name in SLOTS and Path(target).parent.name == "slots" else None


def other(slot: str) -> str:
    """The other slot."""
    return "b" if slot == "a" else "a"


def switch(root: Path, slot: str) -> None:
    """Point ``current`` at ``slot`` atomically: a new link under a temporary name renamed over the old one."""
    tmp = root / (CURRENT + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(os.path.join("slots", slot), tmp)
    os.replace(tmp, root / CURRENT)
    fsync_dir(root)


def load_state(root: Path) -> dict[str, Any]:
    """The state file, or an idle state when there is none."""
    state = read_json(root / STATE)
    if state is None or not isinstance(state.get("phase"), str):
        return {"format": 1, "phase": "idle", "update": None, "history": []}
    state.setdefault("history", [])
    state.setdefault("update", None)
    return state


def save_state(root: Path, state: dict[str, Any], phase: str, **update: Any) -> dict[str, Any]:
    """Record ``phase`` (and fields of the update record) durably; returns the new state."""
    state = dict(state, phase=phase, updated_at=time.time())
    if update:
        state["update"] = dict(state.get("update") or {}, **update)
    write_json(root / STATE, state)
    return state


def finish(root: Path, state: dict[str, Any], phase: str, reason: str) -> dict[str, Any]:
    """End the update as ``phase`` (confirmed, failed, rolled-back) with ``reason``, keeping a short history."""
    upd = dict(state.get("update") or {})
    entry = {"outcome": phase, "reason": reason, "version": upd.get("version"), "at": time.time()}
    history = [*state.get("history", []), entry][-HISTORY:]
    state = dict(state, phase=phase, reason=reason, history=history, updated_at=time.time())
    write_json(root / STATE, state)
    return state


@contextlib.contextmanager
def update_lock(root: Path) -> Iterator[None]:
    """Hold the update lock (one updater at a time); SlotError when another one holds it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise SlotError("another update is running on this gateway") from None
            raise
        yield
    finally:
        os.close(fd)  # closing releases the lock


def updater_running(root: Path) -> bool:
    """Whether a live process holds the update lock."""
    try:
        with update_lock(root):
            return False
    except SlotError:
        return True


def remove_slot(root: Path, slot: str) -> None:
    """Delete a slot's folder (never the current one)."""
    if active_slot(root) == slot:
        raise SlotError(f"slot {slot} is the current one: it is never removed")
    path = slot_dir(root, slot)
    if path.exists():
        (path / MARKER).unlink(missing_ok=True)  # incomplete from the first byte removed
        shutil.rmtree(path)


def boot_check(root: Path, *, now: float | None = None, max_boots: int = DEFAULT_MAX_BOOTS) -> dict[str, Any]:
    """Run before each start of the gateway: repair ``current`` and end any update a power cut interrupted.

    - ``current`` missing or not at a complete slot: point it at a complete one (the confirmed one first).
    - an update interrupted before its switch: ``failed`` (``current`` was never touched).
    - a switch interrupted between its steps: finished or undone, whichever ``current`` shows.
    - a switched slot still on probation: counted as one more start; past its deadline, or started more
      than ``max_boots`` times without confirming, ``current`` goes back to the previous slot.

    Returns ``{"slot", "phase", "action"}`` saying what it found and did.
    """
    now = time.time() if now is None else now
    if not root.is_dir():
        raise SlotError(f"{root} does not exist: there are no software slots to check")
    (root / (CURRENT + ".tmp")).unlink(missing_ok=True)
    state = load_state(root)
    upd = state.get("update") or {}
    action = "none"
    phase = state["phase"]
    if phase in IN_PROGRESS and not updater_running(root):
        state = finish(root, state, "failed", f"interrupted while {phase} (restart or power cut); nothing was switched")
        action = "ended an interrupted update"
    elif phase == "switching":
        if active_slot(root) == upd.get("to_slot") and slot_info(root, str(upd.get("to_slot"))) is not None:
            state = save_state(root, state, "switched")
            action = "completed an interrupted switch"
        else:
            state = finish(root, state, "failed", "interrupted while switching; the previous slot stayed current")
            action = "undid an interrupted switch"
    if state["phase"] == "switched" and active_slot(root) != upd.get("to_slot"):
        state = finish(root, state, "rolled-back", "current is not the new slot any more (switched back by hand)")
        action = "ended a switch undone by hand"
    if state["phase"] == "switched":
        boots = int(upd.get("boots", 0)) + 1
        deadline = float(upd.get("deadline", 0))
        back = str(upd.get("from_slot", ""))
        why = None
        if now > deadline:
            why = f"not confirmed healthy within its deadline ({now - deadline:.0f} s ago)"
        elif boots > max_boots:
            why = f"started {boots - 1} times without confirming it was healthy"
        if why is not None and back in SLOTS and slot_info(root, back) is not None:
            switch(root, back)
            state = finish(root, state, "rolled-back", f"version {upd.get('version')} {why}; back to slot {back}")
            action = f"rolled back to slot {back}"
        else:
            state = save_state(root, state, "switched", boots=boots)
            action = f"probation start {boots} of {max_boots}"
    _repair_current(root, state)
    return {"slot": active_slot(root), "phase": load_state(root)["phase"], "action": action}


def _repair_current(root: Path, state: dict[str, Any]) -> None:
    slot = active_slot(root)
    if slot is not None and slot_info(root, slot) is not None:
        return
    upd = state.get("update") or {}
    prefer = [upd.get("from_slot"), *SLOTS] if state["phase"] != "confirmed" else [upd.get("to_slot"), *SLOTS]
    for candidate in prefer:
        if candidate in SLOTS and slot_info(root, str(candidate)) is not None:
            switch(root, str(candidate))
            return
    raise SlotError(f"{root}: no complete software slot to start (install one with 'roost gateway update')")


def confirm(root: Path) -> dict[str, Any]:
    """Mark a switched update healthy (called by the new version once it is connected and its adapters run)."""
    state = load_state(root)
    upd = state.get("update") or {}
    if state["phase"] != "switched":
        return state
    if active_slot(root) != upd.get("to_slot"):
        return state
    return finish(root, state, "confirmed", f"version {upd.get('version')} is connected and its adapters run")


def status(root: Path) -> dict[str, Any]:
    """What the slots hold and where the last update stands (for ``update-status`` and the CLI)."""
    state = load_state(root)
    slot = active_slot(root)
    return {
        "root": str(root),
        "current": slot,
        "slots": {s: slot_info(root, s) for s in SLOTS},
        "version": (slot_info(root, slot) or {}).get("version") if slot else None,
        "phase": state["phase"],
        "reason": state.get("reason"),
        "update": state.get("update"),
        "history": state.get("history", []),
    }


def main(argv: list[str] | None = None) -> int:
    """``python slots.py --root ROOT [--max-boots N] boot-check|confirm|status``: the systemd unit's pre-start."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="roost-boot-check")
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--max-boots", type=int, default=DEFAULT_MAX_BOOTS)
    p.add_argument("action", choices=["boot-check", "confirm", "status"], nargs="?", default="boot-check")
    args = p.parse_args(argv)
    try:
        if args.action == "boot-check":
            out = boot_check(args.root, max_boots=args.max_boots)
        elif args.action == "confirm":
            out = confirm(args.root)
        else:
            out = status(args.root)
    except (SlotError, OSError) as exc:
        print(f"roost-boot-check: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a script by the service manager
    raise SystemExit(main())
