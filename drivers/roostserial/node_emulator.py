"""An emulated Roost sensor node (docs/protocols/serial.md): the firmware's state machine, in Python, without I/O.

Feed it the gateway's bytes with :meth:`NodeEmulator.receive` and let time pass with
:meth:`NodeEmulator.tick`; both return the bytes the node sends back. The clock is whatever
``now`` the caller passes (seconds, monotonic), so tests can drive it by hand;
:class:`drivers.ptylink.PtyLink` runs it over a pty with the real clock.

What it does, like the firmware: announces at boot (and sends nothing else until that is
acknowledged); samples every ``interval_s`` into a bounded queue; keeps one READINGS frame in
flight and sends it again every ``retransmit_s`` until the gateway acknowledges it; re-announces
when told ``ANNOUNCE_FIRST`` or asked to IDENTIFY; obeys SET_INTERVAL, ACTUATE and REBOOT and
answers a repeated COMMAND with its earlier RESULT without acting twice.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.climate_emulator import ClimateSensor
from drivers.measurement import Measurement
from drivers.roostserial import messages as m
from drivers.roostserial.frame import DELIMITER, Deframer, Frame, FrameError

COMMAND_REPEAT_WINDOW_S = 10.0
"""A COMMAND with the same sequence number and bytes as the last one, this soon, is a retransmission."""

Sampler = Callable[[float], Sequence[Measurement]]


@dataclass(slots=True)
class _InFlight:
    seq: int
    wire: bytes
    retry_at: float
    sample: tuple[float, tuple[Measurement, ...]] | None  # None: the ANNOUNCE


@dataclass(slots=True)
class NodeEmulator:
    """One node; the public attributes are what a test or the demo looks at."""

    node_id: str
    firmware: str = "1.0.0"
    interval_s: int = 1
    outputs: int = 2
    capabilities: int = m.Capability.SET_INTERVAL | m.Capability.ACTUATE | m.Capability.REBOOT
    retransmit_s: float = 0.5
    busy_backoff_s: float = 5.0
    queue_limit: int = 16
    sampler: Sampler | None = None
    """Measurements at a time; by default a drifting climate (temperature, humidity, pressure)."""
    seed: int | None = None

    output_values: dict[int, int] = field(default_factory=dict)
    commands: list[m.Command] = field(default_factory=list)
    """Commands acted on, in order (a repeated COMMAND is not acted on twice)."""
    acked: list[tuple[int, m.AckStatus, float]] = field(default_factory=list)
    """(seq, status, when) of every ACK taken (bounded: the last 1000)."""
    acked_readings: int = 0
    """Measurements the gateway acknowledged as stored."""
    retransmits: int = 0
    dropped_samples: int = 0
    refused_frames: int = 0
    repeated_commands: int = 0
    reboots: int = 0
    lose_acks: int = 0
    """Set > 0 to ignore that many matching ACKs (as if lost on the wire): the node sends again."""
    errors: Counter[str] = field(default_factory=Counter)

    _deframer: Deframer = field(default_factory=Deframer, init=False, repr=False)
    _queue: deque[tuple[float, tuple[Measurement, ...]]] = field(default_factory=deque, init=False, repr=False)
    _seq: int = field(default=0, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _announced: bool = field(default=False, init=False, repr=False)
    _want_announce: bool = field(default=True, init=False, repr=False)
    _inflight: _InFlight | None = field(default=None, init=False, repr=False)
    _next_sample: float = field(default=0.0, init=False, repr=False)
    _last_command: tuple[int, bytes, float, bytes] | None = field(default=None, init=False, repr=False)
    _climate: ClimateSensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.interval_s, bool)
            or not isinstance(self.interval_s, int)
            or not 0 <= self.interval_s <= 0xFFFF
        ):
            raise ValueError(f"interval_s must be whole seconds 0..65535 (the protocol's u16), not {self.interval_s!r}")

    @property
    def announced(self) -> bool:
        """True once the gateway acknowledged this boot's ANNOUNCE."""
        return self._announced

    @property
    def pending(self) -> int:
        """Samples not yet acknowledged (queued and in flight)."""
        return len(self._queue) + (1 if self._inflight is not None and self._inflight.sample else 0)

    def queue_sample(self, now: float, measurements: Sequence[Measurement] | None = None) -> None:
        """Queue one sample (the sampler's, or ``measurements``) taken at ``now``; the oldest goes when full."""
        if measurements is None:
            measurements = self._sample(now)
        if len(self._queue) >= self.queue_limit:
            self._queue.popleft()
            self.dropped_samples += 1
        self._queue.append((now, tuple(measurements)))

    def tick(self, now: float) -> bytes:
        """Let time pass: boot, sample on the interval, retransmit on timeout; the bytes to send."""
        out = b""
        if not self._started:
            self._started = True
            self._next_sample = now + self.interval_s if self.interval_s else float("inf")
            out += DELIMITER  # ends whatever partial frame the gateway holds
        if now >= self._next_sample:
            self.queue_sample(now)
            # a node that fell far behind (suspended test) samples once, not in a burst
            self._next_sample = max(self._next_sample + self.interval_s, now)
        inflight = self._inflight
        if inflight is not None and now >= inflight.retry_at:
            self.retransmits += 1
            inflight.retry_at = now + self.retransmit_s
            out += inflight.wire
        return out + self._pump(now)

    def receive(self, data: bytes, now: float) -> bytes:
        """Take bytes from the gateway; the bytes the node answers with."""
        out = b""
        for item in self._deframer.feed(data):
            if isinstance(item, FrameError):
                self.errors[item.reason] += 1
                continue
            try:
                msg = m.decode_message(item)
            except FrameError as exc:
                self.errors[exc.reason] += 1
                continue
            if isinstance(msg, m.Ack):
                self._on_ack(item.seq, msg.status, now)
            elif isinstance(msg, m.SetInterval | m.Actuate | m.Reboot | m.Identify):
                out += self._on_command(item, msg, now)
            else:
                self.errors["unexpected"] += 1
        return out + self._pump(now)

    # -- inside the node -------------------------------------------------------------------------

    def _sample(self, now: float) -> Sequence[Measurement]:
        if self.sampler is not None:
            return self.sampler(now)
        if self._climate is None:
            self._climate = ClimateSensor(self.node_id, seed=self.seed)
        return [Measurement(r.metric, r.value, r.unit) for r in self._climate.sample(now)]

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        return seq

    def _send(self, msg: m.Message, now: float, sample: tuple[float, tuple[Measurement, ...]] | None) -> bytes:
        seq = self._next_seq()
        wire = m.encode_message(msg, seq)
        self._inflight = _InFlight(seq, wire, now + self.retransmit_s, sample)
        return wire

    def _pump(self, now: float) -> bytes:
        if self._inflight is not None or not self._started:
            return b""
        if self._want_announce or not self._announced:
            announce = m.Announce(self.node_id, self.firmware, self.capabilities, self.outputs, self.interval_s)
            return self._send(announce, now, None)
        if self._queue:
            sample = self._queue.popleft()
            return self._send(_readings(sample, now), now, sample)
        return b""

    def _on_ack(self, seq: int, status: m.AckStatus, now: float) -> None:
        inflight = self._inflight
        if inflight is None or inflight.seq != seq:
            self.errors["stale-ack"] += 1
            return
        if self.lose_acks > 0:
            self.lose_acks -= 1
            return
        self.acked.append((seq, status, now))
        del self.acked[:-1000]
        if status == m.AckStatus.BUSY:
            inflight.retry_at = now + self.busy_backoff_s
            return
        self._inflight = None
        if status == m.AckStatus.OK:
            if inflight.sample is None:
                self._announced = True
                self._want_announce = False
            else:
                self.acked_readings += len(inflight.sample[1])
        elif status == m.AckStatus.ANNOUNCE_FIRST:
            self._announced = False
            if inflight.sample is not None:
                self._queue.appendleft(inflight.sample)  # not stored: send it again after announcing
        else:  # MALFORMED, NOT_PAIRED: sending it again would not help
            self.refused_frames += 1

    def _on_command(self, frame: Frame, cmd: m.Command, now: float) -> bytes:
        last = self._last_command
        repeated = last is not None and last[0] == frame.seq and last[1] == frame.payload
        if last is not None and repeated and now - last[2] < COMMAND_REPEAT_WINDOW_S:
            self.repeated_commands += 1
            return last[3]  # our RESULT was lost: answer again, do not act twice
        status = self._act(cmd, now)
        answer = m.encode_message(m.Result(status), frame.seq)
        self._last_command = (frame.seq, frame.payload, now, answer)
        if isinstance(cmd, m.Reboot) and status == m.ResultStatus.DONE:
            self._reboot()
        inflight = self._inflight
        if isinstance(cmd, m.Identify) and inflight is not None and inflight.sample is None:
            # already announcing (the gateway may have missed it while opening the port): at once
            self.retransmits += 1
            inflight.retry_at = now + self.retransmit_s
            return answer + inflight.wire
        return answer

    def _act(self, cmd: m.Command, now: float) -> m.ResultStatus:
        if isinstance(cmd, m.SetInterval):
            if not self.capabilities & m.Capability.SET_INTERVAL:
                return m.ResultStatus.UNKNOWN_COMMAND
            if cmd.seconds == 0:
                return m.ResultStatus.BAD_ARGUMENT
            self.interval_s = cmd.seconds
            self._next_sample = min(self._next_sample, now + cmd.seconds)
        elif isinstance(cmd, m.Actuate):
            if not self.capabilities & m.Capability.ACTUATE:
                return m.ResultStatus.UNKNOWN_COMMAND
            if cmd.output >= self.outputs:
                return m.ResultStatus.BAD_ARGUMENT
            self.output_values[cmd.output] = cmd.value
        elif isinstance(cmd, m.Reboot):
            if not self.capabilities & m.Capability.REBOOT:
                return m.ResultStatus.UNKNOWN_COMMAND
        else:  # Identify: announce once nothing is in flight
            self._want_announce = True
        self.commands.append(cmd)
        return m.ResultStatus.DONE

    def _reboot(self) -> None:
        # RAM is gone: queue, in-flight frame, sequence numbers; the next tick boots
        self.reboots += 1
        self._queue.clear()
        self._inflight = None
        self._seq = 0
        self._started = False
        self._announced = False
        self._want_announce = True
        self._last_command = None
        self._deframer.reset()


def _readings(sample: tuple[float, tuple[Measurement, ...]], now: float) -> m.Readings:
    taken, measurements = sample
    records: list[dict[int, Any]] = []
    age = round(taken - now, 3)
    for i, (metric, value, unit) in enumerate(measurements):
        rec: dict[int, Any] = {0: metric}
        if unit:
            rec[1] = unit
        if value is True or value is False:
            rec[4] = value
        elif isinstance(value, str):
            rec[3] = value
        else:
            rec[2] = value
        if i == 0 and age < 0:
            rec[-3] = age  # base time, relative: "this long ago"
        records.append(rec)
    return m.encode_readings(records)
