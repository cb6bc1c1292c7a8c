"""Token refresh over MQTT end to end: the gateway cannot reach the cloud's token endpoint over HTTP(S), but
its MQTT connection works, so it refreshes on ``token`` / ``token-result`` and readings keep flowing.

Real ``roost cloud serve`` and ``roost gateway run`` processes on loopback. After a claim-token enrollment the
gateway is stopped, its stored tokens are refreshed once (so the restart begins with a fresh access token)
and their issuer is pointed at a port where nothing listens; the gateway is started again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.harness import Sensor, Site, free_port, wait_for_readings
from tests.e2e.test_enrollment import (
    _claim,
    _connected_with_token_or_skip,
    _log,
    _site,
    _stored_tokens,
    _wait_log,
    sites,
)

__all__ = ["sites"]  # the fixture

pytestmark = pytest.mark.slow  # a real cloud and gateway through token expiries: 18 s (make test runs it)


def _refresh_over_http(site: Site, refresh_token: str) -> dict[str, object]:
    data = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "roost-gateway"}
    ).encode()
    with urllib.request.urlopen(site.base + "/oauth/token", data=data, timeout=10) as r:
        body = json.loads(r.read())
    assert isinstance(body, dict)
    return body


async def test_readings_keep_flowing_when_tokens_are_refreshed_over_mqtt(sites: list[Site], tmp_path: Path) -> None:
    site = _site(sites, tmp_path, ttl_s=6)
    site.start_cloud()
    _claim(site)
    await site.start_gateway()
    await _wait_log(site, r"identity: enrolled as gateway gw-e2e", 30)
    await _connected_with_token_or_skip(site)
    site.gateway.stop()
    # Fresh tokens for the restart, whose issuer (the HTTPS token endpoint) cannot be reached.
    stored = _stored_tokens(site)
    fresh = await asyncio.to_thread(_refresh_over_http, site, str(stored["refresh_token"]))
    dead_issuer = f"http://127.0.0.1:{free_port()}"
    expires_in = float(fresh["expires_in"])  # type: ignore[arg-type]
    stored.update(
        access_token=fresh["access_token"],
        refresh_token=fresh["refresh_token"],
        expires_in=expires_in,
        expires_at=time.time() + expires_in,
        issuer=dead_issuer,
    )
    (site.gateway_state_dir / "identity" / "tokens.json").write_text(json.dumps(stored))
    before = len(_log(site))
    await site.start_gateway()
    stop = asyncio.Event()
    async with Sensor(site.coap_port, "mqtt-refresh-th1") as s:
        streaming = asyncio.create_task(s.stream(stop, every=0.05))
        await _wait_log(site, r"identity: access token refreshed \(valid for \d+ s, over MQTT\)", 40, count=3)
        await asyncio.sleep(1.0)
        stop.set()
        await streaming
        items = await wait_for_readings(site, s, timeout=40)
    text = _log(site)[before:]
    assert "cannot refresh over HTTPS" in text and "refreshing over MQTT" in text
    assert "over HTTPS)" not in text  # every refresh went over MQTT
    assert len(re.findall(r"credentials were renewed: reconnecting", text)) >= 3
    assert len(s.acked) > 50
    assert len({(i["sensor"], i["ts"]) for i in items}) == len(s.acked)
    latest = _stored_tokens(site)
    assert latest["refresh_token"] != fresh["refresh_token"]  # rotated, and the new one stored
    assert latest["issuer"] == dead_issuer
    whole = _log(site) + site.cloud.log.read_text(errors="replace")
    for secret in (str(latest["access_token"]), str(latest["refresh_token"]), str(fresh["refresh_token"])):
        assert secret not in whole
    assert site.gateway.alive
