"""The DM agent's ``node-firmware`` command: a new firmware for a Roost serial node, through its bootloader.

``{"sensor": "<node id>", "url": "https://…/node.hex" | "hex": "<Intel HEX text>", "sha256": "<hex>",
"version": "<expected>"}``: find the serial port the node announced itself on, fetch the image, check
it (hash, then every record: :mod:`gateway.dm.nodefw.intelhex`) before touching the node, release the
port from the serial adapter, write the image with avrdude (the node's bootloader answers because
opening the port resets it, as an Arduino's auto-reset does), take the port back and wait for the
node to announce itself, with the expected version if one was given. The port is taken back
whatever avrdude did.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.adapters.base import Adapter
from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from gateway.dm.nodefw import avrdude, intelhex
from gateway.dm.nodefw.config import NodeFirmwareSection

if TYPE_CHECKING:
    from drivers.roostserial import messages as m
    from gateway.adapters.serial.adapter import SerialAdapter
    from gateway.adapters.serial.port import SerialPort
    from gateway.adapters.serial.roost_protocol import RoostHandler

_LOGGER = logging.getLogger(__name__)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
POLL_S = 0.05
RELEASE_TIMEOUT_S = 10.0


def _arguments(
    args: dict[str, Any], cfg: NodeFirmwareSection
) -> tuple[str, str | None, str | None, str | None, str | None]:
    sensor, url, text = args.get("sensor"), args.get("url"), args.get("hex")
    sha256, version = args.get("sha256"), args.get("version")
    if not isinstance(sensor, str) or not sensor:
        raise InvalidArguments("'sensor' must be the node's id, as it announces itself")
    if (url is None) == (text is None):
        raise InvalidArguments("give the image either as 'url' (http:// or https://) or as 'hex' (Intel HEX text)")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise InvalidArguments("'url' must be the image's http:// or https:// URL")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise InvalidArguments("'hex' must be the image as Intel HEX text")
    if isinstance(text, str) and len(text) > cfg.max_image_bytes:
        raise InvalidArguments(f"'hex' is {len(text)} characters, over the {cfg.max_image_bytes} an image may have")
    if sha256 is not None and (not isinstance(sha256, str) or not _HEX64.fullmatch(sha256)):
        raise InvalidArguments("'sha256' must be the image file's SHA-256 in 64 hex digits")
    if version is not None and (not isinstance(version, str) or not version or len(version) > 16):
        raise InvalidArguments("'version' must be the firmware version the node should announce (1-16 characters)")
    return sensor, url, text, sha256, version


def _serial(adapters: Sequence[Adapter]) -> SerialAdapter | None:
    from gateway.adapters.serial.adapter import SerialAdapter

    return next((a for a in adapters if isinstance(a, SerialAdapter)), None)


def find_node(adapters: Sequence[Adapter], sensor: str) -> tuple[SerialAdapter, SerialPort, RoostHandler]:
    """The serial adapter, port and protocol handler of node ``sensor``; CommandFailed when it is none of ours."""
    from gateway.adapters.serial.roost_protocol import RoostHandler

    serial = _serial(adapters)
    if serial is None:
        raise CommandFailed(f"{sensor!r} is not a Roost serial node on this gateway: it has no serial port configured")
    announced = []
    for port, handler in zip(serial.ports, serial.handlers, strict=True):
        if isinstance(handler, RoostHandler) and handler.node is not None:
            if handler.node.node_id == sensor:
                return serial, port, handler
            announced.append(handler.node.node_id)
    known = f"the nodes announced here: {', '.join(sorted(announced))}" if announced else "no node has announced itself"
    raise CommandFailed(f"{sensor!r} is not a Roost serial node on this gateway ({known})")


async def _image(
    url: str | None, text: str | None, dest: Path, cfg: NodeFirmwareSection, ca_file: Path | None
) -> bytes:
    if text is not None:
        return text.encode()
    assert url is not None
    from gateway.dm.ota.download import DownloadError, download

    try:
        await asyncio.to_thread(
            download, url, dest, ca_file=ca_file, max_bytes=cfg.max_image_bytes, attempts=4, total_timeout_s=120.0
        )
    except DownloadError as exc:
        raise CommandFailed(f"the image could not be downloaded: {exc}") from None
    return await asyncio.to_thread(dest.read_bytes)


def _checked(data: bytes, sha256: str | None, cfg: NodeFirmwareSection) -> intelhex.HexImage:
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise CommandFailed(
            f"the image is refused, the node was not touched: its SHA-256 is {hashlib.sha256(data).hexdigest()}, "
            f"not the {sha256.lower()} the command gave"
        )
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CommandFailed("the image is refused, the node was not touched: it is not Intel HEX text") from None
    try:
        return intelhex.check(text, application_bytes=cfg.application_bytes)
    except intelhex.HexError as exc:
        raise CommandFailed(f"the image is refused, the node was not touched: {exc}") from None


def _workspace(work_dir: Path) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="node-firmware-", dir=work_dir))


async def _announced(handler: RoostHandler, before: m.Announce | None, timeout_s: float) -> m.Announce | None:
    """The node's next announcement after ``before`` (a new message object), or None at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        node = handler.node
        if node is not None and node is not before:
            return node
        await asyncio.sleep(POLL_S)
    return None


