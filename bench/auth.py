"""Token validations per second on one core: the verifier the broker's CONNECT and the API run for each token.

    .venv/bin/python bench/auth.py [--seconds 3]

Prints validations/s of a valid ES256 access token (signature via the key ring's published keys, exp with
leeway, aud, iss, revocation by jti) against the issue's target of at least 5,000/s on one core, and the
per-validation latency that adds to an MQTT CONNECT. (Policy decisions are benchmarked with cloud/policy.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from cloud.config import IdentitySection
from cloud.identity import admin
from cloud.identity.oauth import FormRequest
from cloud.identity.service import IdentityService

TARGET_PER_S = 5_000


def main() -> None:
    """Issue one token through the real token endpoint code, then validate it in a loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to measure")
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
    print(f"added to a CONNECT: {1e6 / rate:.0f} µs per token validation (target < 5 ms)")


if __name__ == "__main__":
    main()
