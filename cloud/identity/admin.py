"""Administration of the identity database: what ``roost cloud admin ...`` calls, and the service reuses.

Every function takes the database as a path (it is opened and closed around the call; the cloud may be
running on the same file) or as an open :class:`IdentityDB`, and returns plain records. Secrets (client
secrets, claim tokens) are returned once, when made, and stored only hashed.

    create_tenant(db, "acme")
    create_operator(db, "acme", "alice", "correct horse battery", role="owner")
    minted = operator_token(db, "acme", "vera", ttl_s=3600, issuer=url, audience="roost", keep_retired_s=...)
    client, secret = create_client(db, "acme", role="admin", scopes=["api"])
    claim, token = create_claim_token(db, "acme", max_uses=50, ttl_s=7 * 86400)
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cloud.cloudrules.naming import CLOUD_GATEWAY
from cloud.identity import hashing
from cloud.identity.db import (
    ROLES,
    ClaimRecord,
    ClientRecord,
    DeviceRecord,
    GatewayRecord,
    IdentityDB,
    OperatorRecord,
    Role,
    TenantRecord,
)
from cloud.identity.errors import Conflict, NotFound
from cloud.identity.operators import OPERATOR_CLIENT_ID, MintedToken, mint_operator_token
from wire.names import check_gateway, check_tenant

DbArg = IdentityDB | Path | str
DEFAULT_CLAIM_TTL_S = 7 * 86400


@contextlib.contextmanager
def opened(db: DbArg) -> Iterator[IdentityDB]:
    """``db`` itself when open, else the database at that path, opened for the block."""
    if isinstance(db, IdentityDB):
        yield db
        return
    with IdentityDB(Path(db)) as conn:
        yield conn


def _role(role: str) -> Role:
    for r in ROLES:
        if r == role:
            return r
    raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")


def create_tenant(db: DbArg, tenant_id: str, name: str = "") -> TenantRecord:
    """Create a tenant (id: lower-case letters, digits, '-'); Conflict when it exists."""
    check_tenant(tenant_id)
    rec = TenantRecord(tenant_id, name or tenant_id, time.time())
    with opened(db) as conn:
        conn.add_tenant(rec)
    return rec


def ensure_tenant(db: DbArg, tenant_id: str, name: str = "") -> TenantRecord:
    """The tenant, created when missing (the demo's bootstrap)."""
    with opened(db) as conn:
        found = conn.tenant(tenant_id)
        return found if found is not None else create_tenant(conn, tenant_id, name)


def create_operator(db: DbArg, tenant: str, username: str, password: str, *, role: str = "operator") -> OperatorRecord:
    """Create an operator with an argon2id-hashed password; ValueError for a short password or unknown role."""
    if len(password) < hashing.MIN_PASSWORD:
        raise ValueError(f"the password must have at least {hashing.MIN_PASSWORD} characters")
    if not username or len(username) > 128 or any(c.isspace() for c in username):
        raise ValueError("the username must be 1-128 characters without spaces")
    if username == OPERATOR_CLIENT_ID:
        raise ValueError(f"{username!r} is a reserved name: choose another username")
    rec = OperatorRecord(username, tenant, _role(role), hashing.hash_password(password), time.time())
    with opened(db) as conn:
        conn.add_operator(rec)
    return rec


def set_password(db: DbArg, username: str, password: str) -> None:
    """Give an operator a new password (argon2id); its live sessions end; NotFound, or ValueError if too short."""
    if len(password) < hashing.MIN_PASSWORD:
        raise ValueError(f"the password must have at least {hashing.MIN_PASSWORD} characters")
    with opened(db) as conn:
        if not conn.set_password(username, hashing.hash_password(password)):
            raise NotFound("operator", f"no operator {username!r}")
        conn.revoke_sessions_of(username, time.time())


def ensure_operator(
    db: DbArg, tenant: str, username: str, password: Callable[[], str], *, role: str = "operator"
) -> tuple[OperatorRecord, bool]:
    """The operator, created (with ``password()``) when missing; (record, whether it was created).

    An operator of that name in another tenant, or with another role, is a Conflict: nothing is changed.
    """
    with opened(db) as conn:
        found = conn.operator(username)
        if found is None:
            return create_operator(conn, tenant, username, password(), role=role), True
    if found.tenant != tenant:
        raise Conflict("operator", f"operator {username!r} exists already in another tenant")
    if found.role != _role(role):
        raise Conflict("operator", f"operator {username!r} exists already with the role {found.role!r}")
    return found, False


def token_issuer(db: DbArg, *, configured: str, fallback: str) -> str:
    """The issuer to sign a token under outside the cloud: ``configured``, else ``fallback`` when the cloud has
    used it (or used none yet), else one the cloud has issued under."""
    if configured:
        return configured.rstrip("/")
    with opened(db) as conn:
        known = sorted(conn.issuers())
    fallback = fallback.rstrip("/")
    return fallback if not known or fallback in known else known[0]


def operator_token(
    db: DbArg, tenant: str, username: str, *, ttl_s: int, issuer: str, audience: str, keep_retired_s: float
) -> MintedToken:
    """An access token for an operator, for scripts (see :func:`cloud.identity.operators.mint_operator_token`)."""
    with opened(db) as conn:
        return mint_operator_token(
            conn,
            username,
            tenant=tenant,
            ttl_s=ttl_s,
            issuer=issuer,
            audience=audience,
            keep_retired_s=keep_retired_s,
        )


def check_operator(db: DbArg, username: str, password: str) -> OperatorRecord | None:
    """The operator when the password is right and the account enabled, else None (the sign-in check)."""
    with opened(db) as conn:
        rec = conn.operator(username)
    if rec is None:
        hashing.check_password(_dummy_hash(), password)  # same work whether or not the name exists
        return None
    if not hashing.check_password(rec.password_hash, password) or rec.disabled is not None:
        return None
    return rec


@functools.cache
def _dummy_hash() -> str:
    return hashing.hash_password("not-a-password-of-anyone")


def create_client(
    db: DbArg,
    tenant: str,
    *,
    client_id: str | None = None,
    role: str = "viewer",
    scopes: Iterable[str] = ("api",),
    name: str = "",
) -> tuple[ClientRecord, str]:
    """Create an API client (client_credentials) of a tenant; the record and its secret (shown once)."""
    cid = client_id or f"{tenant}-{uuid.uuid4().hex[:12]}"
    if not cid.isascii() or not cid.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("a client id has only ASCII letters, digits, '-', '_' and '.'")
    scope_list = tuple(dict.fromkeys(scopes))
    if any(not s or any(c.isspace() or c in '"\\' for c in s) for s in scope_list):
        raise ValueError("scopes are non-empty words without spaces, quotes or backslashes")
    secret = hashing.new_token()
    rec = ClientRecord(cid, tenant, hashing.digest(secret), _role(role), scope_list, name or cid, time.time())
    with opened(db) as conn:
        conn.add_client(rec)
    return rec, secret


def create_claim_token(
    db: DbArg, tenant: str, *, max_uses: int | None = 1, ttl_s: float = DEFAULT_CLAIM_TTL_S
) -> tuple[ClaimRecord, str]:
    """A claim token for unattended enrollment into ``tenant`` (``max_uses`` None: unlimited); record and token."""
    if max_uses is not None and max_uses < 1:
        raise ValueError("max_uses must be at least 1 (or None for unlimited)")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be greater than 0")
    token = "rct_" + hashing.new_token()
    now = time.time()
    rec = ClaimRecord(hashing.digest(token), uuid.uuid4().hex[:12], tenant, max_uses, 0, now, now + ttl_s)
    with opened(db) as conn:
        conn.add_claim(rec)
    return rec, token


def revoke_claim_token(db: DbArg, claim_id: str) -> None:
    """Revoke a claim token by its id; NotFound when unknown or revoked already."""
    with opened(db) as conn:
        if not conn.revoke_claim(claim_id, time.time()):
            raise NotFound("claim", f"no live claim token {claim_id!r}")


def enroll_gateway(
    db: DbArg,
    *,
    tenant: str,
    hardware_id: str | None,
    public_key: str | None,
    method: str,
    gateway_id: str | None = None,
) -> GatewayRecord:
    """Enroll a gateway; its id is ``gateway_id``, else the id it had, else its hardware id, else a new one.

    ValueError for an invalid gateway id; Conflict when the id is another tenant's or was revoked.
    """
    with opened(db) as conn:
        if gateway_id is not None:
            check_gateway(gateway_id)
            if gateway_id == CLOUD_GATEWAY:
                raise ValueError(f"gateway id {gateway_id!r} is reserved: the cloud's own rules raise alerts under it")
        elif hardware_id and (prior := conn.gateway_by_hardware(hardware_id)) and prior.tenant == tenant:
            gateway_id = prior.id
        elif hardware_id and _valid_gateway(hardware_id):
            gateway_id = hardware_id
        else:
            gateway_id = f"gw-{uuid.uuid4().hex[:16]}"
        return conn.enroll(GatewayRecord(gateway_id, tenant, hardware_id, public_key, method, time.time()))


def _valid_gateway(text: str) -> bool:
    try:
        check_gateway(text)
    except ValueError:
        return False
    return text != CLOUD_GATEWAY


def approve_device(db: DbArg, user_code: str, tenant: str, gateway_id: str | None = None) -> GatewayRecord:
    """Approve a gateway's device request for ``tenant`` and enroll it; NotFound, Conflict or ValueError."""
    code = hashing.normalize_user_code(user_code)
    with opened(db) as conn:
        dev = conn.device_by_user_code(code)
        if dev is None:
            raise NotFound("user_code", "no such user code")
        if dev.status != "pending" or dev.expires <= time.time():
            raise Conflict("user_code", "the request has expired or was decided already")
        if conn.tenant(tenant) is None:
            raise NotFound("tenant", f"no tenant {tenant!r}")
        gw = enroll_gateway(
            conn,
            tenant=tenant,
            hardware_id=dev.hardware_id,
            public_key=dev.public_key,
            method="device",
            gateway_id=gateway_id,
        )
        conn.decide_device(code, time.time(), approve=True, tenant=tenant, gateway_id=gw.id)
        return gw


def deny_device(db: DbArg, user_code: str) -> DeviceRecord:
    """Deny a gateway's device request (its next poll gets access_denied); NotFound or Conflict."""
    with opened(db) as conn:
        return conn.decide_device(
            hashing.normalize_user_code(user_code), time.time(), approve=False, tenant=None, gateway_id=None
        )


def revoke_gateway(db: DbArg, gateway_id: str, *, stolen: bool = False, reason: str = "") -> int:
    """Revoke a gateway (stolen, retired): its refresh families and live access tokens; how many tokens.

    ``stolen``: its hardware id is also blocked from enrolling again until :func:`allow_hardware`, and its
    next refresh is told "revoked: wipe" (the gateway wipes itself).
    """
    with opened(db) as conn:
        if conn.gateway(gateway_id) is None:
            raise NotFound("gateway", f"no enrolled gateway {gateway_id!r}")
        if stolen:
            block_gateway_hardware(conn, gateway_id, reason or "stolen")
        return len(conn.revoke_subject(gateway_id, time.time(), gateway=True))


def block_gateway_hardware(db: DbArg, gateway_id: str, reason: str) -> str:
    """Block the hardware id a gateway enrolled with (its id when it gave none); the id blocked."""
    with opened(db) as conn:
        gw = conn.gateway(gateway_id)
        if gw is None:
            raise NotFound("gateway", f"no enrolled gateway {gateway_id!r}")
        hardware_id = gw.hardware_id or gw.id
        conn.block_hardware(hardware_id, gw.id, gw.tenant, time.time(), reason[:200])
        return hardware_id


def allow_hardware(db: DbArg, hardware_id: str) -> list[str]:
    """Let a blocked hardware id enroll again (its gateways' revocations are lifted; old tokens stay revoked).

    NotFound when the hardware id is not blocked. Returns the gateway ids it frees.
    """
    with opened(db) as conn:
        freed = conn.unblock_hardware(hardware_id)
    if not freed:
        raise NotFound("hardware", f"hardware id {hardware_id!r} is not blocked")
    return freed


@dataclass(frozen=True, slots=True)
class Disabled:
    """What disabling an operator ended."""

    operator: str
    sessions_ended: int
    tokens_revoked: int


def disable_operator(db: DbArg, tenant: str, username: str) -> Disabled:
    """Lock an operator out now: no sign-in, every dashboard session ended, every access token revoked.

    Revoked tokens also close the operator's MQTT connections (the broker re-checks live connections).
    """
    now = time.time()
    with opened(db) as conn:
        rec = conn.operator(username)
        if rec is None or rec.tenant != tenant:
            raise NotFound("operator", f"no operator {username!r} in tenant {tenant!r}")
        conn.set_operator_disabled(username, now)
        sessions = conn.revoke_sessions_of(username, now)
        tokens = conn.revoke_subject(username, now, gateway=False)
    return Disabled(username, sessions, len(tokens))


def enable_operator(db: DbArg, tenant: str, username: str) -> OperatorRecord:
    """Let a disabled operator sign in again (old sessions and tokens stay ended)."""
    with opened(db) as conn:
        rec = conn.operator(username)
        if rec is None or rec.tenant != tenant:
            raise NotFound("operator", f"no operator {username!r} in tenant {tenant!r}")
        conn.set_operator_disabled(username, None)
        updated = conn.operator(username)
    assert updated is not None
    return updated


def rotate_signing_key(db: DbArg, *, keep_retired_s: float = 3600.0) -> str:
    """Make a new signing key (the running cloud picks it up when it sees its kid); the new kid."""
    from cloud.identity.keys import KeyRing

    with opened(db) as conn:
        return KeyRing(conn, rotation_s=0, keep_retired_s=keep_retired_s).rotate()


@dataclass(frozen=True, slots=True)
class Listing:
    """Everything of one tenant (or of all)."""

    tenants: list[TenantRecord]
    operators: list[OperatorRecord]
    clients: list[ClientRecord]
    gateways: list[GatewayRecord]
    claims: list[ClaimRecord]


def list_all(db: DbArg, tenant: str | None = None) -> Listing:
    """Tenants, operators, API clients, gateways and claim tokens (hashes only), of one tenant or all."""
    with opened(db) as conn:
        return Listing(
            tenants=[t for t in conn.tenants() if tenant is None or t.id == tenant],
            operators=conn.operators(tenant),
            clients=conn.clients(tenant),
            gateways=conn.gateways(tenant),
            claims=conn.claims(tenant),
        )
