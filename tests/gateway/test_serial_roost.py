"""The serial adapter speaking the Roost protocol to the node emulator over real pty pairs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from drivers.measurement import Measurement
from drivers.ptylink import PtyLink
from drivers.roostserial import messages as m
from drivers.roostserial.node_emulator import NodeEmulator
from gateway.adapters.serial.errors import CommandRefused, NodeUnavailable
from gateway.buffer import DurableBuffer
from tests.gateway.serial_rig import eventually, port, rig
from wire.reading import Reading

pytestmark = pytest.mark.slow  # real ptys and the protocol's timeouts: 2-4 s a test (make test runs them)


def _counter() -> NodeEmulator:
    """A node whose sample is one counter reading, so duplicates and gaps are easy to see."""
    n = iter(range(1_000_000))
    return NodeEmulator("node-1", interval_s=1, sampler=lambda now: [Measurement("count", float(next(n)))])


async def test_announce_readings_stored_then_acknowledged(tmp_path: Path) -> None:
    link = tmp_path / "usb-Roost_node-1-if00"
    node = NodeEmulator("node-1", interval_s=1, seed=3)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: node.acked_readings >= 6, what="two acknowledged READINGS frames")
        stored = await r.stored()
        assert len(stored) >= node.acked_readings
        assert {x.sensor for x in stored} == {"node-1"}
        assert {x.metric for x in stored} == {"temperature", "humidity", "pressure"}
        assert r.adapter.nodes()["node-1"].firmware == "1.0.0"
        assert r.adapter.accepted == len(stored)
        assert not r.adapter.rejected
        stats = r.adapter.stats()["ports"][str(link)]  # type: ignore[index]
        assert stats["state"] == "open" and stats["node"] == "node-1" and stats["device"].startswith("/dev/pts/")


class SlowSink:
    """The real buffer behind a delay, noting when each append returned (durable)."""

    def __init__(self, buffer: DurableBuffer, delay: float) -> None:
        self.buffer = buffer
        self.delay = delay
        self.returned: list[float] = []

    async def append(self, readings: Sequence[Reading]) -> None:
        await asyncio.sleep(self.delay)
        await self.buffer.append(readings)
        self.returned.append(time.monotonic())


async def test_no_ack_before_the_readings_are_durable(tmp_path: Path) -> None:
    link = tmp_path / "node"
    sinks: list[SlowSink] = []

    def wrap(buffer: DurableBuffer) -> SlowSink:
        sinks.append(SlowSink(buffer, 0.3))
        return sinks[0]

    node = NodeEmulator("node-1", interval_s=1, retransmit_s=5.0)
    async with rig(tmp_path, [port(link, accept="any")], wrap=wrap), PtyLink(node, link=link):
        await eventually(lambda: node.acked_readings >= 9, what="three acknowledged READINGS frames")
    sink = sinks[0]
    readings_acks = [when for seq, status, when in node.acked if seq != 0 and status == m.AckStatus.OK]
    assert len(readings_acks) >= 3
    # the k-th ACK of READINGS came after the k-th append returned (the readings were durable)
    for k, acked_at in enumerate(readings_acks):
        assert acked_at >= sink.returned[k], (k, acked_at, sink.returned)
    seqs = [seq for seq, status, _ in node.acked if seq != 0]
    assert len(seqs) == len(set(seqs)), "a READINGS frame was sent again: its ACK was too slow"


async def test_lost_acks_mean_retransmissions_stored_once(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = _counter()
    node.retransmit_s = 0.2
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: node.announced, what="the announcement")
        node.lose_acks = 3  # the next three ACKs vanish: the node sends its frame again
        await eventually(lambda: node.acked_readings >= 4 and node.lose_acks == 0, what="readings past the lost ACKs")
        stored = await r.stored()
        duplicates = r.adapter.stats()["duplicates"]
    assert node.retransmits >= 3
    assert duplicates >= 3  # type: ignore[operator]
    values = [x.value for x in stored]
    assert len(values) == len(set(values)), "a retransmitted frame was stored twice"
    assert sorted(values) == [float(i) for i in range(len(values))], "a reading went missing"


async def test_commands_are_acknowledged_and_refusals_reported(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("node-1", interval_s=10)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "node-1" in r.adapter.nodes(), what="the announcement")
        await r.adapter.send_command("node-1", m.SetInterval(2))
        assert node.interval_s == 2
        await r.adapter.send_command("node-1", m.Actuate(1, 255))
        assert node.output_values == {1: 255}
        with pytest.raises(CommandRefused) as caught:
            await r.adapter.send_command("node-1", m.Actuate(7, 1))
        assert caught.value.status == m.ResultStatus.BAD_ARGUMENT
        with pytest.raises(NodeUnavailable):
            await r.adapter.send_command("node-2", m.Reboot())
        # the interval took effect: readings every 2 s now
        before = node.acked_readings
        await eventually(lambda: node.acked_readings > before, timeout=10, what="readings at the new interval")


async def test_reboot_command_then_the_node_announces_and_sends_again(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("node-1", interval_s=1)
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: node.acked_readings >= 3, what="readings")
        await r.adapter.send_command("node-1", m.Reboot())
        assert node.reboots == 1
        acked = node.acked_readings
        await eventually(lambda: node.announced and node.acked_readings > acked, what="readings after the reboot")


async def test_corruption_is_counted_and_resynchronised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "node"
    node = _counter()
    caplog.set_level(logging.INFO, logger="gateway.adapters.serial")
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link) as pty:
        await eventually(lambda: node.acked_readings >= 1, what="first readings")
        good = m.encode_message(m.Ack(m.AckStatus.OK), 1)
        pty.inject(b"\x00" + good[:3] + b"\xff" + good[4:])  # a bit error: CRC or COBS caught
        pty.inject(b"\x13\x37\x00")  # line noise
        pty.inject(b"\x55" * 400 + b"\x00")  # a run with no delimiter
        pty.inject(bytes.fromhex("04 02 03 01 03 87 09 00"))  # version 2
        pty.inject(bytes.fromhex("03 01 7f 03 2f 57 00"))  # unknown type
        await eventually(lambda: r.adapter.rejected_total >= 5, what="five refusals counted")
        acked = node.acked_readings
        await eventually(lambda: node.acked_readings >= acked + 2, what="readings after the corruption")
        stored = await r.stored()
    assert set(r.adapter.rejected) >= {"oversize", "version", "unknown-type"}
    assert r.adapter.rejected["crc"] + r.adapter.rejected["truncated"] >= 2
    assert len({x.value for x in stored}) == len(stored)
    warnings = [x for x in caplog.records if x.levelno == logging.WARNING and "further bad input" in x.getMessage()]
    assert len(warnings) == 1, [w.getMessage() for w in warnings]  # one incident, one warning
    assert any("good input again" in x.getMessage() for x in caplog.records)


async def test_unplug_and_replug_at_the_same_by_id_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "usb-Roost_node-1-if00"
    caplog.set_level(logging.INFO, logger="gateway.adapters.serial")
    async with rig(tmp_path, [port(link, accept="any")]) as r:
        first = NodeEmulator("node-1", interval_s=1)
        async with PtyLink(first, link=link) as pty1:
            await eventually(lambda: first.acked_readings >= 3, what="readings before the unplug")
            device1 = pty1.path
        p = r.adapter.port(str(link))
        await eventually(lambda: p.state != "open", what="the loss to be noticed")
        assert not link.exists()
        await asyncio.sleep(0.3)  # a few failed reopen attempts while it is away
        second = NodeEmulator("node-1", interval_s=1)
        # keep the first pty's number busy, so the link points at a different /dev/pts/N (like ttyUSB0 -> 1)
        async with PtyLink(NodeEmulator("blocker"), link=None), PtyLink(second, link=link) as pty2:
            assert pty2.path != device1
            await eventually(lambda: second.acked_readings >= 3, what="readings after the replug")
            assert p.device == pty2.path
        assert p.opens == 2 and p.losses >= 1
        assert not r.task.done()
    messages = [x.getMessage() for x in caplog.records]
    assert any("lost" in x for x in messages)
    assert any("available again" in x for x in messages)


async def test_missing_port_warns_once_and_keeps_trying(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "by-id" / "usb-FTDI_nothing-if00"
    missing.parent.mkdir()
    caplog.set_level(logging.DEBUG, logger="gateway.adapters.serial")
    async with rig(tmp_path, [port(missing, accept="any")]) as r:
        p = r.adapter.port(str(missing))
        await eventually(lambda: p.failed_opens >= 4, what="several attempts")
        assert not r.task.done()
        warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert str(missing) in warnings[0] and "does not exist" in warnings[0] and "plugged in" in warnings[0]
        assert p.stats()["state"] == "unavailable"
        node = NodeEmulator("node-1", interval_s=1)
        async with PtyLink(node, link=missing):
            await eventually(lambda: node.acked_readings >= 3, what="readings once the device appears")


async def test_unpaired_node_is_listed_and_its_readings_kept_out(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("node-9", interval_s=1)
    async with rig(tmp_path, [port(link, accept="paired")], paired=["node-1"]) as r, PtyLink(node, link=link):
        await eventually(lambda: node.refused_frames >= 2, what="NOT_PAIRED answers")
        assert "node-9" in r.pairing.pending
        assert await r.stored() == []
        assert r.adapter.rejected["unpaired"] >= 2
        r.pairing.pair("node-9")
        await eventually(lambda: node.acked_readings >= 3, what="readings once paired")
        assert {x.sensor for x in await r.stored()} == {"node-9"}


async def test_a_gateway_restart_makes_the_node_announce_again(tmp_path: Path) -> None:
    link = tmp_path / "node"
    node = NodeEmulator("node-1", interval_s=1)
    async with PtyLink(node, link=link):
        async with rig(tmp_path / "a", [port(link, accept="any")]):
            await eventually(lambda: node.acked_readings >= 3, what="readings to the first gateway")
        acked = node.acked_readings
        async with rig(tmp_path / "b", [port(link, accept="any")]) as r2:
            await eventually(lambda: node.acked_readings >= acked + 3, what="readings to the second gateway")
            assert "node-1" in r2.adapter.nodes()
