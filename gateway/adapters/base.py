"""What the rest of the gateway sees of an adapter."""

from __future__ import annotations

import abc
from collections import Counter


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
