"""``roost cloud oidc-client ...``: register the applications operators sign in to with the cloud's OpenID
Connect provider (another Roost cloud, a Grafana, ...). The console's own client ``roost-console`` is
registered by the cloud itself.

    roost cloud oidc-client -c cloud.toml register grafana --redirect-uri https://grafana.example/login/generic_oauth \\
        --confidential                      # prints the client secret once
    roost cloud oidc-client -c cloud.toml list
    roost cloud oidc-client -c cloud.toml remove grafana

Every command prints one JSON document on stdout; errors go to stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _row(row: Any) -> dict[str, Any]:
    return {
        "client_id": row.client_id,
        "name": row.name,
        "confidential": row.secret_hash is not None,
        "redirect_uris": list(row.redirect_uris),
        "post_logout_redirect_uris": list(row.logout_uris),
    }


def run(args: argparse.Namespace) -> int:
    """Carry out one command; 0 on success, 1 when refused."""
    from cloud import config as cloud_config
    from cloud.errors import CloudError
    from cloud.identity.oidc.clients import CONSOLE_CLIENT_ID, register_client
    from cloud.identity.oidc.store import OidcStore

    try:
        db = cloud_config.load(Path(args.config)).identity_db_path
        if not db.exists():
            raise ValueError(f"{db}: no identity database yet (start the cloud once, or create a tenant)")
        store = OidcStore(db)
        try:
            out: Any
            match args.oidc:
                case "register":
                    if args.client_id == CONSOLE_CLIENT_ID:
                        raise ValueError(f"{CONSOLE_CLIENT_ID!r} is the console's: the cloud registers it itself")
                    secret = register_client(
                        store,
                        args.client_id,
                        args.redirect_uri,
                        logout_uris=args.logout_uri or [],
                        confidential=args.confidential,
                        name=args.name,
                    )
                    row = store.client(args.client_id)
                    out = {"client": _row(row)}
                    if secret is not None:
                        out |= {"client_secret": secret, "note": "the secret is shown only now"}
                case "list":
                    out = {"items": [_row(r) for r in store.clients()]}
                case "remove":
                    if args.client_id == CONSOLE_CLIENT_ID or not store.delete_client(args.client_id):
                        raise ValueError(f"no removable client {args.client_id!r}")
                    out = {"removed": args.client_id}
                case _:  # pragma: no cover - argparse only offers the cases above
                    raise ValueError(f"unknown command {args.oidc}")
        finally:
            store.close()
    except (CloudError, ValueError, OSError) as exc:
        print(f"roost cloud oidc-client: {exc}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def add_parser(cloud_actions: Any) -> None:
    """Add ``oidc-client`` and its commands under ``roost cloud``."""
    p = cloud_actions.add_parser("oidc-client", help="applications that sign operators in with this cloud (OpenID)")
    p.add_argument("--config", "-c", required=True, help="cloud.toml (names the identity database)")
    sub = p.add_subparsers(dest="oidc", required=True, metavar="COMMAND")
    c = sub.add_parser("register", help="register (or update) a client; --confidential prints a new secret once")
    c.add_argument("client_id")
    c.add_argument("--redirect-uri", action="append", required=True, help="an exact redirect URI (repeat for more)")
    c.add_argument("--logout-uri", action="append", help="a post-logout redirect URI (repeat for more)")
    c.add_argument("--confidential", action="store_true", help="the client keeps a secret (a server, not a page)")
    c.add_argument("--name", default="", help="what the sign-in page calls it")
    sub.add_parser("list", help="list the registered clients")
    c = sub.add_parser("remove", help="remove a client (its tokens stay valid until they expire)")
    c.add_argument("client_id")
    p.set_defaults(func=run)
