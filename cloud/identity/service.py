"""The running identity service: database, key ring, Authlib server and verifier behind one object.

    identity = IdentityService(config.identity, db_path, public_url=config.server.public_url)
    await identity.open()           # creates the database and the first signing key when needed
    claims = identity.verifier.verify(token)
    await identity.close()

Revocations made here take effect at once; those made by another process (the admin command line) within
a second, when the database's data version changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cloud.config import IdentitySection
from cloud.identity import admin, hashing
from cloud.identity.db import AccessRecord, DeviceRecord, GatewayRecord, IdentityDB, OperatorRecord, RefreshRecord
from cloud.identity.keys import KeyRing
from cloud.identity.oauth import GATEWAY_SCOPE, Client, RoostAuthorizationServer, Subject, TokenView
from cloud.identity.operators import OPERATOR_CLIENT_ID, OPERATOR_SCOPE, access_claims
from cloud.identity.sessions import Sessions
from cloud.identity.throttle import Throttle
from cloud.identity.verify import TokenVerifier

_LOGGER = logging.getLogger(__name__)

REVOCATION_CHECK_S = 1.0


class IdentityService:
    """Issues, rotates, revokes and verifies tokens for one identity database."""

    def __init__(self, settings: IdentitySection, db_path: Path, *, public_url: str = "") -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.db = IdentityDB(db_path)
        self.keys = KeyRing(
            self.db,
            rotation_s=settings.key_rotation_days * 86400,
            keep_retired_s=self.keep_retired_s(settings),
        )
        self.sessions = Sessions(self.db, ttl_s=settings.session_ttl_s, idle_s=settings.session_idle_s)
        self.signin_throttle = Throttle(burst=settings.throttle_burst, rate_per_s=settings.throttle_rate_per_s)
        """Failed password sign-ins, per address and per username, wherever the password is typed."""
        self._issuers: set[str] = {settings.issuer.rstrip("/")} if settings.issuer else set()
        self._revoked: set[str] = set()
        self._revoked_version = -1
        self._revoked_checked = float("-inf")
        self._lock = threading.Lock()
        self.verifier = TokenVerifier(
            self.keys,
            audience=settings.audience,
            issuers=self.issuers,
            leeway_s=settings.leeway_s,
            is_revoked=self.is_revoked,
        )
        self.oauth = RoostAuthorizationServer(self)

    @staticmethod
    def keep_retired_s(settings: IdentitySection) -> float:
        """How long a retired key keeps verifying: as long as the longest-lived token it may have signed."""
        return max(settings.access_token_ttl_s, settings.operator_token_max_ttl_s) + settings.leeway_s + 60

    # -- life cycle --------------------------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Open the database, load (or make) the signing keys and the revocation list."""
        self.db.open()
        self.db.purge(time.time())
        self.keys.load()
        if not self.settings.issuer:
            self._issuers |= self.db.issuers()
        self._refresh_revoked(force=True)

    async def open(self) -> None:
        """:meth:`open_sync` on a worker thread."""
        await asyncio.to_thread(self.open_sync)

    async def purge_forever(self) -> None:
        """Purge expired rows every ``purge_interval_s`` until cancelled (a failed purge is logged and retried)."""
        while True:
            await asyncio.sleep(self.settings.purge_interval_s)
            try:
                await asyncio.to_thread(self.db.purge, time.time())
            except Exception as exc:  # a locked or full disk must not end the cloud: try again next time
                _LOGGER.warning("Purging expired identity records failed (will retry): %s", exc)

    async def close(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self.db.close)

    # -- issuers -----------------------------------------------------------------------------------------------

    def issuer_for(self, request_base: str) -> str:
        """The issuer URL: ``identity.issuer``, else ``server.public_url``, else the request's base URL."""
        return (self.settings.issuer or self.public_url or request_base).rstrip("/")

    def issuers(self) -> set[str]:
        """Every issuer this service signs (or signed) as; what verifiers accept in ``iss``."""
        self._refresh_revoked()
        return self._issuers

    def _note_issuer(self, iss: str) -> None:
        if iss not in self._issuers:
            self.db.add_issuer(iss)
            with self._lock:
                self._issuers = self._issuers | {iss}

    # -- revocation --------------------------------------------------------------------------------------------

    def _refresh_revoked(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._revoked_checked < REVOCATION_CHECK_S:
            return
        self._revoked_checked = now
        version = self.db.data_version()
        if force or version != self._revoked_version:
            revoked = self.db.revoked_jtis(time.time())
            # Issuers another process (the admin command line) signed operator tokens under.
            issuers = self._issuers if self.settings.issuer else self._issuers | self.db.issuers()
            with self._lock:
                self._revoked, self._revoked_version = revoked, version
                self._issuers = issuers

    def is_revoked(self, jti: str) -> bool:
        """Whether an access token was revoked (a set lookup; the set follows the database)."""
        self._refresh_revoked()
        return jti in self._revoked

    def _add_revoked(self, records: list[AccessRecord]) -> None:
        if records:
            with self._lock:
                self._revoked = self._revoked | {r.jti for r in records}

    def reuse_detected(self, rec: RefreshRecord) -> None:
        """A used refresh token came back: revoke its whole family and the family's access tokens."""
        _LOGGER.warning(
            "refresh token reused for %s %s (tenant %s): revoking its token family", rec.kind, rec.subject, rec.tenant
        )
        self._add_revoked(self.db.revoke_family(rec.family, time.time()))

    def revoke(self, token: TokenView) -> None:
        """RFC 7009: a refresh token takes its family (and the family's access tokens); an access token its jti."""
        if token.refresh is not None:
            self._add_revoked(self.db.revoke_family(token.refresh.family, time.time()))
        elif token.access is not None:
            self.db.revoke_access(token.access)
            self._add_revoked([token.access])

    def revoke_families(self, families: list[str], jtis: list[str]) -> int:
        """Revoke token families (refresh tokens and their access tokens) and single access tokens (by jti), as a
        sign-out does; how many access tokens. MQTT connections opened with them close within a second."""
        now = time.time()
        records: list[AccessRecord] = []
        for family in families:
            records += self.db.revoke_family(family, now)
        for jti in jtis:
            rec = self.db.access(jti)
            if rec is not None and rec.expires > now:
                self.db.revoke_access(rec)
                records.append(rec)
        self._add_revoked(records)
        return len(records)

    def revoke_gateway(self, gateway_id: str, *, stolen: bool = False, reason: str = "") -> int:
        """Revoke a gateway's enrollment, refresh families and live access tokens; how many access tokens.

        ``stolen``: also block its hardware id from enrolling again (until ``hardware-allow``), and have its
        next refresh answered with ``invalid_grant`` "revoked: wipe" (the gateway then wipes itself).
        """
        if stolen:
            admin.block_gateway_hardware(self.db, gateway_id, reason or "stolen")
        records = self.db.revoke_subject(gateway_id, time.time(), gateway=True)
        self._add_revoked(records)
        return len(records)

    def rotate_gateway_key(self, gateway_id: str, public_key: str) -> int:
        """A gateway's new key pair: record its public key, end its old credentials; how many access tokens."""
        records = self.db.rotate_gateway_key(gateway_id, public_key, time.time())
        self._add_revoked(records)
        _LOGGER.info("gateway %s rotated its key pair: its %d live access token(s) were revoked", gateway_id,
                     len(records))  # fmt: skip
        return len(records)

    # -- enrollment --------------------------------------------------------------------------------------------

    def enroll_gateway(
        self, *, tenant: str, gateway_id: str | None, hardware_id: str | None, public_key: str | None, method: str
    ) -> GatewayRecord:
        """Enroll a gateway (see :func:`cloud.identity.admin.enroll_gateway`)."""
        return admin.enroll_gateway(
            self.db, tenant=tenant, gateway_id=gateway_id, hardware_id=hardware_id, public_key=public_key, method=method
        )

    def approve(self, user_code: str, tenant: str, gateway_id: str | None = None) -> GatewayRecord:
        """Approve a pending device request for ``tenant`` (NotFound, Conflict, ValueError)."""
        return admin.approve_device(self.db, user_code, tenant, gateway_id)

    def deny(self, user_code: str) -> DeviceRecord:
        """Deny a pending device request (NotFound, Conflict)."""
        return admin.deny_device(self.db, user_code)

    # -- issuing -----------------------------------------------------------------------------------------------

    def issue_tokens(
        self,
        *,
        issuer: str,
        client: Client,
        subject: Subject | None,
        scope: str | None,
        include_refresh_token: bool,
        ttl_s: int | None = None,
    ) -> dict[str, Any]:
        """A token response: an RFC 9068 access token and, for gateways, a refresh token of the family.

        ``ttl_s``: the access token's lifetime (default ``identity.access_token_ttl_s``).
        """
        now = time.time()
        if self.keys.rotation_due(now):
            self.keys.rotate()
        self._note_issuer(issuer)
        if subject is None:  # client_credentials: the client is the subject
            assert client.tenant is not None
            subject = Subject("client", client.client_id, client.tenant, (client.role,))
            scope = client.get_allowed_scope(scope)
        scope = scope or GATEWAY_SCOPE
        ttl = ttl_s or self.settings.access_token_ttl_s
        claims = access_claims(
            issuer=issuer,
            audience=self.settings.audience,
            subject=subject.id,
            client_id=client.client_id,
            tenant=subject.tenant,
            roles=subject.roles,
            scope=scope,
            ttl_s=ttl,
            now=now,
        )
        iat, jti = claims["iat"], claims["jti"]
        access_token = self.keys.sign(claims)
        family = subject.family or uuid.uuid4().hex
        refresh_token = hashing.new_token() if include_refresh_token else None
        refresh = (
            RefreshRecord(
                token_hash=hashing.digest(refresh_token),
                family=family,
                client_id=client.client_id,
                kind=subject.kind,
                subject=subject.id,
                tenant=subject.tenant,
                roles=subject.roles,
                scope=scope,
                issued=now,
                expires=now + self.settings.refresh_token_ttl_s,
            )
            if refresh_token is not None
            else None
        )
        self.db.add_tokens(
            refresh,
            AccessRecord(
                jti, family if refresh is not None else None, client.client_id, subject.id, subject.tenant, iat + ttl
            ),
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": ttl,
            "scope": scope,
        }
        if refresh_token is not None:
            token["refresh_token"] = refresh_token
        if subject.kind == "gateway":
            token["gateway_id"] = subject.id
            token["tenant"] = subject.tenant
        return token

    def operator_token(self, operator: OperatorRecord, *, issuer: str) -> dict[str, Any]:
        """A short-lived access token for a signed-in operator (``sub``: the username; ``roles``: its role)."""
        return self.issue_tokens(
            issuer=issuer,
            client=Client(OPERATOR_CLIENT_ID, operator.tenant, operator.role, tuple(OPERATOR_SCOPE.split())),
            subject=Subject("operator", operator.username, operator.tenant, (operator.role,)),
            scope=OPERATOR_SCOPE,
            include_refresh_token=False,
        )

    # -- metadata ----------------------------------------------------------------------------------------------

    def metadata(self, issuer: str) -> dict[str, Any]:
        """RFC 8414 authorization server metadata for ``issuer``."""
        from cloud.identity.oauth import CLAIM_GRANT_TYPE, DEVICE_CODE_GRANT_TYPE

        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "device_authorization_endpoint": f"{issuer}/oauth/device_authorization",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "jwks_uri": f"{issuer}/jwks.json",
            "grant_types_supported": [
                "authorization_code",
                DEVICE_CODE_GRANT_TYPE,
                "refresh_token",
                "client_credentials",
                CLAIM_GRANT_TYPE,
            ],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": [GATEWAY_SCOPE, "openid", "profile", "roost"],
        }
