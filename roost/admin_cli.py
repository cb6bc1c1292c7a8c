"""``roost cloud admin ...``: bootstrap and manage tenants, operators, API clients, claim tokens and gateways.

Every command prints one JSON document on stdout; a secret (a client secret, a claim token) is
printed once, here, and stored only hashed. Errors go to stderr with exit code 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from pathlib import Path
from typing import Any

_HIDDEN = {"password_hash", "secret_hash", "token_hash"}


def _public(record: Any) -> Any:
    """A record as JSON-ready data, without its hashes."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {k: _public(v) for k, v in dataclasses.asdict(record).items() if k not in _HIDDEN}
    if isinstance(record, list | tuple):
        return [_public(r) for r in record]
    if isinstance(record, dict):
        return {k: _public(v) for k, v in record.items() if k not in _HIDDEN}
    return record


def _db(args: argparse.Namespace) -> Path:
    from cloud import config as cloud_config

    return cloud_config.load(Path(args.config)).identity_db_path


_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds from ``3600``, ``90m``, ``12h`` or ``7d``; ValueError otherwise."""
    value = text.strip().lower()
    unit = _TTL_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"--ttl {text!r}: give seconds, or a number with s, m, h or d (90m, 12h, 7d)") from None
    if not 1 <= seconds < 10 * 365 * 86400:
        raise ValueError(f"--ttl {text!r}: must be between 1 second and 10 years")
    return int(seconds)


def _token(args: argparse.Namespace) -> dict[str, Any]:
    """Mint an operator's access token with the cloud's own signing key (for scripts)."""
    from cloud import config as cloud_config
    from cloud.identity import admin
    from cloud.identity.service import IdentityService

    cfg = cloud_config.load(Path(args.config))
    ttl = parse_ttl(args.ttl)
    limit = cfg.identity.operator_token_max_ttl_s
    if ttl > limit:
        raise ValueError(f"--ttl: at most {limit} s (identity.operator_token_max_ttl_s)")
    server = cfg.server
    host = "127.0.0.1" if server.host in ("", "0.0.0.0", "::") else server.host
    here = f"{'https' if server.certfile else 'http'}://{f'[{host}]' if ':' in host else host}:{server.port}"
    issuer = admin.token_issuer(
        cfg.identity_db_path, configured=args.issuer or cfg.identity.issuer or server.public_url, fallback=here
    )
    minted = admin.operator_token(
        cfg.identity_db_path,
        args.tenant,
        args.operator,
        ttl_s=ttl,
        issuer=issuer,
        audience=cfg.identity.audience,
        keep_retired_s=IdentityService.keep_retired_s(cfg.identity),
    )
    return {
        "access_token": minted.access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "sub": minted.subject,
        "tenant": minted.tenant,
        "role": minted.role,
        "issuer": issuer,
        "note": "use it as 'Authorization: Bearer ...', or as the MQTT password with the username 'sub'",
    }


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return str(Path(args.password_file).read_text().strip())
    if sys.stdin.isatty():
        first = getpass.getpass("Password for the new operator: ")
        if first != getpass.getpass("Again: "):
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().strip()


def run(args: argparse.Namespace) -> int:
    """Carry out one admin command; 0 on success, 1 when the cloud refuses it."""
    from cloud.errors import CloudError
    from cloud.identity import admin

    try:
        db = _db(args)
        out: Any
        match args.admin:
            case "tenant-create":
                out = admin.create_tenant(db, args.tenant, args.name)
            case "operator-create" if args.exist_ok:
                operator, created = admin.ensure_operator(
                    db, args.tenant, args.username, lambda: _password(args), role=args.role
                )
                out = {"operator": operator, "created": created}
            case "operator-create":
                out = admin.create_operator(db, args.tenant, args.username, _password(args), role=args.role)
            case "token":
                out = _token(args)
            case "client-create":
                record, secret = admin.create_client(
                    db,
                    args.tenant,
                    client_id=args.client_id,
                    role=args.role,
                    scopes=args.scope or ("api",),
                    name=args.name,
                )
                out = {"client": record, "client_secret": secret, "note": "the secret is shown only now"}
            case "claim-create":
                claim, token = admin.create_claim_token(
                    db, args.tenant, max_uses=None if args.uses == 0 else args.uses, ttl_s=args.ttl_days * 86400
                )
                out = {"claim": claim, "claim_token": token, "note": "put it on the image's boot partition"}
            case "approve":
                out = admin.approve_device(db, args.user_code, args.tenant, args.gateway_id)
            case "operator-disable":
                out = admin.disable_operator(db, args.tenant, args.username)
            case "operator-enable":
                out = admin.enable_operator(db, args.tenant, args.username)
            case "gateway-revoke":
                revoked = admin.revoke_gateway(db, args.gateway_id, stolen=args.stolen, reason=args.reason)
                out = {"gateway": args.gateway_id, "tokens_revoked": revoked, "stolen": args.stolen}
            case "hardware-allow":
                out = {"hardware_id": args.hardware_id, "gateways": admin.allow_hardware(db, args.hardware_id)}
            case "key-rotate":
                out = {"kid": admin.rotate_signing_key(db)}
            case "list":
                out = admin.list_all(db, args.tenant)
            case _:  # pragma: no cover - argparse only offers the cases above
                raise ValueError(f"unknown admin command {args.admin}")
    except (CloudError, ValueError, OSError) as exc:
        print(f"roost cloud admin: {exc}", file=sys.stderr)
        return 1
    json.dump(_public(out), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


def add_parser(cloud_actions: Any) -> None:
    """Add ``admin`` and its commands under ``roost cloud``."""
    p = cloud_actions.add_parser("admin", help="tenants, operators, API clients, claim tokens, enrollments")
    p.add_argument("--config", "-c", required=True, help="cloud.toml (names the identity database)")
    sub = p.add_subparsers(dest="admin", required=True, metavar="COMMAND")

    c = sub.add_parser("tenant-create", help="create a tenant")
    c.add_argument("tenant")
    c.add_argument("--name", default="")
    c = sub.add_parser("operator-create", help="create an operator (password from --password-file, prompt or stdin)")
    c.add_argument("username")
    c.add_argument("--tenant", required=True)
    c.add_argument("--role", default="operator", choices=["owner", "admin", "operator", "viewer"])
    c.add_argument("--password-file")
    c.add_argument(
        "--exist-ok", action="store_true", help="succeed (changing nothing) when the operator exists with this role"
    )
    c = sub.add_parser("token", help="mint an operator's access token for scripts (API bearer and MQTT password)")
    c.add_argument("--tenant", required=True)
    c.add_argument("--operator", required=True, help="the operator's username (the token's subject)")
    c.add_argument("--ttl", default="1h", help="lifetime: seconds, or 90m, 12h, 7d (default 1h)")
    c.add_argument("--issuer", help="issuer URL (default: identity.issuer, server.public_url, or the one in use)")
    c = sub.add_parser("client-create", help="create an API client; prints its secret once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--client-id")
    c.add_argument("--role", default="viewer", choices=["owner", "admin", "operator", "viewer"])
    c.add_argument("--scope", action="append", help="a scope (repeat for more; default: api)")
    c.add_argument("--name", default="")
    c = sub.add_parser("claim-create", help="create a claim token for mass roll-outs; prints it once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--uses", type=int, default=1, help="how many gateways may use it (0: no limit)")
    c.add_argument("--ttl-days", type=float, default=7.0)
    c = sub.add_parser("approve", help="approve a gateway's enrollment by the code it shows")
    c.add_argument("user_code")
    c.add_argument("--tenant", required=True)
    c.add_argument("--gateway-id")
    c = sub.add_parser(
        "operator-disable", help="lock an operator out now: sign-in refused, sessions ended, tokens revoked"
    )
    c.add_argument("username")
    c.add_argument("--tenant", required=True)
    c = sub.add_parser("operator-enable", help="let a disabled operator sign in again")
    c.add_argument("username")
    c.add_argument("--tenant", required=True)
    c = sub.add_parser("gateway-revoke", help="revoke a gateway: its tokens stop working")
    c.add_argument("gateway_id")
    c.add_argument(
        "--stolen",
        action="store_true",
        help="also block its hardware id from enrolling again and tell it to wipe itself at its next refresh",
    )
    c.add_argument("--reason", default="", help="why (kept with the block)")
    c = sub.add_parser("hardware-allow", help="let a hardware id blocked as stolen enroll again")
    c.add_argument("hardware_id")
    sub.add_parser("key-rotate", help="start signing with a new key (old tokens keep verifying until they expire)")
    c = sub.add_parser("list", help="list tenants, operators, clients, gateways and claim tokens")
    c.add_argument("--tenant")
    p.set_defaults(func=run)
