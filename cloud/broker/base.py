"""What the rest of the cloud sees of a broker: start/stop, a stream of received publishes and presence, publish."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from cloud.authz import Principal

Settle = Callable[[bool], Awaitable[None]]
"""``settle(True)``: the message is stored (or counted as refused or ignored); ``settle(False)``: deliver it again."""


@dataclass(frozen=True, slots=True)
class Received:
    """A publish the broker accepted (the publisher was allowed to send it)."""

    topic: str
    payload: bytes
    client_id: str
    principal: Principal | None
    settle: Settle | None = None
    """Set by brokers that redeliver what is not settled (RabbitMQ): call it once done; None: nothing to do."""


@dataclass(frozen=True, slots=True)
class Presence:
    """A client's first connection opened (``online``) or its last one closed."""

    client_id: str
    principal: Principal
    online: bool


BrokerEvent = Received | Presence


class MessageBroker(Protocol):
    """A broker the cloud ingests from and publishes to."""

    async def start(self) -> None:
        """Start accepting connections."""
        ...

    async def stop(self) -> None:
        """Close every connection and stop; bounded in time."""
        ...

    def events(self) -> AsyncIterator[BrokerEvent]:
        """Received publishes and presence changes, in arrival order; ends when the broker stops."""
        ...

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish as the cloud itself (not subject to client authorization)."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether the broker runs."""
        ...
