"""The Roost serial protocol v1 on one port (docs/protocols/serial.md): the gateway's side.

A READINGS frame is acknowledged ``OK`` only once its readings are durable (``await hub.publish``
returned); frames are handled one at a time, in order. Retransmissions of stored frames are found
by sequence number (the last 16 per node) and acknowledged again without storing twice. Bad frames
are counted by reason and skipped; the deframer resynchronises at the next 0x00.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from drivers.roostserial import messages as m
from drivers.roostserial.frame import DELIMITER, Deframer, Frame, FrameError
from gateway.adapters.serial.config import SerialPortSection
from gateway.adapters.serial.errors import CommandRefused, CommandTimeout, NodeUnavailable
from gateway.adapters.serial.port import PortHandler, Write
from gateway.adapters.serial.rejects import Rejects
from gateway.errors import BufferFull
from gateway.hub import Hub
from gateway.pairing import Pairing

if TYPE_CHECKING:
    from gateway.adapters.base import Adapter

_LOGGER = logging.getLogger(__name__)
DUPLICATE_WINDOW = 16
COMMAND_ATTEMPTS = 3
COMMAND_TIMEOUT_S = 1.0

_NEEDS_ACK = (m.MsgType.ANNOUNCE, m.MsgType.READINGS)


class RoostHandler(PortHandler):
    """One port's node: its announcement, duplicate history and commands in flight."""

    def __init__(
        self,
        section: SerialPortSection,
        hub: Hub,
        pairing: Pairing,
        owner: Adapter,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.section = section
        self._hub = hub
        self._pairing = pairing
        self._owner = owner
        self._rejects = Rejects(section.path, owner.rejected)
        self._deframer = Deframer()
        self._write: Write | None = None
        self._rng = rng or random.Random()
        self._cmd_seq = self._rng.randrange(256)
        self._recent: deque[int] = deque(maxlen=DUPLICATE_WINDOW)
        self._pending: dict[int, asyncio.Future[m.ResultStatus]] = {}
        self.node: m.Announce | None = None
        """What the node on this port announced (kept across a reopen until it announces again)."""
        self.frames = 0
        self.accepted = 0
        self.duplicates = 0
        self.announce_requests = 0

    def stats(self) -> dict[str, Any]:
        """This port's protocol counters."""
        return {
            "protocol": "roost",
            "node": None if self.node is None else self.node.node_id,
            "firmware": None if self.node is None else self.node.firmware,
            "frames": self.frames,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "announce_requests": self.announce_requests,
            "rejected": dict(self._rejects.counts),
        }

    # -- PortHandler ------------------------------------------------------------------------------

    def connected(self, write: Write) -> None:
        """Port open: end any partial frame at the node, and ask who is there."""
        self._write = write
        self._deframer.reset()
        write(DELIMITER + m.encode_message(m.Identify(), self._next_cmd_seq()))

    def disconnected(self) -> None:
        """Port gone: commands waiting for an answer fail now rather than at their timeout."""
        self._write = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(NodeUnavailable(self._node_name(), "its serial port was lost"))

    async def handle(self, data: bytes) -> None:
        """Cut frames, act on each in order; an ACK leaves only after the readings are durable."""
        now = time.time()
        for item in self._deframer.feed(data):
            if isinstance(item, FrameError):
                self._rejects.bad(item.reason, item.detail, item.raw)
                continue
            self.frames += 1
            try:
                msg = m.decode_message(item)
            except FrameError as exc:
                self._rejects.bad(exc.reason, f"{_type_name(item.type)} seq {item.seq}: {exc.detail}", item.payload)
                if item.type in _NEEDS_ACK:
                    self._ack(item.seq, m.AckStatus.MALFORMED)
                continue
            if isinstance(msg, m.Readings):
                await self._on_readings(item, msg, now)
            elif isinstance(msg, m.Announce):
                self._rejects.good()
                self._on_announce(item.seq, msg)
            elif isinstance(msg, m.Result):
                self._rejects.good()
                self._on_result(item.seq, msg.status)
            else:
                self._rejects.bad("unexpected", f"the node sent {_type_name(item.type)}, which only a gateway sends")

    # -- commands -----------------------------------------------------------------------------------

    async def command(
        self, cmd: m.Command, *, attempts: int = COMMAND_ATTEMPTS, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        """Send ``cmd`` until the node answers (``attempts`` times, ``timeout_s`` apart); raise unless DONE."""
        name = self._node_name()
        if self._write is None or self.node is None:
            raise NodeUnavailable(name, "no node is announced on an open port")
        seq = self._next_cmd_seq()
        if seq in self._pending:
            raise NodeUnavailable(name, "256 commands are already waiting for an answer")
        wire = m.encode_message(cmd, seq)
        fut: asyncio.Future[m.ResultStatus] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut
        try:
            for _ in range(attempts):
                if self._write is None:
                    raise NodeUnavailable(name, "its serial port was lost")
                self._write(wire)
                try:
                    async with asyncio.timeout(timeout_s):  # not wait_for: see gateway/adapters/polling.py
                        status = await asyncio.shield(fut)
                except TimeoutError:
                    continue
                if status != m.ResultStatus.DONE:
                    raise CommandRefused(name, status)
                return
            raise CommandTimeout(name, attempts)
        finally:
            self._pending.pop(seq, None)
            if not fut.done():
                fut.cancel()

    # -- inside ---------------------------------------------------------------------------------------

    def _node_name(self) -> str:
        return self.node.node_id if self.node is not None else f"on {self.section.path}"

    def _next_cmd_seq(self) -> int:
        seq = self._cmd_seq
        self._cmd_seq = (seq + 1) & 0xFF
        return seq

    def _ack(self, seq: int, status: m.AckStatus) -> None:
        if self._write is not None:
            self._write(m.encode_message(m.Ack(status), seq))

    def _allowed(self, node_id: str) -> bool:
        return self.section.accept == "any" or node_id in self._pairing.paired

    def _on_announce(self, seq: int, msg: m.Announce) -> None:
        previous = self.node
        self.node = msg
        self._recent.clear()  # a new session: the node's sequence numbers may start again
        self._ack(seq, m.AckStatus.OK)
        if previous is None or previous.node_id != msg.node_id:
            _LOGGER.info(
                "Serial port %s: node %s announced (firmware %s, capabilities 0x%04x, %d outputs, every %d s)",
                self.section.path,
                msg.node_id,
                msg.firmware or "?",
                msg.capabilities,
                msg.outputs,
                msg.interval_s,
            )
        else:
            _LOGGER.debug("Serial port %s: node %s announced again", self.section.path, msg.node_id)
        if not self._allowed(msg.node_id):
            self._pairing.note_unknown(msg.node_id, f"serial {self.section.path}", 0)

    def _on_result(self, seq: int, status: m.ResultStatus) -> None:
        fut = self._pending.get(seq)
        if fut is None or fut.done():
            _LOGGER.debug(
                "Serial port %s: RESULT %s for seq %d: nobody waits for it", self.section.path, status.name, seq
            )
            return
        fut.set_result(status)

    async def _on_readings(self, frame: Frame, msg: m.Readings, now: float) -> None:
        node = self.node
        if node is None:
            self.announce_requests += 1
            self._ack(frame.seq, m.AckStatus.ANNOUNCE_FIRST)
            return
        if frame.seq in self._recent:
            self.duplicates += 1
            self._rejects.good()
            self._ack(frame.seq, m.AckStatus.OK)  # stored before; its ACK was lost
            return
        try:
            readings = m.decode_readings(msg.pack, sensor=node.node_id, now=now)
        except FrameError as exc:
            self._rejects.bad(exc.reason, f"READINGS seq {frame.seq} from {node.node_id}: {exc.detail}", msg.pack)
            self._ack(frame.seq, m.AckStatus.MALFORMED)
            return
        self._rejects.good()
        if not self._allowed(node.node_id):
            self._owner.rejected["unpaired"] += 1
            self._pairing.note_unknown(node.node_id, f"serial {self.section.path}", len(readings))
            self._ack(frame.seq, m.AckStatus.NOT_PAIRED)
            return
        try:
            await self._hub.publish(readings)
        except BufferFull:
            self._owner.rejected["buffer-full"] += 1
            self._ack(frame.seq, m.AckStatus.BUSY)
            return
        except Exception:  # not stored, not acknowledged: the node sends it again
            self._owner.rejected["internal"] += 1
            _LOGGER.exception("Serial port %s: storing READINGS from %s failed", self.section.path, node.node_id)
            return
        self._recent.append(frame.seq)
        self.accepted += len(readings)
        self._owner.accepted += len(readings)
        self._ack(frame.seq, m.AckStatus.OK)


def _type_name(type_: int) -> str:
    try:
        return m.MsgType(type_).name
    except ValueError:
        return f"type 0x{type_:02X}"
