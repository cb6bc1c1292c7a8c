"""Run avrdude to write an image through a node's bootloader, following its progress bars.

avrdude draws a bar of 50 ``#`` per phase on stderr (``Writing | ### ... | 100% 1.2s``, then
``Reading | ...`` while it verifies). :class:`Progress` turns the marks into percentages as they
come. When avrdude fails, :func:`error_line` picks the line that says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.dm.nodefw.config import NodeFirmwareSection

_LOGGER = logging.getLogger(__name__)
STEP = 10
"""Percent between two entries of the progress list."""
_PHASES = {"Writing": "writing", "Reading": "verifying"}
_NOISE = ('ioctl("TIOCM', "TIOCMGET", "TIOCMSET")
"""A pty (or a USB adapter without modem lines) cannot set DTR/RTS: avrdude complains and carries on."""


class FlashFailed(Exception):
    """avrdude did not write the image; the message is avrdude's own reason."""


@dataclass
class Progress:
    """Percentages per phase, read from avrdude's bars as its stderr arrives."""

    on_step: Callable[[str, int], None] | None = None
    steps: list[dict[str, object]] = field(default_factory=list)
    _phase: str | None = None
    _marks: int = 0
    _reported: int = -1
    _tail: str = ""

    def feed(self, text: str) -> None:
        """Take the next piece of avrdude's stderr."""
        text = self._tail + text
        self._tail = ""
        i = 0
        while i < len(text):
            if self._phase is None:
                starts = [(text.find(f"{word} |", i), word) for word in _PHASES]
                found = [(pos, word) for pos, word in starts if pos >= 0]
                if not found:
                    self._tail = text[max(i, len(text) - 8) :]  # a bar's title may be cut in two
                    return
                pos, word = min(found)
                self._phase = _PHASES[word] if word != "Reading" or self.steps else "reading"
                self._marks, self._reported = 0, -1
                self._report()
                i = pos + len(word) + 2
                continue
            c = text[i]
            if c == "#":
                self._marks += 1
                self._report()
            elif c in "|\n":  # the bar ends (at 100 %, or where avrdude gave up)
                self._phase = None
            i += 1

    def _report(self) -> None:
        assert self._phase is not None
        percent = min(100, self._marks * 2)
        if percent // STEP * STEP > self._reported or (percent == 100 and self._reported < 100):
            self._reported = percent // STEP * STEP if percent < 100 else 100
            self.steps.append({"phase": self._phase, "percent": self._reported})
            if self.on_step is not None:
                self.on_step(self._phase, self._reported)


def argv(cfg: NodeFirmwareSection, device: str, image: Path) -> list[str]:
    """avrdude's command line for writing ``image`` (Intel HEX) through the bootloader on ``device``."""
    return [
        cfg.avrdude, "-c", cfg.programmer, "-p", cfg.part, "-P", device, "-b", str(cfg.baud),
        "-U", f"flash:w:{image}:i",
    ]  # fmt: skip


def error_line(stderr: str) -> str:
    """What avrdude said went wrong: its first error, with the last complaint before it (the cause, often)."""
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not any(n in ln for n in _NOISE)]
    keys = ("error", "warning", "not responding", "mismatch", "failed", "can't", "cannot", "not in sync", "timeout")
    complaints = [i for i, ln in enumerate(lines) if any(k in ln.lower() for k in keys)]
    errors = [i for i in complaints if "error" in lines[i].lower()]
    if errors:
        before = [i for i in complaints if i < errors[0]]
        cause = f" (after: {lines[before[-1]].removeprefix('avrdude').lstrip(' :')})" if before else ""
        return lines[errors[0]] + cause
    if complaints:
        return lines[complaints[-1]]
    return lines[-1] if lines else "no output"


@dataclass(frozen=True, slots=True)
class Flashed:
    """What avrdude did."""

    seconds: float
    progress: list[dict[str, object]]


async def flash(
    cfg: NodeFirmwareSection,
    device: str,
    image: Path,
    *,
    on_step: Callable[[str, int], None] | None = None,
) -> Flashed:
    """Write ``image`` to the node on ``device``; raise FlashFailed with avrdude's reason (killed at the timeout)."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv(cfg, device, image),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise FlashFailed(f"cannot run {cfg.avrdude!r} ({exc.strerror}): is avrdude installed?") from None
    assert proc.stderr is not None and proc.stdout is not None
    progress = Progress(on_step=on_step)
    err: list[str] = []
    try:
        async with asyncio.timeout(cfg.flash_timeout_s):
            while chunk := await proc.stderr.read(256):
                text = chunk.decode(errors="replace")
                err.append(text)
                progress.feed(text)
            await proc.stdout.read()
            code = await proc.wait()
    except TimeoutError:
        raise FlashFailed(
            f"avrdude did not finish within {cfg.flash_timeout_s:g} s; its last words: {error_line(''.join(err))}"
        ) from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code != 0:
        raise FlashFailed(f"avrdude failed (exit {code}): {error_line(''.join(err))}")
    return Flashed(seconds=round(time.monotonic() - started, 2), progress=progress.steps)
