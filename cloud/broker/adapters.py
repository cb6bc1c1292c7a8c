"""amqtt reader/writer adapters for connections the cloud accepts itself: a Starlette WebSocket, an asyncio stream.

Both readers can push bytes back (:meth:`BufferedReader.unread`), so the broker can read a connection's first
packet (CONNECT), decide on it, and hand the untouched stream to amqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

_LOGGER = logging.getLogger(__name__)

MAX_CONNECT_BYTES = 64 * 1024
"""Largest CONNECT packet the gate reads (ids, credentials and a will)."""


class BufferedReader(ReaderAdapter):  # type: ignore[misc]
    """A reader with a buffer in front of the transport; ``read(n)`` returns n bytes, fewer only at EOF."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False

    async def _more(self) -> bytes:
        """The next chunk from the transport; b'' at EOF."""
        raise NotImplementedError

    async def read(self, n: int = -1) -> bytes:
        """Read n bytes (all until EOF when n < 0)."""
        while (n < 0 or len(self._buf) < n) and not self._eof:
            chunk = await self._more()
            if not chunk:
                self._eof = True
                break
            self._buf += chunk
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        return out

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the buffer."""
        self._buf[:0] = data

    def feed_eof(self) -> None:
        """Mark the stream as ended."""
        self._eof = True


class WebSocketReader(BufferedReader):
    """Reads MQTT bytes from a Starlette WebSocket (binary frames; text frames as UTF-8)."""

    def __init__(self, ws: WebSocket) -> None:
        super().__init__()
        self._ws = ws

    async def _more(self) -> bytes:
        while self._ws.application_state != WebSocketState.DISCONNECTED:
            try:
                message = await self._ws.receive()
            except (RuntimeError, OSError, WebSocketDisconnect):  # receive after the socket closed
                return b""
            if message["type"] != "websocket.receive":
                return b""
            data = message.get("bytes")
            if data is None:
                text = message.get("text")
                data = text.encode() if isinstance(text, str) else b""
            if data:  # an empty frame is not EOF: wait for the next one
                return bytes(data)
        return b""


class WebSocketWriter(WriterAdapter):  # type: ignore[misc]
    """Writes MQTT bytes to a Starlette WebSocket, one binary frame per drain."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._out = bytearray()
        self._closed = False

    def write(self, data: bytes) -> None:
        """Buffer bytes until the next drain."""
        if not self._closed:
            self._out += data

    async def drain(self) -> None:
        """Send what was written as one binary frame."""
        if self._closed or not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        try:
            await self._ws.send_bytes(data)
        except (RuntimeError, OSError, WebSocketDisconnect) as exc:
            self._closed = True
            raise ConnectionResetError(f"websocket closed: {exc}") from exc

    def get_peer_info(self) -> tuple[str, int] | None:
        """The peer's (address, port)."""
        client = self._ws.client
        return (client.host, client.port) if client else ("websocket", 0)

    def get_ssl_info(self) -> ssl.SSLObject | None:
        """TLS is terminated by the HTTP server; amqtt gets no SSL object."""
        return None

    async def close(self) -> None:
        """Close the WebSocket."""
        if self._closed:
            return
        self._closed = True
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self._ws.close()


class StreamReader(BufferedReader):
    """Reads MQTT bytes from an asyncio StreamReader (the plain TCP listener)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__()
        self._reader = reader

    async def _more(self) -> bytes:
        try:
            return await self._reader.read(65536)
        except (ConnectionError, OSError):
            return b""


class StreamWriter(WriterAdapter):  # type: ignore[misc]
    """Writes MQTT bytes to an asyncio StreamWriter."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._closed = False

    def write(self, data: bytes) -> None:
        """Write bytes to the transport."""
        if not self._closed:
            self._writer.write(data)

    async def drain(self) -> None:
        """Wait for the transport's buffer to drain."""
        if not self._closed:
            await self._writer.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        """The peer's (address, port)."""
        peer: Any = self._writer.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if peer and len(peer) >= 2 else ("tcp", 0)

    def get_ssl_info(self) -> ssl.SSLObject | None:
        """The TLS object, if any."""
        obj: ssl.SSLObject | None = self._writer.get_extra_info("ssl_object")
        return obj

    async def close(self) -> None:
        """Close the connection."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def read_first_packet(reader: BufferedReader) -> bytes | None:
    """Read the connection's first MQTT packet and push it back; None when it is not a whole packet."""
    head = await reader.read(1)
    if len(head) != 1:
        return None
    raw = bytearray(head)
    length = 0
    for i in range(4):
        b = await reader.read(1)
        if not b:
            reader.unread(bytes(raw))
            return None
        raw += b
        length += (b[0] & 0x7F) << (7 * i)
        if not b[0] & 0x80:
            break
    if length > MAX_CONNECT_BYTES:
        return None
    body = await reader.read(length)
    raw += body
    reader.unread(bytes(raw))
    return bytes(raw) if len(body) == length else None
