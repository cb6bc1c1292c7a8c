"""Update campaigns: one bundle rolled out to the gateways a selector picks, in stages, halting on failures.

A campaign fixes its gateways when it is created (the selector's pick, capped), puts them in a deterministic
order (by the SHA-256 of campaign id and gateway id, so each campaign has its own canaries and a restart
finds the same order) and cuts that order into stages by cumulative percentage: stages ``[1, 10, 100]`` of
10 gateways are gateways 1, 2 and 3-10 (a stage has at least one gateway while any are left).

The runner sends each gateway of the current stage the DM command ``update`` ``{"url", "sha256"}`` through
the command center, follows each answer until the stage's deadline (``stage_timeout_s`` from the stage's
start) and, when the campaign asks for it, waits for the gateway to report the bundle's version afterwards.
Per gateway: ``pending`` (not sent), ``sent``, ``updated`` (answered ok, its new version not reported yet),
``ok``, ``failed`` (with the reason: the command's error, ``timeout``, no version reported) or
``rolled-back`` (it reports the version it had before). As soon as failed plus rolled-back gateways exceed
``failure_threshold`` of the stage, the campaign halts (the reason recorded and audited) and no later stage
is sent; when the whole stage ends within the threshold the next one starts.

State is in ``fleet.sqlite`` (tables ``campaigns`` and ``campaign_targets``); a cloud that restarts resumes
every running campaign where it was: sent commands are followed by their request ids, not sent again (the
command center no longer resends them after a restart: QoS 1 delivered them once).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud.fleet.commands import CommandRecord
from cloud.fleet.sqlitedb import FleetTables

_LOGGER = logging.getLogger(__name__)

MAX_STAGES = 10
POLL_S = 1.0
BAD = frozenset({"failed", "rolled-back"})
DONE = frozenset({"ok"}) | BAD
SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    bundle            TEXT NOT NULL,
    version           TEXT NOT NULL,
    sha256            TEXT NOT NULL,
    base_url          TEXT NOT NULL,
    selector          TEXT NOT NULL,
    stages            TEXT NOT NULL,
    failure_threshold REAL NOT NULL,
    stage_timeout_s   REAL NOT NULL,
    confirm_version   INTEGER NOT NULL,
    state             TEXT NOT NULL,
    stage             INTEGER NOT NULL,
    stage_started     REAL,
    reason            TEXT,
    created_by        TEXT NOT NULL,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    force             INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS campaign_targets (
    campaign   TEXT NOT NULL,
    gateway    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    stage      INTEGER NOT NULL,
    status     TEXT NOT NULL,
    request_id TEXT,
    reason     TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (campaign, gateway)
);
"""


