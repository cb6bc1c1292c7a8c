"""Helpers for the cloud tests: real MQTT and HTTP clients for a cloud server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import httpx

from cloud.server import CloudServer, ServerInfo
from wire.reading import Reading

GW_PASSWORD = "pw-gw-1-secret"
TOKEN = "observer-token-default"
OTHER_TOKEN = "observer-token-other"
WAIT = 5.0

BASE_CONFIG = f"""
[server]
port = 0

[ingest]
batch_max_delay_ms = 2

[[auth.gateways]]
id = "gw-1"
password = "{GW_PASSWORD}"

[[auth.gateways]]
id = "gw-2"
password = "pw-gw-2-secret"

[[auth.gateways]]
id = "gw-x"
tenant = "other"

[[auth.observers]]
token = "{TOKEN}"
name = "ops"

[[auth.observers]]
token = "{OTHER_TOKEN}"
tenant = "other"
"""


def mqtt(
    server: CloudServer | ServerInfo,
    client_id: str | None = "gw-1",
    *,
    username: str | None = "gw-1",
    password: str | None = GW_PASSWORD,
    **kwargs: Any,
) -> aiomqtt.Client:
    """An aiomqtt client for MQTT over WebSockets at /mqtt of ``server``."""
    info = server.info if isinstance(server, CloudServer) else server
    return aiomqtt.Client(
        info.host,
        info.port,
        transport="websockets",
        websocket_path="/mqtt",
        identifier=client_id,
        username=username,
        password=password,
        timeout=WAIT,
        **kwargs,
    )


def http(server: CloudServer, token: str | None = TOKEN) -> httpx.AsyncClient:
    """An HTTP client for ``server``'s API, with the observer bearer token by default."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=server.info.base_url, headers=headers, timeout=WAIT)


async def next_message(client: aiomqtt.Client, timeout: float = WAIT) -> aiomqtt.Message:
    """The next message the client receives, or TimeoutError."""
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            return message
    raise AssertionError("message stream ended")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll ``check`` until it is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def readings(n: int, *, sensor: str = "s1", t0: float = 1_795_000_000.123456, step: float = 0.000001) -> list[Reading]:
    """``n`` readings with µs-distinct timestamps."""
    return [Reading(sensor, "temp", 20.0 + i / 4, round(t0 + i * step, 6), "Cel") for i in range(n)]
