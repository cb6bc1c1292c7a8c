"""What first boot tells the person at the gateway: on the console (a screen on HDMI, the serial console)
and in the journal (stdout and stderr of the unit), and with the green ACT LED when something is wrong."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from gateway.firstboot import paths
from gateway.firstboot.paths import SystemRoot

CONSOLE = Path("/dev/console")
ACT_LEDS = ("ACT", "led0")
"""The green activity LED: ACT on current Pi kernels, led0 on older ones."""
ERROR_TRIGGER = "heartbeat"
"""Two quick blinks and a pause, over and over: unlike the SD card flicker the LED shows normally."""


class Console:
    """Writes each message to the journal (``stream``) and, on a device, to ``/dev/console`` too."""

    def __init__(self, stream: TextIO | None = None, console: Path | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._console = console

    def say(self, lines: Iterable[str]) -> None:
        """Print ``lines`` on every sink (a console that cannot be written is skipped)."""
        text = "".join(f"{line}\n" for line in lines)
        self._stream.write(text)
        self._stream.flush()
        if self._console is not None:
            with contextlib.suppress(OSError), self._console.open("w", encoding="utf-8") as fh:
                fh.write(text.replace("\n", "\r\n"))  # a raw serial console wants CR LF


def for_root(root: SystemRoot, stream: TextIO | None = None) -> Console:
    """The console for a run at ``root``: /dev/console on the running system unless the journal copies it there."""
    # roost-firstboot.service has StandardError=journal+console: writing /dev/console too would show it twice
    return Console(stream, CONSOLE if root.live and not stderr_is_journal() else None)


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` is the journal stream systemd connected (``$JOURNAL_STREAM`` names its device and inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(fd)
        return bool(value) and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):
        return False


def signal_error(root: SystemRoot) -> bool:
    """Make the ACT LED beat like a heart (until the next boot); whether there was an LED to set."""
    for name in ACT_LEDS:
        trigger = root(paths.LEDS) / name / "trigger"
        if trigger.exists():
            with contextlib.suppress(OSError):
                trigger.write_text(ERROR_TRIGGER + "\n")
                return True
    return False
