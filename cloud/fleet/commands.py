"""Commands to gateways: sent on ``cmd/{request_id}``, resent until answered or past their deadline.

Each command is a row in ``fleet.sqlite`` (next to the store): who sent what to which gateway, when, its
deadline, and the gateway's result once it arrives on ``cmd-result/{request_id}``. Delivery is at least
once (QoS 1, and a resend every ``RESEND_S`` while the command is pending: the gateway may have been
offline); the gateway runs each request id at most once and answers a repeat with its stored result.
A command with no result by its deadline is ``timeout``. Only the gateway a command went to may answer
it (its principal must match the topic's tenant and gateway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.authz import Principal
from cloud.broker.base import MessageBroker
from cloud.fleet.sqlitedb import FleetTables
from wire import topics
from wire.commands import Command, decode_result
from wire.errors import PayloadError

_LOGGER = logging.getLogger(__name__)

RESEND_S = 10.0
MAX_TIMEOUT_S = 30 * 86400.0
"""The longest deadline (a wipe queued for a revoked gateway); the API lets operators ask for a day at most."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    request_id TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    gateway    TEXT NOT NULL,
    command    TEXT NOT NULL,
    args       TEXT NOT NULL,
    issued_by  TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    deadline   REAL NOT NULL,
    status     TEXT NOT NULL,
    result     TEXT,
    error      TEXT,
    finished   REAL,
    sends      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS commands_by_gateway ON commands (tenant, gateway, issued_at);
"""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command and, once answered, its result."""

    request_id: str
    tenant: str
    gateway: str
    command: str
    args: dict[str, Any]
    issued_by: str
    issued_at: float
    deadline: float
    status: str
    """pending, ok, error, unknown, invalid, expired (all as the gateway said), or timeout."""
    result: dict[str, Any] | None
    error: str | None
    finished: float | None
    sends: int

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "gateway": self.gateway,
            "command": self.command,
            "args": self.args,
            "issued_by": self.issued_by,
            "issued_at": self.issued_at,
            "deadline": self.deadline,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "finished": self.finished,
            "sends": self.sends,
        }


SECRET_KEYS = frozenset(
    {"psk", "password", "secret", "token", "refresh_token", "access_token", "claim_token", "key", "bind_key"}
)


