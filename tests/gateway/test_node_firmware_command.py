"""The ``node-firmware`` command's refusals and its hold on the port, against the real serial adapter and
an emulated node on a pty; and how avrdude's output is read.

Flashing for real (avrdude, optiboot, the AVR firmware): tests/firmware/test_node_firmware_update.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from drivers.ptylink import PtyLink
from drivers.roostserial import messages as m
from drivers.roostserial.node_emulator import NodeEmulator
from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.dm.nodefw import avrdude
from gateway.dm.nodefw.command import register, update_node
from gateway.dm.nodefw.config import NodeFirmwareSection
from tests.gateway.serial_rig import eventually, port, rig
from tests.gateway.test_node_firmware_hex import EOF, rec
from wire.commands import Command, decode_result

GOOD = "\n".join([rec(0, 0, b"\x0c\x94\x34\x00"), rec(0, 4, b"\x0c\x94\x3e\x00"), EOF]) + "\n"
CFG = NodeFirmwareSection(announce_timeout_s=5.0)


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "usb-Arduino_Uno-if00"


async def test_arguments_are_checked(tmp_path: Path) -> None:
    async with rig(tmp_path, []) as r:
        for args, expected in [
            ({}, "'sensor' must be the node's id"),
            ({"sensor": "n"}, "either as 'url'"),
            ({"sensor": "n", "url": "https://x/a.hex", "hex": GOOD}, "either as 'url'"),
            ({"sensor": "n", "url": "ftp://x/a.hex"}, "'url' must be"),
            ({"sensor": "n", "hex": GOOD, "sha256": "abc"}, "'sha256' must be"),
            ({"sensor": "n", "hex": GOOD, "version": ""}, "'version' must be"),
        ]:
            with pytest.raises(InvalidArguments, match=expected):
                await update_node([r.adapter], args, CFG, work_dir=tmp_path / "dm")


async def test_a_sensor_that_is_not_a_serial_node_here_is_named(tmp_path: Path, link: Path) -> None:
    with pytest.raises(CommandFailed, match="it has no serial port configured"):
        await update_node([], {"sensor": "node-1", "hex": GOOD}, CFG, work_dir=tmp_path / "dm")
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(NodeEmulator("node-1"), link=link):
        await eventually(lambda: "node-1" in r.adapter.nodes(), what="node-1's ANNOUNCE")
        with pytest.raises(CommandFailed, match=r"'node-9' is not a Roost serial node .*announced here: node-1"):
            await update_node([r.adapter], {"sensor": "node-9", "hex": GOOD}, CFG, work_dir=tmp_path / "dm")


async def test_a_corrupted_or_unexpected_image_is_refused_and_the_node_is_not_touched(
    tmp_path: Path, link: Path
) -> None:
    node = NodeEmulator("node-1")
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "node-1" in r.adapter.nodes(), what="node-1's ANNOUNCE")
        serial_port = r.adapter.port(str(link))
        opens = serial_port.opens
        lines = GOOD.splitlines()
        corrupted = "\n".join([lines[0], lines[1][:-2] + "00", lines[2]])
        with pytest.raises(CommandFailed, match=r"refused, the node was not touched: line 2: checksum 0x00 is wrong"):
            await update_node([r.adapter], {"sensor": "node-1", "hex": corrupted}, CFG, work_dir=tmp_path / "dm")
        with pytest.raises(CommandFailed, match="no end-of-file record"):
            await update_node([r.adapter], {"sensor": "node-1", "hex": "\n".join(lines[:2])}, CFG, work_dir=tmp_path)
        with pytest.raises(CommandFailed, match="its SHA-256 is"):
            args = {"sensor": "node-1", "hex": GOOD, "sha256": "0" * 64}
            await update_node([r.adapter], args, CFG, work_dir=tmp_path / "dm")
        assert (serial_port.opens, serial_port.state) == (opens, "open")
        await r.adapter.send_command("node-1", m.Identify())  # the node still answers
        assert list((tmp_path / "dm").iterdir()) == []  # no image left behind


async def test_when_avrdude_cannot_run_the_port_is_taken_back_and_the_node_announces(
    tmp_path: Path, link: Path
) -> None:
    cfg = NodeFirmwareSection(avrdude=str(tmp_path / "no-such-avrdude"), announce_timeout_s=5.0)
    node = NodeEmulator("node-1")
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(node, link=link):
        await eventually(lambda: "node-1" in r.adapter.nodes(), what="node-1's ANNOUNCE")
        serial_port = r.adapter.port(str(link))
        opens = serial_port.opens
        args = {"sensor": "node-1", "hex": GOOD, "sha256": hashlib.sha256(GOOD.encode()).hexdigest()}
        with pytest.raises(CommandFailed) as caught:
            await update_node([r.adapter], args, cfg, work_dir=tmp_path / "dm")
        assert "node node-1 was not updated: cannot run" in str(caught.value)
        assert "is avrdude installed?" in str(caught.value)
        assert "the node announced itself again (firmware 1.0.0)" in str(caught.value)
        assert serial_port.opens == opens + 1 and serial_port.state == "open"
        await r.adapter.send_command("node-1", m.Identify())


async def test_the_command_is_offered_through_the_dispatcher(tmp_path: Path, link: Path) -> None:
    async with rig(tmp_path, [port(link, accept="any")]) as r, PtyLink(NodeEmulator("node-1"), link=link):
        await eventually(lambda: "node-1" in r.adapter.nodes(), what="node-1's ANNOUNCE")
        agent = Dispatcher()
        register(agent, CFG, lambda: [r.adapter], work_dir=tmp_path / "dm")
        assert "node-firmware" in agent.commands
        payload = Command(command="node-firmware", args={"sensor": "node-1", "hex": ":00000001FE\n"}).encode()
        result = await agent.handle("request-0001", payload)
        assert result is not None
        decoded = decode_result(result.encode())
        assert decoded.status == "error"
        assert decoded.error is not None and "line 1: checksum 0xFE is wrong" in decoded.error
        assert json.loads(result.encode())["request_id"] == "request-0001"


def test_progress_is_read_from_avrdudes_bars_in_pieces() -> None:
    seen: list[tuple[str, int]] = []
    p = avrdude.Progress(on_step=lambda phase, pct: seen.append((phase, pct)))
    text = (
        "avrdude: writing 6496 bytes flash ...\n\nWriting | " + "#" * 50 + " | 100% 2.10s\n\n"
        "avrdude: verifying ...\n\nReading | " + "#" * 50 + " | 100% 1.90s\n\navrdude done.  Thank you.\n"
    )
    for i in range(0, len(text), 7):  # as a pipe hands it over
        p.feed(text[i : i + 7])
    assert seen[0] == ("writing", 0) and ("writing", 50) in seen and ("writing", 100) in seen
    assert seen[-1] == ("verifying", 100)
    assert [s["percent"] for s in p.steps if s["phase"] == "writing"] == list(range(0, 101, 10))


def test_a_bar_cut_short_stops_where_avrdude_gave_up() -> None:
    p = avrdude.Progress()
    p.feed("Writing | " + "#" * 21 + " | 42% 1.00s\n")
    assert p.steps[-1] == {"phase": "writing", "percent": 40}


def test_avrdudes_reason_is_its_error_and_the_complaint_before_it_not_the_pty_noise() -> None:
    noise = 'avrdude OS error: ioctl("TIOCMGET"): Inappropriate ioctl for device\n'
    err = (  # avrdude 7.1 on a port where no bootloader answers
        noise
        + "avrdude warning: attempt 1 of 10: not in sync: resp=0x03\n"
        + noise
        + "avrdude warning: attempt 10 of 10: not in sync: resp=0x03\n"
        + "avrdude error: unable to open programmer arduino on port /dev/ttyACM0\n\navrdude done.  Thank you.\n"
    )
    assert avrdude.error_line(err) == (
        "avrdude error: unable to open programmer arduino on port /dev/ttyACM0 "
        "(after: warning: attempt 10 of 10: not in sync: resp=0x03)"
    )
    older = "avrdude: stk500_recv(): programmer is not responding\navrdude done.  Thank you.\n"
    assert avrdude.error_line(noise + older) == "avrdude: stk500_recv(): programmer is not responding"
    assert avrdude.error_line("") == "no output"
    assert avrdude.error_line("something odd\n") == "something odd"


def test_the_command_line_is_avrdudes_for_the_configured_board() -> None:
    cfg = NodeFirmwareSection(programmer="arduino", part="m328p", baud=57600)
    assert avrdude.argv(cfg, "/dev/ttyUSB0", Path("/tmp/x.hex")) == [
        "avrdude", "-c", "arduino", "-p", "m328p", "-P", "/dev/ttyUSB0", "-b", "57600", "-U", "flash:w:/tmp/x.hex:i",
    ]  # fmt: skip
