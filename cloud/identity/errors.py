"""Errors of the identity package.

IdentityError (a CloudError)   root of what cloud.identity raises
├── NotFound                   a tenant, operator, client, user code or token that does not exist (``.what``)
├── Conflict                   something that exists already or is in another state (``.what``)
└── InvalidToken               an access token a verifier refuses (``.reason``: signature, expired, audience, ...)
"""

from __future__ import annotations

from cloud.errors import CloudError


class IdentityError(CloudError):
    """Root of the identity package's errors."""


class NotFound(IdentityError):
    """A tenant, operator, client, code or token that does not exist."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class Conflict(IdentityError):
    """Something that exists already, or is not in the state the operation needs."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


class InvalidToken(IdentityError):
    """A refused access token; ``reason``: malformed, signature, expired, audience, issuer or revoked."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