async def update_node(
    adapters: Sequence[Adapter],
    args: dict[str, Any],
    cfg: NodeFirmwareSection,
    *,
    work_dir: Path,
    ca_file: Path | None = None,
    busy: set[str] | None = None,
) -> dict[str, Any]:
    """Run one ``node-firmware`` command (see the module's description); CommandFailed says what went wrong."""
    sensor, url, text, sha256, version = _arguments(args, cfg)
    serial, port, handler = find_node(adapters, sensor)
    path = port.section.path
    busy = set() if busy is None else busy
    if path in busy:
        raise CommandFailed(f"a firmware update is already running on {path}")
    busy.add(path)
    try:
        old = handler.node
        old_version = old.firmware if old is not None else None
        tmp = await asyncio.to_thread(_workspace, work_dir)
        try:
            image_path = tmp / "image.hex"
            data = await _image(url, text, tmp / "download.hex", cfg, ca_file)
            image = _checked(data, sha256, cfg)
            await asyncio.to_thread(image_path.write_bytes, data)
            device = await asyncio.to_thread(os.path.realpath, path)
            if port.state != "open":
                raise CommandFailed(f"node {sensor}'s port {path} is {port.state} ({port.problem}): not flashed")
            _LOGGER.info(
                "Node %s on %s: writing firmware (%d bytes, from %s; now %s)",
                sensor, path, image.size, url or "an inline image", old_version or "?",
            )  # fmt: skip

            def step(phase: str, percent: int) -> None:
                level = logging.INFO if percent % 50 == 0 else logging.DEBUG
                _LOGGER.log(level, "Node %s: %s firmware, %d %%", sensor, phase, percent)

            started = time.monotonic()
            failure: str | None = None
            before = handler.node
            try:
                async with serial.released(path, f"firmware update of {sensor}", timeout_s=RELEASE_TIMEOUT_S):
                    before = handler.node  # the port is closed: what announces from now on is the new firmware
                    try:
                        flashed = await avrdude.flash(cfg, device, image_path, on_step=step)
                    except avrdude.FlashFailed as exc:
                        failure = str(exc)
            except TimeoutError:
                raise CommandFailed(
                    f"node {sensor} was not updated: its port {path} did not close within {RELEASE_TIMEOUT_S:g} s"
                ) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        node = await _announced(handler, before, cfg.announce_timeout_s)
        if failure is not None:
            after = (
                f"; the node announced itself again (firmware {node.firmware or '?'})"
                if node is not None
                else f"; the node has not announced itself within {cfg.announce_timeout_s:g} s since"
            )
            raise CommandFailed(f"node {sensor} was not updated: {failure}{after}")
        if node is None:
            raise CommandFailed(
                f"node {sensor} was written ({image.size} bytes) but did not come back within "
                f"{cfg.announce_timeout_s:g} s: no announcement on {path}"
            )
        if version is not None and node.firmware != version:
            raise CommandFailed(
                f"node {sensor} came back with firmware {node.firmware or '(none)'}, not the expected {version}"
            )
        seconds = round(time.monotonic() - started, 2)
        _LOGGER.info(
            "Node %s on %s: firmware %s -> %s in %.1f s (avrdude %.1f s)",
            sensor, path, old_version or "?", node.firmware or "?", seconds, flashed.seconds,
        )  # fmt: skip
        result: dict[str, Any] = {
            "sensor": sensor,
            "port": path,
            "old_version": old_version,
            "new_version": node.firmware,
            "bytes": image.size,
            "seconds": seconds,
            "avrdude_seconds": flashed.seconds,
            "progress": flashed.progress,
        }
        if node.node_id != sensor:
            result["announced_as"] = node.node_id
        return result
    finally:
        busy.discard(path)


def register(
    agent: Dispatcher,
    cfg: NodeFirmwareSection,
    adapters: Callable[[], Sequence[Adapter]],
    *,
    work_dir: Path,
    ca_file: Path | None = None,
) -> None:
    """Offer ``node-firmware`` on ``agent`` for the nodes on ``adapters()``'s serial ports."""
    busy: set[str] = set()

    async def node_firmware(args: dict[str, Any]) -> dict[str, Any]:
        return await update_node(adapters(), args, cfg, work_dir=work_dir, ca_file=ca_file, busy=busy)

    limit = 130.0 + cfg.flash_timeout_s + cfg.announce_timeout_s + RELEASE_TIMEOUT_S
    agent.register("node-firmware", node_firmware, timeout_s=limit)
