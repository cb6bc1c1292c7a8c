"""Logging for the command line: human lines on a terminal, no timestamps of our own under systemd."""

from __future__ import annotations

import logging
import os
import sys


def setup(level: str = "INFO", *, name: str = "roost") -> None:
    """Configure the root logger once."""
    if os.environ.get("JOURNAL_STREAM"):
        fmt = f"{name}: %(levelname)s %(name)s: %(message)s"  # the journal stamps time itself
    else:
        fmt = f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    _journal(name)
    # Third-party chatter stays at WARNING unless we are debugging.
    if level != "DEBUG":
        for noisy in (
            "amqtt",
            "aiocoap",
            "coap-server",
            "coap",
            "uvicorn.access",
            "uvicorn.error",
            "transitions",
            "websockets",
        ):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _journal(name: str) -> None:
    """Under systemd (stderr is the journal stream, or ROOST_JOURNAL_SOCKET names a socket): structured records."""
    from roost import journal

    path = os.environ.get("ROOST_JOURNAL_SOCKET") or (
        journal.SOCKET_PATH if journal.stream_is_journal() and os.path.exists(journal.SOCKET_PATH) else ""
    )
    if path:
        root = logging.getLogger()
        for old in root.handlers[:]:
            root.removeHandler(old)
        root.addHandler(journal.JournalHandler(name, path=path))
