"""One Modbus RTU line (a serial port, often RS-485) shared by its units: one client, one request at a time.

Modbus RTU is half-duplex and has no transaction ids: an answer is matched to the request only by
coming next, so the units on a line take turns under one lock. pymodbus does the framing; this
module opens (and reopens) the port, sends each request up to ``1 + retries`` times, and turns what
comes back into values, :class:`SlaveException` (the unit answered with an exception code) or
:class:`NoAnswer`. It counts requests, timeouts, retries and exceptions for health reports.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Sequence

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from drivers.modbus_map import BIT_KINDS, ReadBlock

_LOGGER = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge (busy with a long command)",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


def _quiet_pymodbus() -> None:
    # pymodbus logs an ERROR line for every request that goes unanswered; the poller logs the
    # unit's transitions once instead (a WARNING when it goes away, INFO when it is back).
    lib = logging.getLogger("pymodbus")
    if lib.level == logging.NOTSET:
        lib.setLevel(logging.CRITICAL)


class ModbusError(Exception):
    """Root of what a line raises; the message is meant for a technician."""


class PortError(ModbusError):
    """The serial port cannot be opened (missing, busy, no permission)."""


class NoAnswer(ModbusError):
    """The unit did not answer a request, retries included."""


class SlaveException(ModbusError):
    """The unit answered a request with a Modbus exception (``code``: 2 illegal data address, ...)."""

    def __init__(self, code: int, block: ReadBlock, unit: int) -> None:
        self.code = code
        self.name = EXCEPTION_NAMES.get(code, "unknown exception")
        what = "bit" if block.kind in BIT_KINDS else "register"
        span = f"{block.count} {what}{'s' if block.count != 1 else ''}"
        super().__init__(
            f"unit {unit} answered exception {code} ({self.name}) to reading {block.kind} {block.address} ({span})"
        )


class ModbusLine:
    """A serial port and the pymodbus client on it, shared by every unit configured on that port."""

    def __init__(self, path: str, *, baud: int, parity: str, stopbits: int, timeout_s: float) -> None:
        _quiet_pymodbus()
        self.path = path
        self._settings = {"baudrate": baud, "parity": parity, "stopbits": stopbits, "bytesize": 8}
        self.timeout_s = timeout_s
        self._client: AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self.requests = 0
        self.answers = 0
        self.timeouts = 0
        self.retries = 0
        self.bad_answers = 0
        self.opens = 0
        self.exceptions: Counter[int] = Counter()
        self.last_open_error = ""

    def stats(self) -> dict[str, object]:
        """Counters for health reports."""
        return {
            "connected": self._client is not None and self._client.connected,
            "requests": self.requests,
            "answers": self.answers,
            "timeouts": self.timeouts,
            "retries": self.retries,
            "bad_answers": self.bad_answers,
            "exceptions": {f"{c} {EXCEPTION_NAMES.get(c, '?')}": n for c, n in sorted(self.exceptions.items())},
            "opens": self.opens,
            "last_open_error": self.last_open_error,
        }

    async def read(self, block: ReadBlock, unit: int, *, retries: int) -> Sequence[int] | Sequence[bool]:
        """Read ``block`` from ``unit``: its registers (or bits); raises SlaveException, NoAnswer or PortError."""
        async with self._lock:
            problem = "no answer"
            for attempt in range(retries + 1):
                if attempt:
                    self.retries += 1
                client = await self._open()
                self.requests += 1
                try:
                    async with asyncio.timeout(self.timeout_s + 1.0):  # not wait_for: see gateway/adapters/polling.py
                        response = await self._request(client, block, unit)
                except (ModbusIOException, TimeoutError) as exc:
                    # pymodbus raises ModbusIOException both for silence and for an answer from the wrong unit
                    if "No response" in str(exc) or isinstance(exc, TimeoutError):
                        self.timeouts += 1
                        problem = f"no answer within {self.timeout_s:g} s"
                    else:
                        self.bad_answers += 1
                        problem = f"a bad answer ({exc})"
                    continue
                except ConnectionException as exc:
                    self.close()
                    raise PortError(f"{self.path}: the port went away ({exc})") from exc
                except ModbusException as exc:
                    self.bad_answers += 1
                    problem = f"a bad answer ({exc})"
                    continue
                if response.isError():
                    code = int(getattr(response, "exception_code", 0))
                    self.answers += 1
                    self.exceptions[code] += 1
                    raise SlaveException(code, block, unit)
                values: Sequence[int] | Sequence[bool] = (
                    list(response.bits[: block.count]) if block.kind in BIT_KINDS else list(response.registers)
                )
                if len(values) != block.count:
                    self.bad_answers += 1
                    problem = f"an answer with {len(values)} values for {block.count} asked"
                    continue
                self.answers += 1
                return values
            tries = "1 try" if retries == 0 else f"{retries + 1} tries"
            raise NoAnswer(f"unit {unit} on {self.path}: {problem} ({tries})")

    async def _open(self) -> AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = AsyncModbusSerialClient(
            self.path,
            framer=FramerType.RTU,
            timeout=self.timeout_s,
            retries=0,  # retries are counted here, one request at a time
            reconnect_delay=0,  # the poller's backoff decides when to try again
            name=f"modbus {self.path}",
            **self._settings,  # type: ignore[arg-type]
        )
        self.opens += 1
        try:
            ok = await client.connect()
        except Exception as exc:  # pyserial's errors vary by platform; all mean "cannot open"
            client.close()
            self.last_open_error = str(exc)
            raise PortError(f"cannot open {self.path}: {exc}") from exc
        if not ok:
            client.close()
            self.last_open_error = _why_not(self.path)
            raise PortError(f"cannot open {self.path}: {self.last_open_error}")
        self.last_open_error = ""
        self._client = client
        _LOGGER.debug("Modbus line %s open", self.path)
        return client

    @staticmethod
    async def _request(client: AsyncModbusSerialClient, block: ReadBlock, unit: int) -> ModbusPDU:
        if block.kind == "holding":
            return await client.read_holding_registers(block.address, count=block.count, device_id=unit)
        if block.kind == "input":
            return await client.read_input_registers(block.address, count=block.count, device_id=unit)
        if block.kind == "coil":
            return await client.read_coils(block.address, count=block.count, device_id=unit)
        return await client.read_discrete_inputs(block.address, count=block.count, device_id=unit)

    def close(self) -> None:
        """Close the port (it is opened again by the next request)."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _why_not(path: str) -> str:
    """A guess at why a port did not open (pymodbus only says that it did not)."""
    if not os.path.exists(path):
        return "no such device (unplugged? check the path, a /dev/serial/by-id/... link is stable)"
    if not os.access(path, os.R_OK | os.W_OK):
        return "permission denied (the gateway's user needs the dialout group)"
    return "busy or not a serial port (another program has it open?)"
