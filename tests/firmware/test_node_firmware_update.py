"""A sensor node's firmware updated through the gateway, end to end: the AVR firmware v1.0.0 in a simulated Uno
(optiboot, DTR auto-reset), the gateway's real serial adapter on the Uno's port seeing it announce, then the
DM command ``node-firmware`` fetching v1.1.0 over HTTP, checking it, releasing the port, running Debian's
avrdude through optiboot, taking the port back and seeing the node announce 1.1.0. A corrupted image is
refused without touching the node; a node without a bootloader makes avrdude fail, and the port comes back.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.roostserial import messages as m
from gateway.dm.commands import CommandFailed, Dispatcher
from gateway.dm.nodefw import intelhex
from gateway.dm.nodefw.command import register, update_node
from gateway.dm.nodefw.config import NodeFirmwareSection
from tests.firmware.simavr_rig import OPTIBOOT, Uno, avrdude, build_firmware
from tests.gateway.serial_rig import Rig, eventually, port, rig
from wire.commands import Command

pytestmark = pytest.mark.slow

NODE = "avr-node"
CFG = NodeFirmwareSection(announce_timeout_s=15.0)


@pytest.fixture(scope="module")
def firmware_110(tmp_path_factory: pytest.TempPathFactory, avr_toolchain: None) -> Path:
    return build_firmware(tmp_path_factory.mktemp("fw") / "avr", "1.1.0")


@pytest.fixture
def v100(firmware_hex: Path) -> str:
    return firmware_hex.read_text()


@pytest.fixture
def v110(firmware_110: Path) -> str:
    return firmware_110.read_text()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (a free port), and its URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _link(tmp_path: Path, board: Uno) -> Path:
    """A stable name for the Uno's port, as /dev/serial/by-id/... would be."""
    link = tmp_path / "by-id" / "usb-Arduino__www.arduino.cc__0043_7563-if00"
    link.parent.mkdir()
    link.symlink_to(board.pty)
    return link


async def _announced(r: Rig, version: str) -> m.Announce:
    await eventually(
        lambda: NODE in r.adapter.nodes() and r.adapter.nodes()[NODE].firmware == version,
        timeout=15,
        what=f"{NODE} announcing firmware {version}",
    )
    return r.adapter.nodes()[NODE]


def _data_bytes(image: str) -> int:
    return intelhex.check(image, application_bytes=CFG.application_bytes).size


async def test_a_node_is_updated_through_the_gateway_and_a_corrupted_image_is_refused(
    simavr_bridge: Path, firmware_hex: Path, v100: str, v110: str, tmp_path: Path, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    (root / "roost-node-1.1.0.hex").write_text(v110)
    board = Uno(simavr_bridge, "--bootloader", str(OPTIBOOT), "--auto-reset")
    try:
        _, done = await asyncio.to_thread(avrdude, board.pty, firmware_hex)  # the factory's v1.0.0
        assert done.returncode == 0, done.stderr
        link = _link(tmp_path, board)
        async with rig(tmp_path, [port(link, protocol="roost", accept="any")]) as r:
            await _announced(r, "1.0.0")
            serial_port = r.adapter.port(str(link))

            # a corrupted image: refused before the node is touched; the node goes on answering
            lines = v100.splitlines()
            lines[40] = lines[40][:20] + ("0" if lines[40][20] != "0" else "1") + lines[40][21:]
            opens = serial_port.opens
            with pytest.raises(CommandFailed, match=r"refused, the node was not touched: line 41: checksum"):
                await update_node([r.adapter], {"sensor": NODE, "hex": "\n".join(lines)}, CFG, work_dir=tmp_path)
            assert serial_port.opens == opens and serial_port.state == "open"
            await r.adapter.send_command(NODE, m.Identify())

            # v1.1.0 from a URL, its hash and version checked
            args = {
                "sensor": NODE,
                "url": f"{base}/roost-node-1.1.0.hex",
                "sha256": hashlib.sha256(v110.encode()).hexdigest(),
                "version": "1.1.0",
            }
            result = await update_node([r.adapter], args, CFG, work_dir=tmp_path / "dm")
            print(f"node-firmware 1.0.0 -> 1.1.0: {result['seconds']} s (avrdude {result['avrdude_seconds']} s)")
            assert result["sensor"] == NODE and result["port"] == str(link)
            assert (result["old_version"], result["new_version"]) == ("1.0.0", "1.1.0")
            assert result["bytes"] == _data_bytes(v110)
            assert {"phase": "writing", "percent": 100} in result["progress"]
            assert result["progress"][-1] == {"phase": "verifying", "percent": 100}
            assert r.adapter.nodes()[NODE].firmware == "1.1.0"
            await r.adapter.send_command(NODE, m.Identify())

            # and back to 1.0.0, inline, through the DM agent's dispatcher
            agent = Dispatcher()
            register(agent, CFG, lambda: [r.adapter], work_dir=tmp_path / "dm")
            payload = Command(command="node-firmware", args={"sensor": NODE, "hex": v100, "version": "1.0.0"}).encode()
            answer = await agent.handle("node-firmware-back-0001", payload)
            assert answer is not None and answer.status == "ok", answer
            assert answer.result["new_version"] == "1.0.0"
            assert not any((tmp_path / "dm").iterdir())  # the downloaded image is not left behind
    finally:
        board.close()


async def test_when_avrdude_fails_its_reason_is_reported_and_the_port_comes_back(
    simavr_bridge: Path, firmware_hex: Path, v110: str, tmp_path: Path
) -> None:
    # an Uno whose bootloader was erased (the firmware alone): nothing answers avrdude
    board = Uno(simavr_bridge, "--auto-reset", str(firmware_hex))
    try:
        link = _link(tmp_path, board)
        async with rig(tmp_path, [port(link, protocol="roost", accept="any")]) as r:
            await _announced(r, "1.0.0")
            serial_port = r.adapter.port(str(link))
            opens = serial_port.opens
            args = {"sensor": NODE, "hex": v110, "version": "1.1.0"}
            with pytest.raises(CommandFailed) as caught:
                await update_node([r.adapter], args, CFG, work_dir=tmp_path / "dm")
            message = str(caught.value)
            print(message)
            assert message.startswith(f"node {NODE} was not updated: avrdude failed (exit 1): avrdude error: ")
            assert "(after: warning: attempt 10 of 10: not in sync" in message, message
            assert message.endswith("the node announced itself again (firmware 1.0.0)")
            assert serial_port.opens == opens + 1 and serial_port.state == "open"
            await r.adapter.send_command(NODE, m.Identify())
    finally:
        board.close()
