"""The DM agent's command dispatcher: once per request id, deadlines, clear statuses, isolation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.dm.commands import CommandFailed, Dispatcher, InvalidArguments
from wire.commands import Command


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def agent(clock: Clock) -> Dispatcher:
    d = Dispatcher(clock=clock, timeout_s=0.5)
    runs: list[dict[str, Any]] = []

    async def set_interval(args: dict[str, Any]) -> dict[str, Any]:
        seconds = args.get("seconds")
        if not isinstance(seconds, int) or seconds < 1:
            raise InvalidArguments("'seconds' must be a whole number of seconds, at least 1")
        runs.append(args)
        await asyncio.sleep(0.05)
        return {"interval_s": seconds, "runs": len(runs)}

    async def fail(args: dict[str, Any]) -> dict[str, Any]:
        raise CommandFailed("the radio is off")

    async def crash(args: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError

    async def hang(args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    d.register("set-interval", set_interval)
    d.register("fail", fail)
    d.register("crash", crash)
    d.register("hang", hang)
    return d


def _cmd(name: str, **kw: Any) -> bytes:
    return Command(command=name, **kw).encode()


async def test_a_command_runs_once_per_request_id_and_a_repeat_gets_the_first_result(agent: Dispatcher) -> None:
    payload = _cmd("set-interval", args={"seconds": 30})
    first, second = await asyncio.gather(agent.handle("req-00000001", payload), agent.handle("req-00000001", payload))
    assert first == second and first is not None
    assert first.status == "ok" and first.result == {"interval_s": 30, "runs": 1}
    third = await agent.handle("req-00000001", payload)
    assert third == first, "a repeat after the end gets the stored result, not a second run"
    other = await agent.handle("req-00000002", payload)
    assert other is not None and other.result["runs"] == 2
    assert agent.counts["repeat"] == 2


async def test_statuses_say_what_happened(agent: Dispatcher, clock: Clock) -> None:
    res = await agent.handle("req-bad-args", _cmd("set-interval", args={"seconds": "often"}))
    assert res is not None and res.status == "invalid" and "'seconds'" in str(res.error)
    res = await agent.handle("req-unknown1", _cmd("self-destruct"))
    assert res is not None and res.status == "unknown" and "set-interval" in str(res.error)
    res = await agent.handle("req-failing1", _cmd("fail"))
    assert res is not None and (res.status, res.error) == ("error", "the radio is off")
    res = await agent.handle("req-crashes1", _cmd("crash"))
    assert res is not None and res.status == "error" and "ZeroDivisionError" in str(res.error)
    res = await agent.handle("req-hanging1", _cmd("hang"))
    assert res is not None and res.status == "error" and "did not finish within" in str(res.error)
    res = await agent.handle("req-late-one", _cmd("set-interval", args={"seconds": 5}, deadline=clock.t - 30))
    assert res is not None and res.status == "expired" and "30 s after its deadline" in str(res.error)
    res = await agent.handle("req-garbage", b"not json")
    assert res is not None and res.status == "invalid"
    assert await agent.handle("bad id/with/levels", _cmd("fail")) is None


async def test_the_deadline_bounds_how_long_a_command_may_run(clock: Clock) -> None:
    d = Dispatcher(clock=clock, timeout_s=60)

    async def slow(args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    d.register("slow", slow)
    started = asyncio.get_running_loop().time()
    res = await d.handle("req-deadline", _cmd("slow", deadline=clock.t + 1.0))
    assert res is not None and res.status == "error"
    assert asyncio.get_running_loop().time() - started < 2.5
