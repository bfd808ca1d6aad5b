"""Crash after every write that touches a gold item's servings, and deliver every message
again: gold stays exact.

A job with one gold item (slots for several workers, served at half the tasks) is worked by
four workers over the API: one releases their gold task, one abandons theirs (its lease runs
out), the others answer; the counting consumer scores the gold answers, the round closes and
gives the unused gold slots back, and the client approves every answer, then the job in bulk (the sweeper settles the pay
windows). The run is made once
without faults, recording which write sites touch a gold item's servings (the lease with its
slot, the answer, the release, the counting mark, the client's approval mark, the slots given
back), then
once per such site with a crash right after its first such write, recovering as AWS would
(the HTTP caller retries, SQS redelivers, a lease orphaned by the crash expires). Which
workers get the gold item depends on chance and on the crash, so each run is checked for
what must always hold: nobody had it twice, every gold answer was counted, scored, reviewed
and paid exactly once, and every gold slot was either answered or given back to the pool.
"""
from __future__ import annotations

import re
from typing import Any

from chalicelib.deps import platform
from tests.functional.faults import Plan, crash_after_writes, messages_sent, redeliver
from tests.functional.test_faults import (
    Driver, _pump, _sweep, approve_everything, post_job, start_scenario, until_done,
)

# A write naming a gold item's servings ("<job id>#<item id>").
SERVING_KEY = re.compile(r"job_[0-9a-z]+#\d{6}")
GOLD_TEXT = "a gold item"
ITEMS = 12
TRIES = 3
# Every write site a gold item's servings have, which the fault-free run must go through.
GOLD_SITES = ("tasks._lease_in_job > items.try_lease", "tasks._store_answer > items.try_submit",
              "tasks.release_assignment > items.try_release",
              "rounds.count_answers > jobs.record_counted", "payments.settle > items.approve",
              "quality._release_gold > items.release_gold_slots")


def _touches_servings(operation: str, params: dict) -> bool:
    return bool(SERVING_KEY.search(repr(params)))


def scenario(stack, plan: Plan, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the gold scenario (armed: writes are recorded and one may crash); its final state.
    run, if given, gets what final_state needs to look again."""
    _, tokens, drive, clock = start_scenario(stack, [f"g{n}" for n in range(4)])
    p = platform()
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}} for n in range(ITEMS)]
                      + [{"data": {"text": GOLD_TEXT}, "gold": {"label": "pos"}}], 1,
                      ["pos", "neg"], quote={"gold_rate": 0.5}, pilot={"items": 0},
                      quality={"gold_rate": 0.5})
    pool_at_posting = p.jobs.get_job(job_id).pool_cents
    receipts: list[str] = []
    gold_seen: dict[int, int] = {}

    def step(view: dict[str, Any]) -> bool:
        worked = False
        for n, token in enumerate(tokens):
            status, task = drive.worker(token, "GET", f"/tasks/next?job_id={job_id}")
            if status != 200:
                continue
            worked = True
            path = f"/assignments/{task['assignment_id']}"
            if task["item"]["data"]["text"] == GOLD_TEXT:
                gold_seen[n] = gold_seen.get(n, 0) + 1
                if n == 0:  # gives their gold task back
                    status, _ = drive.worker(token, "POST", f"{path}/release")
                    assert status in (200, 409), status
                    continue
                if n == 1:  # walks away from it: the lease runs out
                    continue
            status, receipt = drive.worker(token, "POST", f"{path}/submit", {"label": "pos"})
            if status == 200:
                receipts.append(receipt["assignment_id"])
            else:  # a crash lost the lease's reply: the retry's lease ran out meanwhile
                assert status in (404, 409), receipt
        return worked

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done", view
    approve_everything(drive, job_id, receipts)
    _pump(stack)
    plan.armed = False
    if run is not None:
        run.update(drive=drive, tokens=tokens, job_id=job_id, pool_at_posting=pool_at_posting)
    state = final_state(drive, tokens, job_id, pool_at_posting)
    assert all(count == 1 for count in gold_seen.values()), gold_seen  # never twice
    return state


def final_state(drive: Driver, tokens: list[str], job_id: str, pool_at_posting: int
                ) -> dict[str, Any]:
    """The gold item, the workers' gold scores, the money and the ledger, checked to agree."""
    p = platform()
    job = p.jobs.get_job(job_id)
    gold = next(item for item in p.items.iter_items(job_id) if item.gold is not None)
    answers = {worker: answer.assignment_id for worker, answer in gold.answers.items()}
    status, view = drive.client("GET", f"/jobs/{job_id}")
    reward = job.reward_cents
    # every gold slot answered or given back, once; nothing leased or free is left on it
    assert gold.answer_count == len(answers) == gold.redundancy, gold
    assert gold.free == 0 and not gold.leases, gold
    assert len(gold.seen) >= len(answers)
    # each gold answer scored once, and reviewed (approved) once
    scores = {r.worker_id: r.gold_answers for r in p.stats.of_job(job_id, 1000, None)[0]}
    assert {w: scores.get(w, 0) for w in answers} == {w: 1 for w in answers}, scores
    assert sum(scores.values()) == len(answers), scores
    assert all(answer.review and answer.review["status"] == "approved"
               for answer in gold.answers.values())
    # the money: every answer paid once; the gold slots nobody answered back in the pool
    regular = job.answered - len(answers)
    assert regular == ITEMS and view["counts"]["answered"] == job.answered
    assert view["paid_cents"] == job.answered * reward
    assert job.pool_cents == pool_at_posting + (job.gold_slots - len(answers)) * reward, \
        (job.pool_cents, pool_at_posting, job.gold_slots, len(answers))
    balances, approvals = 0, 0
    for token in tokens:
        status, earned = drive.worker(token, "GET", "/workers/me/earnings")
        balances += earned["balance_cents"]
        approvals += sum(e["answers"] for e in earned["entries"] if e["kind"] == "settlement")
    assert balances == view["paid_cents"] and approvals == job.answered
    return {"gold_answers": sorted(answers.values()), "scores": scores,
            "pool_cents": job.pool_cents, "paid_cents": view["paid_cents"],
            "answered": job.answered, "balances": balances}


def test_gold_stays_exact_after_a_crash_at_any_gold_write_and_redelivered_messages(stack):
    # GIVEN a fault-free run, every SQS message it sent kept aside
    run: dict[str, Any] = {}
    # (gold is served by chance: a run where nobody answered gold is made again)
    for _ in range(TRIES):
        clean = Plan(only=_touches_servings)
        with messages_sent() as sent, crash_after_writes(clean):
            before = scenario(stack, clean, run)
        if set(GOLD_SITES) <= clean.matched:
            break
    assert set(GOLD_SITES) <= clean.matched, clean.matched
    # WHEN every message is delivered twice more THEN gold is as it was (checked again)
    redeliver(sent, 2)
    _pump(stack)
    _sweep()
    assert final_state(**run) == before
    # AND WHEN a run crashes right after the first write of any site touching gold servings
    for site in sorted(clean.matched):
        for _ in range(TRIES):
            plan = Plan(crash_site=site, only=_touches_servings)
            with crash_after_writes(plan):
                try:
                    scenario(stack, plan)
                except AssertionError as error:
                    raise AssertionError(f"after a crash at {plan.crashed}: {error}") from error
            if plan.crashed is not None:
                break
        # THEN it crashed there, and the run ended exact
        assert plan.crashed is not None, site
        print(f"gold crash point passed: {plan.crashed}", flush=True)
