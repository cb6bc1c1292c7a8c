"""Errors of the wire contract.

WireError                 root of everything this package raises
├── PayloadError          a pack or envelope that cannot be decoded (``.reason``)
│   └── PayloadTooLarge   a payload over the size it may have
└── InvalidName            a sensor, metric, tenant or gateway id that breaks the naming rules
"""

from __future__ import annotations


class WireError(Exception):
    """Root of the wire contract's errors."""


class PayloadError(WireError, ValueError):
    """A payload that is not a valid pack or envelope; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadTooLarge(PayloadError):
    """A payload larger than the receiver accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidName(WireError, ValueError):
    """An id that breaks the naming rules; ``kind`` says which (sensor, metric, tenant, gateway)."""

    def __init__(self, kind: str, value: str, rule: str) -> None:
        super().__init__(f"{kind} id {value!r} is not valid: {rule}")
        self.kind = kind
        self.value = value