def redact(value: Any) -> Any:
    """``value`` with the values of secret-looking keys (a Wi-Fi PSK, a password) replaced: what is recorded."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in SECRET_KEYS and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _record(row: tuple[Any, ...], now: float) -> CommandRecord:
    rid, tenant, gw, command, args, issued_by, issued_at, deadline, status, result, error, finished, sends = row
    if status == "pending" and now > deadline:
        status = "timeout"
    return CommandRecord(
        rid, tenant, gw, command, json.loads(args), issued_by, issued_at, deadline, status,
        json.loads(result) if result else None, error, finished, sends,
    )  # fmt: skip


class CommandCenter(FleetTables):
    """Sends commands through the broker and records their results."""

    SCHEMA = SCHEMA
    WHAT = "the command tables"

    def __init__(self, path: Path, broker: MessageBroker, *, resend_s: float = RESEND_S) -> None:
        super().__init__(path)
        self._broker = broker
        self._resend_s = resend_s
        self._background: set[asyncio.Task[None]] = set()
        self._answered: dict[str, asyncio.Event] = {}
        self._kicks: dict[tuple[str, str], asyncio.Event] = {}
        self.results = 0
        self.refused_results = 0

    # -- life cycle ------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop resending and close the database."""
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        await super().close()

    # -- sending ---------------------------------------------------------------------------------------------------

    async def send(
        self, tenant: str, gateway: str, command: str, args: dict[str, Any], *, timeout_s: float, issued_by: str
    ) -> CommandRecord:
        """Record and publish a command; it is resent every ``resend_s`` until answered or past its deadline."""
        if not 1.0 <= timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be between 1 and {MAX_TIMEOUT_S:.0f} seconds")
        topic = topics.topic(tenant, gateway, "cmd", "placeholder")  # checks the tenant and gateway ids
        rid = secrets.token_hex(12)
        now = time.time()
        cmd = Command(command=command, args=args, deadline=now + timeout_s, issued_by=issued_by)
        payload = cmd.encode()  # also checks that the args are JSON
        await self._run(
            "INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, NULL, 0)",
            (rid, tenant, gateway, command, json.dumps(redact(args)), issued_by, now, now + timeout_s),
        )
        topic = topic.rsplit("/", 1)[0] + "/" + rid
        self._answered[rid] = asyncio.Event()
        task = asyncio.create_task(
            self._deliver(rid, topic, payload, now + timeout_s, (tenant, gateway)), name=f"command {rid}"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        _LOGGER.info("command %s (%s) to %s/%s by %s", command, rid, tenant, gateway, issued_by)
        found = await self.get(tenant, gateway, rid)
        assert found is not None
        return found

    def kick(self, tenant: str, gateway: str) -> None:
        """The gateway is (back) online: send its pending commands now rather than at the next resend."""
        event = self._kicks.get((tenant, gateway))
        if event is not None:
            event.set()

    async def _deliver(
        self, rid: str, topic: str, payload: bytes, deadline: float, who: tuple[str, str] | None = None
    ) -> None:
        answered = self._answered[rid]
        kick = self._kicks.setdefault(who, asyncio.Event()) if who is not None else asyncio.Event()
        try:
            while not answered.is_set() and time.time() < deadline:
                try:
                    await self._broker.publish(topic, payload, qos=1)
                    await self._run("UPDATE commands SET sends = sends + 1 WHERE request_id = ?", (rid,))
                except Exception as exc:  # the broker may be stopping: try again at the next resend
                    _LOGGER.warning("cannot publish command %s: %s", rid, exc)
                wait = max(0.0, min(self._resend_s, deadline - time.time()))
                kick.clear()
                kicked = asyncio.ensure_future(kick.wait())
                done = asyncio.ensure_future(answered.wait())
                try:
                    await asyncio.wait([kicked, done], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    kicked.cancel()
                    done.cancel()
        finally:
            self._answered.pop(rid, None)

    # -- results ---------------------------------------------------------------------------------------------------

    def on_result(self, topic: topics.Topic, payload: bytes, principal: Principal | None) -> None:
        """A publish on a ``cmd-result`` topic (from the ingest); handled in the background."""
        if (
            principal is None
            or principal.kind != "gateway"
            or (principal.tenant, principal.id) != (topic.tenant, topic.gateway)
        ):
            self.refused_results += 1
            _LOGGER.warning("command result on %s from a client that is not that gateway: ignored", topic)
            return
        task = asyncio.get_running_loop().create_task(self._result(topic, payload))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _result(self, topic: topics.Topic, payload: bytes) -> None:
        try:
            res = decode_result(payload)
        except PayloadError as exc:
            self.refused_results += 1
            _LOGGER.warning("bad command result from %s/%s: %s", topic.tenant, topic.gateway, exc)
            return
        if res.request_id != topic.tail:
            self.refused_results += 1
            _LOGGER.warning("command result for %s arrived on %s: ignored", res.request_id, topic)
            return
        await self._run(
            "UPDATE commands SET status = ?, result = ?, error = ?, finished = ? "
            "WHERE request_id = ? AND tenant = ? AND gateway = ? AND status = 'pending'",
            (res.status, json.dumps(res.result), res.error, res.finished or time.time(),
             res.request_id, topic.tenant, topic.gateway),
        )  # fmt: skip
        self.results += 1
        event = self._answered.get(res.request_id)
        if event is not None:
            event.set()

    # -- reading ---------------------------------------------------------------------------------------------------

    async def get(self, tenant: str, gateway: str, request_id: str) -> CommandRecord | None:
        """One command of a gateway, or None."""
        rows = await self._run(
            "SELECT * FROM commands WHERE request_id = ? AND tenant = ? AND gateway = ?", (request_id, tenant, gateway)
        )
        return _record(rows[0], time.time()) if rows else None

    async def wait(self, tenant: str, gateway: str, request_id: str, timeout: float) -> CommandRecord | None:
        """The command once it is no longer pending, or as it is after ``timeout`` seconds."""
        event = self._answered.get(request_id)
        if event is not None:
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await event.wait()
            except TimeoutError:
                pass
        return await self.get(tenant, gateway, request_id)

    async def recent(self, tenant: str, gateway: str | None = None, limit: int = 100) -> list[CommandRecord]:
        """The newest commands of a tenant (or of one gateway)."""
        rows = await self._run(
            "SELECT * FROM commands WHERE tenant = ?1 AND (?2 IS NULL OR gateway = ?2) "
            "ORDER BY issued_at DESC, request_id DESC LIMIT ?3",  # a total order: the API pages by position
            (tenant, gateway, limit),
        )
        now = time.time()
        return [_record(r, now) for r in rows]
