"""Errors of the BLE adapter.

BleError (a GatewayError)   root of what the BLE adapter raises to its callers
├── GattTimeout             a GATT connection, read or write took too long (transient; ``.address``)
└── GattFailed              the device or the BLE stack refused or failed it (``.address``)
"""

from __future__ import annotations

from gateway.errors import GatewayError


class BleError(GatewayError):
    """Root of the BLE adapter's errors."""


class GattTimeout(BleError):
    """A GATT connection, read or write did not finish within its timeout."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"{address}: {why}")
        self.address = address


class GattFailed(BleError):
    """A GATT connection, read or write failed (not found, refused, the stack went away)."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"{address}: {why}")
        self.address = address
