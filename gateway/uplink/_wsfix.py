"""A fix for paho-mqtt's WebSocket framing (2.x), applied when the uplink is imported.

paho answers a server's WebSocket ping with an *unmasked* pong (and echoes a close unmasked),
while RFC 6455 section 5.1 says a client masks every frame and a server closes the connection on
an unmasked one. The ``websockets`` server under amqtt pings every 20 s and closes with 1002
("incorrect masking"), so without this fix a gateway on MQTT over WebSockets lost its connection
(and published its last will) every 20 seconds. paho also masks payloads one byte at a time in
Python; this version XORs the whole payload as one integer, which matters for 30-40 KB packs.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Any

_LOGGER = logging.getLogger(__name__)
_APPLIED = False


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``key`` repeated (RFC 6455 section 5.3)."""
    n = len(data)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def _create_frame(self: Any, opcode: int, data: bytes | bytearray, do_masking: int = 1) -> bytearray:
    """One final frame, always masked: paho's wrapper is only ever the client side."""
    length = len(data)
    header = bytearray([0x80 | opcode])
    if length < 126:
        header.append(0x80 | length)
    elif length < 65536:
        header.append(0x80 | 126)
        header += struct.pack("!H", length)
    else:
        header.append(0x80 | 127)
        header += struct.pack("!Q", length)
    key = os.urandom(4)
    header += key
    header += mask(key, bytes(data))
    return header


def apply() -> None:
    """Replace paho's ``_WebsocketWrapper._create_frame`` (once); leave paho alone if it has changed shape."""
    global _APPLIED
    if _APPLIED:
        return
    try:
        from paho.mqtt import client as paho_client

        wrapper = paho_client._WebsocketWrapper
    except (ImportError, AttributeError):
        _LOGGER.debug("paho's WebSocket wrapper not found; framing fix not applied")
        return
    if not hasattr(wrapper, "_create_frame"):
        _LOGGER.debug("paho's WebSocket wrapper has no _create_frame; framing fix not applied")
        return
    wrapper._create_frame = _create_frame  # type: ignore[method-assign]
    _APPLIED = True
