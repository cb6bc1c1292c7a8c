"""The server's life cycle: ready callback, bounded shutdown on cancellation, start-up errors, TLS."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.config import loads
from cloud.errors import BrokerError, ListenError
from cloud.server import CloudServer, ServerInfo, serve
from tests.cloud.helpers import BASE_CONFIG, mqtt


async def test_serve_calls_ready_and_stops_promptly_when_cancelled(tmp_path: Path) -> None:
    ready: asyncio.Queue[ServerInfo] = asyncio.Queue()
    task = asyncio.create_task(serve(loads(BASE_CONFIG, base_dir=tmp_path), ready=ready.put_nowait))
    info = await asyncio.wait_for(ready.get(), 10)
    async with httpx.AsyncClient(base_url=info.base_url, timeout=5) as api:
        assert (await api.get("/healthz")).status_code == 200
    async with mqtt(info):  # a connected client must not hold the shutdown up
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 5
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=info.base_url, timeout=2) as api:
            await api.get("/healthz")


async def test_port_in_use_is_a_listen_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            async with CloudServer(loads(f"[server]\nport = {port}\n", base_dir=tmp_path)):
                pass
        with pytest.raises(BrokerError):
            async with CloudServer(
                loads(f'[server]\nport = 0\n[broker]\ntcp_listen = "127.0.0.1:{port}"\n', base_dir=tmp_path)
            ):
                pass
    # The store was closed again: a new server opens it.
    async with CloudServer(loads("[server]\nport = 0\n", base_dir=tmp_path)) as server:
        assert server.info.port


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


async def test_https_and_wss(tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    config = loads(f'[server]\nport = 0\ncertfile = "{certfile}"\nkeyfile = "{keyfile}"\n', base_dir=tmp_path)
    async with CloudServer(config) as server:
        assert server.info.scheme == "https"
        tls = ssl.create_default_context(cafile=str(certfile))
        async with httpx.AsyncClient(base_url=f"https://localhost:{server.info.port}", verify=tls, timeout=5) as api:
            doc = (await api.get("/.well-known/roost")).json()
    assert doc["mqtt_ws_url"] == f"wss://localhost:{server.info.port}/mqtt"
    assert doc["api_url"] == f"https://localhost:{server.info.port}/api/v1"


def test_the_cloud_loads_its_heavy_libraries_only_when_configured_to_use_them() -> None:
    """pyarrow, DuckDB, psycopg and aio-pika cost about 125 MB together: a small cloud that uses none pays none."""
    import subprocess
    import sys

    code = (
        "import sys, cloud.server\n"
        "print(','.join(m for m in ('pyarrow', 'duckdb', 'psycopg', 'aio_pika') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
