"""sd_notify over real unix datagram sockets: a path, the abstract namespace, none at all."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from gateway import sdnotify


def test_a_path_socket_gets_the_fields_as_one_datagram(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(str(tmp_path / "notify"))
        sd.settimeout(5)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify")}
        assert sdnotify.notify("READY=1", "STATUS=online, 1 adapter\nsecond line", env=env)
        assert sd.recv(4096) == b"READY=1\nSTATUS=online, 1 adapter second line"


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"roost-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind("\0" + name)
        sd.settimeout(5)
        assert sdnotify.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name})
        assert sd.recv(4096) == b"WATCHDOG=1"


def test_without_a_service_manager_nothing_is_sent(tmp_path: Path) -> None:
    assert not sdnotify.enabled({})
    assert not sdnotify.notify("READY=1", env={})
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"})
    # A socket that went away: no exception, just False.
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_its_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000"}
    assert sdnotify.watchdog_interval(env) == 15.0
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) is None  # no socket to ping
