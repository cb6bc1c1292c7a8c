"""``roost cloud admin``: bootstrap a tenant, an operator, an API client and a claim token from the shell."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Site


def admin(config: Path, *args: str, stdin: str = "") -> tuple[int, Any, str]:
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", "cloud", "admin", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.returncode, (json.loads(out.stdout) if out.returncode == 0 else None), out.stderr


@pytest.mark.slow  # several `roost cloud admin` processes, about 2 s (make test runs it)
def test_bootstrap_from_the_shell(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[store]\npath = "state/cloud.sqlite"\n')
    rc, tenant, err = admin(cfg, "tenant-create", "acme", "--name", "Acme Farms")
    assert rc == 0, err
    assert tenant["id"] == "acme"
    rc, _, err = admin(cfg, "tenant-create", "acme")
    assert rc == 1 and "acme" in err, "a second tenant with the same id is refused by name"
    rc, op, err = admin(
        cfg, "operator-create", "alice", "--tenant", "acme", "--role", "owner", stdin="correct horse battery\n"
    )
    assert rc == 0, err
    assert op["role"] == "owner" and "password_hash" not in op
    rc, client, err = admin(cfg, "client-create", "--tenant", "acme", "--role", "viewer")
    assert rc == 0, err
    assert len(client["client_secret"]) >= 20 and "secret_hash" not in client["client"]
    rc, claim, err = admin(cfg, "claim-create", "--tenant", "acme", "--uses", "5")
    assert rc == 0, err
    assert claim["claim"]["max_uses"] == 5 and claim["claim_token"]
    rc, listing, err = admin(cfg, "list", "--tenant", "acme")
    assert rc == 0, err
    assert [o["username"] for o in listing["operators"]] == ["alice"]
    assert "hash" not in json.dumps(listing)
    rc, _, err = admin(cfg, "approve", "ZZZZ-ZZZZ", "--tenant", "acme")
    assert rc == 1 and err.startswith("roost cloud admin:")
    assert (tmp_path / "state" / "identity.sqlite").exists(), "the identity DB sits next to the store"


@pytest.mark.slow  # several `roost cloud admin` processes, about 2 s (make test runs it)
def test_operator_create_exist_ok_is_idempotent(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[store]\npath = "state/cloud.sqlite"\n')
    assert admin(cfg, "tenant-create", "acme")[0] == 0
    args = ("operator-create", "vera", "--tenant", "acme", "--role", "viewer", "--exist-ok")
    rc, out, err = admin(cfg, *args, stdin="correct horse battery\n")
    assert rc == 0, err
    assert out["created"] is True and out["operator"]["role"] == "viewer"
    rc, out, err = admin(cfg, *args)  # no password asked: nothing changes
    assert rc == 0, err
    assert out["created"] is False
    rc, _, err = admin(cfg, "operator-create", "vera", "--tenant", "acme", "--role", "owner", "--exist-ok")
    assert rc == 1 and "viewer" in err, "an existing operator's role is not changed behind the admin's back"
    rc, _, err = admin(cfg, "operator-create", "vera", "--tenant", "acme", stdin="correct horse battery\n")
    assert rc == 1 and "exists" in err


@pytest.mark.slow  # several `roost cloud admin` processes, about 2 s (make test runs it)
def test_token_mints_an_operator_jwt_for_scripts(tmp_path: Path) -> None:
    from cloud.identity.db import IdentityDB
    from cloud.identity.keys import KeyRing
    from cloud.identity.verify import TokenVerifier

    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[store]\npath = "state/cloud.sqlite"\n\n[server]\nport = 8443\n')
    assert admin(cfg, "tenant-create", "acme")[0] == 0
    assert (
        admin(cfg, "operator-create", "vera", "--tenant", "acme", "--role", "viewer", stdin="correct horse b\n")[0] == 0
    )
    rc, out, err = admin(cfg, "token", "--tenant", "acme", "--operator", "vera", "--ttl", "2h")
    assert rc == 0, err
    assert out["sub"] == "vera" and out["role"] == "viewer" and out["expires_in"] == 7200
    assert out["issuer"] == "http://127.0.0.1:8443"
    with IdentityDB(tmp_path / "state" / "identity.sqlite") as db:
        keys = KeyRing(db, rotation_s=0, keep_retired_s=0)
        keys.load()
        claims = TokenVerifier(keys, audience="roost", issuers=db.issuers()).verify(out["access_token"])
        assert db.access(claims.jti) is not None, "recorded, so that it can be revoked"
    assert (claims.subject, claims.tenant, claims.roles, claims.client_id) == (
        "vera",
        "acme",
        ("viewer",),
        "roost-console",
    )
    assert claims.expires - claims.issued_at == 7200
    assert "access_token" not in err and out["access_token"] not in err
    for bad, why in [
        (("--operator", "vera", "--tenant", "other"), "no operator"),
        (("--operator", "nobody", "--tenant", "acme"), "no operator"),
        (("--operator", "vera", "--tenant", "acme", "--ttl", "8d"), "operator_token_max_ttl_s"),
        (("--operator", "vera", "--tenant", "acme", "--ttl", "soon"), "--ttl"),
    ]:
        rc, _, err = admin(cfg, "token", *bad)
        assert rc == 1 and why in err, (bad, err)


@pytest.mark.slow
def test_a_client_made_in_the_shell_gets_a_token_from_the_running_cloud(tmp_path: Path) -> None:
    site = Site(tmp_path)
    rc, _, err = admin(site.tmp / "cloud.toml", "tenant-create", "default")
    assert rc == 0, err
    rc, client, err = admin(site.tmp / "cloud.toml", "client-create", "--tenant", "default", "--role", "viewer")
    assert rc == 0, err
    site.start_cloud()
    try:
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client["client"]["client_id"],
                "client_secret": client["client_secret"],
            }
        ).encode()
        with urllib.request.urlopen(urllib.request.Request(site.base + "/oauth/token", data=form), timeout=10) as r:
            token = json.loads(r.read())
        assert token["token_type"].lower() == "bearer" and token["access_token"].count(".") == 2
        # An operator's token minted in the shell while the cloud runs works at once as a bearer token.
        rc, _, err = admin(
            site.tmp / "cloud.toml",
            "operator-create",
            "vera",
            "--tenant",
            "default",
            "--role",
            "viewer",
            stdin="correct horse battery\n",
        )
        assert rc == 0, err
        rc, minted, err = admin(site.tmp / "cloud.toml", "token", "--tenant", "default", "--operator", "vera")
        assert rc == 0, err
        bearer = {"Authorization": f"Bearer {minted['access_token']}"}
        req = urllib.request.Request(site.base + "/api/v1/gateways", headers=bearer)
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
    finally:
        site.stop_all()


@pytest.mark.slow  # several `roost cloud admin` processes, about 2 s (make test runs it)
def test_operator_disable_and_enable_from_the_shell(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text('[store]\npath = "state/cloud.sqlite"\n')
    assert admin(cfg, "tenant-create", "acme")[0] == 0
    assert admin(cfg, "operator-create", "olga", "--tenant", "acme", stdin="correct horse battery\n")[0] == 0
    rc, _minted, err = admin(cfg, "token", "--tenant", "acme", "--operator", "olga")
    assert rc == 0, err
    rc, out, err = admin(cfg, "operator-disable", "olga", "--tenant", "acme")
    assert rc == 0, err
    assert out == {"operator": "olga", "sessions_ended": 0, "tokens_revoked": 1}
    rc, listing, _ = admin(cfg, "list", "--tenant", "acme")
    assert listing["operators"][0]["disabled"] is not None
    rc, _, err = admin(cfg, "token", "--tenant", "acme", "--operator", "olga")
    assert rc == 1 and "disabled" in err, "a disabled operator gets no new token"
    rc, out, err = admin(cfg, "operator-enable", "olga", "--tenant", "acme")
    assert rc == 0 and out["disabled"] is None, err
    rc, _, err = admin(cfg, "operator-disable", "olga", "--tenant", "other")
    assert rc == 1 and "no operator 'olga' in tenant 'other'" in err
