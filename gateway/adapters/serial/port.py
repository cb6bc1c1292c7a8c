"""One configured serial port kept open: open it, hand its bytes to a protocol handler, reopen it when lost.

* The configured path may be a symlink (``/dev/serial/by-id/...``): it is resolved at every open, so
  a device that comes back under another ``ttyUSBn`` is found again.
* A port that is missing or cannot be opened is named once in a WARNING (with what to check) and
  tried again with capped exponential backoff and jitter; DEBUG for the repeats, INFO on recovery.
* A device that vanishes (a read error, EOF) is logged, closed and reopened when it comes back.
* Incoming bytes wait in a short queue for the handler; past its high-water mark the port stops
  reading (the kernel's buffer, then the line, takes the back-pressure; the Roost protocol resends).
* :meth:`SerialPort.release` closes the port and keeps it closed for another program (avrdude
  flashing the node's firmware) until :meth:`SerialPort.take_back`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import logging
import os
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.adapters.serial.config import SerialPortSection

_LOGGER = logging.getLogger(__name__)
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
HIGH_WATER = 64
"""Chunks (of at most 1 KB) queued for the handler before the port stops reading."""
LOW_WATER = 16

_PARITY = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}

Write = Callable[[bytes], None]


class PortHandler(abc.ABC):
    """A protocol's side of one port: what to do with bytes, and what to say when the port (re)opens."""

    @abc.abstractmethod
    def connected(self, write: Write) -> None:
        """The port is open; ``write`` sends bytes on it (without blocking)."""

    @abc.abstractmethod
    async def handle(self, data: bytes) -> None:
        """Bytes arrived; the next call waits until this one returns (so an ACK can wait for the buffer)."""

    @abc.abstractmethod
    def disconnected(self) -> None:
        """The port is gone (until it is opened again)."""


class PortUnavailable(Exception):
    """The port cannot be opened now (transient: retried); the message says what to check."""


