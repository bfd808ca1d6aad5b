"""Crash after every write of a job's money record, and deliver every message again: the
money stays exact.

A 4-item job (redundancy 1) is worked by three workers over the API. The client rejects the
first answer while the job is active (its reward is held for a replacement); when every item
is done the round reopens that item with a replacement slot paid from the held money; the
client then rejects a second answer (held again) and stops the job, so the held money goes
back to the pool when the job is done; the client approves the job in bulk (the sweeper
settles the pay windows) and pays a bonus. The run is made once without faults, recording
which write sites touch the job's money record (`<job_id>#money`: the posting, the
rejections, the paid replacement slot, the release of the held money, the settlements, the
bonus), then once per such site with a crash right after its first such write, recovering as
AWS would (the HTTP caller retries, SQS redelivers, the sweeper runs again). Every run ends
with the fault-free run's money, and every message delivered twice or three times more
changes nothing.
"""
from __future__ import annotations

import re
from typing import Any

from chalicelib.deps import platform
from tests.functional.faults import Plan, crash_after_writes, messages_sent, redeliver
from tests.functional.test_faults import (
    Driver, _pump, _sweep, post_job, start_scenario, until_done,
)

# A write naming a job's money record.
MONEY_KEY = re.compile(r"job_[0-9a-z]+#money")
ITEMS = 4
# The adapter methods writing the money record that the fault-free run must go through.
MONEY_WRITES = ("> jobs.create_job", "payments.settle > items.review",
                "quality._add_paid_slots > items.add_slots",
                "quality.release_leftovers > jobs.release_held", "> ledger.settle",
                "> ledger.bonus")


def _touches_money(operation: str, params: dict) -> bool:
    return bool(MONEY_KEY.search(repr(params)))


def _reject(drive: Driver, assignment_id: str) -> None:
    status, review = drive.client("POST", f"/assignments/{assignment_id}/reject",
                                  {"reason": "off topic"})
    assert status == 200 and review["status"] == "rejected", review


def scenario(stack, plan: Plan, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the money scenario (armed: writes are recorded and one may crash); its final
    state. run, if given, gets what final_state needs to look again."""
    _, tokens, drive, clock = start_scenario(stack, [f"m{n}" for n in range(3)])
    p = platform()
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}} for n in range(ITEMS)], 1,
                      ["pos", "neg"])
    receipts: list[str] = []
    rejected: list[str] = []

    def step(view: dict[str, Any]) -> bool:
        money = p.jobs.get_job(job_id)
        if receipts and not rejected:
            rejected.append(receipts[0])  # while the job is active: held for a replacement
            _reject(drive, receipts[0])
        elif len(rejected) == 1 and view["state"] == "active" and money.held_cents == 0:
            # the replacement slot took the held money: one more rejection, then the stop
            rejected.append(receipts[1])
            _reject(drive, receipts[1])
            status, stopped = drive.client("POST", f"/jobs/{job_id}/stop")
            assert status in (200, 409), stopped
            return True
        worked = False
        for token in tokens if len(rejected) < 2 else ():
            status, task = drive.worker(token, "GET", f"/tasks/next?job_id={job_id}")
            if status != 200:
                continue
            status, receipt = drive.worker(
                token, "POST", f"/assignments/{task['assignment_id']}/submit", {"label": "pos"})
            assert status == 200, receipt
            receipts.append(receipt["assignment_id"])
            worked = True
        return worked

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done" and len(rejected) == 2, (view, rejected)
    _approve_job(drive, job_id, view["counts"]["answered"] - len(rejected))
    status, me = drive.worker(tokens[0], "GET", "/workers/me")
    status, bonus = drive.client("POST", f"/jobs/{job_id}/bonuses", {
        "worker_id": me["worker_id"], "amount_cents": 3, "reason": "thanks", "bonus_id": "b1"})
    assert status in (200, 201), bonus
    plan.armed = False
    if run is not None:
        run.update(drive=drive, tokens=tokens, job_id=job_id)
    return final_state(drive, tokens, job_id)


def _approve_job(drive: Driver, job_id: str, answers: int) -> None:
    """The client approves the job in bulk; the minute sweeper settles every pay window."""
    status, asked = drive.client("POST", f"/jobs/{job_id}/approve")
    assert status == 202, asked
    for _ in range(20):
        _sweep()
        status, view = drive.client("GET", f"/jobs/{job_id}")
        if view["reviews"]["approved"] >= answers:
            return
    raise AssertionError(f"the bulk approval never finished: {view['reviews']}")


def final_state(drive: Driver, tokens: list[str], job_id: str) -> dict[str, Any]:
    """The job's money as the client sees it, what the job holds, and the workers' ledger,
    checked to add up."""
    job = platform().jobs.get_job(job_id)
    status, view = drive.client("GET", f"/jobs/{job_id}")
    money = view["money"]
    assert money["for_workers_cents"] == (money["spent_cents"] + money["bonus_cents"]
                                          + money["reserved_cents"] + money["pool_cents"])
    assert money["spent_cents"] == (job.answered - job.rejected_answers) * job.reward_cents
    balances, entries = 0, []
    for token in tokens:
        status, earned = drive.worker(token, "GET", "/workers/me/earnings")
        balances += earned["balance_cents"]
        entries += [(e["kind"], e["amount_cents"], e["answers"] if e["kind"] == "settlement"
                     else None) for e in earned["entries"]]
    settled = sum(amount for kind, amount, _ in entries if kind == "settlement")
    assert balances == view["paid_cents"] + view["bonus_cents"] and settled == view["paid_cents"]
    return {"state": view["state"], "counts": view["counts"], "money": money,
            "reviews": view["reviews"], "held_cents": job.held_cents, "balances": balances,
            "ledger": sorted((kind, amount) for kind, amount, _ in entries if kind != "settlement"),
            "settled": (settled, sum(n or 0 for kind, _, n in entries if kind == "settlement"))}


def test_money_stays_exact_after_a_crash_at_any_money_write_and_redelivered_messages(stack):
    # GIVEN a fault-free run, every SQS message it sent kept aside
    run: dict[str, Any] = {}
    clean = Plan(only=_touches_money)
    with messages_sent() as sent, crash_after_writes(clean):
        before = scenario(stack, clean, run)
    # (the held money went to the replacement, came back with the second rejection and was
    # released into the pool at the end)
    assert before["reviews"]["rejected"] == 2 and before["held_cents"] == 0
    for write in MONEY_WRITES:
        assert any(write in site for site in clean.matched), (write, sorted(clean.matched))
    # WHEN every message is delivered twice, then three times, more THEN nothing moves
    for copies in (2, 3):
        redeliver(sent, copies)
        _pump(stack)
        _sweep()
        assert final_state(**run) == before, copies
    # AND WHEN a run crashes right after the first write of any site touching the money
    for site in sorted(clean.matched):
        plan = Plan(crash_site=site, only=_touches_money)
        with crash_after_writes(plan):
            try:
                state = scenario(stack, plan)
            except AssertionError as error:
                raise AssertionError(f"after a crash at {plan.crashed}: {error}") from error
        # THEN it crashed there, and the money ended as in the fault-free run
        assert plan.crashed is not None, site
        assert state == before, (site, plan.crashed)
        print(f"money crash point passed: {plan.crashed}", flush=True)
