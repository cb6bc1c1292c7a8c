"""Errors of the serial adapter.

SerialError (a GatewayError)   root of what the serial adapter raises to its callers
├── NodeUnavailable            no node with that id is announced on an open port (transient)
├── CommandTimeout             the node did not answer a command (transient; ``.attempts``)
└── CommandRefused             the node answered with a status other than DONE (``.status``)
"""

from __future__ import annotations

from drivers.roostserial.messages import ResultStatus
from gateway.errors import GatewayError


class SerialError(GatewayError):
    """Root of the serial adapter's errors."""


class NodeUnavailable(SerialError):
    """No node ``sensor`` is announced on an open Roost port."""

    def __init__(self, sensor: str, why: str) -> None:
        super().__init__(f"node {sensor}: {why}")
        self.sensor = sensor


class CommandTimeout(SerialError):
    """No RESULT came back after ``attempts`` sends."""

    def __init__(self, sensor: str, attempts: int) -> None:
        super().__init__(f"node {sensor} did not answer the command ({attempts} attempts)")
        self.sensor = sensor
        self.attempts = attempts


class CommandRefused(SerialError):
    """The node answered, but not DONE."""

    def __init__(self, sensor: str, status: ResultStatus) -> None:
        super().__init__(f"node {sensor} answered {status.name}")
        self.sensor = sensor
        self.status = status
