"""Errors of the cloud companion.

CloudError                   root of everything the cloud raises
├── ConfigError              a config file that cannot be used (``.path``, ``.key_path``, ``.problem``)
├── StoreError               the SQLite store failed (permanent: disk, schema)
│   └── SchemaTooNew         the store was written by a newer version (``.found``, ``.supported``)
├── BrokerError              the embedded broker could not start or failed
└── ApiError                 an HTTP API request that cannot be answered (``.status``, ``.parameter``)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class CloudError(Exception):
    """Root of the cloud's errors."""


class ConfigError(CloudError):
    """A config file that cannot be used; the message names the file, the key path and what is allowed."""

    def __init__(self, path: Path | str, key_path: str, problem: str) -> None:
        where = f"{path}: {key_path}: " if key_path else f"{path}: "
        super().__init__(where + problem)
        self.path = str(path)
        self.key_path = key_path
        self.problem = problem


class StoreError(CloudError):
    """The store failed or cannot be opened."""


class SchemaTooNew(StoreError):
    """The store's schema version is newer than this code understands."""

    def __init__(self, path: Path | str, found: int, supported: int) -> None:
        super().__init__(f"{path}: schema version {found} is newer than the supported {supported}")
        self.found = found
        self.supported = supported


class BrokerError(CloudError):
    """The embedded MQTT broker could not start or failed."""


class ListenError(CloudError):
    """The HTTP server cannot listen on its address (in use, not ours, no permission)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address


class ApiError(CloudError):
    """An API request that cannot be answered; ``status`` is the HTTP code, ``parameter`` the query parameter.

    The API answers it as RFC 9457 problem details (cloud/problems.py): ``problem`` names its type (default:
    the status's), ``extensions`` are more members of the answer, ``headers`` go with it (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        parameter: str | None = None,
        problem: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter
        self.problem = problem
        self.extensions: dict[str, Any] = dict(extensions or {})
        self.headers: dict[str, str] = dict(headers or {})
