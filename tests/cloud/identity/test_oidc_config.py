"""``[identity.oidc]`` mistakes are named by their key path and what is wrong, before the cloud starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import load, loads
from cloud.errors import ConfigError
from cloud.identity.oidc.mapping import NotMapped, map_claims
from cloud.identity.oidc.settings import OidcSection

GOOD = """
[identity.oidc]
issuer = "https://idp.example/realms/farm"
client_id = "roost"
tenant = "acme"
role_map = { "roost-admins" = "admin", "roost-viewers" = "viewer" }
"""


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('issuer = "https://idp.example/realms/farm"', 'issuer = "http://idp.example"'), "identity.oidc.issuer",
         "must use https"),
        (('issuer = "https://idp.example/realms/farm"', 'issuer = "idp.example"'), "identity.oidc.issuer", "https URL"),
        (('client_id = "roost"', ""), "identity.oidc.client_id", "client id"),
        (('tenant = "acme"', ""), "identity.oidc.tenant", "exactly one of tenant"),
        (('tenant = "acme"', 'tenant = "acme"\ntenant_claim = "org"'), "identity.oidc.tenant", "exactly one"),
        (('tenant = "acme"', 'tenant = "Acme Farms"'), "identity.oidc.tenant", "lower-case"),
        (('"roost-viewers" = "viewer"', '"roost-viewers" = "reader"'), "identity.oidc.role_map.roost-viewers",
         "not a Roost role"),
        (('role_map = { "roost-admins" = "admin", "roost-viewers" = "viewer" }', ""), "identity.oidc.role_map",
         "default_role"),
        (('client_id = "roost"', 'client_id = "roost"\nscopes = ["profile"]'), "identity.oidc.scopes", "openid"),
        (('client_id = "roost"', 'client_id = "roost"\nclient_secret = "x"'), "identity.oidc.client_secret",
         "unknown key"),
        (('client_id = "roost"', 'client_id = "roost"\nclient_secret_file = "missing.txt"'),
         "identity.oidc.client_secret_file", "cannot be read"),
    ],
)  # fmt: skip
def test_bad_settings_are_named(tmp_path: Path, change: tuple[str, str], key: str, words: str) -> None:
    old, new = change
    assert old in GOOD
    path = tmp_path / "cloud.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message and f"{key}:" in message and words in message, message


def test_good_settings_load_and_an_empty_table_means_no_provider(tmp_path: Path) -> None:
    config = loads(GOOD, base_dir=tmp_path)
    assert config.identity.oidc.enabled and config.identity.oidc.role_map["roost-admins"] == "admin"
    assert not loads("", base_dir=tmp_path).identity.oidc.enabled
    (tmp_path / "secret.txt").write_text("")
    with pytest.raises(ConfigError, match=r"client_secret_file: .*is empty"):
        loads(GOOD.replace('client_id = "roost"', 'client_id = "roost"\nclient_secret_file = "secret.txt"'),
              base_dir=tmp_path)  # fmt: skip


def _settings(**overrides: object) -> OidcSection:
    base: dict[str, object] = {
        "issuer": "https://idp.example",
        "client_id": "roost",
        "tenant_claim": "org",
        "role_claim": "realm_access.roles",
        "role_map": {"farm-admin": "admin", "farm-viewer": "viewer", "farm-owner": "owner"},
    }
    base.update(overrides)
    return OidcSection(**base)  # type: ignore[arg-type]


def test_claims_map_to_a_tenant_a_username_and_the_highest_role() -> None:
    claims = {"sub": "123", "preferred_username": "vera", "org": "acme",
              "realm_access": {"roles": ["offline", "farm-viewer", "farm-admin"]}}  # fmt: skip
    who = map_claims(_settings(), claims)
    assert (who.username, who.tenant, who.role, who.subject) == ("vera", "acme", "admin", "123")
    assert map_claims(_settings(role_claim="group"), {**claims, "group": "farm-owner"}).role == "owner"
    fixed = map_claims(_settings(tenant="north", tenant_claim=""), claims)
    assert fixed.tenant == "north"
    assert map_claims(_settings(default_role="viewer"), {**claims, "realm_access": {}}).role == "viewer"


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"preferred_username": "vera", "org": "acme"}, "no 'sub'"),
        ({"sub": "1", "org": "acme", "realm_access": {"roles": ["farm-admin"]}}, "'preferred_username'"),
        ({"sub": "1", "preferred_username": "vera", "realm_access": {"roles": ["farm-admin"]}}, "no tenant"),
        ({"sub": "1", "preferred_username": "vera", "org": "Acme!", "realm_access": {"roles": ["farm-admin"]}},
         "not a valid Roost tenant"),
        ({"sub": "1", "preferred_username": "vera", "org": "acme", "realm_access": {"roles": ["guest"]}},
         "no Roost role"),
        ({"sub": "1", "preferred_username": "v e r a", "org": "acme"}, "cannot be a Roost operator name"),
    ],
)  # fmt: skip
def test_claims_that_do_not_map_say_why(claims: dict[str, object], words: str) -> None:
    with pytest.raises(NotMapped) as caught:
        map_claims(_settings(), claims)
    assert words in caught.value.message
