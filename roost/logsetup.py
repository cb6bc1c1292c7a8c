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
