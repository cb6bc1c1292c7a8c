"""The DM agent's command journal: request ids seen, kept on disk so a reboot does not run a command twice.

The cloud sends a command again when it did not see the result (the gateway rebooted before publishing
it, the link dropped). In memory the dispatcher answers such a repeat with the first result; this journal
makes that hold across a real reboot or a power cut. It is a JSON-lines file in the state folder
(``dm/commands.jsonl``, mode 0600), one line per event, fsynced before the command runs and after it ends:

* ``{"start": ID, "command": NAME, "at": T}``: written *before* the handler runs;
* ``{"result": {...}}``: the result as published on ``cmd-result/{ID}``.

A request id with a start line and no result line was cut short (the power went, the daemon was killed):
a repeat is answered ``error`` ("interrupted by a restart; not run again") rather than run a second time,
because a command such as ``reboot`` or ``update`` may have done its work already. At most-once, as the
wire contract promises. The file keeps the last :data:`KEEP` request ids: it is rewritten (temporary file,
fsync, rename) when it holds twice that many lines. A line that does not parse (a cut at the last write)
is skipped and counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from wire.commands import Result, decode_result
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)
KEEP = 1000
JOURNAL_FILE = "commands.jsonl"
MAX_LINE = 70 * 1024
INTERRUPTED = "interrupted by a restart of the gateway (power cut or crash) while it ran; not run again"


class CommandJournal:
    """Append-only record of commands started and finished, compacted as it grows."""

    def __init__(self, path: Path, keep: int = KEEP) -> None:
        self.path = path
        self.keep = keep
        self.skipped = 0
        self._lines = 0
        self._fd: int | None = None

    def load(self) -> tuple[OrderedDict[str, Result], dict[str, str]]:
        """(finished results by request id, oldest first; request ids started and never finished -> command)."""
        done: OrderedDict[str, Result] = OrderedDict()
        started: dict[str, str] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return done, started
        except OSError as exc:
            _LOGGER.warning(
                "dm: cannot read the command journal %s (%s): repeats are known from now on only", self.path, exc
            )
            return done, started
        for line in raw.splitlines():
            self._lines += 1
            entry = _parse(line)
            if entry is None:
                self.skipped += 1
                continue
            if isinstance(entry, Result):
                started.pop(entry.request_id, None)
                done.pop(entry.request_id, None)
                done[entry.request_id] = entry
            else:
                started[entry[0]] = entry[1]
        while len(done) > self.keep:
            done.popitem(last=False)
        if self.skipped:
            _LOGGER.warning("dm: %d unreadable line(s) in %s were skipped (a write cut short)", self.skipped, self.path)
        return done, started

    def started(self, request_id: str, command: str, at: float) -> None:
        """Note that ``request_id`` is about to run (durable before the handler starts)."""
        self._append({"start": request_id, "command": command, "at": at})

    def finished(self, result: Result, done: list[Result]) -> None:
        """Note ``result`` (durable before it is published); compact when the file has grown."""
        self._append({"result": json.loads(result.encode())})
        if self._lines > 2 * self.keep:
            self._compact(done)

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), default=str).encode()
        if len(line) > MAX_LINE:  # a huge result (fetched logs): keep that it ran, not what it said
            result = entry.get("result")
            if isinstance(result, dict):
                result = {**result, "result": {"note": "the result was too large to keep for repeats"}}
                line = json.dumps({"result": result}, separators=(",", ":"), default=str).encode()
        try:
            fd = self._open()
            os.write(fd, line + b"\n")
            os.fsync(fd)
            self._lines += 1
        except OSError as exc:  # a full or read-only disk: the command still runs, repeats rely on memory
            _LOGGER.warning("dm: cannot write the command journal %s: %s", self.path, exc)
            self.close()

    def _compact(self, done: list[Result]) -> None:
        keep = done[-self.keep :]
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                os.chmod(tmp, 0o600)
                for result in keep:
                    f.write(json.dumps({"result": json.loads(result.encode())}, separators=(",", ":")).encode())
                    f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            self.close()
            os.replace(tmp, self.path)
            dirfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
            self._lines = len(keep)
        except OSError as exc:
            _LOGGER.warning("dm: cannot compact the command journal %s: %s", self.path, exc)


def _parse(line: bytes) -> Result | tuple[str, str] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("start"), str):
        return doc["start"], str(doc.get("command", ""))
    result = doc.get("result")
    if isinstance(result, dict):
        try:
            return decode_result(json.dumps(result).encode())
        except PayloadError:
            return None
    return None
