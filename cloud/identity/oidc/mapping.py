"""An external provider's ID-token claims as a Roost operator: username, tenant and role, by the config's mapping.

    who = map_claims(settings, claims)      # MappedOperator, or NotMapped with a message for the person

Pure: no I/O. A claim may be a string or a list of strings (groups, roles); of several values that map,
the highest role wins (owner > admin > operator > viewer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.identity.errors import IdentityError
from cloud.identity.oidc.settings import ROLES, OidcSection
from wire.names import check_tenant

_RANK = {role: i for i, role in enumerate(ROLES)}  # owner first: lower is higher


class NotMapped(IdentityError):
    """The claims do not make a Roost operator; the message says why, in the operator's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class MappedOperator:
    """Who the provider says signed in, as Roost sees them."""

    username: str
    tenant: str
    role: str
    subject: str
    """The provider's ``sub`` (stable; the username may change)."""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name; a dotted name reaches into objects (Keycloak's ``realm_access.roles``)."""
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def map_claims(settings: OidcSection, claims: dict[str, Any]) -> MappedOperator:
    """The operator the claims name; NotMapped when they name none this cloud accepts."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise NotMapped("the sign-in provider's answer names nobody (no 'sub' claim)")
    username = _claim(claims, settings.username_claim)
    if not isinstance(username, str) or not username.strip():
        raise NotMapped(f"the sign-in provider did not say who you are (no {settings.username_claim!r} claim)")
    username = username.strip()
    if len(username) > 128 or any(c.isspace() for c in username):
        raise NotMapped(
            f"the user name {username[:64]!r} cannot be a Roost operator name (1-128 characters, no spaces)"
        )
    if settings.tenant:
        tenant = settings.tenant
    else:
        value = _claim(claims, settings.tenant_claim)
        if not isinstance(value, str) or not value:
            raise NotMapped(f"your account has no tenant (the {settings.tenant_claim!r} claim is missing)")
        try:
            tenant = check_tenant(value)
        except ValueError:
            raise NotMapped(f"your account's tenant {value[:64]!r} is not a valid Roost tenant id") from None
    values = _strings(_claim(claims, settings.role_claim))
    roles = [settings.role_map[v] for v in values if v in settings.role_map]
    if roles:
        role = min(roles, key=lambda r: _RANK[r])
    elif settings.default_role:
        role = settings.default_role
    else:
        shown = ", ".join(repr(v[:40]) for v in values[:5]) or "none"
        raise NotMapped(
            f"your account has no Roost role: its {settings.role_claim!r} values ({shown}) map to none"
            " (an administrator sets identity.oidc.role_map)"
        )
    return MappedOperator(username, tenant, role, subject)
