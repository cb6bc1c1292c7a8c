"""What the technician's local page costs the gateway: RSS added idle and in use, and how fast its pages answer.

Starts `roost gateway run` (CoAP on loopback, no cloud reachable) three times: without the local page, with it
(mDNS off), and with it and mDNS on. Each gets the same CoAP readings; the page's runs are then read the way a
technician's phone would (sign in with the PIN, then the status, pairing, wired, sensors and live pages),
and each process' RSS is read from /proc once settled, idle and after use. Ceiling: the page adds under
15 MB of RSS in use, and a page answers in under 200 ms (p95) on this machine.

Usage: python bench/localpage.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.localpage import cert  # noqa: E402
from gateway.localpage import pin as pins  # noqa: E402
from tests.systemd.rig import free_port, gateway_toml, post_text, ready_gateway, rss_kb  # noqa: E402

RSS_CEILING_MB = 15.0
PAGE_P95_CEILING_MS = 200.0
PIN = "246810"
POSTS = 50
PAGES = ("/", "/pairing", "/wired", "/sensors", "/live", "/api/status")


async def _use(port: int, state: Path, rounds: int) -> list[float]:
    """Sign in, then read every page ``rounds`` times; each request's time in ms."""
    tls = ssl.create_default_context(cafile=str(state / "local" / "cert.pem"))
    tls.check_hostname = False
    base = f"https://127.0.0.1:{port}"
    times: list[float] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with asyncio.timeout(60):
            async with session.get(base + "/signin", ssl=tls) as r:
                form = await r.text()
            m = re.search(r'name="csrf" value="([^"]+)"', form)
            if m is None:
                raise SystemExit("the sign-in page has no CSRF field")
            async with session.post(base + "/signin", data={"pin": PIN, "csrf": m.group(1)}, ssl=tls) as r:
                if r.status != 200 or "signin" in str(r.url):
                    raise SystemExit(f"signing in failed: {r.status} at {r.url}")
        for _ in range(rounds):
            for page in PAGES:
                start = time.perf_counter()
                async with asyncio.timeout(20), session.get(base + page, ssl=tls) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{page} answered {r.status}")
                times.append((time.perf_counter() - start) * 1000)
    return times


def _wait_tcp(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the local page did not listen within {timeout:.0f} s")


def _run(
    tmp: Path, name: str, *, page: bool, mdns: bool, rounds: int, first_boot_cert: bool = True
) -> tuple[int, int, list[float]]:
    """RSS (kB) settled idle, RSS after use, and the page times (ms).

    ``first_boot_cert``: the certificate is made beforehand, as first boot does on the appliance; else the
    daemon makes it itself (and so loads cryptography's X.509 code).
    """
    coap = free_port(socket.SOCK_DGRAM)
    state = tmp / name
    toml = gateway_toml(state, coap_port=coap)
    port = free_port()
    if page:
        pins.write(state / "local" / "pin.json", PIN)
        if first_boot_cert:
            cert.make(state / "local", "roost-bench.local")
        toml += f'[local]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nmdns = {str(mdns).lower()}\n'
    cfg = tmp / f"{name}.toml"
    cfg.write_text(toml)
    with ready_gateway(cfg, tmp / f"{name}.notify") as proc:

        async def posts() -> None:
            for i in range(POSTS):
                await post_text(coap, f"bench-{i % 5}", f"temp={i},hum=40")

        asyncio.run(posts())
        if page:
            _wait_tcp(port)
        time.sleep(1.5)
        idle = rss_kb(proc.pid)
        times = asyncio.run(_use(port, state, rounds)) if page else []
        time.sleep(0.5)
        return idle, rss_kb(proc.pid), times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20, help="times each page is read (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_idle, _, _ = _run(Path(tmp), "without", page=False, mdns=False, rounds=0)
        idle, used, times = _run(Path(tmp), "page", page=True, mdns=False, rounds=args.rounds)
        m_idle, m_used, _ = _run(Path(tmp), "page-mdns", page=True, mdns=True, rounds=1)
        c_idle, c_used, _ = _run(Path(tmp), "page-cert", page=True, mdns=False, rounds=1, first_boot_cert=False)
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[18]
    added_used = (used - base_idle) / 1024
    rss_ok = "OK" if added_used <= RSS_CEILING_MB else "OVER"
    page_ok = "OK" if p95 <= PAGE_P95_CEILING_MS else "OVER"
    print(f"local page (gateway with CoAP, {POSTS} posts, no cloud; {len(times)} page reads):")
    print(f"  RSS without the page:      {base_idle / 1024:8.1f} MB")
    print("  (certificate made beforehand, as first boot does on the appliance)")
    print(
        f"  added, idle / in use:      {(idle - base_idle) / 1024:8.1f} MB / {added_used:.1f} MB"
        f" (ceiling {RSS_CEILING_MB:.0f} MB in use: {rss_ok})"
    )
    print(f"  with mDNS, idle / in use:  {(m_idle - base_idle) / 1024:8.1f} MB / {(m_used - base_idle) / 1024:.1f} MB")
    print(
        f"  certificate made by the daemon, idle / in use: {(c_idle - base_idle) / 1024:.1f} MB"
        f" / {(c_used - base_idle) / 1024:.1f} MB"
    )
    print(
        f"  a page, p50 / p95:         {p50:8.1f} ms / {p95:.1f} ms"
        f" (ceiling p95 {PAGE_P95_CEILING_MS:.0f} ms: {page_ok})"
    )


if __name__ == "__main__":
    main()
