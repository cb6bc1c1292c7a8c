"""CoAP node footprint: the size of firmware/coap-node's binary and the memory and CPU it uses while running.

Builds the node natively (``make -C firmware/coap-node``), runs it for ``--seconds`` against a CoAP adapter
in this process (the gateway's own, aiocoap, with a durable buffer on a temporary file), reading
``--sources`` value sources every second and observing ``/cmd/{node}``, and prints: the stripped binary's
size and libcoap's shared library beside it; VmRSS, VmHWM (peak) and RssAnon (its own, not shared pages)
from /proc; CPU time per pack; and how many readings the gateway took. Ceilings: 128 KB stripped (without
libcoap) and 4 MB resident, so that the node fits beside OpenWRT on a 32 MB router or a Pi Zero.
Usage: python bench/coap_node.py [--seconds 10] [--sources 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.adapters.coap import CoapAdapter  # noqa: E402
from gateway.buffer import DurableBuffer  # noqa: E402
from gateway.config import BufferSection, CoapSection  # noqa: E402
from gateway.hub import Hub  # noqa: E402
from gateway.pairing import Pairing  # noqa: E402

FIRMWARE = ROOT / "firmware" / "coap-node"
SIZE_CEILING = 128 * 1024
RSS_CEILING_KB = 4 * 1024


def build() -> Path:
    out = subprocess.run(["make", "-C", str(FIRMWARE)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"cannot build the node (make deps installs libcoap3-dev):\n{out.stdout}{out.stderr}")
    return FIRMWARE / "roost-coap-node"


def libcoap_size(binary: Path) -> tuple[str, int]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(libcoap\S*) => (\S+)", out)
    if match is None:
        return ("libcoap (linked in)", 0)
    return (match.group(1), Path(match.group(2)).resolve().stat().st_size)


def proc_figures(pid: int) -> tuple[dict[str, int], float]:
    status = Path(f"/proc/{pid}/status").read_text()
    memory = {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|RssAnon):\s+(\d+) kB", status, re.MULTILINE)}
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return memory, cpu_s


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(binary: Path, seconds: float, sources: int) -> tuple[dict[str, int], float, int]:
    port = udp_port()
    with tempfile.TemporaryDirectory() as tmp:
        async with DurableBuffer.from_config(Path(tmp) / "buffer.sqlite", BufferSection()) as buffer:
            adapter = CoapAdapter(
                CoapSection(host="127.0.0.1", port=port, accept="any"), Hub(buffer), Pairing([], accept_any=True)
            )
            server = asyncio.create_task(adapter.run())
            async with asyncio.timeout(10):
                await adapter.wait_ready()
            args = [str(binary), "--gateway", f"coap://127.0.0.1:{port}", "--node", "bench-1", "--interval", "1"]
            for i in range(sources):
                args += ["--source", f"m{i} unit=Cel value={20 + i} step=0.1"]
            node = await asyncio.create_subprocess_exec(*args, stderr=asyncio.subprocess.DEVNULL)
            try:
                await asyncio.sleep(seconds)
                memory, cpu_s = proc_figures(node.pid)
            finally:
                node.terminate()
                async with asyncio.timeout(10):
                    await node.wait()
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
            return memory, cpu_s, adapter.accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sources", type=int, default=4)
    opts = parser.parse_args()
    binary = build()
    size = binary.stat().st_size
    lib, lib_size = libcoap_size(binary)
    started = time.monotonic()
    memory, cpu_s, accepted = asyncio.run(run(binary, opts.seconds, opts.sources))
    packs = max(1, accepted // opts.sources)
    print(
        f"coap-node binary: {size / 1024:.1f} KB stripped (ceiling {SIZE_CEILING // 1024} KB); "
        f"{lib}: {lib_size / 1024:.0f} KB"
    )
    print(
        f"coap-node memory: VmRSS {memory['VmRSS']} kB, peak {memory['VmHWM']} kB, own {memory.get('RssAnon', 0)} kB "
        f"(ceiling {RSS_CEILING_KB} kB) after {time.monotonic() - started:.0f} s"
    )
    cpu = f"{cpu_s * 1000:.0f} ms" if cpu_s > 0 else "under one clock tick (10 ms)"
    print(f"coap-node CPU: {cpu} for {packs} packs of {opts.sources} readings ({accepted} readings taken)")
    ok = size < SIZE_CEILING and memory["VmHWM"] < RSS_CEILING_KB and accepted > 0
    print("within the ceilings" if ok else "OVER A CEILING")


if __name__ == "__main__":
    main()
