"""Growing the root file system to fill the SD card, behind a backend the tests replace.

On a device (``--root /``) :class:`SystemResizer` finds the partition mounted at ``/`` and runs
``sfdisk`` (partition N grows to the end of the card, the table rewritten in place), ``partx`` (the
kernel learns the new size of the mounted partition) and ``resize2fs`` (ext4 grows online). Each is a
no-op when there is nothing left to grow, so a re-run after a power cut is safe. In a directory-tree run
:class:`SkipResizer` only says why it did nothing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

COMMAND_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class Command:
    """One command line and what it reads on stdin."""

    argv: tuple[str, ...]
    stdin: str = ""


@dataclass(frozen=True, slots=True)
class RootPartition:
    """The partition holding ``/``: its device, the disk it is on and its number there."""

    device: str
    disk: str
    number: int
    fstype: str


class ResizeError(OSError):
    """Growing the root file system failed; the message says which command and why."""


Runner = Callable[[Command], str]
"""Runs a command, returns its stdout; raises ResizeError when it fails."""


class Resizer(Protocol):
    """Grows the root file system; returns a line for the report."""

    def expand(self) -> str:
        """Grow ``/`` to fill its disk."""


Plan = list[Command]


def plan(part: RootPartition) -> Plan:
    """The commands that grow ``part`` and its file system to the end of its disk."""
    return [
        # ",+" keeps the start and takes all the free space after it; --no-reread: the disk is in use
        Command(("sfdisk", "--force", "--no-reread", "-N", str(part.number), part.disk), stdin=",+\n"),
        Command(("partx", "--update", "--nr", str(part.number), part.disk)),
        Command(("resize2fs", part.device)),
    ]


def run_command(command: Command) -> str:
    """Run ``command`` for real (bounded in time)."""
    try:
        done = subprocess.run(
            command.argv, input=command.stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ResizeError(f"{command.argv[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ResizeError(f"{' '.join(command.argv)} failed ({done.returncode}): {detail[-1] if detail else ''}")
    return done.stdout


def find_root(runner: Runner, sysfs: Path = Path("/sys/class/block")) -> RootPartition:
    """The partition mounted at ``/`` (``findmnt``), its disk and number (sysfs)."""
    out = runner(Command(("findmnt", "--noheadings", "--output", "SOURCE,FSTYPE", "--mountpoint", "/"))).split()
    if len(out) < 2 or not out[0].startswith("/dev/"):
        raise ResizeError(f"the root file system is not on a disk partition ({' '.join(out) or 'nothing mounted'})")
    device, fstype = out[0], out[1]
    name = Path(device).name
    try:
        number = int((sysfs / name / "partition").read_text().strip())
        disk = (sysfs / name).resolve().parent.name
    except (OSError, ValueError) as exc:
        raise ResizeError(f"{device} is not a partition of a disk ({exc})") from exc
    return RootPartition(device=device, disk=f"/dev/{disk}", number=number, fstype=fstype)


@dataclass(slots=True)
class SystemResizer:
    """Grows the running system's root partition and file system (ext4 only)."""

    runner: Runner = run_command
    sysfs: Path = Path("/sys/class/block")
    ran: list[Command] | None = None

    def expand(self) -> str:
        """Grow ``/``; the line for the report."""
        part = find_root(self.runner, self.sysfs)
        if part.fstype != "ext4":
            return f"root file system left as it is: it is {part.fstype}, not ext4"
        for command in plan(part):
            self.runner(command)
            if self.ran is not None:
                self.ran.append(command)
        return f"root file system {part.device} grown to fill {part.disk}"


@dataclass(frozen=True, slots=True)
class SkipResizer:
    """Does nothing, and says why (a directory-tree run, where there is no disk to grow)."""

    reason: str

    def expand(self) -> str:
        """The reason."""
        return f"root file system not grown: {self.reason}"
