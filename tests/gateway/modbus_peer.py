"""A Modbus RTU server run by pymodbus itself at the far end of a serial line made of two ptys.

pymodbus's serial server opens a port by its path, and so does the gateway's client: two ptys
give two paths, and a small copy task joins their master sides. The bridge can cut the line (the
unit goes silent) or drop the next few requests (so retries can be seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Sequence

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType


class PtyBridge:
    """Two ptys whose master sides are joined: ``client_path`` <-> ``server_path``."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self.cut = False
        """Drop everything in both directions (a unit that stopped answering, a broken wire)."""
        self.drop_requests = 0
        """Drop this many of the next chunks the client writes."""
        self.absent: set[int] = set()
        """Unit ids whose requests never reach the server (a unit that is not on the line)."""
        self.requests = 0
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Make the ptys and start copying."""
        self._loop = asyncio.get_running_loop()
        self._client_master, client_slave = os.openpty()
        self._server_master, server_slave = os.openpty()
        self._fds = [self._client_master, client_slave, self._server_master, server_slave]
        for fd in (client_slave, server_slave):
            tty.setraw(fd)
        for fd in (self._client_master, self._server_master):
            os.set_blocking(fd, False)
        self.client_path = os.ttyname(client_slave)
        self.server_path = os.ttyname(server_slave)
        self._loop.add_reader(self._client_master, self._copy, self._client_master, self._server_master, True)
        self._loop.add_reader(self._server_master, self._copy, self._server_master, self._client_master, False)

    def _copy(self, src: int, dst: int, request: bool) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if request:
            self.requests += 1
            if data[:1] and data[0] in self.absent:
                self.dropped += 1
                return
            if self.drop_requests > 0:
                self.drop_requests -= 1
                self.dropped += 1
                return
        if self.cut:
            self.dropped += 1
            return
        with contextlib.suppress(OSError):
            os.write(dst, data)

    def close(self) -> None:
        """Stop copying and close every pty."""
        if self._loop is not None:
            for fd in (self._client_master, self._server_master):
                self._loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


def registers(address: int, values: Sequence[int]) -> SimData:
    """Raw 16-bit registers from ``address`` on."""
    return SimData(address, values=list(values), datatype=DataType.REGISTERS)


def bits(address: int, values: Sequence[bool]) -> SimData:
    """Coils or discrete inputs from ``address`` on."""
    return SimData(address, values=list(values), datatype=DataType.BITS)


def unit(
    unit_id: int,
    *,
    coils: Sequence[SimData] = (),
    discrete: Sequence[SimData] = (),
    holding: Sequence[SimData] = (),
    inputs: Sequence[SimData] = (),
) -> SimDevice:
    """A unit with four separate tables; addresses not listed answer exception 2 (illegal data address)."""
    tables = (list(coils) or [bits(60000, [False])], list(discrete) or [bits(60000, [False])])
    return SimDevice(
        unit_id,
        simdata=(
            *tables,
            list(holding) or [registers(60000, [0])],
            list(inputs) or [registers(60000, [0])],
        ),
    )


class RtuServer:
    """pymodbus's own RTU server on ``path``, serving ``units``.

    pymodbus 3.16 answers exception 4 for a unit it does not serve, even with ``ignore_missing_devices``,
    where a real line stays silent: use the bridge's ``absent`` to take a unit off the line.
    """

    def __init__(self, path: str, units: Sequence[SimDevice]) -> None:
        self.path = path
        self.units = list(units)
        self._server: ModbusSerialServer | None = None

    async def start(self) -> None:
        """Open the port and serve in the background."""
        self._server = ModbusSerialServer(
            self.units,
            framer=FramerType.RTU,
            port=self.path,
            baudrate=19200,
            parity="N",  # a pty refuses parity settings (tcsetattr EINVAL); real lines default to even
            stopbits=1,
            ignore_missing_devices=True,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
