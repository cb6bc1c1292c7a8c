"""Commands for CoAP nodes: a node observes ``/cmd/{node}`` and the gateway notifies it of what to do.

The wire (text, content-format 0; ids are the gateway's, decimal):

* ``GET /cmd/{node}?actions=set-interval,actuate,on,off&outputs=2`` with Observe 0: the node registers
  and says what it can do. The answer, and every notification after it, is the oldest command the node
  has not answered yet, ``{id} {action}[ {name}={integer}...]`` (``7 actuate output=0 value=1``), or an
  empty payload when nothing is waiting.
* ``POST /cmd/{node}`` with ``{id} ok`` or ``{id} error {what went wrong}``: the node's result, answered
  2.04 (a result for a command the gateway no longer waits for is answered 2.04 too, and ignored).

A notification can be lost (CoAP observe is best effort), so while a command waits the gateway notifies
again every :data:`RENOTIFY_S`; a node remembers the last id it carried out and answers a repeat without
doing it twice. A command not answered within :data:`COMMAND_TIMEOUT_S` fails with the reason in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiocoap
import aiocoap.resource

from gateway.adapters.base import ActuationError
from gateway.pairing import Pairing
from wire.names import check_sensor

_LOGGER = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 15.0
RENOTIFY_S = 2.0
MAX_OBSERVATIONS_PER_NODE = 4
MAX_NODES = 1000
MAX_PENDING_PER_NODE = 16
KNOWN_ACTIONS = ("set-interval", "read-now", "identify", "actuate", "on", "off")
_RESULT = re.compile(r"^(\d{1,18}) (ok|error)(?: (.*))?$", re.DOTALL)


class Refused(Exception):
    """A request refused with a CoAP code and a diagnostic (counted under ``reason``)."""

    def __init__(self, code: aiocoap.Code, reason: str, diagnostic: str) -> None:
        super().__init__(diagnostic)
        self.code = code
        self.reason = reason
        self.diagnostic = diagnostic


@dataclass
class _Command:
    id: int
    line: str
    done: asyncio.Future[str | None]


@dataclass
class Node:
    """What one CoAP node said it can do, its observations and its waiting commands."""

    actions: list[str] = field(default_factory=list)
    outputs: int = 0
    observations: list[Any] = field(default_factory=list)
    pending: list[_Command] = field(default_factory=list)


class NodeCommands:
    """The CoAP nodes that observe their command resource, and the commands waiting for them."""

    def __init__(self, pairing: Pairing, rejected: Counter[str]) -> None:
        self._pairing = pairing
        self.rejected = rejected
        self.nodes: dict[str, Node] = {}
        # Ids start at random so that after a restart the gateway never reuses one a node has carried out.
        self._ids = itertools.count(secrets.randbits(40))

    # -- the Actuator side ----------------------------------------------------------------------

    def owns(self, sensor: str) -> bool:
        """Whether node ``sensor`` observes its command resource now."""
        node = self.nodes.get(sensor)
        return node is not None and bool(node.observations) and self._pairing.allows(sensor)

    def actions(self, sensor: str) -> list[str]:
        """What node ``sensor`` said it can do."""
        return list(self.nodes[sensor].actions) if self.owns(sensor) else []

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Notify node ``sensor`` of the command and wait for its result."""
        node = self.nodes.get(sensor)
        if node is None or not node.observations:
            raise ActuationError(f"the CoAP node {sensor} is not listening for commands (is it running?)")
        if len(node.pending) >= MAX_PENDING_PER_NODE:
            raise ActuationError(f"the CoAP node {sensor} already has {len(node.pending)} commands waiting")
        command = _Command(next(self._ids), "", asyncio.get_running_loop().create_future())
        command.line = f"{command.id} {action}" + "".join(f" {k}={v}" for k, v in _arguments(action, args, node))
        node.pending.append(command)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                while True:
                    if node.pending and node.pending[0] is command:
                        _notify(node)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RENOTIFY_S):
                            error = await asyncio.shield(command.done)
                            break
        except TimeoutError:
            raise ActuationError(
                f"the CoAP node {sensor} did not answer {action!r} within {COMMAND_TIMEOUT_S:.0f} s "
                "(is it running and can it reach the gateway?)"
            ) from None
        finally:
            if command in node.pending:
                was_first = node.pending[0] is command
                node.pending.remove(command)
                if was_first:
                    _notify(node)
        if error is not None:
            raise ActuationError(f"the CoAP node {sensor} could not {action}: {error}")
        return {"sensor": sensor, "action": action, "result": "done"}

    # -- the CoAP side ----------------------------------------------------------------------------

    def check_node(self, request: aiocoap.Message) -> str:
        """The node named in the path; raise Refused when it is not one or not paired."""
        path = list(request.opt.uri_path)
        if len(path) != 1 or not path[0]:
            raise Refused(aiocoap.NOT_FOUND, "path", "commands are at /cmd/{node}")
        try:
            sensor = check_sensor(path[0])
        except ValueError as exc:
            raise Refused(aiocoap.BAD_REQUEST, "malformed", f"in the path: {exc}") from exc
        if not self._pairing.allows(sensor):
            self._pairing.note_unknown(sensor, "coap commands", 0)
            raise Refused(aiocoap.FORBIDDEN, "unpaired", f"node {sensor} is not paired with this gateway; pair it")
        return sensor

    def current(self, sensor: str) -> bytes:
        """The oldest command waiting for ``sensor`` (empty when none)."""
        node = self.nodes.get(sensor)
        return node.pending[0].line.encode() if node is not None and node.pending else b""

    def register(self, sensor: str, request: aiocoap.Message) -> Node:
        """Remember what node ``sensor`` says it can do (from the query of its GET)."""
        node = self.nodes.get(sensor)
        if node is None:
            if len(self.nodes) >= MAX_NODES:
                raise Refused(aiocoap.SERVICE_UNAVAILABLE, "too-many-nodes", "this gateway serves no more CoAP nodes")
            node = self.nodes[sensor] = Node()
        for item in request.opt.uri_query:
            name, _, value = item.partition("=")
            if name == "actions":
                node.actions = [a for a in value.split(",") if a in KNOWN_ACTIONS]
            elif name == "outputs" and value.isdigit():
                node.outputs = min(int(value), 255)
        return node

    def observe(self, sensor: str, observation: Any) -> None:
        """A new observation of ``/cmd/{sensor}``; the oldest ones beyond the bound are ended."""
        node = self.nodes.get(sensor)
        if node is None:
            return
        node.observations.append(observation)

        def cancelled() -> None:
            if observation in node.observations:
                node.observations.remove(observation)

        observation.accept(cancelled)
        while len(node.observations) > MAX_OBSERVATIONS_PER_NODE:
            old = node.observations.pop(0)
            old.trigger(aiocoap.Message(code=aiocoap.SERVICE_UNAVAILABLE, payload=b"observation replaced"))
        if len(node.observations) == 1:
            _LOGGER.info("CoAP node %s listens for commands (%s)", sensor, ", ".join(node.actions) or "no actions")

    def result(self, sensor: str, payload: bytes) -> None:
        """The node's answer to a command; raise Refused when it does not parse."""
        match = _RESULT.match(payload.decode("utf-8", "replace").strip())
        if match is None:
            raise Refused(aiocoap.BAD_REQUEST, "malformed", "a result is '{id} ok' or '{id} error {message}'")
        node = self.nodes.get(sensor)
        command_id = int(match.group(1))
        command = next((c for c in node.pending if c.id == command_id), None) if node is not None else None
        if command is None or command.done.done():
            _LOGGER.debug("CoAP node %s answered command %d, which no longer waits", sensor, command_id)
            return
        command.done.set_result(None if match.group(2) == "ok" else (match.group(3) or "no reason given"))


