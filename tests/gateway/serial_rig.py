"""A serial adapter with a real durable buffer behind a hub, and pty peers at the far end of the line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.adapters.serial.adapter import SerialAdapter
from gateway.adapters.serial.config import SerialPortSection
from gateway.buffer import DurableBuffer
from gateway.config import BufferSection
from gateway.hub import Hub, ReadingSink
from gateway.pairing import Pairing
from wire.reading import Reading


async def eventually(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Wait until ``cond()`` holds (polling), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    adapter: SerialAdapter
    buffer: DurableBuffer
    hub: Hub
    pairing: Pairing
    task: asyncio.Task[None]

    async def stored(self) -> list[Reading]:
        """Everything in the buffer now (taken and released, so it stays)."""
        batch = await self.buffer.take(100_000)
        if batch is None:
            return []
        self.buffer.release([batch.id])
        return batch.readings


def port(path: Path | str, **kw: object) -> SerialPortSection:
    kw.setdefault("reopen_initial_s", 0.05)
    kw.setdefault("reopen_max_s", 0.2)
    return SerialPortSection(path=str(path), **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def rig(
    tmp_path: Path,
    ports: Sequence[SerialPortSection],
    *,
    paired: Sequence[str] = (),
    wrap: Callable[[DurableBuffer], ReadingSink] | None = None,
) -> AsyncIterator[Rig]:
    async with DurableBuffer.from_config(tmp_path / "buf.sqlite", BufferSection()) as buffer:
        hub = Hub(wrap(buffer) if wrap is not None else buffer)
        pairing = Pairing(list(paired))
        adapter = SerialAdapter(ports, hub, pairing)
        task = asyncio.create_task(adapter.run())
        try:
            yield Rig(adapter, buffer, hub, pairing, task)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
