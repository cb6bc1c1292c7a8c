"""The gateway's own recent log, in memory, for the ``logs`` command: a bounded ring of formatted records.

The daemon installs one :class:`LogRing` on the root logger. Records are formatted when they arrive and
scrubbed of anything that looks like a credential (a JWT, a bearer token, a ``password=``/``token=`` value)
before they are kept, so a log line that should not have carried one still never leaves the gateway.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from typing import Any

_SECRETS = (
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:refresh_token|access_token|claim_token|password|psk|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
    ),
)
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    """``text`` with credential-looking parts replaced by ``[redacted]``."""
    text = _SECRETS[0].sub(REDACTED, text)
    for pattern in _SECRETS[1:]:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class LogRing(logging.Handler):
    """Keeps the newest ``capacity`` records as dicts (time, level, logger, message)."""

    def __init__(self, capacity: int = 1000, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._ring_lock = threading.Lock()

    def resize(self, capacity: int) -> None:
        """Keep ``capacity`` records from now on (the newest stay)."""
        with self._ring_lock:
            if capacity != self._records.maxlen:
                self._records = deque(self._records, maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one record (formatted and scrubbed now: its arguments may change later)."""
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            entry = {
                "ts": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "message": scrub(message)[:2000],
            }
        except Exception:  # a record that cannot be formatted is dropped, never raised into the caller
            return
        with self._ring_lock:
            self._records.append(entry)

    def tail(self, lines: int, *, level: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """The newest ``lines`` records (oldest first), at ``level`` or above, newer than ``since``."""
        floor = logging.getLevelName(level.upper()) if level else 0
        if not isinstance(floor, int):
            floor = 0
        with self._ring_lock:
            records = list(self._records)
        picked = [
            r for r in records if logging.getLevelName(r["level"]) >= floor and (since is None or r["ts"] > since)
        ]
        return picked[-lines:] if lines > 0 else []

    def clear(self) -> None:
        """Forget every record (a wipe)."""
        with self._ring_lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


_INSTALLED: LogRing | None = None
_INSTALL_LOCK = threading.Lock()


def install(capacity: int = 1000) -> LogRing:
    """The process's ring, attached to the root logger once (later calls resize it)."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if _INSTALLED is None:
            _INSTALLED = LogRing(capacity)
            logging.getLogger().addHandler(_INSTALLED)
        else:
            _INSTALLED.resize(capacity)
        return _INSTALLED
