"""The systemd notification protocol (sd_notify), with no dependency: one datagram per message.

Under ``Type=notify`` systemd sets ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace)
and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``). Outside systemd every call is a
no-op that returns False, so the daemon runs the same from a shell, the demo and the tests.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


def _address(env: Mapping[str, str]) -> str | bytes | None:
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace: a leading NUL byte instead of '@'
    if raw.startswith("/"):
        return raw
    return None  # vsock (vsock:CID:PORT) and other forms: not used on the image


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether a service manager listens for notifications."""
    return _address(os.environ if env is None else env) is not None


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``) as one message.

    Returns whether it was sent; never raises (a notification lost is the service manager's problem to
    notice, not a reason for the gateway to stop).
    """
    addr = _address(os.environ if env is None else env)
    if addr is None or not fields:
        return False
    message = "\n".join(f.replace("\n", " ") for f in fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message)
    except OSError as exc:
        _LOGGER.debug("sd_notify to %r failed: %s", addr, exc)
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is set.

    ``$WATCHDOG_PID``, when set, must be this process (a child that inherited the variables must not ping).
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    if usec <= 0 or not enabled(env):
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return usec / 2_000_000
