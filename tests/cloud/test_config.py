"""The cloud config file: documented defaults, relative paths, errors that name the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import CloudConfig, load, loads
from cloud.errors import ConfigError
from wire.typedconfig import describe


def test_defaults(tmp_path: Path) -> None:
    config = loads("", base_dir=tmp_path)
    assert config.server.host == "127.0.0.1" and config.server.port == 8080
    assert config.store.path == tmp_path / "state" / "cloud.sqlite"
    assert config.broker.tcp_address is None
    assert config.auth.gateways == () and not config.auth.allow_any_gateway


def test_every_option_is_documented() -> None:
    rows = describe(CloudConfig)
    assert {
        "server.port",
        "store.path",
        "broker.tcp_listen",
        "auth.allow_any_gateway",
        "auth.gateways",
        "ingest.batch_max_readings",
    } <= {key for key, _, _ in rows}
    assert all(text for _, _, text in rows)


def test_file_with_relative_paths_and_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("a-long-secret\n")
    path = tmp_path / "cloud.toml"
    path.write_text(
        '[store]\npath = "db/c.sqlite"\n[broker]\ntcp_listen = "0.0.0.0:1883"\n'
        '[[auth.observers]]\ntoken_file = "token"\n'
    )
    config = load(path)
    assert config.store.path == tmp_path / "db" / "c.sqlite"
    assert config.broker.tcp_address == ("0.0.0.0", 1883)
    assert config.auth.observers[0].secret() == "a-long-secret"


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[server]\nport = "80"\n', "server.port"),
        ('[server]\ncertfile = "c.pem"\n', "server.keyfile"),
        ('[server]\npublic_url = "ftp://x"\n', "server.public_url"),
        ('[broker]\ntcp_listen = "1883"\n', "broker.tcp_listen"),
        ('[[auth.gateways]]\nid = "gw-1"\n[[auth.gateways]]\nid = "bad/id"\n', "auth.gateways[1].id"),
        ('[[auth.gateways]]\ntenant = "default"\n', "auth.gateways[0].id"),
        ('[[auth.gateways]]\nid = "gw-1"\ntenant = "Upper"\n', "auth.gateways[0].tenant"),
        ('[[auth.gateways]]\nid = "gw-1"\n[[auth.gateways]]\nid = "gw-1"\n', "auth.gateways[1].id"),
        ('[[auth.observers]]\ntenant = "default"\n', "auth.observers[0].token"),
        ('[[auth.observers]]\ntoken = "short"\n', "auth.observers[0].token"),
        ('[[auth.observers]]\ntoken_file = "missing"\n', "auth.observers[0].token_file"),
        ("[ingest]\nbatch_max_readings = 0\n", "ingest.batch_max_readings"),
        ("[nothing]\n", "nothing"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, text: str, key_path: str) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key_path == key_path
    assert str(info.value).startswith(f"{path}: {key_path}: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
