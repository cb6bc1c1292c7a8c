"""Update campaigns without a broker: stage selection, the halt on failures with a fake command sender (later
stages never sent), version confirmation and rollback, a manual halt, and resuming after a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.fleet.campaigns import (
    Campaign,
    CampaignDB,
    CampaignError,
    CampaignRunner,
    CampaignSpec,
    order,
    stage_ends,
    stage_of,
)
from cloud.fleet.commands import CommandRecord

GATEWAYS = [f"gw-{i:02d}" for i in range(10)]


class FakeSender:
    """The command center's seam: records sends; answers per gateway (ok, an error, or never)."""

    def __init__(self, answers: dict[str, str] | None = None, default: str = "ok") -> None:
        self.answers = answers or {}
        self.default = default
        self.sent: list[str] = []
        self.records: dict[str, CommandRecord] = {}

    async def send(
        self, tenant: str, gateway: str, command: str, args: dict[str, Any], *, timeout_s: float, issued_by: str
    ) -> CommandRecord:
        assert command == "update" and args["url"].startswith("http://cloud.test/") and len(args["sha256"]) == 64
        self.sent.append(gateway)
        rid = f"r-{gateway}-{len(self.sent)}"
        rec = _rec(rid, tenant, gateway, "pending", None)
        self.records[rid] = rec
        return rec

    async def wait(self, tenant: str, gateway: str, request_id: str, timeout: float) -> CommandRecord | None:
        rec = self.records.get(request_id)
        if rec is None:
            return None
        answer = self.answers.get(gateway, self.default)
        if answer == "never":
            await asyncio.sleep(min(timeout, 0.05))
            return rec
        if answer == "ok":
            return _rec(request_id, tenant, gateway, "ok", None, {"version": "2.0.0", "from_version": "1.0.0"})
        return _rec(request_id, tenant, gateway, answer, "software updates are off on this gateway")


def _rec(
    rid: str, tenant: str, gateway: str, status: str, error: str | None, result: dict[str, Any] | None = None
) -> CommandRecord:
    now = time.time()
    return CommandRecord(rid, tenant, gateway, "update", {}, "campaign", now, now + 60, status, result, error, None, 1)


def _spec(**kw: Any) -> CampaignSpec:
    base: dict[str, Any] = {
        "tenant": "default", "bundle": "roost-2.0.0-any.bundle", "version": "2.0.0", "sha256": "ab" * 32,
        "base_url": "http://cloud.test", "stages": (10, 50, 100), "failure_threshold": 0.2, "stage_timeout_s": 5.0,
        "confirm_version": False, "created_by": "operator:default/olga",
    }  # fmt: skip
    base.update(kw)
    return CampaignSpec(**base)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[CampaignDB]:
    d = CampaignDB(tmp_path / "fleet.sqlite")
    await d.open()
    yield d
    await d.close()


def _runner(
    db: CampaignDB, sender: FakeSender, audit: list[tuple[str, str]], versions: dict[str, str] | None = None
) -> CampaignRunner:
    async def version_of(_tenant: str, gateway: str) -> str | None:
        return (versions or {}).get(gateway)

    async def record(_tenant: str, who: str, action: str, _target: str, _detail: dict[str, Any]) -> None:
        audit.append((who, action))

    def link(c: Campaign) -> str:
        return f"{c.spec.base_url}/api/v1/bundles/{c.spec.bundle}?grant=x"

    return CampaignRunner(db, sender, link=link, version_of=version_of, audit=record, poll_s=0.02)


