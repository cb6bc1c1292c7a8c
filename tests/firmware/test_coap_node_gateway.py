"""The CoAP node (firmware/coap-node) against a real gateway and cloud: readings, retransmission, commands.

Builds the node with the system's libcoap, starts it BEFORE the gateway (its first packs go out to a port
nobody listens on: libcoap retransmits them and the node keeps them queued), then starts real
``roost cloud serve`` and ``roost gateway run`` processes and checks every reading reaches the cloud's
API, in order, once, with its name, unit and value. An operator's ``actuate`` then reaches the node
through its observation of ``/cmd/{node}``, and its result (done, or the node's own error) comes back.
Prints the node's stripped binary size and its resident memory (VmRSS) while running.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Site
from tests.e2e.test_wired import _command, _operator_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware" / "coap-node"
BINARY = FIRMWARE / "roost-coap-node"
SIZE_CEILING = 128 * 1024
"""Stripped bytes, libcoap not included (a shared library on the device: 4.3.1 without DTLS is about 200 KB)."""
RSS_CEILING_KB = 4 * 1024
"""Resident memory of the running node, shared libraries included."""


@pytest.fixture(scope="module")
def node_binary() -> Path:
    """The node, built natively (skips when the machine cannot build it)."""
    if shutil.which("cc") is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make on this machine")
    probe = subprocess.run(["pkg-config", "--exists", "libcoap-3-notls"], check=False)
    if probe.returncode != 0:
        pytest.skip("libcoap 3's development files are missing (make deps installs libcoap3-dev)")
    out = subprocess.run(["make", "-C", str(FIRMWARE)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"roost-coap-node: \d+ bytes stripped", out.stdout), out.stdout
    return BINARY


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.stop_all()


class Node:
    """The node binary as a subprocess, its stderr in a log file."""

    def __init__(self, binary: Path, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as fh:
            self.popen = subprocess.Popen([str(binary), *args], stdout=fh, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_log(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            assert self.popen.poll() is None, "the node exited:\n" + self.text()
            assert time.monotonic() < deadline, f"{pattern!r} not in the node's log:\n{self.text()}"
            await asyncio.sleep(0.1)

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) from /proc."""
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE)}

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def _footprint(node: Node, binary: Path) -> None:
    """Print the node's stripped size and resident memory; both stay under their ceilings."""
    memory = node.memory_kb()
    size = binary.stat().st_size
    print(
        f"\ncoap-node: {size} bytes stripped (ceiling {SIZE_CEILING}); "
        f"RSS {memory['VmRSS']} kB, peak {memory['VmHWM']} kB (ceiling {RSS_CEILING_KB} kB)"
    )
    assert size < SIZE_CEILING
    assert memory["VmHWM"] < RSS_CEILING_KB


async def _temperatures(site: Site, sensor: str, want: int, timeout: float = 60.0) -> list[dict[str, object]]:
    """The sensor's readings once the cloud holds ``want`` temperatures (fails on timeout)."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        items = await asyncio.to_thread(site.readings, sensor=sensor)
        if sum(1 for i in items if i["metric"] == "temperature") >= want:
            return items
        await asyncio.sleep(0.5)
    raise AssertionError(f"only {len(items)} readings of {sensor} in the cloud:\n{site.gateway.tail()}")


async def test_a_coap_node_reaches_the_cloud_retransmits_and_takes_commands(
    site: Site, tmp_path: Path, node_binary: Path
) -> None:
    load, relay = tmp_path / "load", tmp_path / "relay"
    load.write_text("0.25\n")
    site.start_cloud()
    node = Node(
        node_binary,
        tmp_path / "node.log",
        *("--gateway", f"coap://127.0.0.1:{site.coap_port}", "--node", "cn-1", "--interval", "1"),
        *("--ack-timeout-ms", "1000", "--verbose", "1"),
        *("--source", "temperature unit=Cel value=20 step=0.5", "--source", f"load file={load}"),
        *("--output", f"relay file={relay}", "--output", "broken command=exit 3"),
    )
    try:
        # Nobody listens yet: the node's first packs wait (libcoap retransmits them).
        await node.wait_log(r"is not reachable", 10)
        await node.wait_log(r"sends 2 readings every 1 s")
        await site.start_gateway()
        await node.wait_log(r"the gateway answers again", 30)
        items = await _temperatures(site, "cn-1", 6)

        temps = sorted((i for i in items if i["metric"] == "temperature"), key=lambda i: str(i["ts"]))
        assert [t["value"] for t in temps] == [20.0 + 0.5 * k for k in range(len(temps))], "a reading is missing"
        assert len({t["ts"] for t in temps}) == len(temps), "a reading was stored twice"
        assert all(t["unit"] == "Cel" and t["gateway"] == site.gateway_id for t in temps)
        loads = [i for i in items if i["metric"] == "load"]
        assert loads and all(i["value"] == 0.25 and i["unit"] is None for i in loads)

        # An operator's command reaches the node through its observation; the result comes back.
        await node.wait_log(r"listening for commands from the gateway", 30)
        token = _operator_token(site)
        status, done = await _command(site, token, "actuate", {"sensor": "cn-1", "action": "on", "args": {"output": 0}})
        assert (status, done["status"]) == (200, "ok"), done
        assert relay.read_text() == "1\n"
        status, done = await _command(
            site, token, "actuate", {"sensor": "cn-1", "action": "actuate", "args": {"output": 0, "value": 7}}
        )
        assert (status, done["status"]) == (200, "ok"), done
        assert relay.read_text() == "7\n"
        status, failed = await _command(
            site, token, "actuate", {"sensor": "cn-1", "action": "on", "args": {"output": 1}}
        )
        assert status == 200 and failed["status"] != "ok", failed
        assert "exit status 3" in str(failed), failed
        status, refused = await _command(site, token, "actuate", {"sensor": "cn-1", "action": "reboot", "args": {}})
        assert status == 200 and refused["status"] != "ok" and "cannot 'reboot'" in str(refused), refused

        # The gateway restarts: the node's packs wait meanwhile, and it observes the new gateway again.
        site.gateway.stop()
        await node.wait_log(r"(?s)is not reachable.*is not reachable", 15)
        await site.start_gateway()
        await node.wait_log(r"(?s)the gateway answers again.*the gateway answers again", 30)
        items = await _temperatures(site, "cn-1", len(temps) + 8)
        temps = sorted((i for i in items if i["metric"] == "temperature"), key=lambda i: str(i["ts"]))
        assert [t["value"] for t in temps] == [20.0 + 0.5 * k for k in range(len(temps))], "a reading is missing"
        assert len({t["ts"] for t in temps}) == len(temps), "a reading was stored twice"
        for _ in range(100):  # the node registers its observation again after the gateway came back
            status, done = await _command(
                site, token, "actuate", {"sensor": "cn-1", "action": "off", "args": {"output": 0}}
            )
            if done["status"] == "ok" or "not listening" not in str(done):
                break
            await asyncio.sleep(0.2)
        assert (status, done["status"]) == (200, "ok"), done
        assert relay.read_text() == "0\n"

        _footprint(node, node_binary)
    finally:
        code = node.stop()
    assert code == 0, node.text()
    assert re.search(r"stopping: \d+ readings sent in \d+ packs", node.text())
