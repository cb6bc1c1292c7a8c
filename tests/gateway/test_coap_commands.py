"""Commands for CoAP nodes: a real aiocoap client observes /cmd/{node} on a real CoAP adapter."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiocoap
import pytest

from gateway.actuation import Actuators
from gateway.adapters import coap_commands
from gateway.adapters.base import ActuationError
from gateway.adapters.coap import CoapAdapter
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection, CoapSection
from gateway.hub import Hub
from gateway.pairing import Pairing


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    adapter: CoapAdapter
    client: aiocoap.Context
    base: str

    def observe(self, node: str, query: str = "actions=set-interval,actuate,on,off,identify&outputs=2") -> Observer:
        msg = aiocoap.Message(code=aiocoap.GET, uri=f"{self.base}/cmd/{node}?{query}", observe=0)
        return Observer(self.client.request(msg))

    async def post(self, node: str, payload: bytes) -> aiocoap.Message:
        msg = aiocoap.Message(code=aiocoap.POST, uri=f"{self.base}/cmd/{node}", payload=payload)
        async with asyncio.timeout(10):
            return await self.client.request(msg).response


class Observer:
    """An observation and the payloads it has seen."""

    def __init__(self, request: aiocoap.protocol.Request) -> None:
        self.request = request
        self.seen: asyncio.Queue[aiocoap.Message] = asyncio.Queue()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        self.seen.put_nowait(await self.request.response)
        async for notification in self.request.observation:
            self.seen.put_nowait(notification)

    async def next(self) -> aiocoap.Message:
        async with asyncio.timeout(10):
            return await self.seen.get()

    async def next_command(self) -> bytes:
        """The next non-empty notification."""
        async with asyncio.timeout(10):
            while True:
                msg = await self.seen.get()
                if msg.payload:
                    return bytes(msg.payload)

    def close(self) -> None:
        self.request.observation.cancel()
        self._task.cancel()


async def _rig(tmp_path: Path, accept: str) -> AsyncIterator[Rig]:
    port = _udp_port()
    section = CoapSection(host="127.0.0.1", port=port, accept=accept)  # type: ignore[arg-type]
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        adapter = CoapAdapter(section, Hub(buffer), Pairing(["node-1"], accept_any=accept == "any"))
        task = asyncio.create_task(adapter.run())
        async with asyncio.timeout(10):
            await adapter.wait_ready()
        client = await aiocoap.Context.create_client_context()
        try:
            yield Rig(adapter, client, f"coap://127.0.0.1:{port}")
        finally:
            await client.shutdown()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for r in _rig(tmp_path, "paired"):
        yield r


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true in time")


async def test_a_command_reaches_the_observing_node_and_its_result_comes_back(rig: Rig) -> None:
    assert not rig.adapter.owns("node-1")
    obs = rig.observe("node-1")
    first = await obs.next()
    assert first.code == aiocoap.CONTENT and first.payload == b"" and first.opt.observe is not None
    await _until(lambda: rig.adapter.owns("node-1"))
    actuators = Actuators([rig.adapter])
    assert actuators.actions("node-1") == ["set-interval", "actuate", "on", "off", "identify"]

    done = asyncio.create_task(actuators.actuate("node-1", "on", {"output": 1}))
    line = await obs.next_command()
    assert line.split(b" ", 1)[1] == b"on output=1"
    command_id = line.split(b" ", 1)[0]
    answer = await rig.post("node-1", command_id + b" ok")
    assert answer.code == aiocoap.CHANGED
    assert await done == {"sensor": "node-1", "action": "on", "result": "done"}
    # Once answered, the resource is empty again; a late repeat of the result is harmless.
    assert (await obs.next()).payload == b""
    assert (await rig.post("node-1", command_id + b" ok")).code == aiocoap.CHANGED

    refused = asyncio.create_task(actuators.actuate("node-1", "set-interval", {"seconds": 30}))
    line = await obs.next_command()
    assert line.endswith(b" set-interval seconds=30")
    await rig.post("node-1", line.split(b" ", 1)[0] + b" error the relay is stuck")
    with pytest.raises(ActuationError, match="could not set-interval: the relay is stuck"):
        await refused
    obs.close()


async def test_arguments_are_checked_before_anything_is_sent(rig: Rig) -> None:
    obs = rig.observe("node-1")
    await obs.next()
    await _until(lambda: rig.adapter.owns("node-1"))
    with pytest.raises(ActuationError, match="'output' must be a whole number from 0 to 1"):
        await rig.adapter.actuate("node-1", "actuate", {"output": 5, "value": 1})
    with pytest.raises(ActuationError, match="cannot 'reboot'"):
        await Actuators([rig.adapter]).actuate("node-1", "reboot", {})
    assert rig.adapter.commands.current("node-1") == b""
    obs.close()


async def test_a_node_that_does_not_answer_fails_the_command_in_words(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coap_commands, "COMMAND_TIMEOUT_S", 1.0)
    monkeypatch.setattr(coap_commands, "RENOTIFY_S", 0.3)
    obs = rig.observe("node-1")
    await obs.next()
    await _until(lambda: rig.adapter.owns("node-1"))
    with pytest.raises(ActuationError, match="did not answer 'identify' within 1 s"):
        await rig.adapter.actuate("node-1", "identify", {})
    # The command was notified again while it waited (a lost notification is not the end).
    lines = []
    while not obs.seen.empty():
        lines.append(obs.seen.get_nowait().payload)
    assert sum(1 for p in lines if p.endswith(b" identify")) >= 2
    assert rig.adapter.commands.current("node-1") == b""
    obs.close()


async def test_unpaired_nodes_and_bad_requests_are_refused_and_counted(rig: Rig) -> None:
    obs = rig.observe("stranger")
    answer = await obs.next()
    assert answer.code == aiocoap.FORBIDDEN and b"not paired" in answer.payload
    assert not rig.adapter.owns("stranger")
    assert "stranger" in rig.adapter.commands._pairing.pending
    bad = await rig.post("node-1", b"hello")
    assert bad.code == aiocoap.BAD_REQUEST and b"'{id} ok'" in bad.payload
    assert (await rig.post("no/such", b"1 ok")).code == aiocoap.NOT_FOUND
    put = aiocoap.Message(code=aiocoap.PUT, uri=f"{rig.base}/cmd/node-1", payload=b"x")
    async with asyncio.timeout(10):
        assert (await rig.client.request(put).response).code == aiocoap.METHOD_NOT_ALLOWED
    assert rig.adapter.rejected["unpaired"] >= 1 and rig.adapter.rejected["malformed"] == 1
    assert rig.adapter.rejected["method"] == 1 and rig.adapter.rejected["path"] == 1
    with pytest.raises(ActuationError, match="not listening for commands"):
        await rig.adapter.actuate("node-2", "identify", {})
