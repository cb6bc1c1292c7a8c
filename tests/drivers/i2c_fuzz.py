"""An I2C bus that answers every read with bytes hypothesis chooses: for fuzzing drivers' decode paths."""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Sequence

from hypothesis import strategies as st
from smbus2 import i2c_msg

I2C_M_RD = 0x0001


class FuzzBus:
    """Every read returns drawn bytes; now and then a transfer fails with a drawn errno."""

    def __init__(self, data: st.DataObject, *, first_bytes: Sequence[int] = (), errors: bool = True) -> None:
        self.data = data
        self.scripted = list(first_bytes)  # bytes returned first (e.g. a valid chip id), then drawn ones
        self.errors = errors
        self.transfers = 0

    def _maybe_fail(self) -> None:
        self.transfers += 1
        if self.errors and self.data.draw(st.integers(0, 19), label="fail?") == 0:
            code = self.data.draw(
                st.sampled_from([errno.EREMOTEIO, errno.ENXIO, errno.ETIMEDOUT, errno.EIO, errno.EBUSY])
            )
            raise OSError(code, "fuzz")

    def _bytes(self, length: int) -> list[int]:
        self._maybe_fail()
        out = [self.scripted.pop(0) for _ in range(min(length, len(self.scripted)))]
        rest = length - len(out)
        return out + list(self.data.draw(st.binary(min_size=rest, max_size=rest), label="bytes"))

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._maybe_fail()

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._bytes(1)[0]

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._bytes(1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._maybe_fail()

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        return self._bytes(length)

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self._maybe_fail()

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        for msg in i2c_msgs:
            if msg.flags & I2C_M_RD:
                ctypes.memmove(msg.buf, bytes(self._bytes(msg.len)), msg.len)
            else:
                self._maybe_fail()


class CountingSleep:
    """A sleep that only adds up what it was asked to wait (for fuzzing: no real waiting)."""

    def __init__(self) -> None:
        self.total = 0.0

    def __call__(self, seconds: float) -> None:
        self.total += seconds
