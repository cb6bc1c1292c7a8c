"""End-to-end uplink benchmark: CoAP clients -> gateway -> broker -> cloud store, on this machine.

Prints, from one run:
  * readings/s sustained end to end (from the first post until the cloud has stored the last
    reading), CoAP posts/s and readings per post;
  * the gateway's CPU (share of one core) and RSS (peak);
  * bytes on the wire per reading: TCP payload bytes the gateway sent on its MQTT-over-WebSockets
    connection (from the kernel's tcp_info via `ss`), divided by the readings sent;
  * the ceiling: a bare aiomqtt publisher's QoS 1 messages/s (64-byte payloads, 100 in flight)
    to the same broker over the same transport;
and the targets they are compared to. Usage: python bench/uplink.py [--seconds 20] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import queue
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wire import senml  # noqa: E402
from wire.reading import Reading  # noqa: E402

TARGET_READINGS_S = 50_000
TARGET_BYTES = 12.0
TARGET_RSS_MB = 60.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer")


# ---------------------------------------------------------------- CoAP load (one process per client)
def _client_main(port: int, client: int, seconds: float, per_post: int, concurrency: int, out: Any) -> None:
    asyncio.run(_client(port, client, seconds, per_post, concurrency, out))


def one_minute_pack(sensor: str, start: int, n: int, seq: int) -> bytes:
    """A pack as a 1 Hz sensor node sends it once a minute: base name, base time, integer offsets.

    The metric rides in the base name (``bn`` "node:temperature", no ``n``), so a record is just
    ``{t, v}``: 60 readings fit in one 1 KiB CoAP block.
    """
    import cbor2

    rng = random.Random(hash((sensor, seq)))
    value = 20.0 + rng.uniform(-5, 5)
    recs: list[dict[int, object]] = []
    for i in range(n):
        value += rng.gauss(0, 0.05)  # a random walk, at the 0.01 resolution of a cheap sensor
        recs.append({6: i, 2: round(value, 2)})
    recs[0].update({-2: f"{sensor}:temperature", -3: start, -4: "Cel"})
    return bytes(cbor2.dumps(recs))


async def _client(port: int, client: int, seconds: float, per_post: int, concurrency: int, out: Any) -> None:
    import aiocoap

    uri = f"coap://127.0.0.1:{port}/telemetry"
    acked = posts = failed = 0
    codes: dict[str, int] = {}
    start = time.time()
    deadline = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal acked, posts, failed
        # One UDP endpoint per worker: a real node is one endpoint with one request at a time.
        ctx = await aiocoap.Context.create_client_context()
        sensor = f"bench-c{client}-w{w}"
        clock = int(time.time()) - 86_400  # this node's samples: 1 Hz, a day ago onwards, each time unique
        seq = 0
        try:
            while time.monotonic() < deadline:
                payload = one_minute_pack(sensor, clock, per_post, seq)
                clock += per_post
                seq += 1
                msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload)
                msg.opt.content_format = senml.CONTENT_FORMAT_CBOR
                try:
                    # One datagram per pack, no Block1 (aiocoap reads datagrams up to 4 KiB).
                    resp = await asyncio.wait_for(ctx.request(msg, handle_blockwise=False).response, 10)
                except Exception as exc:
                    failed += 1
                    codes[type(exc).__name__] = codes.get(type(exc).__name__, 0) + 1
                    continue
                posts += 1
                if resp.code.is_successful():
                    acked += per_post
                else:
                    failed += 1
                    codes[str(resp.code)] = codes.get(str(resp.code), 0) + 1
        finally:
            await ctx.shutdown()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    out.put({"acked": acked, "posts": posts, "failed": failed, "codes": codes, "start": start, "end": time.time()})


# ---------------------------------------------------------------- the ceiling: a bare aiomqtt publisher
async def bare_publisher(ws_url: str, username: str, password: str, seconds: float = 5.0) -> float:
    import aiomqtt

    m = re.match(r"ws://([^:/]+):(\d+)(/.*)", ws_url)
    assert m, ws_url
    payload = senml.encode([Reading("raw-1", "t", 21.5, time.time())], encoding="json").ljust(64, b" ")
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt warns about pending publishes at exit
    count = 0
    async with aiomqtt.Client(
        m.group(1),
        int(m.group(2)),
        transport="websockets",
        websocket_path=m.group(3),
        identifier=username,
        username=username,
        password=password,
        max_inflight_messages=100,
        max_queued_outgoing_messages=1000,
    ) as client:
        sem = asyncio.Semaphore(100)
        deadline = time.monotonic() + seconds
        start = time.monotonic()

        async def one() -> None:
            nonlocal count
            try:
                await client.publish(f"roost/default/{username}/telemetry", payload, qos=1)
                count += 1
            finally:
                sem.release()

        tasks = set()
        while time.monotonic() < deadline:
            await sem.acquire()
            t = asyncio.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return count / elapsed


def tcp_bytes_sent(pid: int, port: int) -> int:
    """TCP payload bytes sent by ``pid`` on its connections to ``port`` (kernel tcp_info)."""
    out = subprocess.run(
        ["ss", "-tinpH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True, check=False
    ).stdout
    total = 0
    blocks = re.split(r"\n(?=\S)", out)
    for block in blocks:
        if f"pid={pid}," in block:
            m = re.search(r"bytes_sent:(\d+)", block)
            if m:
                total += int(m.group(1))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="how long the CoAP clients post")
    ap.add_argument("--clients", type=int, default=2, help="CoAP client processes")
    ap.add_argument("--concurrency", type=int, default=8, help="posts in flight per client")
    ap.add_argument(
        "--per-post",
        type=int,
        default=250,
        help="readings per CoAP post, sent as one datagram (250: 3.5 KB; 60 fits one 1 KiB block)",
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    http_port, coap_port = free_port(), free_port(socket.SOCK_DGRAM)
    token, gw_secret, raw_secret = (secrets.token_urlsafe(24) for _ in range(3))
    (tmp / "gw.password").write_text(gw_secret)
    (tmp / "cloud.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = {http_port}
[store]
path = "cloud.sqlite"
[[auth.gateways]]
id = "bench-gw"
tenant = "default"
password = "{gw_secret}"
[[auth.gateways]]
id = "bench-raw"
tenant = "default"
password = "{raw_secret}"
[[auth.observers]]
token = "{token}"
tenant = "default"
""")
    (tmp / "gateway.toml").write_text(f"""
[gateway]
id = "bench-gw"
state_dir = "gw-state"
log_level = "WARNING"
[cloud]
url = "http://127.0.0.1:{http_port}"
password_file = "gw.password"
[uplink]
batch_max_readings = 5000
batch_max_delay_ms = 50
inflight = 16
health_interval_s = 1.0
[adapters.coap]
host = "127.0.0.1"
port = {coap_port}
accept = "any"
max_records = 5000
""")
    roost = [sys.executable, "-m", "roost.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    logs = open(tmp / "procs.log", "ab")  # noqa: SIM115 - closed at the end of main
    cloud = subprocess.Popen(
        [*roost, "cloud", "serve", "--log-level", "WARNING", "--config", str(tmp / "cloud.toml")],
        env=env,
        stdout=logs,
        stderr=logs,
    )
    gateway: subprocess.Popen[bytes] | None = None
    try:
        base = f"http://127.0.0.1:{http_port}"
        wait_http(base + "/healthz")
        disc = json.loads(urllib.request.urlopen(base + "/.well-known/roost", timeout=5).read())
        ceiling = asyncio.run(bare_publisher(disc["mqtt_ws_url"], "bench-raw", raw_secret))

        gateway = subprocess.Popen(
            [*roost, "gateway", "run", "--config", str(tmp / "gateway.toml")], env=env, stdout=logs, stderr=logs
        )
        gproc = psutil.Process(gateway.pid)
        stored0 = int(http_json(base + "/api/v1/stats", token)["counters"]["readings"])  # the ceiling run's
        time.sleep(3.0)  # connected and idle
        rss_idle = gproc.memory_info().rss
        sent0 = tcp_bytes_sent(gateway.pid, http_port)
        cpu0 = sum(gproc.cpu_times()[:2])

        q: Any = mp.get_context("spawn").Queue()
        clients = [
            mp.get_context("spawn").Process(
                target=_client_main, args=(coap_port, c, args.seconds, args.per_post, args.concurrency, q)
            )
            for c in range(args.clients)
        ]
        for c in clients:
            c.start()
        rss_peak = rss_idle
        results = []
        while len(results) < len(clients):
            with contextlib.suppress(queue.Empty):
                results.append(q.get(timeout=0.5))
            rss_peak = max(rss_peak, gproc.memory_info().rss)
        for c in clients:
            c.join(10)
        acked = sum(r["acked"] for r in results)
        posts = sum(r["posts"] for r in results)
        failed = sum(r["failed"] for r in results)
        failures: dict[str, int] = {}
        for r in results:
            for k, v in r["codes"].items():
                failures[k] = failures.get(k, 0) + v
        load_s = max(r["end"] for r in results) - min(r["start"] for r in results)

        # The end: when the cloud's store holds every reading the gateway acknowledged (polled every 50 ms).
        sent = 0
        t_end = time.time()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rss_peak = max(rss_peak, gproc.memory_info().rss)
            sent = int(http_json(base + "/api/v1/stats", token)["counters"]["readings"]) - stored0
            t_end = time.time()
            if sent >= acked:
                break
            time.sleep(0.05)
        cpu = sum(gproc.cpu_times()[:2]) - cpu0
        wire_bytes = tcp_bytes_sent(gateway.pid, http_port) - sent0
        e2e_s = t_end - min(r["start"] for r in results)  # from the first post; client start-up not counted

        print(
            f"Roost uplink benchmark ({os.cpu_count()} cores, {args.clients} CoAP client processes x "
            f"{args.concurrency} posts in flight, {args.per_post} readings per post, {args.seconds:g} s)"
        )
        why = f": {failures}" if failures else ""
        print(f"  CoAP posts acknowledged  {posts:>10,}  ({posts / load_s:,.0f}/s; {failed} failed{why})")
        print(f"  readings acknowledged    {acked:>10,}  stored by the cloud: {sent:,}")
        print(f"  end to end               {sent / e2e_s:>10,.0f} readings/s   target >= {TARGET_READINGS_S:,}")
        print(
            f"  bytes on the wire        {wire_bytes / max(sent, 1):>10.2f} B/reading   target <= {TARGET_BYTES:g} "
            f"(TCP payload of the gateway's MQTT/WebSocket connection)"
        )
        print(f"  gateway CPU              {100 * cpu / e2e_s:>10.0f} % of one core")
        print(
            f"  gateway RSS              {rss_idle / 2**20:>10.1f} MB idle, {rss_peak / 2**20:.1f} MB peak   "
            f"target < {TARGET_RSS_MB:g} MB"
        )
        print(f"  ceiling: bare aiomqtt    {ceiling:>10,.0f} QoS 1 msgs/s (64 B, 100 in flight, same broker, ws)")
        ok = (
            sent >= acked
            and sent / e2e_s >= TARGET_READINGS_S
            and wire_bytes / max(sent, 1) <= TARGET_BYTES
            and rss_peak / 2**20 < TARGET_RSS_MB
        )
        print(f"  verdict                  {'all targets met' if ok else 'NOT all targets met'}")
        return 0
    finally:
        for p in (gateway, cloud):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        logs.close()


if __name__ == "__main__":
    sys.exit(main())