def test_stages_cut_the_order_by_cumulative_percentage() -> None:
    assert stage_ends(10, [1, 10, 100]) == [1, 2, 10]  # 1% of 10 is still one gateway; each stage adds one at least
    assert stage_of(10, [1, 10, 100]) == [0, 1] + [2] * 8
    assert stage_ends(200, [1, 10, 100]) == [2, 20, 200]
    assert stage_ends(1, [1, 10, 100]) == [1, 1, 1]  # later stages are empty when nothing is left
    assert stage_ends(3, [50, 100]) == [2, 3]
    first = order("c-1", GATEWAYS)
    assert first == order("c-1", list(reversed(GATEWAYS))) and sorted(first) == GATEWAYS
    assert first != order("c-2", GATEWAYS) or first != order("c-3", GATEWAYS)  # each campaign its own canaries


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"stages": (10, 50)}, "last stage must be 100"),
        ({"stages": (50, 10, 100)}, "increasing"),
        ({"failure_threshold": 1.0}, "failure_threshold"),
        ({"stage_timeout_s": 0.5}, "stage_timeout_s"),
    ],
)
def test_a_campaign_spec_is_checked(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        _spec(**kw)


async def test_all_stages_succeed_in_order(db: CampaignDB) -> None:
    sender, audit = FakeSender(), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(), GATEWAYS)
    await runner.wait(c.id, 10)
    done = await db.get("default", c.id)
    assert done is not None and done.state == "completed" and done.stage == 3
    targets = await db.targets(c.id)
    assert sender.sent == [t.gateway for t in targets]  # stage by stage, in the campaign's order, each once
    assert {t.status for t in targets} == {"ok"}
    assert [t.stage for t in targets] == [0] + [1] * 4 + [2] * 5
    assert [a for _, a in audit].count("campaign-stage-done") == 3 and audit[-1][1] == "campaign-completed"


async def test_failures_over_the_threshold_halt_the_campaign_before_the_next_stage(db: CampaignDB) -> None:
    sender, audit = FakeSender(), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(), GATEWAYS)
    await runner.halt("default", c.id, by="test", reason="hold on")  # stop it to set the failing gateways up
    ordered = [t.gateway for t in await db.targets(c.id)]
    # Stage 1 (gateway 1) fine; stage 2 (gateways 2-5) has 2 of 4 failing: 0.5 > 0.2.
    sender.answers = {ordered[1]: "error", ordered[3]: "unknown"}
    sender.sent.clear()
    await db.set_state(c.id, "running", only_running=False)
    await runner.start()
    await runner.wait(c.id, 10)
    halted = await db.get("default", c.id)
    assert halted is not None and halted.state == "halted" and halted.stage == 1
    assert halted.reason is not None and "over the threshold 0.2" in halted.reason
    assert set(sender.sent) <= set(ordered[:5]) and ordered[0] in sender.sent
    assert not set(sender.sent) & set(ordered[5:])  # the last stage was never sent
    by_gw = {t.gateway: t for t in await db.targets(c.id)}
    assert by_gw[ordered[1]].status == "failed"
    assert "error: software updates are off" in (by_gw[ordered[1]].reason or "")
    assert all(by_gw[g].status == "pending" for g in ordered[5:])
    assert ("campaign:" + c.id, "campaign-halted") in audit


async def test_a_failing_canary_halts_at_the_first_stage(db: CampaignDB) -> None:
    sender, audit = FakeSender(default="unknown"), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(stages=(1, 10, 100)), GATEWAYS)
    await runner.wait(c.id, 10)
    halted = await db.get("default", c.id)
    assert halted is not None and halted.state == "halted" and halted.stage == 0
    assert len(sender.sent) == 1  # one canary; nothing else was ever sent


async def test_no_answer_by_the_stage_deadline_is_a_failure(db: CampaignDB) -> None:
    sender, audit = FakeSender(default="never"), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(stage_timeout_s=1.0), GATEWAYS[:3])
    await runner.wait(c.id, 10)
    halted = await db.get("default", c.id)
    assert halted is not None and halted.state == "halted"
    reasons = [t.reason or "" for t in await db.targets(c.id) if t.status == "failed"]
    assert reasons and reasons[0].startswith("timeout")


async def test_a_gateway_back_on_its_old_version_counts_as_rolled_back(db: CampaignDB) -> None:
    sender, audit = FakeSender(), list[tuple[str, str]]()
    versions = dict.fromkeys(GATEWAYS, "2.0.0")
    runner = _runner(db, sender, audit, versions)
    c = await runner.create(_spec(confirm_version=True, stage_timeout_s=1.5, stages=(20, 100)), GATEWAYS)
    first_two = [t.gateway for t in await db.targets(c.id)][:2]
    versions[first_two[0]] = "1.0.0"  # answered ok, then the boot check went back to 1.0.0
    await runner.wait(c.id, 10)
    halted = await db.get("default", c.id)
    assert halted is not None and halted.state == "halted" and halted.stage == 0
    by_gw = {t.gateway: t for t in await db.targets(c.id)}
    assert by_gw[first_two[0]].status == "rolled-back" and by_gw[first_two[1]].status == "ok"