class CampaignError(ValueError):
    """A campaign that cannot be made as asked (the message says why)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    """What an operator asks for."""

    tenant: str
    bundle: str
    version: str
    sha256: str
    base_url: str
    stages: tuple[int, ...] = (1, 10, 100)
    failure_threshold: float = 0.2
    stage_timeout_s: float = 1800.0
    confirm_version: bool = True
    selector: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""
    force: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.stages) <= MAX_STAGES:
            raise CampaignError(f"stages: 1 to {MAX_STAGES} percentages")
        if any(not 0 < p <= 100 for p in self.stages) or list(self.stages) != sorted(set(self.stages)):
            raise CampaignError("stages: increasing percentages between 1 and 100")
        if self.stages[-1] != 100:
            raise CampaignError("stages: the last stage must be 100 (every selected gateway)")
        if not 0.0 <= self.failure_threshold < 1.0:
            raise CampaignError("failure_threshold: a fraction from 0 (halt on any failure) to below 1")
        if not 1.0 <= self.stage_timeout_s <= 7 * 86400.0:
            raise CampaignError("stage_timeout_s: 1 second to 7 days")


@dataclass(frozen=True, slots=True)
class Target:
    """One gateway of a campaign."""

    gateway: str
    position: int
    stage: int
    status: str
    request_id: str | None
    reason: str | None
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {
            "gateway": self.gateway, "position": self.position, "stage": self.stage, "status": self.status,
            "request_id": self.request_id, "reason": self.reason, "updated_at": self.updated_at,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign and where it stands."""

    id: str
    spec: CampaignSpec
    state: str
    """running, halted or completed."""
    stage: int
    stage_started: float | None
    reason: str | None
    created_at: float
    updated_at: float

    def as_dict(self, targets: Sequence[Target] = ()) -> dict[str, Any]:
        """The API's JSON form, with per-gateway progress when ``targets`` are given."""
        s = self.spec
        counts: dict[str, int] = {}
        for t in targets:
            counts[t.status] = counts.get(t.status, 0) + 1
        return {
            "id": self.id, "tenant": s.tenant, "bundle": s.bundle, "version": s.version, "sha256": s.sha256,
            "selector": s.selector, "stages": list(s.stages), "failure_threshold": s.failure_threshold,
            "stage_timeout_s": s.stage_timeout_s, "confirm_version": s.confirm_version, "force": s.force,
            "state": self.state,
            "stage": self.stage, "stage_started": self.stage_started, "reason": self.reason,
            "created_by": s.created_by, "created_at": self.created_at, "updated_at": self.updated_at,
            "summary": counts, "gateways": [t.as_dict() for t in targets],
        }  # fmt: skip


def order(campaign_id: str, gateways: Sequence[str]) -> list[str]:
    """The campaign's order of its gateways: deterministic for a campaign, different between campaigns."""
    return sorted(set(gateways), key=lambda g: (hashlib.sha256(f"{campaign_id}/{g}".encode()).hexdigest(), g))


def stage_ends(count: int, stages: Sequence[int]) -> list[int]:
    """Where each stage ends in the order (cumulative): at least one more gateway a stage while any are left."""
    ends: list[int] = []
    done = 0
    for pct in stages:
        end = min(count, max(math.ceil(count * pct / 100), done + 1))
        ends.append(end)
        done = end
    return ends


def stage_of(count: int, stages: Sequence[int]) -> list[int]:
    """The stage of each position in the order."""
    out: list[int] = []
    for i, end in enumerate(stage_ends(count, stages)):
        out.extend([i] * (end - len(out)))
    return out


class CommandSender(Protocol):
    """What the runner needs of the command center."""

    async def send(
        self, tenant: str, gateway: str, command: str, args: dict[str, Any], *, timeout_s: float, issued_by: str
    ) -> CommandRecord:
        """Send a command; its record (with the request id)."""
        ...

    async def wait(self, tenant: str, gateway: str, request_id: str, timeout: float) -> CommandRecord | None:
        """The command once answered, or as it is after ``timeout``."""
        ...


VersionOf = Callable[[str, str], Awaitable[str | None]]
Audit = Callable[[str, str, str, str, dict[str, Any]], Awaitable[None]]
Link = Callable[[Campaign], str]


def _campaign(row: tuple[Any, ...]) -> Campaign:
    (cid, tenant, bundle, version, sha256, base_url, selector, stages, threshold, timeout_s, confirm, state, stage,
     stage_started, reason, created_by, created_at, updated_at, force) = row  # fmt: skip
    spec = CampaignSpec(
        tenant=tenant, bundle=bundle, version=version, sha256=sha256, base_url=base_url,
        stages=tuple(json.loads(stages)), failure_threshold=threshold, stage_timeout_s=timeout_s,
        confirm_version=bool(confirm), selector=json.loads(selector), created_by=created_by, force=bool(force),
    )  # fmt: skip
    return Campaign(cid, spec, state, stage, stage_started, reason, created_at, updated_at)


