"""An emulated talker that sends text lines on a serial line: an NMEA GPS replaying sentences, or an
Arduino printing ``metric=value`` lines. Pure: :class:`drivers.ptylink.PtyLink` runs it over a pty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class LineTalker:
    """Sends ``lines`` one every ``interval_s`` (``\\r\\n``-terminated), looping when ``repeat``."""

    lines: Sequence[str]
    interval_s: float = 0.05
    repeat: bool = True
    eol: str = "\r\n"
    sent: int = 0
    _next: float | None = field(default=None, init=False, repr=False)
    _pos: int = field(default=0, init=False, repr=False)

    @property
    def done(self) -> bool:
        """True once every line was sent (never when repeating)."""
        return not self.repeat and self._pos >= len(self.lines)

    def receive(self, data: bytes, now: float) -> bytes:
        """A talker does not listen."""
        return b""

    def tick(self, now: float) -> bytes:
        """The lines due by ``now`` (at most 100 at once, should the clock jump)."""
        if not self.lines:
            return b""
        if self._next is None:
            self._next = now
        out: list[str] = []
        while now >= self._next and len(out) < 100:
            if self._pos >= len(self.lines):
                if not self.repeat:
                    break
                self._pos = 0
            out.append(self.lines[self._pos] + self.eol)
            self._pos += 1
            self.sent += 1
            self._next += self.interval_s
        if len(out) == 100:
            self._next = now + self.interval_s
        return "".join(out).encode("ascii", "replace")
