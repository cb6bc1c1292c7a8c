"""Privileged actions (reboot, restart the service, SSH on/off) behind one narrow interface.

The daemon never runs as root. On the Roost image a privileged helper does these things: one systemd unit
per action (``roost-priv@reboot.service``, ``roost-priv@restart.service``, ``roost-priv@ssh-on.service``,
``roost-priv@ssh-off.service``) that polkit lets the gateway's user start, and nothing else.
:class:`SystemdActions` starts those units; the units themselves come with the image (issue 9), so on a
machine without them every action fails with a message that says so. :class:`FakeActions` (demo, tests)
records each action in ``privileged-actions.jsonl`` in the state folder and has reboot and restart restart
the daemon in-process, as close as a test gets to the real thing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

_LOGGER = logging.getLogger(__name__)
FAKE_LOG = "privileged-actions.jsonl"
SYSTEMCTL_TIMEOUT_S = 15.0


class PrivilegedError(Exception):
    """A privileged action could not be carried out; the message is what the operator reads."""


class PrivilegedActions(Protocol):
    """What the DM agent may ask of the privileged helper."""

    async def reboot(self) -> dict[str, Any]:
        """Reboot the machine (returns before it happens)."""

    async def restart(self) -> dict[str, Any]:
        """Restart the gateway service (returns before it happens)."""

    async def set_ssh(self, enabled: bool) -> dict[str, Any]:
        """Switch the SSH server on or off."""


class SystemdActions:
    """The image's helper units, started with ``systemctl --no-block start`` (polkit-authorized)."""

    def __init__(self, systemctl: str = "systemctl", unit: str = "roost-priv@{}.service") -> None:
        self._systemctl = systemctl
        self._unit = unit

    async def _start(self, action: str) -> dict[str, Any]:
        unit = self._unit.format(action)
        exe = shutil.which(self._systemctl)
        if exe is None:
            raise PrivilegedError(
                f"{action}: no systemctl on this machine; privileged actions need the Roost image (issue 9)"
            )
        proc = await asyncio.create_subprocess_exec(
            exe, "--no-block", "start", unit, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(SYSTEMCTL_TIMEOUT_S):
                _out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            raise PrivilegedError(f"{action}: systemctl did not answer within {SYSTEMCTL_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            why = err.decode(errors="replace").strip()[:300]
            raise PrivilegedError(
                f"{action}: cannot start {unit} ({why}); the privileged helper units come with the image (issue 9)"
            )
        _LOGGER.info("privileged: started %s", unit)
        return {"action": action, "unit": unit}

    async def reboot(self) -> dict[str, Any]:
        """Start ``roost-priv@reboot.service``."""
        return await self._start("reboot")

    async def restart(self) -> dict[str, Any]:
        """Start ``roost-priv@restart.service``."""
        return await self._start("restart")

    async def set_ssh(self, enabled: bool) -> dict[str, Any]:
        """Start ``roost-priv@ssh-on.service`` or ``...@ssh-off.service``."""
        return await self._start("ssh-on" if enabled else "ssh-off")


class FakeActions:
    """Records actions in ``state_dir/privileged-actions.jsonl``; reboot and restart call ``restart_daemon``."""

    def __init__(self, state_dir: Path, restart_daemon: Callable[[str], None]) -> None:
        self.path = state_dir / FAKE_LOG
        self._restart = restart_daemon
        self.ssh = False

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    async def _record(self, action: str) -> dict[str, Any]:
        await asyncio.to_thread(self._append, json.dumps({"action": action, "at": time.time()}))
        _LOGGER.info("privileged (fake): %s", action)
        return {"action": action, "fake": True}

    async def reboot(self) -> dict[str, Any]:
        """Record, then restart the daemon in-process (a reboot as far as the gateway can tell)."""
        out = await self._record("reboot")
        self._restart("reboot")
        return out

    async def restart(self) -> dict[str, Any]:
        """Record, then restart the daemon in-process."""
        out = await self._record("restart")
        self._restart("restart")
        return out

    async def set_ssh(self, enabled: bool) -> dict[str, Any]:
        """Record the switch."""
        self.ssh = enabled
        return await self._record("ssh-on" if enabled else "ssh-off")


def recorded(state_dir: Path) -> list[dict[str, Any]]:
    """What a :class:`FakeActions` recorded (tests, the demo)."""
    path = state_dir / FAKE_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
