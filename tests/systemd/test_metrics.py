"""Prometheus metrics scraped over HTTP from a real daemon, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway import config as gwconfig
from gateway.adapters.base import Adapter
from gateway.daemon import Daemon, run
from gateway.dm.commands import Dispatcher
from gateway.metrics import GatewayCollector, registry_for
from tests.systemd.rig import free_port, gateway_toml, post_text

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@contextlib.asynccontextmanager
async def daemon_with_metrics(tmp_path: Path, **kw: object) -> AsyncIterator[tuple[Daemon, int, int]]:
    coap, metrics = free_port(socket.SOCK_DGRAM), free_port()
    text = gateway_toml(tmp_path / "state", coap_port=coap, metrics_port=metrics, **kw)  # type: ignore[arg-type]
    cfg = gwconfig.loads(text, base_dir=tmp_path)
    started: list[Daemon] = []
    up = asyncio.Event()
    task = asyncio.create_task(run(cfg, ready=lambda d: (started.append(d), up.set())[0]))
    try:
        async with asyncio.timeout(20):
            await up.wait()
            while True:  # the endpoint listens once its task ran
                with contextlib.suppress(OSError):
                    if (await asyncio.to_thread(scrape, metrics))[0] == 200:
                        break
                await asyncio.sleep(0.05)
        yield started[0], coap, metrics
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not scraped; have {sorted({k[0] for k in samples})}"
    return samples[key]


@pytest.mark.slow
async def test_values_move_as_readings_arrive_and_inputs_are_refused(tmp_path: Path) -> None:
    async with daemon_with_metrics(tmp_path, accept="paired", paired=("kitchen-1",)) as (_d, coap, port):
        status, text = await asyncio.to_thread(scrape, port)
        assert status == 200
        before = parse(text)
        assert value(before, "roost_readings_received_total") == 0
        assert value(before, "roost_buffer_readings") == 0
        assert value(before, "roost_adapter_up", adapter="coap") == 1
        assert value(before, "roost_uplink_connected") == 0
        assert value(before, "roost_gateway_healthy") == 1

        for i in range(3):
            assert await post_text(coap, "kitchen-1", f"temp=2{i},hum=40") == "2.04 Changed"
        await post_text(coap, "garage-9", "temp=1")  # not paired: refused and counted
        await post_text(coap, "kitchen-1", "not a reading")  # malformed

        after = parse((await asyncio.to_thread(scrape, port))[1])
        assert value(after, "roost_readings_received_total") == 6
        assert value(after, "roost_buffer_readings") == 6  # no cloud: everything stays buffered
        assert value(after, "roost_buffer_bytes") > 0
        assert value(after, "roost_adapter_readings_accepted_total", adapter="coap") == 6
        assert value(after, "roost_inputs_rejected_total", adapter="coap", reason="malformed") == 1
        assert value(after, "roost_inputs_rejected_total", adapter="coap", reason="unpaired") == 1
        assert value(after, "roost_uplink_connect_failures_total") >= 1
        assert value(after, "roost_readings_dropped_total", reason="full") == 0
        assert value(after, "roost_process_resident_memory_bytes") > 10e6


@pytest.mark.slow
async def test_only_get_metrics_is_served(tmp_path: Path) -> None:
    async with daemon_with_metrics(tmp_path) as (_d, _coap, port):
        assert (await asyncio.to_thread(scrape, port, "/nope"))[0] == 404
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            await asyncio.to_thread(urllib.request.urlopen, req, None, 5)
        err.value.close()
        assert err.value.code == 405
        # A client that connects and says nothing is dropped without stopping the endpoint.
        idle = socket.create_connection(("127.0.0.1", port))
        try:
            assert (await asyncio.to_thread(scrape, port))[0] == 200
        finally:
            idle.close()


@pytest.mark.slow
async def test_a_port_in_use_leaves_metrics_off_and_the_gateway_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    coap = free_port(socket.SOCK_DGRAM)
    cfg = gwconfig.loads(gateway_toml(tmp_path / "state", coap_port=coap, metrics_port=port), base_dir=tmp_path)
    task = asyncio.create_task(run(cfg))
    try:
        for _ in range(400):
            if "Metrics are off" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert f"127.0.0.1:{port}" in caplog.text
        assert await post_text(coap, "kitchen-1", "temp=1") == "2.04 Changed"
        assert not task.done()
    finally:
        taken.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


RULES = """version = 1
[[rule]]
name = "kitchen-hot"
[rule.select]
sensor = "kitchen-*"
metric = "temp"
[rule.condition]
kind = "threshold"
above = 30.0
[[rule.action]]
kind = "alert"
severity = "warning"
message = "{sensor} is hot"
"""


@pytest.mark.slow
async def test_dm_commands_and_rules_are_counted(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    async with daemon_with_metrics(tmp_path, rules=tmp_path / "rules.toml") as (daemon, coap, port):
        agent = Dispatcher()

        async def ping(args: dict[str, object]) -> dict[str, object]:
            return {"pong": True}

        agent.register("ping", ping)
        for rid, body in (
            ("req-0001", {"command": "ping"}),
            ("req-0002", {"command": "nope"}),
            ("req-0001", {"command": "ping"}),
        ):
            await agent.handle(rid, json.dumps({**body, "args": {}}).encode())
        registry = registry_for(GatewayCollector(daemon, commands=lambda: agent.counts))
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "roost_dm_commands_total", status="ok") == 1
        assert value(samples, "roost_dm_commands_total", status="unknown") == 1
        assert value(samples, "roost_dm_commands_total", status="repeat") == 1

        assert (
            value(parse((await asyncio.to_thread(scrape, port))[1]), "roost_rule_evaluations_total", rule="kitchen-hot")
            == 0
        )
        assert await post_text(coap, "kitchen-1", "temp=35") == "2.04 Changed"
        assert await post_text(coap, "kitchen-2", "temp=20") == "2.04 Changed"
        assert await post_text(coap, "garage-1", "temp=50") == "2.04 Changed"  # not selected
        async with asyncio.timeout(10):
            while True:
                samples = parse((await asyncio.to_thread(scrape, port))[1])
                if value(samples, "roost_rule_active_alerts", rule="kitchen-hot") == 1:
                    break
                await asyncio.sleep(0.1)
        assert value(samples, "roost_rule_evaluations_total", rule="kitchen-hot") == 2
        assert value(samples, "roost_rule_outputs_total", rule="kitchen-hot") >= 1
        assert value(samples, "roost_rule_errors_total", rule="kitchen-hot") == 0
        assert value(samples, "roost_rules_load_failed") == 0
        # The live daemon's own dispatcher is on the endpoint too (nothing asked it anything yet).
        assert not [k for k in samples if k[0] == "roost_dm_commands_total"]


class _PolledAdapter(Adapter):
    """An adapter whose health report has the shape the pollers', BLE's and Zigbee's have."""

    name = "polled"

    async def run(self) -> None:
        await asyncio.Event().wait()

    def stats(self) -> dict[str, object]:
        return {
            **super().stats(),
            "devices": {"a": {"available": True}, "b": {"available": False}, "c": {"available": True}},
            "scanner": {"starts": 3, "state": "running", "ok": True},
            "ports": {"/dev/ttyUSB0": {"frames": 12}},
        }


