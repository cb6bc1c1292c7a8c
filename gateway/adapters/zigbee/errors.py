"""Errors of the Zigbee adapter.

ZigbeeError (a GatewayError)     root of what the Zigbee adapter raises to its callers
├── RadioLibraryMissing          the radio's library is not installed (``.extra`` names the extra)
├── NotRunning                   the network is not up yet, or the radio is lost (transient)
├── UnknownDevice                no device with that IEEE address on the network (``.ieee``)
├── CommandTimeout               the device did not answer a command (transient; ``.ieee``)
└── CommandFailed                the device answered with a ZCL status other than SUCCESS (``.status``)
"""

from __future__ import annotations

from gateway.errors import GatewayError


class ZigbeeError(GatewayError):
    """Root of the Zigbee adapter's errors."""


class RadioLibraryMissing(ZigbeeError):
    """The configured radio needs a library that is not installed."""

    def __init__(self, radio: str, extra: str, module: str) -> None:
        super().__init__(
            f"radio = {radio!r} needs {module}, which is not installed: install Roost with its "
            f"{extra!r} extra (pip install 'roost[{extra}]')"
        )
        self.radio = radio
        self.extra = extra


class NotRunning(ZigbeeError):
    """The Zigbee network is not running now."""


class UnknownDevice(ZigbeeError):
    """No device with that address has joined."""

    def __init__(self, ieee: str, why: str = "it has not joined this gateway's network") -> None:
        super().__init__(f"Zigbee device {ieee}: {why}")
        self.ieee = ieee


class CommandTimeout(ZigbeeError):
    """The device did not answer in time."""

    def __init__(self, ieee: str, command: str, timeout_s: float) -> None:
        super().__init__(f"Zigbee device {ieee} did not answer {command} within {timeout_s:g} s")
        self.ieee = ieee


class CommandFailed(ZigbeeError):
    """The device answered the command with a ZCL status other than SUCCESS."""

    def __init__(self, ieee: str, command: str, status: str) -> None:
        super().__init__(f"Zigbee device {ieee} answered {command} with {status}")
        self.ieee = ieee
        self.status = status
