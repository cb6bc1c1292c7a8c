"""Log records to the systemd journal's native socket, with structured fields.

Each record is one datagram in the journal's native protocol: ``KEY=value`` lines, or, for a value that
holds a newline, ``KEY``, a newline, its length as 64-bit little-endian, the bytes and a newline. Fields:
``MESSAGE``, ``PRIORITY`` (syslog levels), ``SYSLOG_IDENTIFIER``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC``,
``LOGGER``, ``THREAD_NAME``, and Roost's own from ``extra=``: ``SENSOR``, ``ADAPTER``, ``REQUEST_ID``,
``GATEWAY``, ``RULE`` (``journalctl -u roost-gateway SENSOR=kitchen-1``).

No memfd for large entries: a message longer than :data:`MAX_MESSAGE` is cut (and says so). When the
journal cannot take a record (journald restarting), it goes to stderr, which the unit connects to the
journal too.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from collections.abc import Mapping

SOCKET_PATH = "/run/systemd/journal/socket"
MAX_MESSAGE = 48 * 1024
"""Longest MESSAGE sent whole (bytes); longer ones are cut."""

EXTRA_FIELDS: Mapping[str, str] = {
    "sensor": "SENSOR",
    "adapter": "ADAPTER",
    "request_id": "REQUEST_ID",
    "gateway": "GATEWAY",
    "rule": "RULE",
}
"""``extra=`` keys that become journal fields."""

_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority for a logging level (DEBUG and TRACE: 7)."""
    for level, prio in _PRIORITY:
        if levelno >= level:
            return prio
    return 7


def encode(fields: Mapping[str, object]) -> bytes:
    """One entry in the native protocol; field names must be journal names (A-Z, 0-9, _; not leading _)."""
    out = bytearray()
    for key, value in fields.items():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", errors="replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def stream_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` (stderr) is the stream systemd connected to the journal (``$JOURNAL_STREAM`` = dev:inode)."""
    raw = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = raw.partition(":")
    try:
        st = os.fstat(fd)
        return (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (ValueError, OSError):
        return False


class JournalHandler(logging.Handler):
    """Sends each record to the journal's native socket; stderr when the journal does not take it."""

    def __init__(self, identifier: str, *, path: str = SOCKET_PATH, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.identifier = identifier
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.fallbacks = 0
        """Records written to stderr because the journal refused them."""

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        """The journal fields for ``record``."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatter_or_default().formatException(record.exc_info)
        elif record.exc_text:
            message += "\n" + record.exc_text
        if record.stack_info:
            message += "\n" + record.stack_info
        raw = message.encode("utf-8", errors="replace")
        if len(raw) > MAX_MESSAGE:
            message = raw[:MAX_MESSAGE].decode("utf-8", errors="ignore") + f" [cut: {len(raw)} bytes in all]"
        fields: dict[str, object] = {
            "MESSAGE": message,
            "PRIORITY": priority(record.levelno),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": record.lineno,
            "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName or "",
        }
        for attr, key in EXTRA_FIELDS.items():
            value = record.__dict__.get(attr)
            if value is not None:
                fields[key] = value
        return fields

    def formatter_or_default(self) -> logging.Formatter:
        """The handler's formatter (for tracebacks), or logging's default one."""
        return self.formatter or logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record; on failure write it to stderr instead."""
        try:
            self._sock.sendto(encode(self.fields(record)), self.path)
        except OSError:
            self.fallbacks += 1
            try:
                sys.stderr.write(f"{self.identifier}: {record.levelname} {record.name}: {record.getMessage()}\n")
                sys.stderr.flush()
            except Exception:
                self.handleError(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the socket."""
        try:
            self._sock.close()
        finally:
            super().close()
