"""Commands to a gateway and their results: ``cmd/{request_id}`` and ``cmd-result/{request_id}``.

A command (cloud -> gateway, QoS 1, JSON)::

    {"command": "rotate-credentials", "args": {}, "deadline": 1764100030.0, "issued_by": "operator:acme/olga"}

A result (gateway -> cloud, QoS 1, JSON)::

    {"request_id": "c0ffee...", "status": "ok", "result": {...}, "error": null, "finished": 1764100001.5}

``status``: ``ok``; ``error`` (the command ran and failed: ``error`` says why); ``unknown`` (the gateway
has no such command); ``invalid`` (bad arguments); ``expired`` (it arrived after its deadline and was
not run). The request id is the topic's last level; a gateway runs each request id at most once and
answers a repeat with the first result (commands are idempotent by request id).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from wire.errors import PayloadError

Status = Literal["ok", "error", "unknown", "invalid", "expired"]
STATUSES: tuple[str, ...] = ("ok", "error", "unknown", "invalid", "expired")
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
COMMAND_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
MAX_PAYLOAD = 64 * 1024


def check_request_id(request_id: str) -> str:
    """A request id is 8-64 characters of ``A-Z a-z 0-9 _ -`` (a safe topic level); ValueError otherwise."""
    if not REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"request id {request_id[:70]!r} must be 8-64 characters of A-Z a-z 0-9 _ -")
    return request_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One command to a gateway."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    """Seconds since the epoch after which the gateway must not run it (None: no deadline)."""
    issued_by: str = ""

    def encode(self) -> bytes:
        """The JSON payload."""
        return json.dumps(
            {"command": self.command, "args": self.args, "deadline": self.deadline, "issued_by": self.issued_by},
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A gateway's answer to one command."""

    request_id: str
    status: Status
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    finished: float = 0.0

    def encode(self) -> bytes:
        """The JSON payload."""
        return json.dumps(
            {
                "request_id": self.request_id,
                "status": self.status,
                "result": self.result,
                "error": self.error,
                "finished": self.finished,
            },
            separators=(",", ":"),
            default=str,
        ).encode()


def json_object(payload: bytes, what: str, limit: int = MAX_PAYLOAD) -> dict[str, Any]:
    """``payload`` as a JSON object of at most ``limit`` bytes; PayloadError naming ``what`` otherwise."""
    if len(payload) > limit:
        raise PayloadError(f"a {what} is at most {limit} bytes, not {len(payload)}")
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"a {what} must be a JSON object: {exc}") from exc
    if not isinstance(doc, dict):
        raise PayloadError(f"a {what} must be a JSON object")
    return doc


def decode_command(payload: bytes) -> Command:
    """Decode a command; PayloadError naming the field that is wrong."""
    doc = json_object(payload, "command")
    unknown = set(doc) - {"command", "args", "deadline", "issued_by"}
    if unknown:
        raise PayloadError(f"command: unknown field(s) {sorted(unknown)}")
    name = doc.get("command")
    if not isinstance(name, str) or not COMMAND_NAME.fullmatch(name):
        raise PayloadError("command: 'command' must be a name like 'rotate-credentials'")
    args = doc.get("args", {})
    if not isinstance(args, dict):
        raise PayloadError("command: 'args' must be a JSON object")
    deadline = doc.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline)
    ):
        raise PayloadError("command: 'deadline' must be seconds since the epoch, or null")
    issued_by = doc.get("issued_by", "")
    if not isinstance(issued_by, str):
        raise PayloadError("command: 'issued_by' must be a string")
    return Command(command=name, args=args, deadline=None if deadline is None else float(deadline), issued_by=issued_by)


def decode_result(payload: bytes) -> Result:
    """Decode a command result; PayloadError naming the field that is wrong."""
    doc = json_object(payload, "command result")
    request_id = doc.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise PayloadError("command result: 'request_id' is missing or not a request id")
    status = doc.get("status")
    if status not in STATUSES:
        raise PayloadError(f"command result: 'status' must be one of {list(STATUSES)}")
    result = doc.get("result") or {}
    if not isinstance(result, dict):
        raise PayloadError("command result: 'result' must be a JSON object")
    error = doc.get("error")
    if error is not None and not isinstance(error, str):
        raise PayloadError("command result: 'error' must be a string or null")
    finished = doc.get("finished", 0.0)
    if isinstance(finished, bool) or not isinstance(finished, int | float):
        raise PayloadError("command result: 'finished' must be a number")
    return Result(request_id=request_id, status=status, result=result, error=error, finished=float(finished))
