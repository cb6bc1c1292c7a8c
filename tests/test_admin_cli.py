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
    finally:
        site.stop_all()
