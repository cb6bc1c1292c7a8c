"""What enabling Prometheus metrics costs the gateway: RSS, and the time one scrape takes.

Starts `roost gateway run` twice on loopback (CoAP, no cloud reachable: readings stay buffered), once
with ``[metrics] enabled = false`` and once with it on; each gets the same readings over CoAP, the
second is scraped repeatedly, and each one's RSS is read from /proc once it has settled. Ceiling
(issue 9): metrics add under 3 MB of RSS, and a scrape takes under 50 ms.

Usage: python bench/metrics.py [--scrapes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.systemd.rig import free_port, gateway_toml, post_text, ready_gateway, rss_kb  # noqa: E402

CEILING_MB = 3.0
SCRAPE_CEILING_MS = 50.0
POSTS = 50


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return bytes(resp.read())


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _scrape(port)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the gateway's metrics endpoint did not answer within {timeout:.0f} s")


def _run(tmp: Path, *, metrics: bool, scrapes: int) -> tuple[int, float]:
    """RSS (kB) of a settled gateway after POSTS posts (and ``scrapes`` scrapes); mean scrape ms."""
    coap = free_port(socket.SOCK_DGRAM)
    mport = free_port() if metrics else None
    cfg = tmp / ("with.toml" if metrics else "without.toml")
    cfg.write_text(gateway_toml(tmp / cfg.stem, coap_port=coap, metrics_port=mport))
    with ready_gateway(cfg, tmp / f"{cfg.stem}.notify") as proc:

        async def posts() -> None:
            for i in range(POSTS):
                await post_text(coap, f"bench-{i % 5}", f"temp={i},hum=40")

        asyncio.run(posts())
        took = 0.0
        if mport is not None:
            _wait_listening(mport)
            start = time.perf_counter()
            for _ in range(scrapes):
                _scrape(mport)
            took = (time.perf_counter() - start) / scrapes * 1000
        time.sleep(1.0)
        return rss_kb(proc.pid), took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        without, _ = _run(Path(tmp), metrics=False, scrapes=0)
        with_metrics, scrape_ms = _run(Path(tmp), metrics=True, scrapes=args.scrapes)
    added = (with_metrics - without) / 1024
    ok = "OK" if added <= CEILING_MB else "OVER"
    scrape_ok = "OK" if scrape_ms <= SCRAPE_CEILING_MS else "OVER"
    print(f"metrics (gateway with CoAP, {POSTS} posts, no cloud):")
    print(f"  RSS without metrics: {without / 1024:8.1f} MB")
    print(f"  RSS with metrics:    {with_metrics / 1024:8.1f} MB after {args.scrapes} scrapes")
    print(f"  added:               {added:8.2f} MB (ceiling {CEILING_MB:.1f} MB: {ok})")
    print(f"  one scrape:          {scrape_ms:8.2f} ms (ceiling {SCRAPE_CEILING_MS:.0f} ms: {scrape_ok})")


if __name__ == "__main__":
    main()
