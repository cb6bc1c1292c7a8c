"""The command journal: a request id runs at most once across restarts of the daemon (and power cuts)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.dm.commands import Dispatcher
from gateway.dm.journal import INTERRUPTED, CommandJournal
from wire.commands import Command


def _agent(journal: Path, runs: list[str], *, keep: int = 1000) -> Dispatcher:
    d = Dispatcher(timeout_s=2)

    async def reboot(args: dict[str, Any]) -> dict[str, Any]:
        runs.append("reboot")
        return {"rebooting": True}

    async def hang(args: dict[str, Any]) -> dict[str, Any]:
        runs.append("hang")
        await asyncio.sleep(30)
        return {}

    d.register("reboot", reboot)
    d.register("hang", hang)
    d.use_journal(CommandJournal(journal, keep=keep))
    return d


CMD = Command(command="reboot").encode()


async def test_a_repeat_after_a_restart_gets_the_first_result_and_does_not_run_again(tmp_path: Path) -> None:
    path = tmp_path / "dm" / "commands.jsonl"
    runs: list[str] = []
    first = await _agent(path, runs).handle("req-00000001", CMD)
    assert first is not None and first.status == "ok" and runs == ["reboot"]
    assert path.stat().st_mode & 0o777 == 0o600

    again = await _agent(path, runs).handle("req-00000001", CMD)  # a new process: only the file remembers
    assert again == first and runs == ["reboot"]
    other = await _agent(path, runs).handle("req-00000002", CMD)
    assert other is not None and other.status == "ok" and runs == ["reboot", "reboot"]


async def test_a_command_cut_short_by_a_power_cut_is_not_run_again(tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    runs: list[str] = []
    agent = _agent(path, runs)
    task = asyncio.create_task(agent.handle("req-hanging1", Command(command="hang").encode()))
    for _ in range(100):
        if runs:
            break
        await asyncio.sleep(0.01)
    task.cancel()  # as far as the file can tell, the process died here: a start line and no result
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [{"start": "req-hanging1", "command": "hang", "at": lines[0]["at"]}]

    runs.clear()
    after = await _agent(path, runs).handle("req-hanging1", Command(command="hang").encode())
    assert after is not None and after.status == "error" and INTERRUPTED in (after.error or "")
    assert after.error is not None and after.error.startswith("hang: ")
    assert runs == [], "not run a second time"
    # The interrupted answer is itself journaled: the next process gives the same one.
    again = await _agent(path, runs).handle("req-hanging1", Command(command="hang").encode())
    assert again == after and runs == []


async def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    runs: list[str] = []
    first = await _agent(path, runs).handle("req-00000001", CMD)
    with path.open("ab") as f:
        f.write(b'{"result": {"request_id": "req-0000')  # the power went during this write
    journal = CommandJournal(path)
    done, started = journal.load()
    assert list(done) == ["req-00000001"] and done["req-00000001"] == first and started == {}
    assert journal.skipped == 1


async def test_the_journal_is_compacted_to_the_last_results(tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    runs: list[str] = []
    agent = _agent(path, runs, keep=5)
    for i in range(12):
        await agent.handle(f"req-{i:08d}", CMD)
    lines = path.read_text().splitlines()
    assert len(lines) <= 2 * 5 + 2, "rewritten once it held twice what it keeps"
    done, _ = CommandJournal(path, keep=5).load()
    assert list(done) == [f"req-{i:08d}" for i in range(7, 12)]
    runs.clear()
    assert (await _agent(path, runs, keep=5).handle("req-00000011", CMD)) is not None and runs == []


async def test_a_journal_that_cannot_be_written_does_not_stop_commands(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal's folder should be")
    runs: list[str] = []
    result = await _agent(blocker / "commands.jsonl", runs).handle("req-00000001", CMD)
    assert result is not None and result.status == "ok" and runs == ["reboot"]


async def test_forget_after_a_wipe_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    runs: list[str] = []
    agent = _agent(path, runs)
    await agent.handle("req-00000001", CMD)
    path.unlink()  # the wipe erased it
    agent.forget()
    await agent.handle("req-00000001", CMD)
    assert runs == ["reboot", "reboot"] and path.exists()
