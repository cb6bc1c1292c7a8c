"""Durability: every reading the cloud acknowledged is in the store after a SIGKILL and a restart.

This shows the ack comes after the commit (WAL) and that a restart loses nothing committed. A SIGKILL leaves
the OS page cache alone, so it cannot tell ``synchronous=FULL`` from ``NORMAL``: that needs a power cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from tests.cloud.helpers import GW_PASSWORD, WAIT, readings
from wire import envelopes, senml

ROOT = Path(__file__).resolve().parents[2]
PACKS = 40
PER_PACK = 250


async def _start(config: Path, log: Path) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cloud",
            "--config",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert line, f"the cloud did not start: see {log}"
    return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_acked_readings_survive_sigkill(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(f'[server]\nport = 0\n[[auth.gateways]]\nid = "gw-1"\npassword = "{GW_PASSWORD}"\n')
    log = tmp_path / "cloud.log"
    proc, info = await _start(config, log)
    acked: set[str] = set()
    try:
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1",
                info["port"],
                transport="websockets",
                websocket_path="/mqtt",
                identifier="gw-1",
                username="gw-1",
                password=GW_PASSWORD,
                timeout=WAIT,
            ) as gw:
                await gw.subscribe("roost/default/gw-1/ack", qos=1)
                for i in range(PACKS):
                    pack = senml.encode(readings(PER_PACK, sensor=f"p{i}", t0=1_795_000_000 + i))
                    await gw.publish(f"roost/default/gw-1/telemetry/p{i}", pack, qos=1)
                async with asyncio.timeout(20):
                    async for message in gw.messages:
                        acked.update(envelopes.decode_ack(message.payload)["batches"])  # type: ignore[arg-type]
                        if len(acked) >= PACKS // 2:
                            proc.kill()  # SIGKILL while the rest may still be in flight
                            break
        await proc.wait()
    finally:
        await _stop(proc)
    assert len(acked) >= PACKS // 2

    proc, info = await _start(config, log)
    try:
        async with httpx.AsyncClient(base_url=info["base_url"], timeout=WAIT) as api:
            items = (await api.get("/api/v1/readings", params={"limit": 10_000})).json()["items"]
            gateways = (await api.get("/api/v1/gateways")).json()["items"]
    finally:
        await _stop(proc)
    per_sensor: dict[str, int] = {}
    for item in items:
        per_sensor[item["sensor"]] = per_sensor.get(item["sensor"], 0) + 1
    for batch in acked:
        assert per_sensor.get(batch) == PER_PACK, f"acked batch {batch} is not (all) there"
    assert gateways[0]["online"] is False  # nobody is connected to a fresh broker
    assert proc.returncode == 0  # SIGTERM stops it cleanly
