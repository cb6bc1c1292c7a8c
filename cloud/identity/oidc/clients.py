"""Registered OpenID clients as Authlib sees them, and their registration.

The console is the public client ``roost-console`` (PKCE, no secret), registered at every start with the
redirect URI ``/console/callback`` on the cloud's own origin. Other relying parties (another Roost cloud,
a Grafana, ...) are registered with absolute redirect URIs and, when they can keep one, a secret:

    secret = register_client(store, "grafana", ["https://grafana.example/login/generic_oauth"], confidential=True)

A redirect URI is compared exactly (no prefixes, no wildcards); one that is a path (``/console/callback``)
is on the cloud's own origin, whatever URL the cloud is reached at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin  # type: ignore[import-untyped]

from cloud.identity import hashing
from cloud.identity.oidc.store import ClientRow, OidcStore
from cloud.identity.operators import OPERATOR_CLIENT_ID

CONSOLE_CLIENT_ID = OPERATOR_CLIENT_ID
CONSOLE_REDIRECT_PATH = "/console/callback"
CONSOLE_LOGOUT_PATHS = ("/console/", "/")
CODE_GRANT = "authorization_code"
SCOPES = ("openid", "profile", "roost")
"""What a client may ask: ``openid`` (an ID token), ``profile`` (name claims), ``roost`` (tenant and role)."""


@dataclass(frozen=True, slots=True)
class OidcClient(ClientMixin):  # type: ignore[misc]
    """A registered client: public (PKCE, ``none`` at the token endpoint) or confidential (a secret)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    logout_uris: tuple[str, ...] = ()
    secret_hash: str | None = None
    name: str = ""

    @property
    def public(self) -> bool:
        """Whether the client has no secret."""
        return self.secret_hash is None

    @classmethod
    def of(cls, row: ClientRow) -> OidcClient:
        """The client of a stored registration."""
        return cls(row.client_id, row.redirect_uris, row.logout_uris, row.secret_hash, row.name)

    def get_client_id(self) -> str:
        """The client id."""
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """None: every request names its redirect URI (OpenID Connect requires it)."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this server knows, in the order asked."""
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in SCOPES)

    def allows_redirect(self, uri: str, origin: str) -> bool:
        """Whether ``uri`` is registered exactly (a registered path counts on ``origin``, the cloud's own)."""
        return any(_resolve(r, origin) == uri for r in self.redirect_uris)

    def allows_logout_redirect(self, uri: str, origin: str) -> bool:
        """Whether ``uri`` is a registered post-logout redirect URI."""
        return any(_resolve(r, origin) == uri for r in self.logout_uris)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Absolute registrations only (the grant checks paths against the cloud's origin itself)."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Whether the secret is the client's."""
        return self.secret_hash is not None and hashing.same_digest(self.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Public clients: ``none``; confidential ones: their secret, basic or post."""
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        """The code flow only."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """Authorization code, and refresh tokens."""
        return grant_type in (CODE_GRANT, "refresh_token")


def _resolve(registered: str, origin: str) -> str:
    return origin.rstrip("/") + registered if registered.startswith("/") else registered


def check_redirect_uri(uri: str) -> str:
    """``uri`` when it is fit to register (an absolute http(s) URL without fragment, or a path); ValueError."""
    if uri.startswith("/") and not uri.startswith("//"):
        return uri
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{uri!r} is not an absolute http(s) URL or a path on this cloud")
    if parts.fragment:
        raise ValueError(f"{uri!r} has a fragment: a redirect URI must not (RFC 6749 §3.1.2)")
    return uri


def register_client(
    store: OidcStore,
    client_id: str,
    redirect_uris: list[str],
    *,
    logout_uris: list[str] | None = None,
    confidential: bool = False,
    name: str = "",
) -> str | None:
    """Register (or update) a client; its new secret (shown once) when ``confidential``, else None."""
    if not client_id or len(client_id) > 128 or any(c.isspace() for c in client_id):
        raise ValueError("the client id must be 1-128 characters without spaces")
    if client_id == "roost-gateway":
        raise ValueError(f"{client_id!r} is reserved for gateways")
    if not redirect_uris:
        raise ValueError("register at least one redirect URI")
    uris = [check_redirect_uri(u) for u in redirect_uris]
    logouts = [check_redirect_uri(u) for u in logout_uris or []]
    secret = hashing.new_token() if confidential else None
    store.put_client(
        ClientRow(
            client_id=client_id,
            name=name or client_id,
            secret_hash=hashing.digest(secret) if secret is not None else None,
            redirect_uris=tuple(uris),
            logout_uris=tuple(logouts),
            created=time.time(),
        )
    )
    return secret


def ensure_console_client(store: OidcStore) -> None:
    """Register the console's public client when it is missing or differs (every start; idempotent)."""
    found = store.client(CONSOLE_CLIENT_ID)
    wanted = ((CONSOLE_REDIRECT_PATH,), CONSOLE_LOGOUT_PATHS)
    if found is not None and found.secret_hash is None and (found.redirect_uris, found.logout_uris) == wanted:
        return
    register_client(
        store,
        CONSOLE_CLIENT_ID,
        [CONSOLE_REDIRECT_PATH],
        logout_uris=list(CONSOLE_LOGOUT_PATHS),
        name="Roost console",
    )
