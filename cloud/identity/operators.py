"""Operators' access tokens: what a signed-in operator, a script (``roost cloud admin token``) and the demo use.

An operator's token is an access token like any other (RFC 9068 shape, signed by the key ring, verified by
the same verifier): ``sub`` is the operator's username, ``client_id`` is the console's client id
(:data:`OPERATOR_CLIENT_ID`, so ``sub`` never equals ``client_id`` and enforcement points know it is a
person, not an API client), ``tenant`` its tenant and ``roles`` its role. The policies decide from the role.

    token, expires = mint_operator_token(db_path, "vera", tenant="default", ttl_s=3600,
                                         issuer="http://127.0.0.1:8080", audience="roost", keep_retired_s=...)
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from cloud.identity.db import AccessRecord, IdentityDB, OperatorRecord
from cloud.identity.errors import NotFound

OPERATOR_CLIENT_ID = "roost-console"
"""The client id operators' tokens carry (a reserved name: no operator may be called so)."""
OPERATOR_SCOPE = "api mqtt"


@dataclass(frozen=True, slots=True)
class MintedToken:
    """An operator token as minted: the JWT (a secret: never logged), its subject, tenant, role and expiry."""

    access_token: str
    subject: str
    tenant: str
    role: str
    expires: int
    jti: str


def access_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    tenant: str,
    roles: tuple[str, ...],
    scope: str,
    ttl_s: int,
    now: float,
) -> dict[str, Any]:
    """The claims of an access token (RFC 9068 members plus Roost's ``tenant`` and ``roles``)."""
    iat = int(now)
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": iat + ttl_s,
        "iat": iat,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "scope": scope,
        "tenant": tenant,
        "roles": list(roles),
    }


def live_operator(db: IdentityDB, username: str, tenant: str) -> OperatorRecord:
    """The enabled operator ``username`` of ``tenant``; NotFound otherwise (also when it is of another tenant)."""
    rec = db.operator(username)
    if rec is None or rec.tenant != tenant:
        raise NotFound("operator", f"no operator {username!r} in tenant {tenant!r}")
    if rec.disabled is not None:
        raise NotFound("operator", f"operator {username!r} is disabled")
    return rec


def mint_operator_token(
    db: IdentityDB,
    username: str,
    *,
    tenant: str,
    ttl_s: int,
    issuer: str,
    audience: str,
    keep_retired_s: float,
) -> MintedToken:
    """Sign an access token for an operator with the database's current key, record it (so it can be revoked).

    Runs beside a running cloud (the admin command line) or before it starts (the demo): the key ring is
    loaded from the database (a first key is made when there is none, none is rotated here), and the issuer
    is remembered, so the cloud accepts the token as soon as it sees the database change.
    """
    from cloud.identity.keys import KeyRing

    if ttl_s < 1:
        raise ValueError("the token's lifetime must be at least 1 second")
    op = live_operator(db, username, tenant)
    keys = KeyRing(db, rotation_s=0, keep_retired_s=keep_retired_s)
    keys.load()
    now = time.time()
    claims = access_claims(
        issuer=issuer.rstrip("/"),
        audience=audience,
        subject=op.username,
        client_id=OPERATOR_CLIENT_ID,
        tenant=op.tenant,
        roles=(op.role,),
        scope=OPERATOR_SCOPE,
        ttl_s=ttl_s,
        now=now,
    )
    token = keys.sign(claims)
    db.add_issuer(claims["iss"])
    db.add_tokens(None, AccessRecord(claims["jti"], None, OPERATOR_CLIENT_ID, op.username, op.tenant, claims["exp"]))
    return MintedToken(token, op.username, op.tenant, op.role, claims["exp"], claims["jti"])
