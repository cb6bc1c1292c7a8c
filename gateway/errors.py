"""Errors of the gateway daemon.

GatewayError                 root of everything the gateway raises
├── ConfigError              a config file that cannot be used (``.path``, ``.key_path``)
├── BufferError_             the durable buffer refused or failed
│   └── BufferFull           the buffer is full and its policy is ``refuse``
└── UplinkError              the cloud cannot be reached or refused us (transient: retried)
    └── DiscoveryError       the cloud's discovery document is missing or malformed
"""

from __future__ import annotations

from pathlib import Path


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError):
    """A config file that cannot be used; the message names the file, the key path and what is allowed."""

    def __init__(self, path: Path | str, key_path: str, problem: str) -> None:
        where = f"{path}: {key_path}: " if key_path else f"{path}: "
        super().__init__(where + problem)
        self.path = str(path)
        self.key_path = key_path
        self.problem = problem


class BufferError_(GatewayError):  # the builtin BufferError means something else
    """The durable buffer refused or failed."""


class BufferFull(BufferError_):
    """The buffer is full and its drop policy is ``refuse``: the readings were not taken."""


class UplinkError(GatewayError):
    """The cloud cannot be reached or refused the connection; the uplink retries."""


class DiscoveryError(UplinkError):
    """The cloud's discovery document is missing or malformed."""
