"""A simulated Uno for the flashing tests: roost-simavr with optiboot and the DTR auto-reset, avrdude, and a
reader of the simulated chip's UART on its pty.

conftest.Board runs a firmware on its own; :class:`Uno` adds what flashing needs (``--bootloader``,
``--auto-reset``): every program that opens the pty resets the chip, exactly as opening an Uno's USB port does.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import subprocess
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIM_BUILD = ROOT / "firmware" / "sim" / "build"
OPTIBOOT = SIM_BUILD / "optiboot_atmega328.hex"
TEST_PROGRAM_A = SIM_BUILD / "test" / "bridge-test.hex"
TEST_PROGRAM_B = SIM_BUILD / "test" / "bridge-test-b.hex"
AVRDUDE_TIMEOUT_S = 120


class Uno:
    """roost-simavr as an Uno: the events it prints, the control lines it reads, its pty."""

    def __init__(self, exe: Path, *args: str) -> None:
        self.argv = [str(exe), *args]
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.events: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            first = self._lines.get(timeout=10)
        except queue.Empty:
            self.close()
            raise AssertionError(f"{self.argv} printed nothing; stderr: {self.stderr()}") from None
        assert first.startswith("pty: "), f"roost-simavr said {first!r}, not its pty"
        self.pty = first.removeprefix("pty: ")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line.rstrip("\n"))
            if not line.startswith("pty: "):
                self.events.append(line.strip())

    def send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def saw(self, event: str, since: int = 0) -> int:
        """How many times the bridge printed ``event`` (among its events from index ``since`` on)."""
        return sum(1 for e in self.events[since:] if e == event)

    def wait_event(self, event: str, *, since: int = 0, timeout: float = 10.0) -> None:
        """Wait until roost-simavr printed ``event`` (at index ``since`` or later)."""
        deadline = time.monotonic() + timeout
        while event not in self.events[since:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"roost-simavr did not print {event!r}; it printed {self.events[since:]}")
            time.sleep(0.01)

    def stderr(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        return self._proc.stderr.read()

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Serial:
    """A program with the pty open (so, with --auto-reset, one that has just reset the chip)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.got = b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Everything read until ``marker`` (included); what follows stays for the next call."""
        deadline = time.monotonic() + timeout
        while marker not in self.got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} within {timeout} s; read {self.got[-200:]!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if ready:
                self.got += os.read(self.fd, 4096)
        end = self.got.index(marker) + len(marker)
        out, self.got = self.got[:end], self.got[end:]
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def avrdude(pty: str, image: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Debian's avrdude writing ``image`` through the bootloader, as the Arduino IDE does; (seconds, its run)."""
    exe = shutil.which("avrdude")
    assert exe is not None, "avrdude is not installed (make deps)"
    started = time.monotonic()
    done = subprocess.run(
        [exe, "-c", "arduino", "-p", "m328p", "-P", pty, "-b", "115200", "-U", f"flash:w:{image}:i"],
        capture_output=True,
        text=True,
        timeout=AVRDUDE_TIMEOUT_S,
        check=False,
    )
    return time.monotonic() - started, done


def build_firmware(dest: Path, version: str) -> Path:
    """firmware/avr built with VERSION=``version`` in a copy under ``dest`` (the tree's own build is left alone)."""
    src = ROOT / "firmware" / "avr"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("build", "*.hex", "*.elf"))
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(dest), f"VERSION={version}", "roost-node.hex"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"firmware {version} does not build:\n{done.stdout}\n{done.stderr}"
    return dest / "roost-node.hex"