def _notify(node: Node) -> None:
    for observation in list(node.observations):
        observation.trigger()


def _int_arg(args: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ActuationError(f"'{name}' must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def _arguments(action: str, args: Mapping[str, Any], node: Node) -> list[tuple[str, int]]:
    """The command's arguments, checked (the same names as a Roost serial node's)."""
    last_output = max(0, node.outputs - 1)
    if action == "set-interval":
        return [("seconds", _int_arg(args, "seconds", 1, 86400))]
    if action == "actuate":
        output = _int_arg(args, "output", 0, last_output)
        return [("output", output), ("value", _int_arg(args, "value", -(2**31), 2**31 - 1))]
    if action in ("on", "off"):
        return [("output", _int_arg(args, "output", 0, last_output, default=0))]
    if action in ("identify", "read-now"):
        return []
    raise ActuationError(f"a CoAP node cannot {action!r}: it knows {', '.join(KNOWN_ACTIONS)}")


class CommandResource(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):  # type: ignore[misc]
    """``/cmd/{node}``: GET (observed) gives the waiting command, POST takes a result."""

    def __init__(self, commands: NodeCommands) -> None:
        super().__init__()
        self._commands = commands

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        """Keep an observation of a paired node's command resource (refusals are answered by render).

        A refused one is accepted too, with nothing to undo: render's error answer ends it, and aiocoap
        0.4 calls the cancellation callback of every observation it asked about, accepted or not.
        """
        try:
            sensor = self._commands.check_node(request)
            if request.code != aiocoap.GET:
                raise Refused(aiocoap.METHOD_NOT_ALLOWED, "method", "observe with GET")
            self._commands.register(sensor, request)
        except Refused:
            serverobservation.accept(lambda: None)
            return
        self._commands.observe(sensor, serverobservation)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        """Answer one request; never lets an exception out."""
        try:
            sensor = self._commands.check_node(request)
            if request.code == aiocoap.GET:
                self._commands.register(sensor, request)
                response = aiocoap.Message(code=aiocoap.CONTENT, payload=self._commands.current(sensor))
                response.opt.content_format = 0
                return response
            if request.code == aiocoap.POST:
                self._commands.result(sensor, request.payload)
                return aiocoap.Message(code=aiocoap.CHANGED)
            raise Refused(aiocoap.METHOD_NOT_ALLOWED, "method", "GET (observe) for commands, POST for results")
        except Refused as exc:
            self._commands.rejected[exc.reason] += 1
            response = aiocoap.Message(code=exc.code, payload=exc.diagnostic.encode())
            response.opt.content_format = 0
            return response
        except Exception:  # the receive path must never die
            self._commands.rejected["internal"] += 1
            _LOGGER.exception("CoAP command request failed")
            return aiocoap.Message(code=aiocoap.INTERNAL_SERVER_ERROR, payload=b"internal error")
