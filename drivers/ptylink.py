"""An emulated device at the far end of a serial cable: a pty pair whose master side a peer drives.

The gateway opens the pty's slave path (or a symlink to it standing in for ``/dev/serial/by-id/...``)
like any serial port; the :class:`Peer` (a node emulator, an NMEA talker) sees what the gateway
writes and answers. For the tests and the demo only: the gateway itself never imports this.

    async with PtyLink(NodeEmulator("node-1"), link=Path("/tmp/by-id/roost-node-1")) as link:
        ...  # point [[adapters.serial]] path at link.path (or the symlink)
        link.inject(b"\\x13\\x37")  # noise on the line
        await link.unplug()         # the device vanishes; a new PtyLink at the same link plugs it back
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

_LOGGER = logging.getLogger(__name__)
MAX_PENDING = 1 << 20
"""Bytes the link keeps for a gateway that does not read, at most (then it drops and counts)."""


class Peer(Protocol):
    """The device's logic: bytes in, bytes out, time passing."""

    def receive(self, data: bytes, now: float) -> bytes:
        """Take bytes the gateway sent; return bytes to send back."""

    def tick(self, now: float) -> bytes:
        """Time passed; return bytes to send (readings due, retransmissions)."""


class PtyLink:
    """Runs ``peer`` on the master side of a new pty until closed or unplugged."""

    def __init__(
        self,
        peer: Peer,
        *,
        link: Path | None = None,
        tick_s: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.link = link
        self.tick_s = tick_s
        self._clock = clock
        self._master = -1
        self._slave = -1
        self.path = ""
        """The slave's device path (``/dev/pts/N``)."""
        self.received = 0
        self.sent = 0
        self.dropped = 0
        self._pending = b""
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> PtyLink:
        self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.unplug()

    def open(self) -> None:
        """Create the pty (raw, no echo), point ``link`` at it and start the peer."""
        self._loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline before the gateway opens it
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.path)
            tmp.replace(self.link)  # atomically, as udev does
        self._loop.add_reader(self._master, self._readable)
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"pty peer {self.path}")

    def inject(self, data: bytes) -> None:
        """Put raw bytes on the line (noise, a corrupted frame), bypassing the peer."""
        self._write(data)

    async def unplug(self) -> None:
        """The device vanishes: stop the peer, close the pty, remove the symlink."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._loop is not None and self._master >= 0:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.link.is_symlink() and os.readlink(self.link) == self.path:
                    self.link.unlink()

    async def _tick_loop(self) -> None:
        while True:
            try:
                out = self.peer.tick(self._clock())
            except Exception:  # an emulator bug: log it, keep the line alive for the test to see
                _LOGGER.exception("pty peer on %s failed", self.path)
                out = b""
            if out:
                self._write(out)
            await asyncio.sleep(self.tick_s)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return  # no slave open right now (between the gateway's close and reopen)
            raise
        if not data:
            return
        self.received += len(data)
        out = self.peer.receive(data, self._clock())
        if out:
            self._write(out)

    def _write(self, data: bytes) -> None:
        if self._master < 0:
            return
        if self._pending:
            self._queue(data)
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.dropped += len(data)
            return
        self.sent += n
        if n < len(data):
            self._queue(data[n:])

    def _queue(self, data: bytes) -> None:
        if len(self._pending) + len(data) > MAX_PENDING:
            self.dropped += len(data)
            return
        if not self._pending and self._loop is not None:
            self._loop.add_writer(self._master, self._flush)
        self._pending += data

    def _flush(self) -> None:
        try:
            n = os.write(self._master, self._pending)
        except BlockingIOError:
            return
        except OSError:
            self.dropped += len(self._pending)
            n = len(self._pending)
        self.sent += n
        self._pending = self._pending[n:]
        if not self._pending and self._loop is not None:
            self._loop.remove_writer(self._master)
