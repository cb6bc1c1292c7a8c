"""Device management on a running gateway: desired/reported state and the commands that change the gateway.

Commands (registered on the DM agent's dispatcher by :meth:`DeviceManager.register`):

``reboot``, ``restart``            through the privileged helper (:mod:`gateway.dm.privileged`)
``set-config``                     ``{"config": {...}}``: gateway.toml units, the desired-state path, one-off
``enable`` / ``disable``           ``{"feature": "coap" | "serial" | ... | "local-page" | "ssh"}``
``network``                        ``{"wifi": {"ssid", "psk"}, "ipv4": {...}}``, rolled back if it loses the cloud
``lock`` / ``unlock``              stop (restore) adapters, data flow and local access; only the DM channel stays
``wipe``                           erase credentials, keys, buffer, pairings and state; then factory state
``logs``                           ``{"lines": 100, "level": "WARNING"}``: the gateway's recent log, scrubbed

A command that changes what runs (config, switches, lock, wipe, a fake reboot) answers first and then has
the daemon restart its parts in-process (:meth:`request_restart`): the result is published before the
uplink it travels on is stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from gateway.config import GatewayConfig
from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.dm.logring import LogRing
from gateway.dm.network import NetworkChanger, NetworkError
from gateway.dm.privileged import PrivilegedActions, PrivilegedError
from gateway.dm.sensors import Seen, inventory
from gateway.dm.state import FEATURES, DesiredState
from wire import state as wire_state
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)
MAX_LOG_LINES = 2000


def _version() -> str:
    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


class DeviceManager:
    """Holds what outlives one run of the daemon's parts: desired state, switches, backends, the log ring."""

    def __init__(
        self,
        base: GatewayConfig,
        *,
        state: DesiredState,
        privileged: PrivilegedActions,
        network: NetworkChanger,
        ring: LogRing,
    ) -> None:
        self.base = base
        self.state = state
        self.privileged = privileged
        self.network = network
        self.ring = ring
        self.seen = Seen()
        self.restart = asyncio.Event()
        self.restart_reason = ""
        self.wipe_requested: str | None = None
        self._adapters: Callable[[], Sequence[Any]] = list
        self._location: Callable[[], Any] = lambda: None
        self._publish: Callable[[], None] = lambda: None

    # -- the daemon's side ---------------------------------------------------------------------------------------

    def request_restart(self, reason: str) -> None:
        """Have the daemon restart its parts (with the config as it is now on disk)."""
        if not self.restart.is_set():
            _LOGGER.info("dm: restarting the gateway's parts: %s", reason)
        self.restart_reason = reason
        self.restart.set()

    def bind(
        self, adapters: Callable[[], Sequence[Any]], location: Callable[[], Any], publish: Callable[[], None]
    ) -> None:
        """The running parts: their adapters, the location, and how to publish the reported state now."""
        self._adapters, self._location, self._publish = adapters, location, publish

    def report(self) -> dict[str, Any]:
        """The reported state as of now (``state/reported``)."""
        sw = self.state.switches
        body: dict[str, Any] = {
            "version": sw.version,
            "applied": sw.applied,
            "rejected": sw.rejected,
            "sensors": inventory(self._adapters(), self.seen, self.base.paired),
            "versions": {"roost": _version()},
            "location": self._location(),
            "locked": sw.locked,
            "features": sw.features(),
            "at": round(time.time(), 3),
        }
        if self.state.rolled_back is not None:
            body["rolled_back"] = self.state.rolled_back
        if sw.locked:
            body["locked_by"] = sw.locked_by
        return body

    def reported_payload(self) -> bytes:
        """The reported state as the uplink publishes it."""
        return wire_state.encode(self.report())

    async def on_desired(self, payload: bytes) -> None:
        """A ``state/desired`` message: apply what changed, report."""
        try:
            desired = wire_state.decode_desired(payload)
        except PayloadError as exc:
            _LOGGER.warning("dm: ignoring desired state: %s", exc)
            return
        sw = self.state.switches
        if desired["version"] == sw.version and not self.state.rolled_back:
            self._publish()  # the cloud re-sends it on every connection: nothing new
            return
        if desired["version"] < sw.version:
            _LOGGER.info("dm: desired version %d is older than %d running: ignored", desired["version"], sw.version)
            self._publish()
            return
        _plan, changed = await self.state.apply(self.base, desired)
        if changed:
            self.request_restart(f"desired state version {desired['version']}")
        else:
            self._publish()

    # -- commands --------------------------------------------------------------------------------------------------

    def register(self, agent: Dispatcher) -> None:
        """Offer the device-management commands on ``agent``."""
        agent.register("reboot", self._reboot)
        agent.register("restart", self._restart)
        agent.register("set-config", self._set_config)
        agent.register("enable", self._enable)
        agent.register("disable", self._disable)
        agent.register("network", self._network)
        agent.register("lock", self._lock)
        agent.register("unlock", self._unlock)
        agent.register("wipe", self._wipe)
        agent.register("logs", self._logs)

    async def _reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.privileged.reboot()
        except PrivilegedError as exc:
            raise CommandFailed(str(exc)) from None

    async def _restart(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.privileged.restart()
        except PrivilegedError as exc:
            raise CommandFailed(str(exc)) from None

    async def _set_config(self, args: dict[str, Any]) -> dict[str, Any]:
        config = args.get("config")
        if not isinstance(config, dict) or not config:
            raise InvalidArguments("'config' must be an object of gateway.toml tables, e.g. {\"uplink\": {...}}")
        desired: wire_state.Desired = {"version": self.state.switches.version, "config": config}
        plan, changed = await self.state.apply(self.base, desired, one_off=True)
        if not plan.applied:
            raise CommandFailed("nothing applied: " + "; ".join(f"{k}: {v}" for k, v in plan.rejected.items()))
        if changed:
            self.request_restart("set-config")
        else:
            self._publish()
        return {"applied": plan.applied, "rejected": plan.rejected, "restarting": changed,
                "rollback_after_s": self.state.rollback_after_s}  # fmt: skip

    def _feature(self, args: dict[str, Any]) -> str:
        feature = args.get("feature")
        if feature not in FEATURES:
            raise InvalidArguments(f"'feature' must be one of {', '.join(FEATURES)}")
        assert isinstance(feature, str)
        return feature

    async def _switch(self, feature: str, on: bool) -> dict[str, Any]:
        sw = self.state.switches
        if feature == "ssh":
            if not sw.locked:
                try:
                    await self.privileged.set_ssh(on)
                except PrivilegedError as exc:
                    raise CommandFailed(str(exc)) from None
            await self.state.set_switch(ssh=on)
        elif feature == "local-page":
            await self.state.set_switch(local_page=on)
        else:
            disabled = sorted((set(sw.disabled) - {feature}) if on else (set(sw.disabled) | {feature}))
            if disabled != sorted(sw.disabled):
                await self.state.set_switch(disabled=disabled)
                if not sw.locked:
                    self.request_restart(f"{'enable' if on else 'disable'} {feature}")
        self._publish()
        note = " (the gateway is locked: it takes effect on unlock)" if sw.locked else ""
        return {"feature": feature, "enabled": on, "features": sw.features(), "note": note.strip()}

    async def _enable(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._switch(self._feature(args), True)

    async def _disable(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._switch(self._feature(args), False)

    async def _network(self, args: dict[str, Any]) -> dict[str, Any]:
        # Shielded: a command deadline must never cut a trial short between apply and roll-back.
        task = asyncio.ensure_future(self.network.change(args))
        try:
            return await asyncio.shield(task)
        except NetworkError as exc:
            raise CommandFailed(str(exc)) from None

    async def _lock(self, args: dict[str, Any]) -> dict[str, Any]:
        sw = self.state.switches
        if sw.locked:
            return {"locked": True, "since": sw.locked_at, "changed": False}
        by = str(args.get("reason", ""))[:200]
        if sw.ssh:
            try:
                await self.privileged.set_ssh(False)
            except PrivilegedError as exc:
                _LOGGER.warning("dm: lock: cannot switch SSH off: %s", exc)
        await self.state.set_switch(locked=True, locked_by=by or None, locked_at=time.time())
        _LOGGER.warning("dm: locked: adapters, data flow and local access stop; only the DM channel stays")
        self.request_restart("lock")
        return {"locked": True, "since": sw.locked_at, "changed": True}

    async def _unlock(self, args: dict[str, Any]) -> dict[str, Any]:
        sw = self.state.switches
        if not sw.locked:
            return {"locked": False, "changed": False}
        if sw.ssh:
            try:
                await self.privileged.set_ssh(True)
            except PrivilegedError as exc:
                _LOGGER.warning("dm: unlock: cannot switch SSH back on: %s", exc)
        await self.state.set_switch(locked=False, locked_by=None, locked_at=None)
        _LOGGER.info("dm: unlocked")
        self.request_restart("unlock")
        return {"locked": False, "changed": True}

    async def _wipe(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("confirm") != "wipe":
            raise InvalidArguments('a wipe erases this gateway\'s identity and data: pass {"confirm": "wipe"}')
        self.wipe_requested = str(args.get("reason", "by command"))[:200]
        _LOGGER.warning("dm: wipe requested (%s): erasing once this answer is sent", self.wipe_requested)
        self.request_restart("wipe")
        return {"wiping": True, "then": "factory state: the gateway waits to be enrolled again"}

    async def _logs(self, args: dict[str, Any]) -> dict[str, Any]:
        lines = args.get("lines", 100)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_LOG_LINES:
            raise InvalidArguments(f"'lines' must be a whole number between 1 and {MAX_LOG_LINES}")
        level = args.get("level")
        if level is not None and level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise InvalidArguments("'level' must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        records = self.ring.tail(lines, level=level)
        return {"lines": records, "count": len(records), "kept": len(self.ring)}
