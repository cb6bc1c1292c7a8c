"""``roost demo`` keeps the demo contract: token first, data flowing, Ctrl-C stops everything quickly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import ROOT, free_port

pytestmark = pytest.mark.slow


def _get(url: str, token: str | None = None) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return json.loads(r.read())


def test_demo_prints_its_token_first_bridges_every_sensor_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    http, coap = free_port(), free_port(socket.SOCK_DGRAM)
    log = tmp_path / "demo.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roost.cli",
                "demo",
                "--http-port",
                str(http),
                "--coap-port",
                str(coap),
                "--interval",
                "0.5",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    base = f"http://127.0.0.1:{http}"
    try:
        token = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            try:
                _get(base + "/openapi.json")
            except OSError:
                time.sleep(0.2)
                continue
            m = re.search(r"^token: (\S{20,})$", text, re.MULTILINE)
            assert m, "the API answered before the demo printed its token line"
            token = m.group(1)
            break
        assert token, "the demo's API never answered:\n" + log.read_text(errors="replace")[-2000:]
        with pytest.raises(urllib.error.HTTPError):
            _get(base + "/api/v1/readings")  # the API wants the credential
        want = {"kitchen-th1", "cellar-th2", "attic-th3"}
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and seen != want:
            items = _get(base + "/api/v1/readings?limit=1000", token)["items"]  # type: ignore[index]
            seen = {i["sensor"] for i in items} & want
            time.sleep(0.5)
        assert seen == want, f"readings of {want - seen} did not reach the API"
        gws = _get(base + "/api/v1/gateways", token)["items"]  # type: ignore[index]
        assert [g["id"] for g in gws if g["online"]] == ["demo-gw"]
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        assert len(family) >= 3, "the demo runs the cloud and the gateway as processes of their own"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        proc.wait(15)
        stopped_in = time.monotonic() - t0
        assert stopped_in < 8, f"Ctrl-C took {stopped_in:.1f} s"
        assert proc.returncode == 0
        assert not [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
