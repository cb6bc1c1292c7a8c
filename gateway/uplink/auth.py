"""What the uplink connects as: a credentials provider it asks on every connect.

:class:`StaticCredentials` is the password path (``cloud.password_file``, or no password at all);
``gateway.enrollment.TokenCredentials`` enrolls and keeps an OAuth2 access token fresh. The uplink
reconnects when :meth:`CredentialsProvider.renewed` returns (a refreshed token, or a revoked one).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.config import CloudSection
from gateway.errors import UplinkError

Kind = Literal["password", "token", "none"]


@dataclass(frozen=True, slots=True, eq=False)
class Credentials:
    """One connection's identity: MQTT username, password (never in ``repr``), client id, and its topics' names."""

    username: str
    password: str | None = field(repr=False)
    gateway_id: str
    tenant: str
    kind: Kind = "password"


class CredentialsProvider(Protocol):
    """Asked by the uplink on every connect."""

    async def get(self) -> Credentials:
        """The credentials to connect with now; waits (cancellably) while there are none (enrollment)."""

    async def renewed(self, current: Credentials) -> None:
        """Return once ``current`` is superseded (refreshed or revoked): the uplink then reconnects."""

    def refused(self, current: Credentials) -> None:
        """The broker refused ``current`` at CONNECT (not authorized)."""


class StaticCredentials:
    """The configured username (else the gateway id) and the password in ``cloud.password_file`` (or none)."""

    def __init__(self, cloud: CloudSection, gateway_id: str, tenant: str) -> None:
        self._cloud = cloud
        self._gateway_id = gateway_id
        self._tenant = tenant

    def _read(self) -> Credentials:
        password = None
        kind: Kind = "none"
        if self._cloud.password_file is not None:
            try:
                password = self._cloud.password_file.read_text().strip()
            except OSError as exc:
                raise UplinkError(f"cannot read the password file {self._cloud.password_file}: {exc.strerror}") from exc
            kind = "password"
        return Credentials(self._cloud.username or self._gateway_id, password, self._gateway_id, self._tenant, kind)

    async def get(self) -> Credentials:
        """Read the password file (again: it may have been replaced) in an executor."""
        return await asyncio.get_running_loop().run_in_executor(None, self._read)

    async def renewed(self, current: Credentials) -> None:
        """Never: a password does not expire."""
        await asyncio.Event().wait()

    def refused(self, current: Credentials) -> None:
        """Nothing to do: the uplink's backoff retries."""
