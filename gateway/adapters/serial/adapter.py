"""The serial adapter: every ``[[adapters.serial]]`` port served by its own task, each with its protocol.

Ports are independent: one that is missing, unplugged or full of noise never stops another. The
adapter's ``rejected`` counter sums every port's refusals by reason; :meth:`SerialAdapter.stats`
breaks them down per port. Commands for a Roost node go through :meth:`SerialAdapter.send_command`
(the DM agent's way in); the last NMEA fix is :attr:`SerialAdapter.last_fix`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from drivers.nmea import Fix
from drivers.roostserial import messages as m
from gateway.adapters.base import ActuationError, Adapter
from gateway.adapters.serial.config import SerialPortSection
from gateway.adapters.serial.errors import NodeUnavailable, SerialError
from gateway.adapters.serial.line_protocol import LineHandler
from gateway.adapters.serial.nmea_protocol import NmeaHandler
from gateway.adapters.serial.port import SerialPort
from gateway.adapters.serial.roost_protocol import COMMAND_ATTEMPTS, COMMAND_TIMEOUT_S, RoostHandler
from gateway.hub import Hub
from gateway.pairing import Pairing

_LOGGER = logging.getLogger(__name__)

Handler = RoostHandler | NmeaHandler | LineHandler


class SerialAdapter(Adapter):
    """Serves every configured serial port until cancelled."""

    name = "serial"

    def __init__(
        self, ports: Sequence[SerialPortSection], hub: Hub, pairing: Pairing, *, rng: random.Random | None = None
    ) -> None:
        super().__init__()
        self._rng = rng or random.Random()
        self.ports: list[SerialPort] = []
        self.handlers: list[Handler] = []
        self.last_fix: Fix | None = None
        """The last position fix of any NMEA port: the gateway's location."""
        self.last_fix_at: float | None = None
        """When (gateway time, seconds since 1970) :attr:`last_fix` was received."""
        for section in ports:
            handler: Handler
            if section.protocol == "roost":
                handler = RoostHandler(section, hub, pairing, self, rng=self._rng)
            elif section.protocol == "nmea":
                handler = NmeaHandler(section, hub, self)
            else:
                handler = LineHandler(section, hub, self)
            self.handlers.append(handler)
            self.ports.append(SerialPort(section, handler, rng=self._rng))

    async def run(self) -> None:
        """One task per port, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for port in self.ports:
                tg.create_task(port.run(), name=f"serial {port.section.path}")

    def port(self, path: str) -> SerialPort:
        """The port configured with ``path``."""
        for port in self.ports:
            if port.section.path == path:
                return port
        raise KeyError(path)

    @contextlib.asynccontextmanager
    async def released(self, path: str, reason: str, *, timeout_s: float = 10.0) -> AsyncIterator[SerialPort]:
        """Port ``path`` closed and left alone (for another program, e.g. avrdude) inside the block, reopened after."""
        port = self.port(path)
        try:
            async with asyncio.timeout(timeout_s):
                await port.release(reason)
            yield port
        finally:
            port.take_back()

    def nodes(self) -> dict[str, m.Announce]:
        """The Roost nodes announced now, by sensor id."""
        return {h.node.node_id: h.node for h in self.handlers if isinstance(h, RoostHandler) and h.node is not None}

    async def send_command(
        self, sensor: str, command: m.Command, *, attempts: int = COMMAND_ATTEMPTS, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        """Have node ``sensor`` carry out ``command``; raise NodeUnavailable, CommandTimeout or CommandRefused."""
        for port, handler in zip(self.ports, self.handlers, strict=True):
            if isinstance(handler, RoostHandler) and handler.node is not None and handler.node.node_id == sensor:
                if port.state != "open":
                    raise NodeUnavailable(sensor, f"its port {port.section.path} is {port.state}")
                await handler.command(command, attempts=attempts, timeout_s=timeout_s)
                return
        raise NodeUnavailable(sensor, "no Roost node with that id has announced itself")

    # -- the Actuator interface (the DM agent's and the rules engine's way to a node) ---------------------------

    def owns(self, sensor: str) -> bool:
        """Whether ``sensor`` is a Roost node announced on one of the ports."""
        return sensor in self.nodes()

    def actions(self, sensor: str) -> list[str]:
        """What node ``sensor`` announced it can do."""
        node = self.nodes().get(sensor)
        if node is None:
            return []
        caps = m.Capability(node.capabilities)
        out = ["identify"]
        if caps & m.Capability.SET_INTERVAL:
            out.append("set-interval")
        if caps & m.Capability.ACTUATE and node.outputs:
            out += ["actuate", "on", "off"]
        if caps & m.Capability.REBOOT:
            out.append("reboot")
        return out

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out ``action`` on node ``sensor`` (set-interval, actuate, on, off, reboot, identify)."""
        node = self.nodes().get(sensor)
        command = _node_command(action, args, node.outputs if node is not None else 0)
        try:
            await self.send_command(sensor, command)
        except SerialError as exc:
            raise ActuationError(str(exc)) from None
        return {"sensor": sensor, "action": action, "result": "done"}

    def note_fix(self, fix: Fix, at: float, path: str) -> None:
        """An NMEA port got a position fix."""
        if self.last_fix is None:
            _LOGGER.info("Gateway location from %s: %.5f, %.5f", path, fix.lat, fix.lon)
        self.last_fix = fix
        self.last_fix_at = at

    def stats(self) -> dict[str, object]:
        """Counters for health reports, per port too."""
        duplicates = sum(h.duplicates for h in self.handlers if isinstance(h, RoostHandler))
        ports: dict[str, Any] = {
            p.section.path: {**p.stats(), **h.stats()} for p, h in zip(self.ports, self.handlers, strict=True)
        }
        return {**super().stats(), "duplicates": duplicates, "ports": ports}


def _int_arg(args: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ActuationError(f"'{name}' must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def _node_command(action: str, args: Mapping[str, Any], outputs: int) -> m.Command:
    """The protocol command for an action, with its arguments checked."""
    last_output = max(0, outputs - 1)
    if action == "set-interval":
        return m.SetInterval(_int_arg(args, "seconds", 1, 65535))
    if action == "actuate":
        return m.Actuate(_int_arg(args, "output", 0, last_output), _int_arg(args, "value", -32768, 32767))
    if action in ("on", "off"):
        return m.Actuate(_int_arg(args, "output", 0, last_output, default=0), 1 if action == "on" else 0)
    if action == "reboot":
        return m.Reboot()
    if action == "identify":
        return m.Identify()
    raise ActuationError(f"a Roost node cannot {action!r}: it knows set-interval, actuate, on, off, reboot, identify")
