"""The MTurk API's money, on the fakes and on DynamoDB alike: a bonus billed to the client on
its job (the budget grows, the pool is not used) and a rejected answer approved after all
(paid at once, from the pool or billed), each one transaction that pays once."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from chalicelib import deps
from chalicelib.domain import payouts
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import WORKER, Lease, LedgerEntry, StoredAnswer
from chalicelib.errors import Conflict
from chalicelib.handlers import accounts
from tests.adapters.posting import active_job
from tests.fakes import make_platform


@pytest.fixture(params=["fakes", "dynamodb"])
def p(request: Any) -> Any:
    """The platform on fresh fakes, or on the DynamoDB adapters of the module's moto stack."""
    if request.param == "fakes":
        return make_platform(clock=time.time)
    request.getfixturevalue("module_stack")
    return deps.platform()


def _answered(p: Any, job_id: str, item_id: str, worker: str, now: float) -> str:
    """A worker's answer to an item, leased and submitted; its assignment id."""
    lease = Lease(new_assignment_id(job_id, item_id, now), now + 60, now)
    assert p.items.try_lease(job_id, item_id, worker, lease, None, now).ok
    answer = StoredAnswer(lease.assignment_id, {"text": "<xml/>"}, now, lease.leased_at)
    assert p.items.try_submit(job_id, item_id, worker, answer, now).ok
    return lease.assignment_id


def test_a_billed_bonus_grows_the_budget_and_pays_once_without_the_pool(p):
    # GIVEN a job with 10 cents in its pool and a worker
    job = active_job(p, "Billed client", [{"data": {"text": "one"}}], pool_cents=10)
    worker, _ = accounts.create_account(p, WORKER, "Billed worker")
    before = p.jobs.get_job(job.job_id)
    # WHEN a bonus of 125 cents (more than the pool) is paid billed at 150
    entry = LedgerEntry(worker.account_id, f"bonus#{job.job_id}#token#t1", "bonus", 125,
                        time.time(), job.job_id, None, "thanks", job.client_id)
    assert p.ledger.bonus(entry, job.job_id, billed_cents=150)
    # THEN the worker has it, the job's budget grew by 150 and its bonus total by 125, and
    # its pool is untouched
    assert p.ledger.balance(worker.account_id) == 125
    after = p.jobs.get_job(job.job_id)
    assert after.budget_cents == before.budget_cents + 150
    assert (after.bonus_cents, after.pool_cents) == (125, 10)
    # AND the same entry again pays and bills nothing
    assert not p.ledger.bonus(entry, job.job_id, billed_cents=150)
    again = p.jobs.get_job(job.job_id)
    assert (again.budget_cents, again.bonus_cents) == (after.budget_cents, 125)
    assert p.ledger.balance(worker.account_id) == 125
    # AND an unbilled bonus the pool does not hold is still refused
    with pytest.raises(Conflict):
        p.ledger.bonus(replace(entry, entry_id=f"bonus#{job.job_id}#b2"), job.job_id)


def test_a_rejected_answer_approved_after_all_is_paid_once_from_the_pool_or_billed(p):
    # GIVEN two rejected answers (one per item) of a job with nothing in its pool
    job = active_job(p, "Override client", [{"data": {"text": "one"}}, {"data": {"text": "2"}}],
                     pool_cents=0)
    now = time.time()
    workers = [accounts.create_account(p, WORKER, f"Override {n}")[0].account_id
               for n in range(2)]
    items = ["000000", "000001"]
    assignments = [_answered(p, job.job_id, i, w, now) for i, w in zip(items, workers)]
    for item_id, worker, assignment in zip(items, workers, assignments):
        rejection = LedgerEntry(worker, f"review#{assignment}", "rejection", 0, now,
                                job.job_id, assignment, "no", "cli")
        assert p.items.review(job.job_id, item_id, worker, assignment,
                              {"status": "rejected", "reason": "no", "at": now, "by": "cli"},
                              rejection, job.reward_cents, "pool")
    reward = job.reward_cents
    assert p.jobs.get_job(job.job_id).pool_cents == 2 * reward
    approval = {"status": "approved", "reason": None, "at": now, "by": "cli"}

    def override(n: int, billed: int | None = None) -> bool | None:
        entry = LedgerEntry(workers[n], f"override#{assignments[n]}", "settlement", reward,
                            now, job.job_id, assignments[n], "approved", "cli", 1)
        return p.items.approve_rejected(job.job_id, items[n], workers[n], assignments[n],
                                        approval, entry, billed_cents=billed)

    # WHEN the first is approved from the pool
    assert override(0) is True
    # THEN it is approved and paid, the reward taken back from the pool
    item = p.items.get_item(job.job_id, "000000")
    assert item.answers[workers[0]].review["status"] == "approved"
    assert p.ledger.balance(workers[0]) == reward
    read = p.jobs.get_job(job.job_id)
    assert (read.pool_cents, read.paid_cents, read.approved_answers, read.rejected_answers) \
        == (reward, reward, 1, 1)
    # AND again it writes nothing (it is not rejected any more)
    assert override(0) is False and p.ledger.balance(workers[0]) == reward
    # AND its accrual still counts it rejected, so no settlement pays it
    accrual = p.ledger.accrual(job.job_id, workers[0], payouts.window_of(assignments[0]))
    assert accrual is not None and accrual.rejected == 1
    # WHEN the pool has spent the second's reward, the pool write is refused, and billed
    # it goes through, growing the budget instead
    assert p.jobs.reserve(job.job_id, reward)
    assert override(1) is None and p.ledger.balance(workers[1]) == 0
    budget = p.jobs.get_job(job.job_id).budget_cents
    assert override(1, billed=reward + 1) is True
    read = p.jobs.get_job(job.job_id)
    assert (read.budget_cents, read.pool_cents, read.paid_cents) \
        == (budget + reward + 1, 0, 2 * reward)
    assert p.ledger.balance(workers[1]) == reward