class CampaignDB(FleetTables):
    """The campaign tables in ``fleet.sqlite``."""

    SCHEMA = SCHEMA
    WHAT = "the campaign tables"

    async def create(self, spec: CampaignSpec, gateways: Sequence[str]) -> Campaign:
        """Record a new running campaign over ``gateways`` (at least one)."""
        if not gateways:
            raise CampaignError("the selector picks no gateway")
        cid = "c-" + secrets.token_hex(8)
        ordered = order(cid, gateways)
        stages = stage_of(len(ordered), spec.stages)
        now = time.time()
        db = self._db
        if db is None:
            raise RuntimeError("the campaign tables are not open")

        def _tx() -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO campaigns VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 0, NULL, NULL, ?, ?, ?, ?)",
                    (cid, spec.tenant, spec.bundle, spec.version, spec.sha256, spec.base_url,
                     json.dumps(spec.selector), json.dumps(list(spec.stages)), spec.failure_threshold,
                     spec.stage_timeout_s, int(spec.confirm_version), spec.created_by, now, now, int(spec.force)),
                )  # fmt: skip
                db.executemany(
                    "INSERT INTO campaign_targets VALUES (?, ?, ?, ?, 'pending', NULL, NULL, ?)",
                    [(cid, gw, i, stages[i], now) for i, gw in enumerate(ordered)],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        async with self._lock:
            await asyncio.to_thread(_tx)
        found = await self.get(spec.tenant, cid)
        assert found is not None
        return found

    async def get(self, tenant: str | None, cid: str) -> Campaign | None:
        """One campaign (of ``tenant`` when given), or None."""
        rows = await self._run("SELECT * FROM campaigns WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)", (cid, tenant))
        return _campaign(rows[0]) if rows else None

    async def find(self, tenant: str | None = None, state: str | None = None) -> list[Campaign]:
        """Campaigns, newest first (of a tenant, in a state, when given)."""
        rows = await self._run(
            "SELECT * FROM campaigns WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR state = ?2) "
            "ORDER BY created_at DESC, id DESC LIMIT 1000",  # a total order: the API pages by position
            (tenant, state),
        )
        return [_campaign(r) for r in rows]

    async def targets(self, cid: str) -> list[Target]:
        """The campaign's gateways in its order."""
        rows = await self._run(
            "SELECT gateway, position, stage, status, request_id, reason, updated_at FROM campaign_targets "
            "WHERE campaign = ? ORDER BY position",
            (cid,),
        )
        return [Target(*r) for r in rows]

    async def set_target(
        self, cid: str, gateway: str, status: str, *, request_id: str | None = None, reason: str | None = None
    ) -> None:
        """Record a gateway's progress (the request id is kept when not given)."""
        await self._run(
            "UPDATE campaign_targets SET status = ?, request_id = COALESCE(?, request_id), reason = ?, updated_at = ? "
            "WHERE campaign = ? AND gateway = ?",
            (status, request_id, reason, time.time(), cid, gateway),
        )

    async def set_state(
        self, cid: str, state: str, *, reason: str | None = None, stage: int | None = None, only_running: bool = True
    ) -> bool:
        """Move a campaign on; False when it was no longer running (and ``only_running``)."""
        now = time.time()
        rows = await self._run(
            "UPDATE campaigns SET state = ?, reason = COALESCE(?, reason), stage = COALESCE(?, stage), "
            "stage_started = CASE WHEN ? IS NULL THEN stage_started ELSE NULL END, updated_at = ? "
            "WHERE id = ? AND (? = 0 OR state = 'running') RETURNING id",
            (state, reason, stage, stage, now, cid, int(only_running)),
        )
        return bool(rows)

    async def resume(self, cid: str, *, retry_failed: bool, failure_threshold: float | None, reason: str) -> int:
        """Set a halted campaign running again from its stage (which starts afresh); the gateways put back to send.

        With ``retry_failed``, the current stage's failed and rolled-back gateways are sent the update again
        (under new request ids); a new ``failure_threshold`` replaces the campaign's. -1: it was not halted.
        """
        db = self._db
        if db is None:
            raise RuntimeError("the campaign tables are not open")
        now = time.time()

        def _tx() -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT state, stage FROM campaigns WHERE id = ?", (cid,)).fetchone()
                if row is None or row[0] != "halted":
                    db.execute("ROLLBACK")
                    return -1
                db.execute(
                    "UPDATE campaigns SET state = 'running', reason = ?, stage_started = NULL, "
                    "failure_threshold = COALESCE(?, failure_threshold), updated_at = ? WHERE id = ?",
                    (reason, failure_threshold, now, cid),
                )
                retried = 0
                if retry_failed:
                    retried = db.execute(
                        "UPDATE campaign_targets SET status = 'pending', request_id = NULL, reason = NULL, "
                        "updated_at = ? WHERE campaign = ? AND stage = ? AND status IN ('failed', 'rolled-back')",
                        (now, cid, row[1]),
                    ).rowcount
                db.execute("COMMIT")
                return int(retried)
            except BaseException:
                db.execute("ROLLBACK")
                raise

        async with self._lock:
            return await asyncio.to_thread(_tx)

    async def start_stage(self, cid: str) -> float:
        """The current stage's start (set now if it had none): its deadline counts from it."""
        now = time.time()
        await self._run("UPDATE campaigns SET stage_started = ? WHERE id = ? AND stage_started IS NULL", (now, cid))
        rows = await self._run("SELECT stage_started FROM campaigns WHERE id = ?", (cid,))
        return float(rows[0][0])


class _StageHalt(Exception):  # control flow inside the runner, never escapes it
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CampaignRunner:
    """Runs every running campaign in tasks of its own; resumes them after a restart."""

    def __init__(
        self,
        db: CampaignDB,
        sender: CommandSender,
        *,
        link: Link,
        version_of: VersionOf,
        audit: Audit,
        poll_s: float = POLL_S,
    ) -> None:
        self.db = db
        self._sender = sender
        self._link = link
        self._version_of = version_of
        self._audit = audit
        self._poll_s = poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Resume every running campaign."""
        for c in await self.db.find(state="running"):
            self._spawn(c.id)

    async def close(self) -> None:
        """Stop the campaigns' tasks (their state stays in the database: the next start resumes them)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def _spawn(self, cid: str) -> None:
        if cid in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(cid), name=f"campaign {cid}")
        self._tasks[cid] = task
        task.add_done_callback(lambda _t: self._tasks.pop(cid, None))

    async def create(self, spec: CampaignSpec, gateways: Sequence[str]) -> Campaign:
        """Record a campaign, audit it, start it."""
        campaign = await self.db.create(spec, gateways)
        await self._audit(
            spec.tenant, spec.created_by, "campaign-created", campaign.id,
            {"bundle": spec.bundle, "version": spec.version, "gateways": len(gateways), "stages": list(spec.stages),
             "failure_threshold": spec.failure_threshold, "selector": spec.selector},
        )  # fmt: skip
        self._spawn(campaign.id)
        return campaign

    async def halt(self, tenant: str, cid: str, *, by: str, reason: str) -> Campaign | None:
        """Halt a running campaign by hand; the campaign as it is now (None: no such campaign)."""
        campaign = await self.db.get(tenant, cid)
        if campaign is None:
            return None
        if await self.db.set_state(cid, "halted", reason=reason):
            task = self._tasks.get(cid)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
            await self._audit(tenant, by, "campaign-halted", cid, {"reason": reason, "stage": campaign.stage})
        return await self.db.get(tenant, cid)

    async def resume(
        self, tenant: str, cid: str, *, by: str, retry_failed: bool = False, failure_threshold: float | None = None
    ) -> Campaign | None:
        """Set a halted campaign running again from the stage it halted in; None: no such campaign.

        CampaignError when it is not halted, or the new threshold is out of range. Without ``retry_failed``
        or a higher ``failure_threshold``, a campaign halted by its failures halts again at once.
        """
        campaign = await self.db.get(tenant, cid)
        if campaign is None:
            return None
        if failure_threshold is not None and not 0.0 <= failure_threshold < 1.0:
            raise CampaignError("failure_threshold: a fraction from 0 (halt on any failure) to below 1")
        if campaign.state != "halted":
            raise CampaignError(f"campaign {cid} is {campaign.state}: only a halted campaign can be resumed")
        if retry_failed:  # answers that came in after the halt: a failure among them is retried too
            for t in await self.db.targets(cid):
                if t.stage != campaign.stage or t.status != "sent" or t.request_id is None:
                    continue
                rec = await self._sender.wait(tenant, t.gateway, t.request_id, 0.0)
                if rec is not None and rec.status not in {"pending", "ok"}:
                    reason = f"{rec.status}: {rec.error or 'no reason given'}"
                    await self.db.set_target(cid, t.gateway, "failed", reason=reason)
        retried = await self.db.resume(
            cid, retry_failed=retry_failed, failure_threshold=failure_threshold, reason=f"resumed by {by}"
        )
        if retried < 0:
            raise CampaignError(f"campaign {cid} is no longer halted")
        await self._audit(
            tenant, by, "campaign-resumed", cid,
            {"stage": campaign.stage, "retried": retried, "failure_threshold": failure_threshold,
             "halted_because": campaign.reason},
        )  # fmt: skip
        self._spawn(cid)
        return await self.db.get(tenant, cid)

    async def wait(self, cid: str, timeout: float) -> None:
        """Until the campaign's task ends (tests), or ``timeout``."""
        task = self._tasks.get(cid)
        if task is not None:
            await asyncio.wait([task], timeout=timeout)

    # -- the run -------------------------------------------------------------------------------------------------

    async def _run(self, cid: str) -> None:
        try:
            for _ in range(MAX_STAGES + 1):
                campaign = await self.db.get(None, cid)
                if campaign is None or campaign.state != "running":
                    return
                who = f"campaign:{cid}"
                if campaign.stage >= len(campaign.spec.stages):
                    if await self.db.set_state(cid, "completed", reason="every stage succeeded"):
                        await self._audit(campaign.spec.tenant, who, "campaign-completed", cid, {})
                    return
                try:
                    summary = await self._stage(campaign)
                except _StageHalt as halt:
                    if await self.db.set_state(cid, "halted", reason=halt.reason):
                        _LOGGER.warning("campaign %s halted at stage %d: %s", cid, campaign.stage, halt.reason)
                        await self._audit(
                            campaign.spec.tenant, who, "campaign-halted", cid,
                            {"reason": halt.reason, "stage": campaign.stage, "automatic": True},
                        )  # fmt: skip
                    return
                await self.db.set_state(cid, "running", stage=campaign.stage + 1)
                await self._audit(
                    campaign.spec.tenant, who, "campaign-stage-done", cid, {"stage": campaign.stage, **summary}
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("campaign %s: the runner failed; it resumes at the next start", cid)

    async def _stage(self, campaign: Campaign) -> dict[str, int]:
        spec, cid = campaign.spec, campaign.id
        targets = [t for t in await self.db.targets(cid) if t.stage == campaign.stage]
        started = await self.db.start_stage(cid)
        deadline = started + spec.stage_timeout_s
        limit = spec.failure_threshold * len(targets)
        status = {t.gateway: t.status for t in targets}

        def check() -> None:
            bad = sum(1 for s in status.values() if s in BAD)
            if bad > limit:
                raise _StageHalt(
                    f"stage {campaign.stage + 1} ({spec.stages[campaign.stage]}%): {bad} of {len(targets)} gateways "
                    f"failed or rolled back, over the threshold {spec.failure_threshold:g}"
                )

        check()
        pending = [t for t in targets if t.status not in DONE]
        follows = [asyncio.ensure_future(self._target(campaign, t, deadline)) for t in pending]
        try:
            for next_done in asyncio.as_completed(follows):
                gateway, final = await next_done
                status[gateway] = final
                check()
        finally:
            for f in follows:
                f.cancel()
            if follows:
                await asyncio.wait(follows, timeout=2)
        counts: dict[str, int] = {}
        for s in status.values():
            counts[s] = counts.get(s, 0) + 1
        return counts

    async def _target(self, campaign: Campaign, target: Target, deadline: float) -> tuple[str, str]:
        """Follow one gateway to its end in this stage: (gateway, ok | failed | rolled-back)."""
        spec, cid, gw = campaign.spec, campaign.id, target.gateway
        rid, status = target.request_id, target.status
        if status == "pending" or rid is None:
            left = deadline - time.time()
            if left <= 0:
                await self.db.set_target(cid, gw, "failed", reason="the stage's time ran out before it was sent")
                return gw, "failed"
            try:
                args: dict[str, Any] = {"url": self._link(campaign), "sha256": spec.sha256}
                if spec.force:
                    args["force"] = True
                rec = await self._sender.send(
                    spec.tenant, gw, "update", args, timeout_s=max(1.0, left), issued_by=f"campaign:{cid}"
                )
            except ValueError as exc:
                await self.db.set_target(cid, gw, "failed", reason=f"cannot send: {exc}")
                return gw, "failed"
            rid, status = rec.request_id, "sent"
            await self.db.set_target(cid, gw, "sent", request_id=rid)
        from_version: str | None = None
        if status == "sent":
            answer = await self._answer(spec.tenant, gw, rid, deadline)
            if answer is None or answer.status == "pending":
                await self.db.set_target(cid, gw, "failed", reason="timeout: no answer within the stage's time")
                return gw, "failed"
            if answer.status != "ok":
                reason = f"{answer.status}: {answer.error or 'no reason given'}"
                await self.db.set_target(cid, gw, "failed", reason=reason)
                return gw, "failed"
            from_version = str((answer.result or {}).get("from_version") or "") or None
            if not spec.confirm_version:
                await self.db.set_target(cid, gw, "ok", reason=None)
                return gw, "ok"
            await self.db.set_target(cid, gw, "updated", reason=f"from {from_version or 'unknown'}")
        elif target.reason and target.reason.startswith("from "):
            from_version = target.reason.removeprefix("from ") or None
        return gw, await self._confirm(campaign, gw, deadline, from_version)

    async def _answer(self, tenant: str, gw: str, rid: str, deadline: float) -> CommandRecord | None:
        record: CommandRecord | None = None
        for _ in range(int((deadline - time.time()) / self._poll_s) + 2):
            left = deadline - time.time()
            record = await self._sender.wait(tenant, gw, rid, max(0.0, min(left, self._poll_s * 10)))
            if record is None or record.status != "pending" or left <= 0:
                return record
            await asyncio.sleep(min(self._poll_s, max(0.0, left)))
        return record

    async def _confirm(self, campaign: Campaign, gw: str, deadline: float, from_version: str | None) -> str:
        """Wait for the gateway to report the bundle's version: ok, else rolled-back or failed at the deadline."""
        spec, cid = campaign.spec, campaign.id
        seen: str | None = None
        for _ in range(int((deadline - time.time()) / self._poll_s) + 2):
            seen = await self._version_of(spec.tenant, gw)
            if seen == spec.version:
                await self.db.set_target(cid, gw, "ok", reason=None)
                return "ok"
            if time.time() >= deadline:
                break
            await asyncio.sleep(min(self._poll_s, max(0.0, deadline - time.time())))
        if seen is not None and seen == from_version:
            await self.db.set_target(cid, gw, "rolled-back", reason=f"reports {seen} again, not {spec.version}")
            return "rolled-back"
        await self.db.set_target(
            cid, gw, "failed", reason=f"did not report version {spec.version} within the stage's time (reports {seen})"
        )
        return "failed"
