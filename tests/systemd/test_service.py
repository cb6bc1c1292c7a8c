"""`roost gateway run` as roost-gateway.service runs it: notify socket, watchdog, journal, metrics, seccomp.

The process runs under the seccomp filters systemd installs for the unit's MemoryDenyWriteExecute=yes and
SystemCallFilter= (tests/systemd/seccomp_unit.py) with NoNewPrivileges, talks sd_notify to a datagram
socket standing in for systemd, and logs to a datagram socket speaking the journal's native protocol.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.systemd import seccomp_unit
from tests.systemd.rig import ROOST, NotifySocket, env_for, free_port, gateway_toml, post_text
from tests.systemd.test_journal import parse_native

SECCOMP = Path(seccomp_unit.__file__)


def _journal_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _entries(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            out.append(parse_native(sock.recv(1 << 20)))
        except BlockingIOError:
            return out


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and not s.labels:
                return float(s.value)
    raise AssertionError(f"{name} not scraped")


def _status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.mark.slow
@pytest.mark.skipif(
    not seccomp_unit.syscall_filter_available(),
    reason="the unit's seccomp filters need x86-64, systemd-analyze and the kernel headers (asm/unistd_64.h)",
)
def test_the_gateway_as_its_unit_runs_it(tmp_path: Path) -> None:
    coap, metrics = free_port(socket.SOCK_DGRAM), free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        gateway_toml(tmp_path / "state", coap_port=coap, metrics_port=metrics, accept="paired", paired=("kitchen-1",))
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    journald = _journal_socket(tmp_path / "journal.sock")
    env = env_for(notify.path, 1_000_000, ROOST_JOURNAL_SOCKET=str(tmp_path / "journal.sock"))
    log = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(SECCOMP), "--system-call-filter", str(ROOST), "gateway", "run", "--config", str(cfg)],
        env=env,
        stderr=log,
        stdout=log,
    )
    try:
        ready = notify.wait_for("READY", "1", timeout=30)
        assert _status(proc.pid, "NoNewPrivs") == "1"
        assert _status(proc.pid, "Seccomp") == "2", "the seccomp filters are not on the daemon"
        assert _status(proc.pid, "Seccomp_filters") == "2"
        assert asyncio.run(post_text(coap, "kitchen-1", "temp=21.5,hum=40")) == "2.04 Changed"
        assert asyncio.run(post_text(coap, "garage-9", "temp=3")) == "4.03 Forbidden"
        assert _metric(metrics, "roost_readings_received_total") == 2
        time.sleep(max(0.0, ready.at + 2.2 - time.monotonic()))
        pings = [m for m in notify.with_field("WATCHDOG", "1") if ready.at <= m.at <= ready.at + 2.0]
        assert 3 <= len(pings) <= 5, f"{len(pings)} pings in 2 s at a 1 s watchdog (every 0.5 s)"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert notify.with_field("STOPPING", "1")
        entries = _entries(journald)
        unpaired = [e for e in entries if e.get("SENSOR") == "garage-9"]
        assert unpaired, f"no journal entry with SENSOR=garage-9 among {len(entries)}"
        assert unpaired[0]["PRIORITY"] == "4"
        assert unpaired[0]["SYSLOG_IDENTIFIER"] == "roost-gateway"
        assert unpaired[0]["LOGGER"] == "gateway.pairing"
        assert unpaired[0]["CODE_FILE"].endswith("gateway/pairing.py")
        assert any(e["MESSAGE"].endswith(" stopping") for e in entries), "\n".join(e["MESSAGE"] for e in entries)
        # Everything went to the journal socket: nothing logged on stderr.
        assert b"roost-gateway" not in (tmp_path / "stderr.log").read_bytes()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        notify.close()
        journald.close()


@pytest.mark.skipif(not seccomp_unit.supported(), reason="the W^X seccomp filter here uses x86-64 system call numbers")
def test_the_wx_filter_is_real_and_what_it_refuses() -> None:
    """Under the filter: W+X memory is refused (cffi's old-style callbacks too); ctypes callbacks work."""
    script = (
        "import mmap, ctypes, cffi\n"
        "try:\n    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); print('wx-allowed')\n"
        "except OSError: print('wx-refused')\n"
        "try:\n    cffi.FFI().callback('int(int)', lambda x: x)\n    print('cffi-callback-ok')\n"
        "except MemoryError: print('cffi-callback-refused')\n"
        "print('ctypes', ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)(21))\n"
        "import gateway.daemon, gateway.metrics, gateway.adapters.ble.adapter, gateway.adapters.zigbee.adapter\n"
        "import gateway.adapters.serial.adapter, gateway.adapters.chips.adapter, gateway.adapters.modbus.adapter\n"
        "from cryptography.hazmat.primitives.asymmetric import ed25519\n"
        "ed25519.Ed25519PrivateKey.generate().sign(b'x'); print('imports-ok')\n"
    )
    out = subprocess.run(
        [sys.executable, str(SECCOMP), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["wx-refused", "cffi-callback-refused", "ctypes", "42", "imports-ok"]


@pytest.mark.skipif(
    not seccomp_unit.syscall_filter_available(),
    reason="the unit's seccomp filters need x86-64, systemd-analyze and the kernel headers (asm/unistd_64.h)",
)
def test_the_system_call_filter_is_real() -> None:
    """Under the unit's allow-list: @resources and @privileged calls fail with EPERM, ordinary ones work."""
    script = (
        "import os\n"
        "for name, call in (('sched_setaffinity', lambda: os.sched_setaffinity(0, {0})),\n"
        "                   ('setpriority', lambda: os.setpriority(os.PRIO_PROCESS, 0, 1)),\n"
        "                   ('chown', lambda: os.chown('.', os.getuid(), os.getgid()))):\n"
        "    try:\n        call(); print(name, 'allowed')\n"
        "    except PermissionError: print(name, 'refused')\n"
        "print('read', len(open('/proc/self/status').read()) > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, str(SECCOMP), "--system-call-filter", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:4] == [
        "sched_setaffinity refused",
        "setpriority refused",
        "chown refused",
        "read True",
    ]


@pytest.mark.slow
@pytest.mark.skipif(
    not seccomp_unit.syscall_filter_available(),
    reason="the unit's seccomp filters need x86-64, systemd-analyze and the kernel headers (asm/unistd_64.h)",
)
def test_the_updater_can_make_a_slot_under_the_filters(tmp_path: Path) -> None:
    """The software updater (docs/ota.md) makes a virtual environment with pip in it, inside the daemon's filters."""
    slot = tmp_path / "slot"
    made = subprocess.run(
        [sys.executable, str(SECCOMP), "--system-call-filter", sys.executable, "-m", "venv", str(slot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    pip = subprocess.run(
        [sys.executable, str(SECCOMP), "--system-call-filter", str(slot / "bin/python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pip.returncode == 0 and pip.stdout.startswith("pip "), pip.stderr
