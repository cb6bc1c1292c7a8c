"""The CoAP node's behaviour against a scripted CoAP server (aiocoap on loopback) that answers as told.

Refusals: a 4.00 drops the pack (sending it again cannot help), a 4.03 (not paired) and a 5.03 keep it
and send it again (after Max-Age for 5.03). Commands: a repeated notification of a command the node
already carried out gets the same result again and is not carried out twice. Bad settings stop the node
with a message naming what is wrong; a source that cannot be read is reported and the others still sent.
"""

from __future__ import annotations

import asyncio
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
import aiocoap.resource
import pytest

from tests.firmware.test_coap_node_gateway import node_binary  # noqa: F401
from wire import senml

pytestmark = pytest.mark.slow


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Script:
    """What the scripted server answers and what it got."""

    answers: list[tuple[aiocoap.Code, int | None]] = field(default_factory=list)
    """Answers to telemetry posts, in order (code, Max-Age); 2.04 once they run out."""
    posts: list[tuple[float, bytes, aiocoap.Code]] = field(default_factory=list)
    command: bytes = b""
    observe_refusals: int = 0
    """How many observations to refuse with 4.03 (not paired) before accepting one."""
    results: list[bytes] = field(default_factory=list)
    observed: asyncio.Event = field(default_factory=asyncio.Event)


class Telemetry(aiocoap.resource.Resource):  # type: ignore[misc]
    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        code, max_age = self.script.answers.pop(0) if self.script.answers else (aiocoap.CHANGED, None)
        self.script.posts.append((time.monotonic(), bytes(request.payload), code))
        answer = aiocoap.Message(code=code, payload=b"" if code.is_successful() else b"scripted refusal")
        if max_age is not None:
            answer.opt.max_age = max_age
        return answer


class Commands(aiocoap.resource.ObservableResource, aiocoap.resource.PathCapable):  # type: ignore[misc]
    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        if self.script.observe_refusals:
            serverobservation.accept(lambda: None)  # ended by render's refusal
            return
        await super().add_observation(request, serverobservation)
        self.script.observed.set()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        if self.script.observe_refusals:
            self.script.observe_refusals -= 1
            return aiocoap.Message(code=aiocoap.FORBIDDEN, payload=b"not paired")
        return aiocoap.Message(code=aiocoap.CONTENT, payload=self.script.command)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        self.script.results.append(bytes(request.payload))
        return aiocoap.Message(code=aiocoap.CHANGED)


@dataclass
class Server:
    script: Script
    commands: Commands
    port: int


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    script = Script()
    site = aiocoap.resource.Site()
    site.add_resource(["telemetry"], Telemetry(script))
    commands = Commands(script)
    site.add_resource(["cmd"], commands)
    port = _udp_port()
    ctx = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port), transports=["udp6"])
    try:
        yield Server(script, commands, port)
    finally:
        await ctx.shutdown()


