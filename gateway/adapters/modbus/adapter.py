"""The Modbus adapter: each configured unit is a polled device of the shared poller.

Readings: sensor ``{name}-{unit}`` (the line's name, by default the device file's, like
``ttyUSB0-1``; or the table's ``sensor``), metric = the register's ``name``, unit = its ``unit``.

A poll reads the unit's register map in as few requests as :func:`drivers.modbus_map.plan_reads`
allows. What the unit refuses is reported per register: an exception answer (illegal data address,
...) for a request that covers several values makes the unit's values be read one by one from then
on, so one bad address in a map costs only its own value. A poll fails (and counts towards
``unavailable``) when the unit does not answer its first request, or when no value at all came back.
Every register incident is logged once (WARNING), its end once (INFO), and reported in ``stats()``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from drivers.measurement import Measurement
from drivers.modbus_map import ReadBlock, RegisterDef, RegisterValueError, decode, plan_reads, single_reads
from gateway.adapters.modbus.config import ModbusPortSection
from gateway.adapters.modbus.line import ModbusLine, NoAnswer, SlaveException
from gateway.adapters.polling import Poller
from gateway.hub import Hub

_LOGGER = logging.getLogger(__name__)

_SPLIT_CODES = (2, 3)
"""Exception codes that say "not this range" (illegal data address, illegal data value)."""


class ModbusPollError(Exception):
    """A poll that brought back no value at all."""


class ModbusUnit:
    """One unit on a line, polled as one device: its sensor id, interval and register map."""

    def __init__(self, config: ModbusPortSection, line: ModbusLine) -> None:
        self.config = config
        self.line = line
        self.unit = config.unit
        self.sensor = config.sensor_id
        self.interval_s = config.interval_s
        self.defs: tuple[RegisterDef, ...] = tuple(r.definition() for r in config.registers)
        self.blocks: list[ReadBlock] = plan_reads(self.defs, max_registers=config.max_read, max_gap=config.max_gap)
        self.register_errors: dict[str, str] = {}
        """The register incidents going on: register name -> what is wrong."""
        self.register_failures: Counter[str] = Counter()
        """Failed reads per register since start."""
        self.splits = 0

    @property
    def worst_poll_s(self) -> float:
        """The longest a poll can take when every request times out and every block is split."""
        requests = len(self.blocks) + len(self.defs)
        return requests * (self.config.retries + 1) * (self.line.timeout_s + 0.1)

    async def poll(self) -> Sequence[Measurement]:
        """Read every register once; raise NoAnswer/PortError/ModbusPollError when nothing came back."""
        out: list[Measurement] = []
        failed: dict[str, str] = {}
        answered = False
        planned: list[ReadBlock] = []
        split: list[ReadBlock] = []
        pending = list(self.blocks)
        for _ in range(len(self.blocks) + len(self.defs)):  # bounded: each block is read once, or split once
            if not pending:
                break
            block = pending.pop(0)
            try:
                data = await self.line.read(block, self.unit, retries=self.config.retries)
            except SlaveException as exc:
                answered = True
                if len(block.defs) > 1 and exc.code in _SPLIT_CODES:
                    self.splits += 1
                    _LOGGER.info(
                        "%s: %s; reading the values of %s %d-%d one by one to find the one it refuses",
                        self.sensor,
                        exc,
                        block.kind,
                        block.address,
                        block.address + block.count - 1,
                    )
                    singles = single_reads(block)
                    split.extend(singles)
                    pending[:0] = singles
                    continue
                planned.append(block)
                failed.update((d.name, str(exc)) for d in block.defs)
                continue
            except NoAnswer:
                if not answered:
                    self.blocks = [*planned, block, *pending]
                    raise  # the unit is silent: the poller counts it, and marks it unavailable after N
                planned.append(block)
                failed.update((d.name, f"no answer to reading {block.kind} {block.address}") for d in block.defs)
                continue
            answered = True
            planned.append(block)
            for d in block.defs:
                try:
                    out.append(Measurement(d.name, decode(d, block.values(data, d)), d.unit))
                except RegisterValueError as exc:
                    failed[d.name] = str(exc)
        self.blocks = planned + pending
        if split:
            self._replan(split, failed)
        self._note(failed)
        if not out and failed:
            first = next(iter(failed.values()))
            raise ModbusPollError(f"no value came back ({len(failed)} registers failed; first: {first})")
        return out

    def _replan(self, singles: list[ReadBlock], failed: dict[str, str]) -> None:
        """After a split: join the values that read well again (without gaps), keep the refused ones alone."""
        was_split = set(singles)
        good = [b.defs[0] for b in singles if b.defs[0].name not in failed]
        refused = [b for b in singles if b.defs[0].name in failed]
        rest = [b for b in self.blocks if b not in was_split]
        self.blocks = rest + plan_reads(good, max_registers=self.config.max_read, max_gap=0) + refused

    def _note(self, failed: dict[str, str]) -> None:
        for name, problem in failed.items():
            self.register_failures[name] += 1
            if self.register_errors.get(name) != problem:
                _LOGGER.warning("%s:%s cannot be read: %s", self.sensor, name, problem)
            self.register_errors[name] = problem
        for name in [n for n in self.register_errors if n not in failed]:
            del self.register_errors[name]
            _LOGGER.info("%s:%s reads again", self.sensor, name)

    def stats(self) -> dict[str, object]:
        """What this unit's registers are doing."""
        return {
            "requests_per_poll": len(self.blocks),
            "split_requests": self.splits,
            "register_errors": dict(self.register_errors),
            "register_failures": dict(self.register_failures),
        }


class ModbusAdapter(Poller):
    """Polls every configured Modbus unit; units on one port share its line."""

    def __init__(
        self,
        units: Sequence[ModbusPortSection],
        hub: Hub,
        *,
        fail_threshold: int = 3,
        backoff_max_s: float = 300.0,
    ) -> None:
        self.lines: dict[str, ModbusLine] = {}
        devices: list[ModbusUnit] = []
        for u in units:
            line = self.lines.get(u.path)
            if line is None:
                baud, parity, stopbits = u.serial_settings()
                line = ModbusLine(u.path, baud=baud, parity=parity, stopbits=stopbits, timeout_s=u.timeout_s)
                self.lines[u.path] = line
            devices.append(ModbusUnit(u, line))
        self.units = devices
        # A poll may wait for the other units on its line before its own requests go out.
        per_line: dict[str, float] = {}
        for d in devices:
            per_line[d.line.path] = per_line.get(d.line.path, 0.0) + d.worst_poll_s
        poll_timeout = max([5.0, *(s + 1.0 for s in per_line.values())])
        super().__init__(
            "modbus",
            hub,
            devices,
            fail_threshold=fail_threshold,
            backoff_max_s=backoff_max_s,
            poll_timeout_s=poll_timeout,
        )

    async def run(self) -> None:
        """Poll until cancelled, then close the ports."""
        try:
            await super().run()
        finally:
            for line in self.lines.values():
                line.close()

    def stats(self) -> dict[str, object]:
        """The poller's counters, each line's and each unit's register incidents."""
        out = super().stats()
        out["lines"] = {path: line.stats() for path, line in self.lines.items()}
        out["units"] = {u.sensor: u.stats() for u in self.units}
        return out