async def test_a_campaign_resumes_after_a_restart_without_sending_twice(db: CampaignDB) -> None:
    slow = FakeSender(default="never")
    first = _runner(db, slow, [])
    c = await first.create(_spec(stage_timeout_s=30.0), GATEWAYS)
    for _ in range(100):  # the canary has been sent
        if slow.sent:
            break
        await asyncio.sleep(0.02)
    await first.close()  # the cloud stops
    assert len(slow.sent) == 1
    canary = (await db.targets(c.id))[0]
    assert canary.status == "sent" and canary.request_id is not None

    again = FakeSender()  # the command center after a restart knows the request by its id
    again.records = slow.records
    second = _runner(db, again, [])
    await second.start()
    await second.wait(c.id, 10)
    done = await db.get("default", c.id)
    assert done is not None and done.state == "completed"
    assert canary.gateway not in again.sent and sorted(again.sent) == sorted(set(GATEWAYS) - {canary.gateway})


async def test_a_manual_halt_stops_sending(db: CampaignDB) -> None:
    sender = FakeSender(default="never")
    audit: list[tuple[str, str]] = []
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(stage_timeout_s=30.0), GATEWAYS)
    await asyncio.sleep(0.1)
    halted = await runner.halt("default", c.id, by="operator:default/olga", reason="bad weather")
    assert halted is not None and halted.state == "halted" and halted.reason == "bad weather"
    await runner.wait(c.id, 2)
    assert len(sender.sent) == 1 and ("operator:default/olga", "campaign-halted") in audit
    assert await runner.halt("other", c.id, by="x", reason="y") is None  # another tenant's campaign is not found


async def test_a_halted_campaign_resumes_retrying_its_failed_gateways(db: CampaignDB) -> None:
    sender, audit = FakeSender(default="unknown"), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(stages=(10, 100)), GATEWAYS)
    await runner.wait(c.id, 10)
    halted = await db.get("default", c.id)
    assert halted is not None and halted.state == "halted" and halted.stage == 0
    canary = (await db.targets(c.id))[0]
    assert canary.status == "failed" and sender.sent == [canary.gateway]

    with pytest.raises(CampaignError, match="failure_threshold"):
        await runner.resume("default", c.id, by="olga", failure_threshold=1.5)
    assert await runner.resume("other", c.id, by="olga") is None

    # Resumed without retrying, the failed canary still counts: it halts again at once, sending nothing.
    again = await runner.resume("default", c.id, by="operator:default/olga")
    assert again is not None and again.state == "running" and again.reason == "resumed by operator:default/olga"
    await runner.wait(c.id, 10)
    assert (await db.get("default", c.id)).state == "halted" and sender.sent == [canary.gateway]  # type: ignore[union-attr]

    # The cause is fixed (the gateways now take updates): retry the failed canary, and the campaign completes.
    sender.default = "ok"
    resumed = await runner.resume("default", c.id, by="operator:default/olga", retry_failed=True)
    assert resumed is not None and resumed.state == "running"
    await runner.wait(c.id, 10)
    done = await db.get("default", c.id)
    assert done is not None and done.state == "completed"
    assert sender.sent.count(canary.gateway) == 2 and sorted(set(sender.sent)) == sorted(GATEWAYS)
    assert [a for _, a in audit].count("campaign-resumed") == 2

    with pytest.raises(CampaignError, match="only a halted campaign"):
        await runner.resume("default", c.id, by="olga")


async def test_resume_retries_a_gateway_whose_failure_arrived_after_the_halt(db: CampaignDB) -> None:
    sender, audit = FakeSender(default="never"), list[tuple[str, str]]()
    runner = _runner(db, sender, audit)
    c = await runner.create(_spec(stages=(100,), stage_timeout_s=30.0), GATEWAYS[:2])
    for _ in range(200):
        if len(sender.sent) == 2:
            break
        await asyncio.sleep(0.01)
    await runner.halt("default", c.id, by="olga", reason="hold on")  # both sent, no answer yet
    sender.default = "error"  # the answers arrive after the halt: both failed
    await runner.resume("default", c.id, by="olga", retry_failed=True, failure_threshold=0.9)
    sender.default = "ok"
    await runner.wait(c.id, 10)
    done = await db.get("default", c.id)
    assert done is not None and done.state == "completed", done
    assert sorted(sender.sent) == sorted(GATEWAYS[:2] * 2)  # each sent again once
