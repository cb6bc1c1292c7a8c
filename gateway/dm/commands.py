"""Run commands from the cloud, each request id at most once, within its deadline, with a clear result.

The dispatcher is transport-free: the uplink hands it each ``cmd/{request_id}`` payload and publishes
what it returns on ``cmd-result/{request_id}``. Handlers are registered by name
(``rotate-credentials``, ``report-state``, ...); each takes the command's arguments and returns a
JSON-ready dict, or raises :class:`CommandFailed` (status ``error``) or :class:`InvalidArguments`
(status ``invalid``). A repeat of a request id (the cloud resends when it did not see the result)
gets the first result again, not a second run; a request still running is answered when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.dm.journal import INTERRUPTED, CommandJournal
from wire.commands import Result, check_request_id, decode_command
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
REMEMBERED = 1000
"""Results kept to answer repeats (the oldest go first)."""
DEFAULT_TIMEOUT_S = 120.0


class CommandFailed(Exception):
    """A command ran and failed; the message is what the operator reads."""


class InvalidArguments(CommandFailed):
    """The command's arguments are wrong; the message names the argument."""


class Dispatcher:
    """Commands by name, run once per request id."""

    def __init__(self, *, clock: Callable[[], float] = time.time, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._handlers: dict[str, Handler] = {}
        self._timeouts: dict[str, float] = {}
        self._clock = clock
        self._timeout_s = timeout_s
        self._done: OrderedDict[str, Result] = OrderedDict()
        self._running: dict[str, asyncio.Future[Result]] = {}
        self._interrupted: dict[str, str] = {}
        self._journal: CommandJournal | None = None
        self.counts: dict[str, int] = {}

    def use_journal(self, journal: CommandJournal) -> None:
        """Keep request ids on disk (docs/device-management.md): repeats after a reboot are not run again."""
        done, self._interrupted = journal.load()
        self._done.update(done)
        self._journal = journal
        if self._interrupted:
            _LOGGER.warning(
                "dm: %d command(s) were cut short by a restart and will not run again: %s",
                len(self._interrupted),
                ", ".join(f"{c} ({r})" for r, c in self._interrupted.items()),
            )

    def forget(self) -> None:
        """Forget every request id (a wipe erased the journal with the rest of the state)."""
        self._done.clear()
        self._interrupted.clear()
        if self._journal is not None:
            self._journal.close()

    def register(self, name: str, handler: Handler, *, timeout_s: float | None = None) -> None:
        """Offer command ``name`` (``timeout_s``: its own longest run, e.g. a software update's)."""
        self._handlers[name] = handler
        if timeout_s is not None:
            self._timeouts[name] = timeout_s

    @property
    def commands(self) -> list[str]:
        """The command names this gateway offers."""
        return sorted(self._handlers)

    def _count(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    async def handle(self, request_id: str, payload: bytes) -> Result | None:
        """Run one command (or answer a repeat); None when the request id itself is unusable."""
        try:
            check_request_id(request_id)
        except ValueError as exc:
            _LOGGER.warning("Ignoring a command: %s", exc)
            self._count("bad-request-id")
            return None
        if request_id in self._done:
            self._count("repeat")
            return self._done[request_id]
        running = self._running.get(request_id)
        if running is not None:
            self._count("repeat")
            return await asyncio.shield(running)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._running[request_id] = future
        try:
            result = await self._run_once(request_id, payload)
            future.set_result(result)
        except BaseException as exc:  # cancelled (shutdown): the waiters of a repeat get the same end
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._running.pop(request_id, None)
        self._done[request_id] = result
        while len(self._done) > REMEMBERED:
            self._done.popitem(last=False)
        if self._journal is not None:
            await asyncio.to_thread(self._journal.finished, result, list(self._done.values()))
        self._count(result.status)
        return result

    async def _run_once(self, request_id: str, payload: bytes) -> Result:
        """Run it, with the journal's start line written first; a start without a result was cut short."""
        command = self._interrupted.pop(request_id, None)
        if command is not None:
            self._count("interrupted")
            error = f"{command}: {INTERRUPTED}"
            return Result(request_id=request_id, status="error", error=error, finished=self._clock())
        if self._journal is not None:
            await asyncio.to_thread(self._journal.started, request_id, _name_of(payload), self._clock())
        return await self._run(request_id, payload)

    async def _run(self, request_id: str, payload: bytes) -> Result:
        def answer(status: Any, error: str | None = None, result: dict[str, Any] | None = None) -> Result:
            return Result(
                request_id=request_id, status=status, result=result or {}, error=error, finished=self._clock()
            )

        try:
            cmd = decode_command(payload)
        except PayloadError as exc:
            return answer("invalid", str(exc))
        now = self._clock()
        if cmd.deadline is not None and now > cmd.deadline:
            _LOGGER.warning("Command %s (%s) arrived %.0f s after its deadline: not run", cmd.command, request_id,
                            now - cmd.deadline)  # fmt: skip
            return answer("expired", f"arrived {now - cmd.deadline:.0f} s after its deadline; not run")
        handler = self._handlers.get(cmd.command)
        if handler is None:
            return answer("unknown", f"this gateway has no command {cmd.command!r}; it has: {', '.join(self.commands)}")
        limit = self._timeouts.get(cmd.command, self._timeout_s)
        timeout = limit if cmd.deadline is None else max(1.0, min(limit, cmd.deadline - now))
        log_fields = {"request_id": request_id}  # journal field REQUEST_ID
        _LOGGER.info("Running command %s (%s) from %s", cmd.command, request_id, cmd.issued_by or "the cloud",
                     extra=log_fields)  # fmt: skip
        try:
            async with asyncio.timeout(timeout):
                out = await handler(cmd.args)
        except InvalidArguments as exc:
            return answer("invalid", str(exc))
        except CommandFailed as exc:
            _LOGGER.warning("Command %s (%s) failed: %s", cmd.command, request_id, exc, extra=log_fields)
            return answer("error", str(exc))
        except TimeoutError:
            return answer("error", f"did not finish within {timeout:.0f} s")
        except Exception as exc:  # a handler's bug is the command's failure, never the agent's end
            _LOGGER.exception("Command %s (%s) failed unexpectedly", cmd.command, request_id, extra=log_fields)
            return answer("error", f"failed unexpectedly: {exc!r}")
        return answer("ok", result=out)


def _name_of(payload: bytes) -> str:
    """The command's name for the journal (the payload is decoded properly later)."""
    try:
        return decode_command(payload).command
    except PayloadError:
        return "(not a command)"