@pytest.mark.slow
async def test_adapter_health_devices_and_nested_figures(tmp_path: Path) -> None:
    async with daemon_with_metrics(tmp_path) as (daemon, _coap, port):
        extra = _PolledAdapter()
        extra.accepted = 5
        extra.rejected["crc"] += 2
        daemon.adapters.append(extra)
        samples = parse((await asyncio.to_thread(scrape, port))[1])
        assert value(samples, "roost_adapter_devices", adapter="polled") == 3
        assert value(samples, "roost_adapter_devices_available", adapter="polled") == 2
        assert value(samples, "roost_adapter_readings_accepted_total", adapter="polled") == 5
        assert value(samples, "roost_inputs_rejected_total", adapter="polled", reason="crc") == 2
        assert value(samples, "roost_adapter_stat", adapter="polled", stat="scanner.starts") == 3
        assert value(samples, "roost_adapter_stat", adapter="polled", stat="scanner.ok") == 1
        assert value(samples, "roost_adapter_stat", adapter="polled", stat="ports./dev/ttyUSB0.frames") == 12
        assert not [k for k in samples if k[0] == "roost_adapter_stat" and "devices" in dict(k[1])["stat"]]
        assert value(samples, "roost_adapter_up", adapter="polled") == 1  # no task of its own: not counted down
        daemon.adapters.remove(extra)
