"""The DM agent's commands on a running gateway (the rest of device management builds on these).

``ping``: the gateway answers with its id, uptime and clock (a round-trip check).
``report-state``: buffer, adapters, identity and versions as the gateway sees them now.
``rotate-credentials``: a new key pair and new tokens; the old ones are revoked by the cloud, the
uplink reconnects with the new token and nothing buffered is lost.
``actuate``: ``{"sensor": ..., "action": ..., "args": {...}}`` on a local device (a Roost node's output,
its reporting interval, ...), through the adapter that owns it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from gateway.actuation import Actuators
from gateway.adapters.base import ActuationError
from gateway.dm import pair_commands
from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.enrollment import RotationFailed

if TYPE_CHECKING:
    from gateway.daemon import Daemon


def _version() -> str:
    try:
        return metadata.version("roost")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def build_dispatcher(daemon: Callable[[], Daemon | None], *, clock: Callable[[], float] = time.time) -> Dispatcher:
    """The dispatcher with the gateway's commands; ``daemon`` gives the running parts once they exist."""
    agent = Dispatcher(clock=clock)

    def running() -> Daemon:
        d = daemon()
        if d is None:
            raise CommandFailed("the gateway is still starting: try again in a few seconds")
        return d

    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        d = running()
        return {"gateway": d.gateway_id, "uptime_s": round(time.time() - d.started, 1), "time": clock()}

    async def report_state(args: dict[str, Any]) -> dict[str, Any]:
        d = running()
        return {
            "gateway": d.gateway_id,
            "version": _version(),
            "uptime_s": round(time.time() - d.started, 1),
            "buffer": dict(d.buffer.stats()),
            "adapters": {a.name: a.stats() for a in d.adapters},
            "identity": None if d.identity is None else {"state": d.identity.state, "rotations": d.identity.rotations},
            "location": _location(d),
            "commands": agent.commands,
        }

    async def rotate_credentials(args: dict[str, Any]) -> dict[str, Any]:
        d = running()
        if d.identity is None:
            raise CommandFailed(
                "this gateway connects with a configured password, not its own tokens: nothing to rotate"
            )
        try:
            return await d.identity.rotate()
        except RotationFailed as exc:
            raise CommandFailed(str(exc)) from None

    async def actuate(args: dict[str, Any]) -> dict[str, Any]:
        d = running()
        sensor, action, extra = args.get("sensor"), args.get("action"), args.get("args", {})
        if not isinstance(sensor, str) or not sensor:
            raise InvalidArguments("'sensor' must name the device (its sensor id)")
        if not isinstance(action, str) or not action:
            raise InvalidArguments("'action' must say what to do (on, off, actuate, set-interval, ...)")
        if not isinstance(extra, dict):
            raise InvalidArguments("'args' must be an object")
        try:
            return await Actuators(d.adapters).actuate(sensor, action, extra)
        except ActuationError as exc:
            raise CommandFailed(str(exc)) from None

    async def locate(args: dict[str, Any]) -> dict[str, Any]:
        where = _location(running())
        if where is None:
            raise CommandFailed(
                "this gateway does not know where it is: no GPS fix, and gateway.toml gives no latitude/longitude"
            )
        return where

    agent.register("ping", ping)
    agent.register("locate", locate)
    pair_commands.register(agent, running)
    agent.register("actuate", actuate)
    agent.register("report-state", report_state)
    agent.register("rotate-credentials", rotate_credentials)
    return agent


def _location(d: Daemon) -> dict[str, Any] | None:
    """Where the gateway is: the last GPS fix of a serial NMEA receiver, else the configured position."""
    for adapter in d.adapters:
        fix = getattr(adapter, "last_fix", None)
        if fix is not None:
            return {
                "lat": fix.lat,
                "lon": fix.lon,
                "alt_m": fix.alt_m,
                "source": "gps",
                "at": getattr(adapter, "last_fix_at", None),
            }
    if d.position is not None:
        return {**d.position, "alt_m": None, "source": "configured", "at": None}
    return None


def heartbeat(d: Daemon) -> dict[str, Any]:
    """What the periodic health report carries besides the uplink's counters."""
    from gateway.dm.system import system_health

    return {
        "system": system_health(d.buffer.path.parent),
        "adapters": {a.name: a.stats() for a in d.adapters},
        "versions": {"roost": _version()},
        "location": _location(d),
        "rules": None if d.rules is None else d.rules.stats(),
    }