class _Link(asyncio.Protocol):
    """The asyncio protocol under one open port: queues chunks, notices the loss."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.lost: BaseException | None = None
        self.closed = False
        self.done = asyncio.Event()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.wake.set()
        if len(self.chunks) >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self.wake.set()
        self.done.set()

    def take(self) -> bytes | None:
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        if self.paused and len(self.chunks) <= LOW_WATER and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return chunk


class SerialPort:
    """Keeps ``section.path`` open for ``handler`` until cancelled; never raises out of :meth:`run` but on cancel."""

    def __init__(self, section: SerialPortSection, handler: PortHandler, *, rng: random.Random | None = None) -> None:
        self.section = section
        self.handler = handler
        self._rng = rng or random.Random()
        self.state = "closed"
        """closed, open, unavailable or lost."""
        self.device = ""
        """The device the path resolved to at the last open."""
        self.problem = ""
        """Why the port is not open (for the local page)."""
        self.opens = 0
        self.losses = 0
        self.failed_opens = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._opened = asyncio.Event()
        self._wanted = asyncio.Event()
        """Cleared while the port is released to another program."""
        self._wanted.set()
        self._idle = asyncio.Event()
        """Set while the device is neither open nor being opened."""
        self._idle.set()
        self._transport: asyncio.Transport | None = None

    def stats(self) -> dict[str, Any]:
        """Counters for health reports."""
        return {
            "state": self.state,
            "device": self.device,
            "problem": self.problem,
            "opens": self.opens,
            "losses": self.losses,
            "failed_opens": self.failed_opens,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    async def wait_open(self) -> None:
        """Wait until the port is open."""
        await self._opened.wait()

    async def release(self, reason: str) -> None:
        """Close the device and leave it closed (for ``reason``) until :meth:`take_back`; bound it with a timeout."""
        self._wanted.clear()
        self.problem = reason
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        await self._idle.wait()
        self.state = "released"

    def take_back(self) -> None:
        """Open the device again (after :meth:`release`)."""
        self._wanted.set()

    async def run(self) -> None:
        """Open, serve, reopen; until cancelled."""
        delay = self.section.reopen_initial_s
        warned = False
        while True:
            if not self._wanted.is_set():
                _LOGGER.info("Serial port %s closed: %s", self.section.path, self.problem)
                self.state = "released"
                await self._wanted.wait()
                _LOGGER.info("Serial port %s taken back: opening it again", self.section.path)
                delay, warned = self.section.reopen_initial_s, False
            self._idle.clear()
            try:
                transport, link = await self._open()
            except BaseException as exc:
                self._idle.set()
                if not isinstance(exc, PortUnavailable):
                    raise
                self.failed_opens += 1
                self.state = "unavailable"
                self.problem = str(exc)
                if not warned:
                    warned = True
                    _LOGGER.warning(
                        "Serial port %s: %s; trying again every %g s at most", self.section.path, exc,
                        self.section.reopen_max_s,
                    )  # fmt: skip
                else:
                    _LOGGER.debug("Serial port %s still unavailable: %s", self.section.path, exc)
                await asyncio.sleep(delay * self._rng.uniform(0.8, 1.2))
                delay = min(delay * 2, self.section.reopen_max_s)
                continue
            if warned:
                _LOGGER.info("Serial port %s is available again (%s)", self.section.path, self.device)
            else:
                _LOGGER.info(
                    "Serial port %s open (%s, %d baud, protocol %s)",
                    self.section.path, self.device, self.section.baud, self.section.protocol,
                )  # fmt: skip
            warned = False
            delay = self.section.reopen_initial_s
            try:
                reason = await self._serve(transport, link)
            finally:
                self._idle.set()
            if not self._wanted.is_set():
                continue  # released, not lost
            self.losses += 1
            self.state = "lost"
            self.problem = reason
            _LOGGER.warning("Serial port %s lost (%s): opening it again when it comes back", self.section.path, reason)
            warned = True  # its return is logged at INFO, the failures in between at DEBUG
            await asyncio.sleep(self.section.reopen_initial_s)

    async def _open(self) -> tuple[asyncio.Transport, _Link]:
        import serial
        import serial_asyncio_fast

        device = _resolve(self.section.path)
        link = _Link()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                serial_asyncio_fast.create_serial_connection(
                    loop,
                    lambda: link,
                    device,
                    baudrate=self.section.baud,
                    bytesize=self.section.bytesize,
                    parity=_PARITY[self.section.parity],
                    stopbits=self.section.stopbits if self.section.stopbits == 1.5 else int(self.section.stopbits),
                    exclusive=True,
                ),
                OPEN_TIMEOUT_S,
            )
        except TimeoutError as exc:
            raise PortUnavailable(f"{device} did not open within {OPEN_TIMEOUT_S:g} s") from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortUnavailable(_explain(device, exc)) from exc
        self.device = device
        return transport, link

    async def _serve(self, transport: asyncio.Transport, link: _Link) -> str:
        self._transport = transport
        if not self._wanted.is_set():  # released while it was opening: close it unused
            transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await link.done.wait()
            self._transport = None
            return "released"
        self.opens += 1
        self.state = "open"
        self.problem = ""
        self._opened.set()

        def write(data: bytes) -> None:
            if not transport.is_closing():
                self.bytes_out += len(data)
                transport.write(data)

        try:
            # connection_made runs on the loop's next turn: let it, so the handler can write at once
            await asyncio.sleep(0)
            self.handler.connected(write)
            while True:
                chunk = link.take()
                if chunk is not None:
                    self.bytes_in += len(chunk)
                    try:
                        await self.handler.handle(chunk)
                    except Exception:  # a handler's bug must not take the port down
                        _LOGGER.exception("Serial port %s: handling %d bytes failed", self.section.path, len(chunk))
                    continue
                if link.closed:
                    return _loss_reason(link.lost)
                link.wake.clear()
                await link.wake.wait()
        finally:
            self._transport = None
            self._opened.clear()
            self.handler.disconnected()
            transport.close()
            # the transport closes the device in the background: wait (bounded) so a reopen finds it free
            if not link.done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.done.wait(), CLOSE_TIMEOUT_S)


def _resolve(path: str) -> str:
    """The device ``path`` names now (a by-id link followed to today's ttyUSBn); raise PortUnavailable."""
    device = os.path.realpath(path)
    if not os.path.exists(device):
        hint = (
            "is the device plugged in, and is the name under /dev/serial/by-id/ right (ls -l /dev/serial/by-id/)?"
            if "/by-id/" in path or "/by-path/" in path
            else "is the device plugged in? (a stable name under /dev/serial/by-id/ survives replugging)"
        )
        raise PortUnavailable(f"{path} does not exist: {hint}")
    return device


def _loss_reason(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = str(exc) or type(exc).__name__
    return f"unplugged? {text}" if "Input/output error" in text or "returned no data" in text else text


def _explain(device: str, exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.EACCES or "Permission denied" in text:
        return f"{device}: permission denied: is the gateway's user in the 'dialout' group?"
    if code == errno.EBUSY or "exclusively lock" in text or "Device or resource busy" in text:
        return f"{device} is in use by another program (only one may open a serial port)"
    if code == errno.ENOENT or "No such file" in text:
        return f"{device} does not exist: is the device plugged in?"
    return f"{device} cannot be opened: {text}"
