"""What device management keeps across in-process restarts of the daemon's parts, and how it restarts them.

The daemon (:func:`gateway.daemon.run`) runs its parts (buffer, hub, uplink, adapters) once per
*generation*. :class:`DmRuntime` outlives generations: the DM agent's dispatcher (so a repeated request id
is still answered from memory after a restart), the desired state and switches, the privileged-actions
and network backends, the log ring. It gives each generation its config (gateway.toml + the cloud's overlay
+ switches + lock), its tasks (the restart watcher, the probation of a new config, the network trial left
by a restart), and after a generation ends for a wipe it erases the state and leaves factory state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway.buffer import Batch, BufferStats
from gateway.config import GatewayConfig
from gateway.dm import wipe
from gateway.dm.agent import build_dispatcher
from gateway.dm.commands import Dispatcher
from gateway.dm.journal import JOURNAL_FILE, CommandJournal
from gateway.dm.logring import install as install_log_ring
from gateway.dm.manager import DeviceManager
from gateway.dm.network import FakeNetworkManager, NetworkBackend, NetworkChanger
from gateway.dm.nmcli import NmcliBackend
from gateway.dm.privileged import FakeActions, PrivilegedActions, SystemdActions
from gateway.dm.state import DesiredState

if TYPE_CHECKING:
    from gateway.daemon import Daemon
    from gateway.enrollment import TokenCredentials
    from gateway.uplink.core import ReadingSource, Uplink

_LOGGER = logging.getLogger(__name__)
MAX_GENERATIONS = 10_000
"""In-process restarts a process makes at most; then it exits for the service manager to start it afresh."""


class RestartParts(Exception):
    """Raised by the restart watcher to end a generation (caught by the daemon, never logged as a failure)."""


class PausedSource:
    """The buffer as the uplink sees it while the gateway is locked: nothing to send (health still goes out)."""

    def __init__(self, buffer: ReadingSource) -> None:
        self._buffer = buffer

    @property
    def pending(self) -> int:
        """Nothing is pending while locked."""
        return 0

    async def wait(self, min_readings: int = 1, timeout: float | None = None) -> bool:
        """Never any readings: wait out ``timeout`` (or until cancelled)."""
        if timeout is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(timeout)
        return False

    async def take(self, max_readings: int) -> Batch | None:
        """Nothing to take."""
        return None

    async def delete(self, batch_ids: Iterable[str]) -> int:
        """Pass through (nothing is in flight while locked)."""
        return await self._buffer.delete(batch_ids)

    def release(self, batch_ids: Iterable[str]) -> None:
        """Pass through."""
        self._buffer.release(batch_ids)

    def stats(self) -> BufferStats:
        """The real buffer's counters (what waits to be sent after unlock)."""
        return self._buffer.stats()


class DmRuntime:
    """Device management for the life of the process."""

    def __init__(self, base: GatewayConfig) -> None:
        self.base = base
        dm = base.dm
        state_dir = base.gateway.state_dir
        self.ring = install_log_ring(dm.log_lines)
        self.state = DesiredState(state_dir, rollback_after_s=dm.rollback_after_s)
        self.privileged: PrivilegedActions = (
            FakeActions(state_dir, self._restart_from_helper) if dm.privileged == "fake" else SystemdActions()
        )
        backend: NetworkBackend = (
            FakeNetworkManager(state_dir, dm.fake_network_loses_cloud)
            if dm.network == "fake"
            else NmcliBackend(dm.nm_connection)
        )
        probe = base.cloud.url.rstrip("/") + "/.well-known/roost"
        self.network = NetworkChanger(backend, state_dir, probe, rollback_after_s=dm.rollback_after_s)
        self.manager = DeviceManager(
            base, state=self.state, privileged=self.privileged, network=self.network, ring=self.ring
        )
        self.current: Daemon | None = None
        self._agent: Dispatcher | None = None
        self.generation = 0
        self._resumed = False

    def _restart_from_helper(self, why: str) -> None:
        self.manager.request_restart(why)

    async def open(self) -> None:
        """Read the desired state and switches from disk."""
        await asyncio.to_thread(self.state.load)

    def dispatcher(self) -> Dispatcher:
        """The DM agent's dispatcher (one for the process: repeats are answered across restarts)."""
        if self._agent is None:
            self._agent = build_dispatcher(lambda: self.current)
            self._agent.use_journal(CommandJournal(self.base.gateway.state_dir / "dm" / JOURNAL_FILE))
            self.manager.register(self._agent)
        return self._agent

    def effective(self) -> GatewayConfig:
        """The config the next generation runs."""
        self.manager.restart.clear()
        self.generation += 1
        return self.state.effective(self.base)

    def data_source(self, buffer: ReadingSource) -> ReadingSource:
        """What the uplink sends from: the buffer, or nothing while locked."""
        return PausedSource(buffer) if self.state.switches.locked else buffer

    def attach(self, daemon: Daemon, tokens: TokenCredentials | None) -> None:
        """A generation's parts are up: report from them, note their readings, wipe when the cloud says stolen."""
        self.current = daemon
        daemon.hub.readings.subscribe(on_next=self.manager.seen)
        self.manager.bind(lambda: daemon.adapters, lambda: _location(daemon), daemon.uplink.publish_reported)
        if tokens is not None:
            tokens.on_wipe = self.request_wipe

    def request_wipe(self, reason: str) -> None:
        """Wipe as soon as the parts have stopped (the cloud said this gateway was revoked as stolen)."""
        self.manager.wipe_requested = reason
        self.manager.request_restart("wipe")

    def tasks(self, uplink: Uplink) -> list[asyncio.Task[Any]]:
        """This generation's device-management tasks."""

        async def watch() -> None:
            await self.manager.restart.wait()
            raise RestartParts(self.manager.restart_reason)

        out = [
            asyncio.create_task(watch(), name="dm restart watcher"),
            asyncio.create_task(
                self.state.probation(lambda: uplink.connected, self.manager.request_restart), name="dm config probation"
            ),
        ]
        if not self._resumed:
            self._resumed = True
            out.append(asyncio.create_task(self.network.resume(), name="dm network trial"))
        return out

    async def after(self, config: GatewayConfig) -> bool:
        """After a generation ended for a restart: wipe if asked; False when the daemon must idle (factory state)."""
        reason = self.manager.wipe_requested
        if reason is None:
            return True
        self.manager.wipe_requested = None
        extra = [config.buffer.path, config.cloud.password_file, config.identity.claim_token_file]
        erased = await asyncio.to_thread(wipe.erase, config.gateway.state_dir, extra)
        if self._agent is not None:
            self._agent.forget()
        self.ring.clear()
        self.state = DesiredState(config.gateway.state_dir, rollback_after_s=self.base.dm.rollback_after_s)
        self.manager.state = self.state
        self.manager.seen.last.clear()
        _LOGGER.warning("wipe (%s): erased %d files; this gateway is in factory state", reason, len(erased))
        if self.base.cloud.password_file is not None:
            _LOGGER.warning("wipe: the MQTT password is gone: put a new one in place and restart the gateway")
            return False
        return True


def _location(d: Daemon) -> Any:
    from gateway.dm.agent import _location as location

    return location(d)
