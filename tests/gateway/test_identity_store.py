"""The identity store: key pair and tokens in state_dir/identity (0700, files 0600), written atomically."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from gateway import identity
from gateway.enrollment import _refresh_in
from gateway.identity import IdentityStore, Tokens


def _tokens(**over: object) -> Tokens:
    body: dict[str, object] = {
        "access_token": "aaa.bbb.ccc",
        "refresh_token": "rt-secret",
        "expires_in": 600,
        "gateway_id": "gw-1",
        "tenant": "acme",
    }
    body.update(over)
    return Tokens.from_response(body, "http://cloud.example", now=1000.0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_and_tokens_are_private_and_survive_a_restart(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    pem = store.public_key_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    store.save_tokens(_tokens())
    assert _mode(store.folder) == 0o700
    assert _mode(store.folder / identity.KEY_FILE) == 0o600
    assert _mode(store.folder / identity.TOKENS_FILE) == 0o600
    again = IdentityStore(tmp_path)
    assert again.public_key_pem() == pem  # the key pair is generated once
    assert again.load_tokens() == _tokens()
    assert [p.name for p in store.folder.iterdir() if ".tmp" in p.name] == []


def test_a_wide_open_folder_is_closed_again(tmp_path: Path) -> None:
    (tmp_path / "identity").mkdir(mode=0o777)
    os.chmod(tmp_path / "identity", 0o777)
    IdentityStore(tmp_path).save_tokens(_tokens())
    assert _mode(tmp_path / "identity") == 0o700


def test_a_failed_write_leaves_the_stored_tokens_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = IdentityStore(tmp_path)
    store.save_tokens(_tokens())

    def power_cut(fd: int) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(identity.os, "fsync", power_cut)
    with pytest.raises(OSError, match="power cut"):
        store.save_tokens(_tokens(refresh_token="rt-next"))
    monkeypatch.undo()
    assert store.load_tokens() == _tokens()
    assert [p.name for p in store.folder.iterdir()] == [identity.TOKENS_FILE]


def test_rotated_tokens_replace_the_old_ones_and_clear_deletes_them(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    assert store.load_tokens() is None
    store.save_tokens(_tokens())
    store.save_tokens(_tokens(refresh_token="rt-next"))
    loaded = store.load_tokens()
    assert loaded is not None and loaded.refresh_token == "rt-next"
    store.clear_tokens()
    assert store.load_tokens() is None
    store.clear_tokens()  # twice is fine


def test_an_unreadable_token_file_is_set_aside(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    store.save_tokens(_tokens())
    (store.folder / identity.TOKENS_FILE).write_text("{not json")
    assert store.load_tokens() is None
    assert (store.folder / "tokens.bad").exists()


def test_tokens_never_show_their_secrets() -> None:
    text = repr(_tokens())
    assert "aaa.bbb.ccc" not in text and "rt-secret" not in text
    assert "gw-1" in text


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "a", "expires_in": 60, "gateway_id": "gw-1", "tenant": "t"},
        {"access_token": "a", "refresh_token": "r", "expires_in": 60, "tenant": "t"},
        {"access_token": "", "refresh_token": "r", "expires_in": 60, "gateway_id": "gw-1", "tenant": "t"},
        {"access_token": "a", "refresh_token": "r", "expires_in": 0, "gateway_id": "gw-1", "tenant": "t"},
        {"access_token": "a", "refresh_token": "r", "expires_in": 60, "gateway_id": "bad/id", "tenant": "t"},
    ],
)
def test_a_malformed_token_response_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Tokens.from_response(body, "http://cloud.example")


def test_the_status_file_is_private(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    store.write_status({"state": "waiting-for-approval", "user_code": "ABCD-EFGH"})
    status = store.read_status()
    assert status is not None and status["user_code"] == "ABCD-EFGH"
    assert _mode(store.folder / identity.STATUS_FILE) == 0o600


def test_the_refresh_is_due_after_the_configured_share_of_the_lifetime() -> None:
    tokens = _tokens()  # issued at 1000, lives 600 s
    assert _refresh_in(tokens, 0.8, 1000.0) == pytest.approx(480)
    assert _refresh_in(tokens, 0.8, 1400.0) == pytest.approx(80)
    assert _refresh_in(tokens, 0.8, 1500.0) == 0.0  # past due (e.g. read from disk after a long stop)
    assert _refresh_in(tokens, 0.8, time.time()) == 0.0
