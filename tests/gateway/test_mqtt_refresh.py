"""Refresh over MQTT: when the token endpoint cannot be reached and the uplink is connected, the gateway
refreshes on ``token`` / ``token-result``; an OAuth error over HTTP never falls back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gateway.config import loads
from gateway.enrollment import TokenCredentials
from gateway.errors import UplinkError
from gateway.identity import IdentityStore, Tokens
from gateway.tokens import OAuthError, TokenClient, TokenEndpointUnreachable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeChannel:
    def __init__(self, answer: dict[str, Any] | None, connected: bool = True) -> None:
        self.answer = answer
        self.connected = connected
        self.requests: list[dict[str, Any]] = []

    async def request_token(self, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        self.requests.append(dict(body))
        if self.answer is None:
            raise UplinkError("no answer")
        return {"request_id": "x", **self.answer}


def _setup(tmp_path: Path) -> tuple[TokenCredentials, TokenClient, Tokens]:
    config = loads(f'[gateway]\nid = "gw-1"\nstate_dir = "{tmp_path / "state"}"\n', base_dir=tmp_path)
    creds = TokenCredentials(config, IdentityStore(tmp_path / "state"))
    dead = f"http://127.0.0.1:{free_port()}"
    tokens = Tokens.from_response(
        {"access_token": "a.b.c", "refresh_token": "rt-old", "expires_in": 60, "gateway_id": "gw-1", "tenant": "acme"},
        dead,
    )
    return creds, TokenClient(dead, timeout=2.0), tokens


NEW = {
    "access_token": "d.e.f",
    "refresh_token": "rt-new",
    "expires_in": 60,
    "token_type": "Bearer",
    "gateway_id": "gw-1",
    "tenant": "acme",
}


async def test_an_unreachable_token_endpoint_falls_back_to_mqtt(tmp_path: Path) -> None:
    creds, client, tokens = _setup(tmp_path)
    channel = FakeChannel(NEW)
    creds.use_channel(channel)
    new, via = await creds._refresh(client, tokens)
    assert via == "MQTT" and new.refresh_token == "rt-new" and new.issuer == tokens.issuer
    assert channel.requests == [{"grant_type": "refresh_token", "refresh_token": "rt-old"}]


async def test_an_oauth_error_over_mqtt_is_an_oauth_error(tmp_path: Path) -> None:
    creds, client, tokens = _setup(tmp_path)
    creds.use_channel(FakeChannel({"error": "invalid_grant", "error_description": "used"}))
    with pytest.raises(OAuthError) as refused:
        await creds._refresh(client, tokens)
    assert refused.value.error == "invalid_grant"


@pytest.mark.parametrize("channel", [None, FakeChannel(NEW, connected=False), FakeChannel(None)])
async def test_without_a_working_connection_the_endpoint_stays_unreachable(
    tmp_path: Path, channel: FakeChannel | None
) -> None:
    creds, client, tokens = _setup(tmp_path)
    if channel is not None:
        creds.use_channel(channel)
    with pytest.raises(TokenEndpointUnreachable):
        await creds._refresh(client, tokens)
    if channel is not None and not channel.connected:
        assert channel.requests == []


async def test_the_keep_fresh_loop_stores_tokens_refreshed_over_mqtt(tmp_path: Path) -> None:
    creds, _client, tokens = _setup(tmp_path)
    creds.use_channel(FakeChannel({**NEW, "expires_in": 3600}))
    store = IdentityStore(tmp_path / "state")
    task = asyncio.create_task(creds._keep_fresh(Tokens(**{**tokens.to_json(), "expires_at": 0.0})))
    try:
        async with asyncio.timeout(10):
            current = await creds.get()  # handed out once refreshed
    finally:
        task.cancel()
    stored = store.load_tokens()
    assert stored is not None and stored.refresh_token == "rt-new"
    assert creds.refreshes == creds.mqtt_refreshes == 1
    assert current.password == "d.e.f" and current.kind == "token"
