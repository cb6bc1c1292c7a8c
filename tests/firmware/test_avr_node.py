"""The AVR firmware in a simulated ATmega328P (firmware/sim's roost-simavr) against the gateway's real serial
adapter, hub and durable buffer: what the chip's inputs read arrives as readings, commands act on its
pins and settings, and the line's faults are survived.

Every test boots a fresh chip (blank EEPROM: id ``avr-node``, every 60 s) behind the cable of
conftest.Line. The simulator runs at the wall clock's pace, so times here are real.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.roostserial import messages as m
from gateway.adapters.serial.errors import CommandRefused
from gateway.adapters.serial.roost_protocol import RoostHandler
from tests.firmware.conftest import Line
from tests.firmware.simavr_rig import Uno as Board
from tests.gateway.serial_rig import Rig, eventually, port, rig
from wire.reading import Reading

pytestmark = pytest.mark.slow

NODE = "avr-node"
MV_TOLERANCE = 10
"""Two steps of a 10-bit ADC on 5 V (4.9 mV each): the simulator scales by 1023, the chip by 1024."""


async def _announced(r: Rig, what: str = "the node's ANNOUNCE") -> m.Announce:
    await eventually(lambda: NODE in r.adapter.nodes(), timeout=10, what=what)
    return r.adapter.nodes()[NODE]


async def _stored(r: Rig) -> list[Reading]:
    """Everything in the buffer now, in order (every batch taken, then put back so it stays)."""
    batches = []
    for _ in range(10_000):
        batch = await r.buffer.take(100_000)
        if batch is None:
            break
        batches.append(batch)
    r.buffer.release([b.id for b in batches])
    return sorted((x for b in batches for x in b.readings), key=lambda x: x.ts)


async def _readings(r: Rig, cond: Callable[[list[Reading]], bool], what: str, timeout: float = 10) -> list[Reading]:
    deadline = time.monotonic() + timeout
    while True:
        stored = await _stored(r)
        if cond(stored):
            return stored
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; stored: {stored[-12:]}")
        await asyncio.sleep(0.2)


def _once(board: Board, event: str) -> Callable[[], bool]:
    return lambda: board.saw(event) == 1


def _metric(stored: list[Reading], metric: str) -> list[Reading]:
    return [x for x in stored if x.metric == metric]


async def test_announce_then_readings_of_the_injected_inputs(board: Board, line: Line, tmp_path: Path) -> None:
    for ch, mv in enumerate((1234, 2500, 0, 4000)):
        board.send(f"adc {ch} {mv}")
    board.send("adc temp 382")  # the sensor's voltage at about 25 °C on a typical chip (raw 355 of 1.1 V)
    board.send("pin D2 0")
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        node = await _announced(r)
        assert (node.node_id, node.firmware, node.capabilities, node.outputs, node.interval_s) == (
            NODE,
            "1.0.0",
            m.Capability.SET_INTERVAL | m.Capability.ACTUATE | m.Capability.REBOOT,
            3,
            60,
        )
        await r.adapter.send_command(NODE, m.SetInterval(1))
        stored = await _readings(r, lambda s: len(_metric(s, "a0")) >= 2, "two samples")
        assert {x.sensor for x in stored} == {NODE}
        assert {x.metric for x in stored} == {"a0", "a1", "a2", "a3", "d2", "temp"}
        last = {x.metric: x for x in stored}
        for ch, mv in enumerate((1234, 2500, 0, 4000)):
            got = last[f"a{ch}"]
            assert got.unit == "mV" and abs(float(got.value) - mv) <= MV_TOLERANCE, got
        assert last["d2"].value is False and last["d2"].unit is None
        assert last["temp"].unit == "Cel" and 20.0 <= float(last["temp"].value) <= 30.0, last["temp"]
        assert abs(last["a0"].ts - time.time()) < 3  # relative times resolved at the gateway

        board.send("adc 0 3300")
        board.send("pin D2 1")
        await _readings(
            r,
            lambda s: (
                any(abs(float(x.value) - 3300) <= MV_TOLERANCE for x in _metric(s, "a0"))
                and any(x.value is True for x in _metric(s, "d2"))
            ),
            "the new voltage on A0 and D2 high",
        )
        assert not r.adapter.rejected, r.adapter.rejected


async def test_set_interval_changes_the_cadence_and_identify_announces_it(
    board: Board, line: Line, tmp_path: Path
) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        first = await _announced(r)
        await r.adapter.send_command(NODE, m.SetInterval(1))
        await _readings(r, lambda s: len(_metric(s, "a0")) >= 4, "four samples a second apart")
        await r.adapter.send_command(NODE, m.SetInterval(2))
        switched = len(_metric(await _stored(r), "a0"))
        stored = await _readings(r, lambda s: len(_metric(s, "a0")) >= switched + 4, "four samples 2 s apart", 15)
        times = [x.ts for x in _metric(stored, "a0")]
        fast = [b - a for a, b in itertools.pairwise(times[:switched])]
        slow = [b - a for a, b in itertools.pairwise(times[switched:])]
        assert 0.7 <= statistics.median(fast) <= 1.3, fast
        assert 1.7 <= statistics.median(slow) <= 2.3, slow

        await r.adapter.send_command(NODE, m.Identify())
        await eventually(lambda: r.adapter.nodes()[NODE] is not first, timeout=5, what="a new ANNOUNCE")
        assert r.adapter.nodes()[NODE].interval_s == 2
        with pytest.raises(CommandRefused, match="BAD_ARGUMENT"):
            await r.adapter.send_command(NODE, m.SetInterval(0))


async def test_actuate_drives_the_pins_and_refuses_what_the_node_lacks(
    board: Board, line: Line, tmp_path: Path
) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        await _announced(r)
        await eventually(lambda: board.saw("pin D7 0") == 1, timeout=3, what="D7 an output, low")  # at boot
        for output, pin in ((0, "D13"), (1, "D7")):
            await r.adapter.send_command(NODE, m.Actuate(output, 1))
            await eventually(_once(board, f"pin {pin} 1"), timeout=3, what=f"{pin} high")
        on_since = len(board.events)
        await r.adapter.send_command(NODE, m.Actuate(2, 255))  # PWM output fully on: the pin itself
        await eventually(lambda: board.saw("pin D6 1") == 1, timeout=3, what="D6 high")
        await r.adapter.send_command(NODE, m.Actuate(0, 0))
        await eventually(lambda: board.saw("pin D13 0") >= 1, timeout=3, what="D13 low")
        for bad in (m.Actuate(3, 1), m.Actuate(0, 7), m.Actuate(2, 256), m.Actuate(1, -1)):
            with pytest.raises(CommandRefused, match="BAD_ARGUMENT"):
                await r.adapter.send_command(NODE, bad)
        # through the Actuator interface the rules engine and the DM agent use
        assert "on" in r.adapter.actions(NODE)
        assert (await r.adapter.actuate(NODE, "on", {"output": 1}))["result"] == "done"
        assert board.saw("pin D7 0", since=on_since) == 0  # still on: nothing else touched it


async def test_reboot_answers_first_announces_again_and_is_not_done_twice(
    board: Board, line: Line, tmp_path: Path
) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        first = await _announced(r)
        await r.adapter.send_command(NODE, m.SetInterval(7))  # kept in EEPROM across the restart
        line.drop[m.MsgType.RESULT] = 1  # the REBOOT's RESULT is lost on the line: the gateway sends it again after 1 s
        started = time.monotonic()
        await r.adapter.send_command(NODE, m.Reboot())
        assert len(line.dropped) == 1 and time.monotonic() - started >= 0.9  # answered on the second try
        assert board.saw("reset watchdog") == 1
        await eventually(lambda: r.adapter.nodes()[NODE] is not first, timeout=5, what="an ANNOUNCE after the reboot")
        assert r.adapter.nodes()[NODE].interval_s == 7
        await asyncio.sleep(1.5)
        assert board.saw("reset watchdog") == 1  # the repeated REBOOT was answered, not obeyed

        again = r.adapter.nodes()[NODE]
        await r.adapter.send_command(NODE, m.Reboot())  # a new command (another seq): obeyed
        await eventually(lambda: board.saw("reset watchdog") == 2, timeout=5, what="the second reboot")
        await eventually(lambda: r.adapter.nodes()[NODE] is not again, timeout=5, what="the second ANNOUNCE")


async def test_noise_on_the_line_either_way(board: Board, line: Line, tmp_path: Path) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        await _announced(r)
        await r.adapter.send_command(NODE, m.SetInterval(1))
        await _readings(r, lambda s: len(_metric(s, "a0")) >= 1, "a first sample")

        # towards the node: more than 258 bytes without a delimiter, then a cut frame the next COMMAND is
        # glued to; the node drops both and takes the gateway's second try
        line.noise_to_node(bytes(range(1, 256)) * 2 + b"\x00" + b"\x05\x01\x04\x13")
        started = time.monotonic()
        await r.adapter.send_command(NODE, m.SetInterval(2))
        assert time.monotonic() - started >= 0.9  # the first try was lost in the noise
        await r.adapter.send_command(NODE, m.Actuate(0, 1))  # and the next one goes through at once
        await eventually(lambda: board.saw("pin D13 1") == 1, timeout=3, what="D13 high")

        # towards the gateway: noise, a corrupted frame, an over-long run; readings keep coming
        before = len(_metric(await _stored(r), "a0"))
        line.noise_to_gateway(b"\x13\x37\x42\x00" + b"\x04\x01\x03\x01\x03\x1c\xd4\x00" + b"\x01" * 300 + b"\x00")
        await _readings(r, lambda s: len(_metric(s, "a0")) >= before + 2, "readings after the noise", 12)
        rejected = r.adapter.stats()["ports"][str(line.link)]["rejected"]  # type: ignore[index]
        assert rejected.get("crc", 0) + rejected.get("truncated", 0) >= 2 and rejected.get("oversize", 0) >= 1


async def test_an_unpaired_node_is_refused_until_paired(board: Board, line: Line, tmp_path: Path) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="paired")]) as r:
        await _announced(r)
        await r.adapter.send_command(NODE, m.SetInterval(1))
        await eventually(lambda: r.adapter.rejected["unpaired"] >= 2, timeout=10, what="NOT_PAIRED answers")
        assert await _stored(r) == []
        assert NODE in r.pairing.pending
        r.pairing.pair(NODE)
        # the node dropped the refused frames and goes on with new samples
        await _readings(r, lambda s: len(_metric(s, "a0")) >= 2, "readings once paired")


async def test_a_restarted_gateway_asks_for_the_announcement_and_loses_nothing(
    board: Board, line: Line, tmp_path: Path
) -> None:
    async with rig(tmp_path, [port(line.link, protocol="roost", accept="any")]) as r:
        await _announced(r)
        await r.adapter.send_command(NODE, m.SetInterval(1))
        await _readings(r, lambda s: len(_metric(s, "a0")) >= 2, "readings before the restart")
    # no gateway for a while: the node keeps one frame in flight and queues the rest
    line.drop[m.MsgType.ANNOUNCE] = 1000  # and its announcements are lost until the new gateway has asked
    await asyncio.sleep(3)
    second = tmp_path / "restarted"
    second.mkdir()
    opened = time.time()
    async with rig(second, [port(line.link, protocol="roost", accept="any")]) as r:
        handler = r.adapter.handlers[0]
        assert isinstance(handler, RoostHandler)
        await eventually(lambda: handler.announce_requests >= 1, timeout=10, what="an ANNOUNCE_FIRST answer")
        line.drop[m.MsgType.ANNOUNCE] = 0
        await _announced(r, "the ANNOUNCE the gateway asked for")
        # the samples taken while no gateway listened arrive (the queue holds 8; 3 s gave about 3)
        stored = await _readings(r, lambda s: len(_metric(s, "a0")) >= 4, "the queued samples and new ones")
        times = [x.ts for x in _metric(stored, "a0")]
        assert sum(t < opened - 0.6 for t in times) >= 2  # sampled in the gap, sent with their relative times
        assert len(times) == len(set(times))
