"""Schemathesis fuzzes a real cloud (identity, policies, bundles and campaigns all on) from its own /openapi.json.

Every operation is called with generated valid and invalid requests as an admin operator of tenant ``acme``
(a bearer token got the real way), and each answer must be no server error, have a status the document
lists, and match the schema documented for that status. The run is bounded (a few examples per operation,
a time budget); schemathesis's own report is printed when it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cloud.config import loads
from cloud.identity import admin
from cloud.server import CloudServer
from cloud.store import EventWrite, PackWrite
from roost.bundle_cli import build_bundle
from tests.cloud.helpers import BASE_CONFIG, http, readings
from tests.cloud.identity.conftest import identity_of, operator_token
from tests.cloud.test_events import alert, note

pytestmark = pytest.mark.slow

CONFIG = """
[identity]
throttle_burst = 1000

[updates]
key_file = "update.key"
folder = "bundles"
"""

BUDGET_S = int(os.environ.get("ROOST_FUZZ_BUDGET_S", "100"))
"""Schemathesis's own time budget for the whole run (the test allows more for start-up and the report)."""
EXAMPLES = int(os.environ.get("ROOST_FUZZ_EXAMPLES", "8"))
"""Examples per operation and phase; set ROOST_FUZZ_EXAMPLES (and ROOST_FUZZ_BUDGET_S) higher for a deeper run."""

_ROOT = Path(__file__).resolve().parents[2]
"""The repository: schemathesis imports tests.cloud.fuzz_hooks from it."""
EXCLUDED = {
    # POST with wait_s (up to 30 s by design) holds each answer until the gateway answers; with no gateway
    # connected every example would wait out wait_s and the run would spend its budget waiting.
    "send_command": "holds the answer up to wait_s",
    "send_bulk_command": "holds the answer up to wait_s",
    "send_sensor_command": "holds the answer up to wait_s",
    # Revokes whatever token it is given; fuzzing it with the run's own token would end the run's access.
    "oauth_revoke": "revokes the run's own token",
}
EXCLUDED_PATHS = (
    # OpenID Connect's browser endpoints answer HTML pages, redirects and RFC 6750 bearer errors (not problem
    # details, by their standards); their routes do not describe those answers in /openapi.json yet.
    r"^/oauth/(authorize|end_session|userinfo)$",
    r"^/auth/oidc/",
)


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "update.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    config = loads(BASE_CONFIG + CONFIG, base_dir=tmp_path)
    async with CloudServer(config) as server:
        for tenant in ("acme", "other"):
            admin.create_tenant(identity_of(server).db, tenant)
        yield server


def _schemathesis() -> str:
    found = Path(sys.executable).with_name("schemathesis")
    return str(found) if found.exists() else (shutil.which("schemathesis") or "schemathesis")


async def _seed(cloud: CloudServer, token: str, tmp_path: Path) -> None:
    """Something in every list of tenant acme, so answers with items are checked against their schemas too."""
    now = time.time()
    pack = [alert(1), note(2), alert(3, "cleared")]
    await cloud.store.commit_all(
        [PackWrite("acme", "gw-1", readings(5, sensor="s1", t0=now - 60))], [EventWrite("acme", "gw-1", pack)], now=now
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "roost-2.0.0-py3-none-any.whl").write_bytes(b"a stand-in wheel " * 100)
    build_bundle(sorted(wheels.glob("*.whl")), Ed25519PrivateKey.generate(), tmp_path / "roost-2.0.0.bundle")
    async with http(cloud, token) as api:
        r = await api.post("/api/v1/bundles", content=(tmp_path / "roost-2.0.0.bundle").read_bytes())
        assert r.status_code == 201, r.text
        r = await api.put("/api/v1/gateways/gw-1/tags", json={"tags": ["north"], "site": "plant-1"})
        assert r.status_code == 200, r.text
        r = await api.post("/api/v1/gateways/gw-1/commands", json={"command": "ping"})
        assert r.status_code == 202, r.text
        r = await api.post(
            "/api/v1/campaigns", json={"bundle": "roost-2.0.0-any.bundle", "selector": {"ids": ["gw-1"]}}
        )
        assert r.status_code == 201, r.text


@pytest.mark.timeout(BUDGET_S + 140)
async def test_every_operation_answers_as_documented(cloud: CloudServer, tmp_path: Path) -> None:
    token = await operator_token(cloud, "acme", role="admin")
    await _seed(cloud, token, tmp_path)
    base = cloud.info.base_url
    seed = os.environ.get("ROOST_FUZZ_SEED", "20261126")
    args = [
        _schemathesis(), "run", f"{base}/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", str(EXAMPLES), "--max-time", str(BUDGET_S), "--seed", seed, "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "10", "--no-shrink",
        "--output-truncate", "false", "--warnings", "off",
        # A path parameter that may hold '/' (an alert's key) makes it drop many generated values; that is
        # about generating, not about the API's answers.
        "--suppress-health-check", "filter_too_much",
    ]  # fmt: skip
    for op_id in EXCLUDED:
        args += ["--exclude-operation-id", op_id]
    args += ["--exclude-path-regex", "|".join(f"({regex})" for regex in EXCLUDED_PATHS)]  # the last one counts
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "SCHEMATHESIS_TELEMETRY": "false",
        "SCHEMATHESIS_HOOKS": "tests.cloud.fuzz_hooks",  # a serializer for rule files (application/toml)
        "PYTHONPATH": str(_ROOT),
    }
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(BUDGET_S + 100):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    report = out.decode(errors="replace")
    print(report)
    assert proc.returncode == 0, f"schemathesis found problems (exit {proc.returncode}):\n{report[-20000:]}"
    assert "operations" in report.lower() and "passed" in report.lower(), report[-5000:]
