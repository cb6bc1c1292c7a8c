"""The DM agent's ``pair``, ``unpair`` and ``locate`` against a running gateway daemon (in process, no cloud).

CoAP readings go over real UDP on loopback with ``accept = "paired"``: refused before pairing, bridged after,
still after the daemon restarts (the registry keeps the allowed sensor), refused again after ``unpair``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap

from gateway import config as gwconfig
from gateway.daemon import Daemon, run
from gateway.dm.agent import build_dispatcher
from gateway.dm.commands import Dispatcher
from tests.e2e.harness import Sensor, free_port
from wire.commands import Command, Result


@contextlib.asynccontextmanager
async def _daemon(tmp_path: Path, coap: int) -> AsyncIterator[tuple[Daemon, Dispatcher]]:
    text = f"""
[gateway]
id = "gw-pair"
state_dir = "state"
latitude = 47.3769
longitude = 8.5417
[cloud]
url = "http://127.0.0.1:{free_port()}"
[identity]
enroll = "off"
[adapters.coap]
host = "127.0.0.1"
port = {coap}
accept = "paired"
"""
    cfg = gwconfig.loads(text, base_dir=tmp_path)
    started: list[Daemon] = []
    up = asyncio.Event()

    def ready(d: Daemon) -> None:
        started.append(d)
        up.set()

    task = asyncio.create_task(run(cfg, ready=ready))
    try:
        async with asyncio.timeout(20):
            await up.wait()
        yield started[0], build_dispatcher(lambda: started[0])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


async def _cmd(agent: Dispatcher, rid: str, command: str, **args: Any) -> Result:
    result = await agent.handle(f"request-{rid}", Command(command=command, args=args).encode())
    assert result is not None
    return result


async def _post(port: int, sensor: str) -> aiocoap.numbers.codes.Code:
    for _ in range(100):  # the CoAP endpoint listens once its task ran
        try:
            async with Sensor(port, sensor) as s:
                return (await s.post(s.next_readings(2), timeout=2)).code
        except (OSError, TimeoutError, aiocoap.error.NetworkError):
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway's CoAP endpoint did not answer")


async def test_pair_unpair_and_locate(tmp_path: Path) -> None:
    coap = free_port(socket.SOCK_DGRAM)
    async with _daemon(tmp_path, coap) as (daemon, agent):
        assert await _post(coap, "th-9") == aiocoap.FORBIDDEN
        assert "th-9" in daemon.pairing.pending

        paired = await _cmd(agent, "p1", "pair", kind="sensor", id="th-9", name="Freezer 2", location="back room")
        assert paired.status == "ok" and paired.result["was_waiting"] is True, paired
        assert paired.result["readings_held_back"] >= 2
        assert await _post(coap, "th-9") == aiocoap.CHANGED

        where = await _cmd(agent, "l1", "locate")
        assert where.status == "ok" and where.result == {
            "lat": 47.3769, "lon": 8.5417, "alt_m": None, "source": "configured", "at": None
        }  # fmt: skip

        bad = await _cmd(agent, "b1", "pair", kind="sensor", id="has space")
        assert bad.status == "invalid" and "'id'" in (bad.error or "")
        bad = await _cmd(agent, "b2", "pair", kind="lora", id="x")
        assert bad.status == "invalid" and "'kind' must be one of sensor, ble, zigbee" in (bad.error or "")
        no_radio = await _cmd(agent, "b3", "pair", kind="zigbee", seconds=60)
        assert no_radio.status == "error" and "no 'zigbee' adapter is running" in (no_radio.error or "")

    async with _daemon(tmp_path, coap) as (daemon, agent):  # a restart: still paired, from the registry
        assert "th-9" in daemon.pairing.paired
        assert await _post(coap, "th-9") == aiocoap.CHANGED
        gone = await _cmd(agent, "u1", "unpair", kind="sensor", id="th-9")
        assert gone.status == "ok" and gone.result == {"kind": "sensor", "id": "th-9", "paired": False}
        assert await _post(coap, "th-9") == aiocoap.FORBIDDEN
        again = await _cmd(agent, "u2", "unpair", kind="sensor", id="th-9")
        assert again.status == "error" and "is not paired" in (again.error or "")