class Node:
    def __init__(self, binary: Path, log: Path, port: int, *args: str) -> None:
        self.log = log
        base = ["--gateway", f"coap://127.0.0.1:{port}", "--node", "cn-2", "--interval", "1", "--verbose", "1"]
        with log.open("wb") as fh:
            self.popen = subprocess.Popen([str(binary), *base, *args], stdout=fh, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.text()


async def _until(what: str, condition: Any, node: Node, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert node.popen.poll() is None, "the node exited:\n" + node.text()
        assert time.monotonic() < deadline, f"{what} did not happen:\n{node.text()}"
        await asyncio.sleep(0.05)


def _values(payload: bytes) -> list[float]:
    return [float(r.value) for r in senml.decode(payload, now=time.time())]


async def test_refusals_drop_or_keep_the_pack_as_their_code_says(
    server: Server,
    tmp_path: Path,
    node_binary: Path,  # noqa: F811
) -> None:
    s = server.script
    s.answers = [(aiocoap.BAD_REQUEST, None), (aiocoap.FORBIDDEN, None), (aiocoap.SERVICE_UNAVAILABLE, 1)]
    node = Node(node_binary, tmp_path / "node.log", server.port, "--source", "n value=1 step=1", "--retry", "1")
    try:
        await _until("five posts", lambda: len(s.posts) >= 5, node)
    finally:
        log = node.stop()
    values = [_values(p)[0] for _, p, _ in s.posts]
    codes = [c for _, _, c in s.posts]
    assert codes[:4] == [aiocoap.BAD_REQUEST, aiocoap.FORBIDDEN, aiocoap.SERVICE_UNAVAILABLE, aiocoap.CHANGED]
    # 4.00: pack 1 dropped; 4.03 and 5.03: pack 2 sent again until taken.
    assert values[:4] == [1.0, 2.0, 2.0, 2.0]
    assert values[4] == 3.0
    assert "the gateway refused a pack of 1 readings (4.00: scripted refusal): dropped" in log
    assert "does not take readings from cn-2 (4.03: scripted refusal): pair the node on the gateway" in log
    assert "cannot take readings now (5.03: scripted refusal)" in log
    assert re.search(r"stopping: \d+ readings sent in \d+ packs; packs unsent \d+, dropped 0, refused 1;", log)


async def test_the_queue_keeps_the_newest_packs_within_its_bound(
    server: Server,
    tmp_path: Path,
    node_binary: Path,  # noqa: F811
) -> None:
    s = server.script
    s.answers = [(aiocoap.SERVICE_UNAVAILABLE, 4)]  # busy: come back in 4 s, while a pack a second is read
    node = Node(node_binary, tmp_path / "node.log", server.port, "--source", "n value=1 step=1", "--queue", "2")
    try:
        await _until("four posts", lambda: len(s.posts) >= 4, node)
    finally:
        log = node.stop()
    values = [_values(p)[0] for _, p, _ in s.posts]
    assert values[0] == 1.0 and s.posts[0][2] == aiocoap.SERVICE_UNAVAILABLE
    # The two newest packs waited; the older ones were dropped, and said so.
    assert values[1:] == [values[1] + k for k in range(len(values) - 1)] and values[1] >= 3.0, values
    assert "the gateway has not taken 2 packs: dropping the oldest" in log
    assert re.search(r"dropped [1-9]\d*, refused 0", log), log


async def test_a_repeated_command_is_answered_again_but_done_once(
    server: Server,
    tmp_path: Path,
    node_binary: Path,  # noqa: F811
) -> None:
    s = server.script
    done = tmp_path / "done"
    node = Node(
        node_binary,
        tmp_path / "node.log",
        server.port,
        *("--source", "n value=1", "--output", f"relay command=echo $ROOST_OUTPUT=$ROOST_VALUE >> {done}"),
    )
    try:
        async with asyncio.timeout(20):
            await s.observed.wait()
        s.command = b"7001 actuate output=0 value=5"
        for n in (1, 2, 3):
            server.commands.updated_state()
            await _until(f"result {n}", lambda n=n: len(s.results) >= n, node)
        s.command = b"7002 on output=3"
        server.commands.updated_state()
        await _until("the refusal", lambda: len(s.results) >= 4, node)
        s.command = b"7003 reboot"
        server.commands.updated_state()
        await _until("the second refusal", lambda: len(s.results) >= 5, node)
    finally:
        node.stop()
    assert s.results[:3] == [b"7001 ok"] * 3
    assert done.read_text() == "relay=5\n"  # carried out once
    assert s.results[3] == b"7002 error there is no output 3 (this node has 1)"
    assert s.results[4] == b"7003 error this node cannot 'reboot'"


async def test_a_node_paired_later_listens_for_commands_at_once(
    server: Server,
    tmp_path: Path,
    node_binary: Path,  # noqa: F811
) -> None:
    """The gateway refuses the observation (not paired) and a post; once a post is taken, the node observes."""
    s = server.script
    s.observe_refusals = 1
    s.answers = [(aiocoap.FORBIDDEN, None)]
    node = Node(node_binary, tmp_path / "node.log", server.port, "--source", "n value=1", "--retry", "1")
    try:
        started = time.monotonic()
        async with asyncio.timeout(20):
            await s.observed.wait()
        waited = time.monotonic() - started
    finally:
        log = node.stop()
    assert "takes no commands for cn-2 (4.03: not paired)" in log
    assert waited < 10, "the node waited for its observe-refresh (120 s) instead of observing once paired"


async def test_a_source_that_cannot_be_read_is_reported_and_the_others_still_sent(
    server: Server,
    tmp_path: Path,
    node_binary: Path,  # noqa: F811
) -> None:
    s = server.script
    text = tmp_path / "text"
    text.write_text("warm\n")
    node = Node(
        node_binary,
        tmp_path / "node.log",
        server.port,
        *("--source", "good value=4", "--source", f"gone file={tmp_path}/missing", "--source", f"words file={text}"),
        *("--source", "fails command=exit 2"),
    )
    try:
        await _until("two posts", lambda: len(s.posts) >= 2, node)
    finally:
        log = node.stop()
    assert [(r.metric, r.value) for r in senml.decode(s.posts[0][1], now=time.time())] == [("good", 4)]
    assert f"source gone: cannot read {tmp_path}/missing: No such file or directory" in log
    assert f"source words: {text} gave 'warm', which is not a number" in log
    assert "source fails: 'exit 2' failed (exit status 2)" in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say which node this is"),
        (["--node", "n1"], "no source to read"),
        (["--node", "/dev/ttyUSB0", "--source", "a value=1"], "node id '/dev/ttyUSB0'"),
        (["--node", "n1", "--source", "a:b value=1"], "metric name 'a:b'"),
        (["--node", "n1", "--source", "a value=x"], "value must be a number, not 'x'"),
        (["--node", "n1", "--interval", "0", "--source", "a value=1"], "interval must be a whole number from 1"),
        (["--node", "n1", "--colour", "red"], "unknown setting 'colour'"),
        (["--node", "n1", "--source", "a value=1", "--gateway", "http://x"], "must be a coap:// URI"),
        (["-c", "/nonexistent/node.conf"], "cannot read the config file /nonexistent/node.conf"),
    ],
)
def test_bad_settings_stop_the_node_with_what_is_wrong(
    args: list[str],
    message: str,
    node_binary: Path,  # noqa: F811
) -> None:
    out = subprocess.run([str(node_binary), *args], capture_output=True, text=True, timeout=10, check=False)
    assert out.returncode == 2, out
    assert message in out.stderr, out.stderr


def test_a_config_file_sets_what_the_command_line_does_not(tmp_path: Path, node_binary: Path) -> None:  # noqa: F811
    conf = tmp_path / "node.conf"
    conf.write_text("# a node\nnode = from-file\ninterval = 30\nsource = t unit=Cel value=1\nbogus line\n")
    out = subprocess.run([str(node_binary), "-c", str(conf)], capture_output=True, text=True, timeout=10, check=False)
    assert out.returncode == 2 and f"{conf} line 5: expected 'key = value'" in out.stderr, out.stderr
    conf.write_text("node = from-file\ninterval = 30\nsource = t unit=Cel value=1\ngateway = coap://127.0.0.1:9\n")
    node = subprocess.Popen([str(node_binary), "-c", str(conf), "--interval", "5"], stderr=subprocess.PIPE, text=True)
    try:
        assert node.stderr is not None
        ready, _, _ = select.select([node.stderr], [], [], 10)
        first = node.stderr.readline() if ready else ""
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=10)
    assert node.returncode == 0
    assert "node from-file sends 1 reading every 5 s to coap://127.0.0.1:9" in first
