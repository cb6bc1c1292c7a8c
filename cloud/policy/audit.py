"""The audit log: every deny and every administrative change, as append-only JSON lines (who, what, when, why)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

_LOGGER = logging.getLogger(__name__)


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends one JSON object a line to ``path`` (if given) and keeps the latest ``keep`` entries in memory.

    Each entry has ``at`` (RFC 3339 UTC), ``event`` ("deny", "policy_replaced", "policy_rejected") and the
    event's fields: ``who`` (the subject or the administrator), ``what`` (action and resource, or the policy
    version), ``why`` (the policies that decided, or the problems found).
    """

    def __init__(self, path: Path | None = None, *, keep: int = 1000, clock: Any = time.time) -> None:
        self._path = path
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._clock = clock
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    @property
    def path(self) -> Path | None:
        """Where the log is written, if anywhere."""
        return self._path

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one entry and return it."""
        entry: dict[str, Any] = {"at": _rfc3339(self._clock()), "event": event, **fields}
        line = json.dumps(entry, separators=(",", ":"), sort_keys=False)
        with self._lock:
            self._recent.append(entry)
            if self._file is not None:
                try:
                    self._file.write(line + "\n")
                    self._file.flush()
                except OSError as exc:  # the decision stands; losing an audit line is logged, not raised
                    _LOGGER.warning("audit log %s: %s", self._path, exc)
        return entry

    def recent(self, event: str | None = None) -> list[dict[str, Any]]:
        """The latest entries kept in memory, oldest first, optionally only one kind of event."""
        with self._lock:
            return [e for e in self._recent if event is None or e["event"] == event]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
