"""Run a long-lived coroutine until SIGINT or SIGTERM, then let it shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable


def run_until_signal(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main()``; the first SIGINT/SIGTERM cancels it (its finally blocks do the clean shutdown)."""

    async def _wrapper() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(main())
        stopping = False

        def _stop() -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop)
        try:
            await task
        except asyncio.CancelledError:
            if not stopping:
                raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        return 0

    return asyncio.run(_wrapper())
