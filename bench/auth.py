"""Token validations per second on one core, and what tokens and policy decisions add to an MQTT CONNECT.

    .venv/bin/python bench/auth.py [--seconds 3] [--connects 100]

Prints validations/s of a valid ES256 access token (signature via the key ring's published keys, exp with
leeway, aud, iss, revocation by jti) against the issue's target of at least 5,000/s on one core. Then, against
real cloud servers on loopback (MQTT over TCP, client and server on the same core), the median time of
CONNECT -> CONNACK -> SUBSCRIBE (own ack topic) -> SUBACK for: a gateway password on the plain allow-list
(the enforcement before tokens and policies), the same password with the policy decision point deciding, and
a gateway access token (verified at CONNECT) with the policy decision point; the difference between the
last and the first is what tokens and policies add (target < 5 ms). (Policy decisions/s: bench/policy.py.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import tempfile
import time
from pathlib import Path

from cloud.authz import AllowListAuthorizer
from cloud.config import IdentitySection, loads
from cloud.identity import admin
from cloud.identity.oauth import GATEWAY_CLIENT, FormRequest, Subject
from cloud.identity.service import IdentityService
from cloud.server import CloudServer

TARGET_PER_S = 5_000
TARGET_ADDED_MS = 5.0
GW_PASSWORD = "bench-password-not-a-jwt"
CONFIG = f"""
[server]
port = 0
[broker]
tcp_listen = "127.0.0.1:0"
[[auth.gateways]]
id = "gw-pw"
password = "{GW_PASSWORD}"
"""


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    n, length = len(body), b""
    while True:
        n, digit = n // 128, n % 128
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def _connect(client_id: str, username: str, password: str) -> bytes:
    header = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
    return _packet(0x10, header + _string(client_id) + _string(username) + _string(password))


async def _one_connect(port: int, client_id: str, password: str, tenant: str) -> float:
    """Seconds from opening the TCP connection to the SUBACK of the gateway's own ack topic."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_connect(client_id, client_id, password))
    connack = await reader.readexactly(4)
    if connack[3] != 0:
        raise RuntimeError(f"CONNECT refused: 0x{connack[3]:02x}")
    writer.write(_packet(0x82, struct.pack("!H", 1) + _string(f"roost/{tenant}/{client_id}/ack") + b"\x01"))
    suback = await reader.readexactly(5)
    elapsed = time.perf_counter() - start
    if suback[4] == 0x80:
        raise RuntimeError("SUBSCRIBE denied")
    writer.write(b"\xe0\x00")
    writer.close()
    await writer.wait_closed()
    return elapsed


async def _connect_latencies(connects: int) -> dict[str, float]:
    """Median CONNECT+SUBSCRIBE times (ms) of the three set-ups, interleaved so drift hits each alike."""
    with tempfile.TemporaryDirectory() as tmp:
        plain_cfg = loads(CONFIG, base_dir=Path(tmp) / "plain")
        policy_cfg = loads(CONFIG, base_dir=Path(tmp) / "policy")
        async with (
            CloudServer(plain_cfg, authorizer=AllowListAuthorizer(plain_cfg.auth)) as plain,
            CloudServer(policy_cfg) as server,
        ):
            identity = server.identity
            assert identity is not None and plain.info.tcp_port and server.info.tcp_port
            admin.create_tenant(identity.db, "bench")
            gw = admin.enroll_gateway(identity.db, tenant="bench", hardware_id=None, public_key=None, method="claim")
            token = identity.issue_tokens(
                issuer=server.info.base_url,
                client=GATEWAY_CLIENT,
                subject=Subject("gateway", gw.id, "bench", ("gateway",)),
                scope=None,
                include_refresh_token=False,
            )["access_token"]
            runs = {
                "allow-list, no policies": (plain.info.tcp_port, "gw-pw", GW_PASSWORD, "default"),
                "allow-list + policies": (server.info.tcp_port, "gw-pw", GW_PASSWORD, "default"),
                "token + policies": (server.info.tcp_port, gw.id, token, "bench"),
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            for run in runs.values():  # warm-up: imports, first decisions, caches
                for _ in range(5):
                    await _one_connect(*run)
            for _ in range(connects):
                for name, run in runs.items():
                    times[name].append(await _one_connect(*run))
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    """Issue one token through the real token endpoint code, then validate it in a loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to measure")
    parser.add_argument("--connects", type=int, default=100, help="CONNECTs per set-up for the latency medians")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        service = IdentityService(IdentitySection(), Path(tmp) / "identity.sqlite")
        service.open_sync()
        admin.create_tenant(service.db, "bench")
        client, secret = admin.create_client(service.db, "bench", role="viewer")
        form = {"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret}
        status, body, _ = service.oauth.token(
            FormRequest("POST", "http://127.0.0.1/oauth/token", {}, form, "http://127.0.0.1:8080")
        )
        assert status == 200, body
        token = body["access_token"]
        verify = service.verifier.verify
        verify(token)
        count = 0
        start = time.perf_counter()
        deadline = start + args.seconds
        while True:
            for _ in range(200):
                verify(token)
            count += 200
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        service.db.close()
    rate = count / elapsed
    verdict = "ok" if rate >= TARGET_PER_S else "BELOW TARGET"
    print(f"token validations: {rate:,.0f}/s on one core (target >= {TARGET_PER_S:,}/s): {verdict}")
    print(f"one token validation: {1e6 / rate:.0f} µs")
    medians = asyncio.run(_connect_latencies(args.connects))
    base = medians["allow-list, no policies"]
    for name, median in medians.items():
        print(f"CONNECT+SUBSCRIBE median over {args.connects}, {name}: {median:.2f} ms")
    added = medians["token + policies"] - base
    verdict = "ok" if added < TARGET_ADDED_MS else "ABOVE TARGET"
    print(f"added to a CONNECT by token validation and policy decisions: {added:.2f} ms (target < 5 ms): {verdict}")


if __name__ == "__main__":
    main()
