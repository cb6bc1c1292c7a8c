"""What the rest of the gateway sees of an adapter."""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class Adapter(abc.ABC):
    """A southbound adapter: does its protocol's I/O and hands Readings to the hub.

    Long-lived: :meth:`run` serves until cancelled and undoes its own set-up on the way out.
    """

    name: str = "adapter"

    def __init__(self) -> None:
        self.rejected: Counter[str] = Counter()
        """Refused inputs by reason (``malformed``, ``too-large``, ``content-format``, ``unpaired``, ...)."""
        self.accepted = 0
        """Readings handed to the hub and made durable."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Serve until cancelled."""

    def stats(self) -> dict[str, object]:
        """Counters for health reports."""
        return {"accepted": self.accepted, "rejected": dict(self.rejected)}

    @property
    def rejected_total(self) -> int:
        """All refused inputs."""
        return sum(self.rejected.values())


class ActuationError(Exception):
    """An actuation did not happen; the message says why in the technician's words."""


@runtime_checkable
class Actuator(Protocol):
    """An adapter that can act on the devices it owns (a Roost node's outputs, a Zigbee plug, ...).

    The rules engine and the DM agent reach actuators only through :class:`gateway.actuation.Actuators`.
    """

    def owns(self, sensor: str) -> bool:
        """Whether ``sensor`` is one of this adapter's devices now."""

    def actions(self, sensor: str) -> list[str]:
        """What ``sensor`` can be asked to do (``on``, ``off``, ``actuate``, ``set-interval``, ...)."""

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Do ``action`` on ``sensor``; the device's answer; raise ActuationError (or a subclass) when it fails."""
