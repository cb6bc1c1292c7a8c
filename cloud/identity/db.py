"""The identity database: SQLite (WAL, ``synchronous=FULL``) of its own, apart from the readings store.

Tenants, operators, API clients, gateway enrollments, device codes, claim tokens, refresh-token families,
issued access-token ids and revocations, and the signing keys. Every secret is stored hashed (see
:mod:`cloud.identity.hashing`). Blocking: callers run it on a worker thread; one connection behind a lock, so
it is safe from any thread, and other processes (the admin command line) may write the same file at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cloud.errors import SchemaTooNew, StoreError
from cloud.identity.errors import Conflict, NotFound

_LOGGER = logging.getLogger(__name__)

Role = Literal["owner", "admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "operator", "viewer")
SubjectKind = Literal["gateway", "client", "operator"]
DeviceStatus = Literal["pending", "approved", "denied", "used"]

SCHEMA_VERSION = 3
BLOCKED_MESSAGE = (
    "this hardware id is blocked: its gateway was revoked as stolen; an operator must allow it "
    "(roost cloud admin hardware-allow)"
)
_SCHEMA = """
CREATE TABLE tenants (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE operators (
    username      TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants (id),
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       REAL NOT NULL,
    disabled      REAL
);
CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id),
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    name        TEXT NOT NULL,
    created     REAL NOT NULL,
    disabled    REAL
);
CREATE TABLE gateways (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    hardware_id TEXT,
    public_key  TEXT,
    method      TEXT NOT NULL,
    enrolled    REAL NOT NULL,
    revoked     REAL
);
CREATE TABLE device_codes (
    code_hash   TEXT PRIMARY KEY,
    user_code   TEXT NOT NULL UNIQUE,
    client_id   TEXT NOT NULL,
    scope       TEXT,
    hardware_id TEXT,
    public_key  TEXT,
    created     REAL NOT NULL,
    expires     REAL NOT NULL,
    interval_s  INTEGER NOT NULL,
    last_poll   REAL,
    status      TEXT NOT NULL DEFAULT 'pending',
    tenant      TEXT,
    gateway_id  TEXT
);
CREATE TABLE claim_tokens (
    token_hash TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    max_uses   INTEGER,
    uses       INTEGER NOT NULL DEFAULT 0,
    created    REAL NOT NULL,
    expires    REAL NOT NULL,
    revoked    REAL
);
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    roles      TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued     REAL NOT NULL,
    expires    REAL NOT NULL,
    used       REAL,
    revoked    REAL
);
CREATE INDEX refresh_by_family ON refresh_tokens (family);
CREATE INDEX refresh_by_subject ON refresh_tokens (subject);
CREATE TABLE access_tokens (
    jti       TEXT PRIMARY KEY,
    family    TEXT,
    client_id TEXT NOT NULL,
    subject   TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    expires   REAL NOT NULL
);
CREATE INDEX access_by_family ON access_tokens (family);
CREATE TABLE revoked_jti (
    jti     TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE TABLE signing_keys (
    kid     TEXT PRIMARY KEY,
    jwk     TEXT NOT NULL,
    created REAL NOT NULL,
    retired REAL
);
CREATE TABLE issuers (
    iss TEXT PRIMARY KEY
);
"""
# Schema 2: operators' dashboard sessions (by the hash of the session id; the CSRF token by its hash too).
_SCHEMA_2 = """
CREATE TABLE sessions (
    id_hash   TEXT PRIMARY KEY,
    username  TEXT NOT NULL,
    tenant    TEXT NOT NULL,
    csrf_hash TEXT NOT NULL,
    created   REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires   REAL NOT NULL,
    revoked   REAL,
    source_ip TEXT
);
CREATE INDEX sessions_by_user ON sessions (username);
"""
# Schema 3: hardware ids blocked from enrolling (a gateway revoked as stolen) until an operator allows them.
_SCHEMA_3 = """
CREATE TABLE blocked_hardware (
    hardware_id TEXT PRIMARY KEY,
    gateway     TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    blocked     REAL NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX blocked_by_gateway ON blocked_hardware (gateway);
"""
_MIGRATIONS = {0: _SCHEMA + _SCHEMA_2 + _SCHEMA_3, 1: _SCHEMA_2 + _SCHEMA_3, 2: _SCHEMA_3}


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant."""

    id: str
    name: str
    created: float


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """An operator (a person) of one tenant; the password only as its argon2id hash."""

    username: str
    tenant: str
    role: Role
    password_hash: str
    created: float
    disabled: float | None = None


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A confidential API client of one tenant (client_credentials); the secret only as its hash."""

    client_id: str
    tenant: str
    secret_hash: str
    role: Role
    scopes: tuple[str, ...]
    name: str
    created: float
    disabled: float | None = None


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """An enrolled gateway: its id, tenant, hardware id and public key as given at enrollment."""

    id: str
    tenant: str
    hardware_id: str | None
    public_key: str | None
    method: str
    enrolled: float
    revoked: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device authorization request (RFC 8628) and, once an operator acted, its outcome."""

    code_hash: str
    user_code: str
    client_id: str
    scope: str | None
    hardware_id: str | None
    public_key: str | None
    created: float
    expires: float
    interval_s: int
    last_poll: float | None
    status: DeviceStatus
    tenant: str | None
    gateway_id: str | None


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A claim token for unattended enrollment into one tenant (``max_uses`` None: any number)."""

    token_hash: str
    id: str
    tenant: str
    max_uses: int | None
    uses: int
    created: float
    expires: float
    revoked: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A refresh token (by hash) in its family: every rotation adds one row to the family and uses the last."""

    token_hash: str
    family: str
    client_id: str
    kind: SubjectKind
    subject: str
    tenant: str
    roles: tuple[str, ...]
    scope: str
    issued: float
    expires: float
    used: float | None = None
    revoked: float | None = None


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """An issued access token's id, so that revoking a family or a gateway can revoke its tokens too."""

    jti: str
    family: str | None
    client_id: str
    subject: str
    tenant: str
    expires: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """An operator's dashboard session: the session id and its CSRF token only as hashes."""

    id_hash: str
    username: str
    tenant: str
    csrf_hash: str
    created: float
    last_seen: float
    expires: float
    revoked: float | None = None
    source_ip: str | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A signing key as a private JWK (JSON); ``retired``: when it stopped signing."""

    kid: str
    jwk: str
    created: float
    retired: float | None = None


class IdentityDB:
    """The identity database; every method is blocking and thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # -- connection --------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open, creating or checking the schema; the file is made readable by its owner only."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10, check_same_thread=False)
            if new:
                self.path.chmod(0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise SchemaTooNew(self.path, version, SCHEMA_VERSION)
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                current = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
                if current < SCHEMA_VERSION:
                    for statement in _MIGRATIONS[current].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
                if current < SCHEMA_VERSION:
                    _LOGGER.info(
                        "%s the identity database at %s (schema %d)",
                        "created" if current == 0 else f"upgraded from schema {current}",
                        self.path,
                        SCHEMA_VERSION,
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the identity database: {exc}") from exc
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> IdentityDB:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE), under the lock."""
        with self._lock:
            conn = self._connected()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _connected(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the identity database is not open")
        return self._conn

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connected().execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._connected().execute(sql, args).fetchone()
            return row

    def data_version(self) -> int:
        """SQLite's data version: it changes when another connection (another process) commits."""
        row = self._one("PRAGMA data_version")
        return int(row[0]) if row else 0

    # -- tenants, operators, clients --------------------------------------------------------------------------

    def add_tenant(self, tenant: TenantRecord) -> None:
        """Add a tenant; Conflict when it exists."""
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO tenants VALUES (?, ?, ?)", (tenant.id, tenant.name, tenant.created))
        except sqlite3.IntegrityError:
            raise Conflict("tenant", f"tenant {tenant.id!r} exists already") from None

    def tenant(self, tenant_id: str) -> TenantRecord | None:
        """One tenant, or None."""
        row = self._one("SELECT id, name, created FROM tenants WHERE id = ?", (tenant_id,))
        return TenantRecord(*row) if row else None

    def tenants(self) -> list[TenantRecord]:
        """All tenants by id."""
        return [TenantRecord(*r) for r in self._all("SELECT id, name, created FROM tenants ORDER BY id")]

    def _need_tenant(self, conn: sqlite3.Connection, tenant: str) -> None:
        if conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant,)).fetchone() is None:
            raise NotFound("tenant", f"no tenant {tenant!r}: create it first")

    def add_operator(self, op: OperatorRecord) -> None:
        """Add an operator; NotFound for an unknown tenant, Conflict when the username is taken."""
        try:
            with self._tx() as conn:
                self._need_tenant(conn, op.tenant)
                conn.execute(
                    "INSERT INTO operators VALUES (?, ?, ?, ?, ?, ?)",
                    (op.username, op.tenant, op.role, op.password_hash, op.created, op.disabled),
                )
        except sqlite3.IntegrityError:
            raise Conflict("operator", f"operator {op.username!r} exists already") from None

    def operator(self, username: str) -> OperatorRecord | None:
        """One operator, or None."""
        row = self._one("SELECT * FROM operators WHERE username = ?", (username,))
        return OperatorRecord(*row) if row else None

    def set_password(self, username: str, password_hash: str) -> bool:
        """Replace an operator's password hash; False when there is no such operator."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE operators SET password_hash = ? WHERE username = ?", (password_hash, username))
            return cur.rowcount == 1

    def operators(self, tenant: str | None = None) -> list[OperatorRecord]:
        """Operators (of one tenant) by username."""
        rows = self._all(
            "SELECT * FROM operators WHERE ?1 IS NULL OR tenant = ?1 ORDER BY username",
            (tenant,),
        )
        return [OperatorRecord(*r) for r in rows]

    def add_client(self, client: ClientRecord) -> None:
        """Add an API client; NotFound for an unknown tenant, Conflict when the client id is taken."""
        try:
            with self._tx() as conn:
                self._need_tenant(conn, client.tenant)
                conn.execute(
                    "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        client.client_id,
                        client.tenant,
                        client.secret_hash,
                        client.role,
                        " ".join(client.scopes),
                        client.name,
                        client.created,
                        client.disabled,
                    ),
                )
        except sqlite3.IntegrityError:
            raise Conflict("client", f"client {client.client_id!r} exists already") from None

    @staticmethod
    def _client(row: tuple[Any, ...]) -> ClientRecord:
        cid, tenant, secret_hash, role, scopes, name, created, disabled = row
        return ClientRecord(cid, tenant, secret_hash, role, tuple(scopes.split()), name, created, disabled)

    def client(self, client_id: str) -> ClientRecord | None:
        """One API client, or None."""
        row = self._one("SELECT * FROM clients WHERE client_id = ?", (client_id,))
        return self._client(row) if row else None

    def clients(self, tenant: str | None = None) -> list[ClientRecord]:
        """API clients (of one tenant) by id."""
        rows = self._all("SELECT * FROM clients WHERE ?1 IS NULL OR tenant = ?1 ORDER BY client_id", (tenant,))
        return [self._client(r) for r in rows]

    # -- gateways ----------------------------------------------------------------------------------------------

    def enroll(self, gw: GatewayRecord) -> GatewayRecord:
        """Record an enrollment; a gateway enrolled again in its own tenant gets its new key and hardware id.

        Conflict when the id belongs to another tenant or was revoked (revocation is undone by an admin only).
        """
        with self._tx() as conn:
            row = conn.execute("SELECT tenant, revoked FROM gateways WHERE id = ?", (gw.id,)).fetchone()
            if row is not None and row[0] != gw.tenant:
                raise Conflict("gateway", f"gateway {gw.id!r} is enrolled in another tenant")
            if row is not None and row[1] is not None:
                raise Conflict("gateway", f"gateway {gw.id!r} was revoked")
            if (
                gw.hardware_id
                and conn.execute("SELECT 1 FROM blocked_hardware WHERE hardware_id = ?", (gw.hardware_id,)).fetchone()
            ):
                raise Conflict("hardware", BLOCKED_MESSAGE)
            conn.execute(
                "INSERT OR REPLACE INTO gateways VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (gw.id, gw.tenant, gw.hardware_id, gw.public_key, gw.method, gw.enrolled),
            )
        return gw

    def gateway(self, gateway_id: str) -> GatewayRecord | None:
        """One enrolled gateway, or None."""
        row = self._one("SELECT * FROM gateways WHERE id = ?", (gateway_id,))
        return GatewayRecord(*row) if row else None

    def rotate_gateway_key(self, gateway_id: str, public_key: str, now: float) -> list[AccessRecord]:
        """Record a gateway's new public key and end every credential it held (refresh families, access tokens).

        Unlike :meth:`revoke_subject` with ``gateway=True`` the enrollment stays: the tokens issued next
        are the gateway's only live ones.
        """
        with self._tx() as conn:
            conn.execute("UPDATE gateways SET public_key = ? WHERE id = ?", (public_key, gateway_id))
        return self.revoke_subject(gateway_id, now, gateway=False)

    def gateway_by_hardware(self, hardware_id: str) -> GatewayRecord | None:
        """The gateway enrolled with this hardware id, or None."""
        row = self._one("SELECT * FROM gateways WHERE hardware_id = ? ORDER BY enrolled DESC LIMIT 1", (hardware_id,))
        return GatewayRecord(*row) if row else None

    def gateways(self, tenant: str | None = None) -> list[GatewayRecord]:
        """Enrolled gateways (of one tenant) by id."""
        rows = self._all("SELECT * FROM gateways WHERE ?1 IS NULL OR tenant = ?1 ORDER BY id", (tenant,))
        return [GatewayRecord(*r) for r in rows]

    def revoke_subject(self, subject: str, now: float, *, gateway: bool) -> list[AccessRecord]:
        """Revoke every refresh family of ``subject`` and its live access tokens (a stolen gateway, a client)."""
        with self._tx() as conn:
            if gateway:
                conn.execute("UPDATE gateways SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, subject))
            families = [
                r[0] for r in conn.execute("SELECT DISTINCT family FROM refresh_tokens WHERE subject = ?", (subject,))
            ]
            for family in families:
                conn.execute(
                    "UPDATE refresh_tokens SET revoked = ? WHERE family = ? AND revoked IS NULL", (now, family)
                )
            rows = conn.execute(
                "SELECT * FROM access_tokens WHERE subject = ? AND expires > ?", (subject, now)
            ).fetchall()
            return self._revoke_access(conn, [AccessRecord(*r) for r in rows])

    # -- blocked hardware (stolen gateways) ----------------------------------------------------------------------

    def block_hardware(self, hardware_id: str, gateway: str, tenant: str, now: float, reason: str) -> None:
        """Block a hardware id from enrolling (again) until :meth:`unblock_hardware`."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO blocked_hardware VALUES (?, ?, ?, ?, ?)",
                (hardware_id, gateway, tenant, now, reason),
            )

    def unblock_hardware(self, hardware_id: str) -> list[str]:
        """Lift a block; the gateways enrolled with that hardware id may enroll again. The gateway ids freed."""
        with self._tx() as conn:
            row = conn.execute("SELECT gateway FROM blocked_hardware WHERE hardware_id = ?", (hardware_id,)).fetchone()
            if row is None:
                return []
            conn.execute("DELETE FROM blocked_hardware WHERE hardware_id = ?", (hardware_id,))
            ids = {row[0]} | {
                r[0] for r in conn.execute("SELECT id FROM gateways WHERE hardware_id = ?", (hardware_id,))
            }
            for gateway_id in ids:
                conn.execute("UPDATE gateways SET revoked = NULL WHERE id = ?", (gateway_id,))
            return sorted(ids)

    def hardware_blocked(self, hardware_id: str) -> bool:
        """Whether a hardware id is blocked from enrolling."""
        return self._one("SELECT 1 FROM blocked_hardware WHERE hardware_id = ?", (hardware_id,)) is not None

    def stolen(self, gateway_id: str) -> bool:
        """Whether a gateway was revoked as stolen (its hardware id is blocked)."""
        return self._one("SELECT 1 FROM blocked_hardware WHERE gateway = ?", (gateway_id,)) is not None

    def blocked_hardware(self, tenant: str | None = None) -> list[tuple[str, str, str, float, str]]:
        """Blocked hardware ids: (hardware id, gateway, tenant, when, why)."""
        rows = self._all("SELECT * FROM blocked_hardware WHERE ?1 IS NULL OR tenant = ?1 ORDER BY blocked", (tenant,))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # -- device codes ------------------------------------------------------------------------------------------

    def add_device(self, dev: DeviceRecord) -> None:
        """Record a device authorization request; Conflict on a (very unlikely) user-code collision."""
        try:
            with self._tx() as conn:
                conn.execute("DELETE FROM device_codes WHERE expires < ?", (dev.created - 86400,))
                conn.execute(
                    "INSERT INTO device_codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        dev.code_hash,
                        dev.user_code,
                        dev.client_id,
                        dev.scope,
                        dev.hardware_id,
                        dev.public_key,
                        dev.created,
                        dev.expires,
                        dev.interval_s,
                        dev.last_poll,
                        dev.status,
                        dev.tenant,
                        dev.gateway_id,
                    ),
                )
        except sqlite3.IntegrityError:
            raise Conflict("user_code", "user code collision") from None

    def pending_devices(self, now: float) -> int:
        """Device-flow requests waiting for approval that have not expired."""
        row = self._one("SELECT COUNT(*) FROM device_codes WHERE status = 'pending' AND expires > ?", (now,))
        return int(row[0]) if row is not None else 0

    def device(self, code_hash: str) -> DeviceRecord | None:
        """A device request by its device code's hash."""
        row = self._one("SELECT * FROM device_codes WHERE code_hash = ?", (code_hash,))
        return DeviceRecord(*row) if row else None

    def device_by_user_code(self, user_code: str) -> DeviceRecord | None:
        """A device request by its user code."""
        row = self._one("SELECT * FROM device_codes WHERE user_code = ?", (user_code,))
        return DeviceRecord(*row) if row else None

    def poll_device(self, code_hash: str, now: float, backoff_s: int) -> bool:
        """Note a poll; True (and the interval grows by ``backoff_s``) when it came sooner than the interval."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT last_poll, interval_s FROM device_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            if row is None:
                return False
            last, interval = row
            too_fast = last is not None and now - last < interval
            conn.execute(
                "UPDATE device_codes SET last_poll = ?, interval_s = interval_s + ? WHERE code_hash = ?",
                (now, backoff_s if too_fast else 0, code_hash),
            )
            return too_fast

    def decide_device(
        self, user_code: str, now: float, *, approve: bool, tenant: str | None, gateway_id: str | None
    ) -> DeviceRecord:
        """Approve (for ``tenant`` as ``gateway_id``) or deny a pending request; NotFound, or Conflict when decided."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM device_codes WHERE user_code = ?", (user_code,)).fetchone()
            if row is None:
                raise NotFound("user_code", "no such user code")
            dev = DeviceRecord(*row)
            if dev.expires <= now:
                raise Conflict("user_code", "the user code has expired: restart the enrollment on the gateway")
            if dev.status != "pending":
                raise Conflict("user_code", f"the request was {dev.status} already")
            if approve:
                assert tenant is not None
                self._need_tenant(conn, tenant)
            conn.execute(
                "UPDATE device_codes SET status = ?, tenant = ?, gateway_id = ? WHERE code_hash = ?",
                ("approved" if approve else "denied", tenant, gateway_id, dev.code_hash),
            )
        found = self.device(dev.code_hash)
        assert found is not None
        return found

    def use_device(self, code_hash: str) -> bool:
        """Mark an approved request used; False when it was not approved or was used already (a race)."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE device_codes SET status = 'used' WHERE code_hash = ? AND status = 'approved'", (code_hash,)
            )
            return cur.rowcount == 1

    # -- claim tokens ------------------------------------------------------------------------------------------

    def add_claim(self, claim: ClaimRecord) -> None:
        """Record a claim token (by hash); NotFound for an unknown tenant."""
        with self._tx() as conn:
            self._need_tenant(conn, claim.tenant)
            conn.execute(
                "INSERT INTO claim_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (claim.token_hash, claim.id, claim.tenant, claim.max_uses, 0, claim.created, claim.expires, None),
            )

    def use_claim(self, token_hash: str, now: float) -> ClaimRecord | None:
        """Count one use of a live claim token and return it; None when unknown, expired, used up or revoked."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE claim_tokens SET uses = uses + 1 WHERE token_hash = ? AND revoked IS NULL AND expires > ?"
                " AND (max_uses IS NULL OR uses < max_uses)",
                (token_hash, now),
            )
            if cur.rowcount != 1:
                return None
            row = conn.execute("SELECT * FROM claim_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
            return ClaimRecord(*row)

    def unuse_claim(self, token_hash: str) -> None:
        """Give back a use counted for an enrollment that then failed."""
        with self._tx() as conn:
            conn.execute("UPDATE claim_tokens SET uses = max(0, uses - 1) WHERE token_hash = ?", (token_hash,))

    def claims(self, tenant: str | None = None) -> list[ClaimRecord]:
        """Claim tokens (of one tenant) by creation."""
        rows = self._all("SELECT * FROM claim_tokens WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created", (tenant,))
        return [ClaimRecord(*r) for r in rows]

    def revoke_claim(self, claim_id: str, now: float) -> bool:
        """Revoke a claim token by its id; False when unknown or revoked already."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE claim_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, claim_id))
            return cur.rowcount == 1

    # -- refresh and access tokens -----------------------------------------------------------------------------

    def add_tokens(self, refresh: RefreshRecord | None, access: AccessRecord) -> None:
        """Record an issued access token and, when there is one, its refresh token."""
        with self._tx() as conn:
            if refresh is not None:
                conn.execute(
                    "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                    (
                        refresh.token_hash,
                        refresh.family,
                        refresh.client_id,
                        refresh.kind,
                        refresh.subject,
                        refresh.tenant,
                        json.dumps(list(refresh.roles)),
                        refresh.scope,
                        refresh.issued,
                        refresh.expires,
                    ),
                )
            conn.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, ?)",
                (access.jti, access.family, access.client_id, access.subject, access.tenant, access.expires),
            )
            # Forget tokens that expired long ago (by the clock, not by this token's expiry: it may be long-lived).
            conn.execute("DELETE FROM access_tokens WHERE expires < ?", (time.time() - 2 * 86400,))

    @staticmethod
    def _refresh(row: tuple[Any, ...]) -> RefreshRecord:
        values = list(row)
        values[6] = tuple(json.loads(values[6]))
        return RefreshRecord(*values)

    def refresh(self, token_hash: str) -> RefreshRecord | None:
        """A refresh token by hash, used or not."""
        row = self._one("SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
        return self._refresh(row) if row else None

    def use_refresh(self, token_hash: str, now: float) -> bool:
        """Mark a live refresh token used; False when it was used or revoked already (a replay or a race)."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE refresh_tokens SET used = ? WHERE token_hash = ? AND used IS NULL AND revoked IS NULL"
                " AND expires > ?",
                (now, token_hash, now),
            )
            return cur.rowcount == 1

    def revoke_family(self, family: str, now: float) -> list[AccessRecord]:
        """Revoke every refresh token of a family and its live access tokens; the access tokens revoked."""
        with self._tx() as conn:
            conn.execute("UPDATE refresh_tokens SET revoked = ? WHERE family = ? AND revoked IS NULL", (now, family))
            rows = conn.execute(
                "SELECT * FROM access_tokens WHERE family = ? AND expires > ?", (family, now)
            ).fetchall()
            return self._revoke_access(conn, [AccessRecord(*r) for r in rows])

    def access(self, jti: str) -> AccessRecord | None:
        """An issued access token's record by jti."""
        row = self._one("SELECT * FROM access_tokens WHERE jti = ?", (jti,))
        return AccessRecord(*row) if row else None

    def revoke_access(self, record: AccessRecord) -> None:
        """Revoke one access token (until it would have expired anyway)."""
        with self._tx() as conn:
            self._revoke_access(conn, [record])

    @staticmethod
    def _revoke_access(conn: sqlite3.Connection, records: list[AccessRecord]) -> list[AccessRecord]:
        conn.executemany("INSERT OR IGNORE INTO revoked_jti VALUES (?, ?)", [(r.jti, r.expires) for r in records])
        return records

    def revoked_jtis(self, now: float) -> set[str]:
        """Ids of revoked access tokens that have not expired yet."""
        return {r[0] for r in self._all("SELECT jti FROM revoked_jti WHERE expires > ?", (now,))}

    def purge(self, now: float) -> None:
        """Forget what has expired long enough ago to matter no more."""
        with self._tx() as conn:
            conn.execute("DELETE FROM revoked_jti WHERE expires < ?", (now - 86400,))
            conn.execute("DELETE FROM refresh_tokens WHERE expires < ?", (now - 86400,))
            conn.execute("DELETE FROM device_codes WHERE expires < ?", (now - 86400,))
            conn.execute("DELETE FROM sessions WHERE expires < ? OR revoked < ?", (now - 86400, now - 86400))

    # -- operators' dashboard sessions --------------------------------------------------------------------------

    def add_session(self, session: SessionRecord) -> None:
        """Record a new session."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.id_hash,
                    session.username,
                    session.tenant,
                    session.csrf_hash,
                    session.created,
                    session.last_seen,
                    session.expires,
                    session.revoked,
                    session.source_ip,
                ),
            )

    def session(self, id_hash: str) -> SessionRecord | None:
        """A session by the hash of its id, live or not."""
        row = self._one("SELECT * FROM sessions WHERE id_hash = ?", (id_hash,))
        return SessionRecord(*row) if row else None

    def touch_session(self, id_hash: str, now: float) -> None:
        """Note that a session was used (its idle timeout starts again)."""
        with self._tx() as conn:
            conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?", (now, id_hash, now))

    def revoke_session(self, id_hash: str, now: float) -> bool:
        """End one session; False when it was unknown or ended already."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE sessions SET revoked = ? WHERE id_hash = ? AND revoked IS NULL", (now, id_hash))
            return cur.rowcount == 1

    def set_operator_role(self, username: str, role: str) -> bool:
        """Change an operator's role (one made from an external OpenID provider); False when there is none."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE operators SET role = ? WHERE username = ?", (role, username))
            return cur.rowcount == 1

    def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace an API client's secret (the old one stops working at once); False when there is no such client."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE clients SET secret_hash = ? WHERE client_id = ?", (secret_hash, client_id))
            return cur.rowcount == 1

    def delete_client(self, client_id: str) -> bool:
        """Forget an API client; False when there was none."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM clients WHERE client_id = ?", (client_id,)).rowcount == 1

    def set_operator_disabled(self, username: str, when: float | None) -> bool:
        """Disable (``when``) or enable (None) an operator; False when there is no such operator."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE operators SET disabled = ? WHERE username = ?", (when, username))
            return cur.rowcount == 1

    def revoke_sessions_of(self, username: str, now: float) -> int:
        """End every live session of an operator; how many."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE sessions SET revoked = ? WHERE username = ? AND revoked IS NULL AND expires > ?",
                (now, username, now),
            )
            return cur.rowcount

    # -- signing keys and issuers ------------------------------------------------------------------------------

    def keys(self) -> list[KeyRecord]:
        """Signing keys, newest first."""
        return [KeyRecord(*r) for r in self._all("SELECT * FROM signing_keys ORDER BY created DESC, kid")]

    def add_key(self, key: KeyRecord) -> None:
        """Add a signing key that signs from now on; the others are retired (they keep verifying)."""
        with self._tx() as conn:
            conn.execute("UPDATE signing_keys SET retired = ? WHERE retired IS NULL", (key.created,))
            conn.execute("INSERT INTO signing_keys VALUES (?, ?, ?, NULL)", (key.kid, key.jwk, key.created))

    def drop_keys_retired_before(self, when: float) -> int:
        """Delete keys retired before ``when`` (no token they signed is valid any more); how many."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM signing_keys WHERE retired < ?", (when,)).rowcount

    def add_issuer(self, iss: str) -> None:
        """Remember an issuer URL tokens were issued under."""
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO issuers VALUES (?)", (iss,))

    def issuers(self) -> set[str]:
        """Issuer URLs tokens were issued under."""
        return {r[0] for r in self._all("SELECT iss FROM issuers")}
