"""``[identity.oidc]``: an external OpenID provider (Keycloak, Entra ID, ...) that operators sign in at instead.

    [identity.oidc]
    issuer = "https://idp.example/realms/farm"
    client_id = "roost"
    client_secret_file = "oidc-secret.txt"
    tenant = "acme"                     # or tenant_claim = "tenant"
    role_claim = "groups"
    role_map = { "roost-admins" = "admin", "roost-viewers" = "viewer" }

With ``issuer`` empty (the default) operators sign in with the cloud's own password form.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from wire.names import check_tenant
from wire.typedconfig import ConfigValueError, doc

ROLES = ("owner", "admin", "operator", "viewer")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcSection:
    """An external OpenID provider operators sign in at; the cloud then acts as its relying party."""

    issuer: str = doc(
        "The external OpenID provider's issuer URL (https); empty: operators sign in with their Roost password",
        default="",
    )
    client_id: str = doc("This cloud's client id at the provider", default="")
    client_secret_file: Path | None = doc(
        "File holding this cloud's client secret at the provider (relative to this file); none: a public client",
        default=None,
    )
    scopes: tuple[str, ...] = doc("Scopes asked of the provider", default=("openid", "profile", "email"))
    username_claim: str = doc("The claim that names the operator (its Roost username)", default="preferred_username")
    tenant: str = doc("The tenant every operator of this provider belongs to; or set tenant_claim", default="")
    tenant_claim: str = doc("The claim that names the operator's tenant; or set tenant", default="")
    role_claim: str = doc("The claim (a string or a list of strings) mapped to a Roost role", default="roles")
    role_map: dict[str, str] = doc(
        "Values of role_claim and the Roost role each gives (owner, admin, operator, viewer); the highest wins",
        default_factory=dict,
    )
    default_role: str = doc(
        "Role of an operator none of whose values maps; empty: such a sign-in is refused", default=""
    )
    timeout_s: float = doc("Seconds one request to the provider may take", default=10.0)
    leeway_s: int = doc("Clock skew allowed when checking the provider's ID tokens, seconds", default=60)

    @property
    def enabled(self) -> bool:
        """Whether an external provider is configured."""
        return bool(self.issuer)

    def __post_init__(self) -> None:
        if not self.issuer:
            return
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigValueError("issuer", f"{self.issuer!r} must be an https URL naming the provider's host")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigValueError("issuer", f"{self.issuer!r} must use https (http only on loopback, for tests)")
        if parts.query or parts.fragment:
            raise ConfigValueError("issuer", "must have no query or fragment (OpenID Connect Discovery §2)")
        if not self.client_id:
            raise ConfigValueError("client_id", "the provider needs this cloud's client id (issuer is set)")
        if "openid" not in self.scopes:
            raise ConfigValueError("scopes", "must contain 'openid'")
        if not self.username_claim:
            raise ConfigValueError("username_claim", "must name a claim")
        if bool(self.tenant) == bool(self.tenant_claim):
            raise ConfigValueError("tenant", "set exactly one of tenant (a fixed tenant) and tenant_claim")
        if self.tenant:
            try:
                check_tenant(self.tenant)
            except ValueError as exc:
                raise ConfigValueError("tenant", str(exc)) from exc
        for value, role in self.role_map.items():
            if role not in ROLES:
                raise ConfigValueError(f"role_map.{value}", f"{role!r} is not a Roost role ({', '.join(ROLES)})")
        if self.default_role and self.default_role not in ROLES:
            raise ConfigValueError("default_role", f"{self.default_role!r} is not a Roost role ({', '.join(ROLES)})")
        if not self.role_map and not self.default_role:
            raise ConfigValueError("role_map", "map at least one value of role_claim to a role, or set default_role")
        if not 0 < self.timeout_s <= 120:
            raise ConfigValueError("timeout_s", "must be between 0 and 120")
        if not 0 <= self.leeway_s <= 3600:
            raise ConfigValueError("leeway_s", "must be between 0 and 3600")

    def client_secret(self) -> str | None:
        """The client secret read from its file (None for a public client); OSError when unreadable."""
        if self.client_secret_file is None:
            return None
        return self.client_secret_file.read_text(encoding="utf-8").strip()

    def check_files(self) -> None:
        """ConfigValueError naming client_secret_file when it cannot be read or is empty."""
        if not self.enabled or self.client_secret_file is None:
            return
        try:
            secret = self.client_secret()
        except OSError as exc:
            raise ConfigValueError("client_secret_file", f"cannot be read: {exc.strerror}") from exc
        if not secret:
            raise ConfigValueError("client_secret_file", f"{self.client_secret_file} is empty")
