"""One way to act on local devices: find the adapter that owns a sensor and hand it the action.

The rules engine (``command`` actions) and the DM agent (the ``actuate`` command from the cloud) both
go through :class:`Actuators`, so neither knows which radio or bus a device hangs on. Errors say what a
technician can check: nobody owns the sensor (not paired, not announced, offline), the device cannot do
that action (and what it can), or the device's own refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.adapters.base import ActuationError, Actuator, Adapter

_LOGGER = logging.getLogger(__name__)


class Actuators:
    """The adapters that can act, asked in order."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self._actuators: list[Actuator] = [a for a in adapters if isinstance(a, Actuator)]
        self.done = 0
        self.failed = 0

    def owner(self, sensor: str) -> Actuator | None:
        """The adapter that owns ``sensor`` now, or None."""
        return next((a for a in self._actuators if a.owns(sensor)), None)

    def actions(self, sensor: str) -> list[str]:
        """What ``sensor`` can be asked to do ([] when nobody owns it)."""
        owner = self.owner(sensor)
        return [] if owner is None else owner.actions(sensor)

    async def actuate(self, sensor: str, action: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Do ``action`` on ``sensor``; raise ActuationError saying why it did not happen."""
        owner = self.owner(sensor)
        try:
            if owner is None:
                raise ActuationError(
                    f"no device {sensor!r} can be acted on now: it is not paired, has not announced itself, "
                    "or is not an actuator"
                )
            can = owner.actions(sensor)
            if action not in can:
                raise ActuationError(f"{sensor} cannot {action!r}; it can: {', '.join(can) or 'nothing'}")
            result = await owner.actuate(sensor, action, args or {})
        except ActuationError as exc:
            self.failed += 1
            _LOGGER.warning("Actuation %s on %s failed: %s", action, sensor, exc, extra={"sensor": sensor})
            raise
        self.done += 1
        _LOGGER.info("Actuation %s on %s done", action, sensor, extra={"sensor": sensor})
        return result
