"""A job's money (pool, held, paid, bonus and its approved and rejected counts) is a small
record of its own in the jobs table (`<job_id>#money`): written with the job, in none of the
table's indexes, read with the job, and the only jobs-table record a reservation, a refund, a
release, a rejection, a settlement, a bonus or a gold item's release writes, so none of them
rewrites the job record and its index copies."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import botocore.client
import pytest

from chalicelib import deps
from chalicelib.adapters.models import JobModel, money_key
from chalicelib.domain import payouts
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import (
    ACTIVE, PAUSED, WORKER, CountedAnswer, Lease, LedgerEntry, StoredAnswer,
)
from chalicelib.errors import Conflict
from chalicelib.handlers import accounts
from tests.adapters.posting import active_job

MONEY = {"pool_cents", "held_cents", "paid_cents", "bonus_cents", "approved_answers",
         "rejected_answers"}
INDEX_KEYS = {"state", "finalize_at", "client_id", "created_at", "review_queue",
              "review_due_at", "events_queue", "events_due_at"}


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _raw(key: str) -> dict[str, Any] | None:
    """A jobs-table item as DynamoDB holds it, strongly consistent (None: there is none)."""
    response = JobModel._get_connection().get_item(key, None, consistent_read=True)
    return response.get("Item")


def _jobs_written(monkeypatch: Any) -> list[str]:
    """The jobs-table keys every write from now on touches (in or out of transactions)."""
    table = JobModel.Meta.table_name
    written: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, name: str, params: dict[str, Any]) -> Any:
        entries = [next(iter(e.values())) for e in params.get("TransactItems", [])] \
            if name == "TransactWriteItems" else \
            [params] if name in ("PutItem", "UpdateItem", "DeleteItem") else []
        for entry in entries:
            if entry.get("TableName") == table:
                key = entry.get("Key") or entry.get("Item")
                written.append(key["job_id"]["S"])
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return written


def _answered(p: Any, job_id: str, item_id: str, worker: str, now: float) -> CountedAnswer:
    """A worker's answer to an item, leased and submitted."""
    lease = Lease(new_assignment_id(job_id, item_id, now), now + 60, now)
    assert p.items.try_lease(job_id, item_id, worker, lease, None, now).ok
    answer = StoredAnswer(lease.assignment_id, {"label": "no"}, now, lease.leased_at)
    assert p.items.try_submit(job_id, item_id, worker, answer, now).ok
    return CountedAnswer(job_id, item_id, worker, lease.assignment_id, False)


def test_the_money_record_is_written_with_the_job_in_no_index(p):
    # WHEN a job is posted
    job = active_job(p, "Money client", [{"data": {"text": "one"}}], pool_cents=40)
    # THEN its money is a record of its own, carrying none of the indexes' keys, and the job
    # record carries no money
    money = _raw(money_key(job.job_id))
    assert money is not None and money["pool_cents"] == {"N": "40"}
    assert not INDEX_KEYS & set(money)
    assert not MONEY & set(_raw(job.job_id))
    # AND it is read with the job, and never listed as a job
    assert p.jobs.get_job(job.job_id).pool_cents == 40
    page, _ = p.jobs.jobs_of_client(job.client_id, 10, None)
    assert [(j.job_id, j.pool_cents) for j in page] == [(job.job_id, 40)]
    listed = [j.job_id for j in p.jobs.jobs_in_state(ACTIVE)]
    assert job.job_id in listed and not [job_id for job_id in listed if "#" in job_id]


def test_every_money_write_writes_the_money_record_not_the_job_record(p, monkeypatch):
    # GIVEN an active job with 100 cents in its pool, three answers of two workers counted
    job = active_job(p, "Money client", [{"data": {"text": f"item {n}"}} for n in range(3)],
                     pool_cents=100)
    job_id, now = job.job_id, time.time()
    worker, _ = accounts.create_account(p, WORKER, "Money worker")
    other = f"{worker.account_id}b"
    answers = [_answered(p, job_id, "000000", worker.account_id, now),
               _answered(p, job_id, "000001", worker.account_id, now),
               _answered(p, job_id, "000002", other, now)]
    assert p.jobs.record_counted(job_id, answers, pay_delay=-10 ** 6) == 3
    written = _jobs_written(monkeypatch)
    # WHEN money is reserved, refunded, held, released, a rejection gives a reward back, a
    # settlement pays two answers and a bonus is paid from the pool
    assert p.jobs.reserve(job_id, 30) and not p.jobs.reserve(job_id, 71)
    p.jobs.refund(job_id, 10)
    p.jobs.refund(job_id, 7, "held")
    assert p.jobs.reserve(job_id, 2, "held") and not p.jobs.reserve(job_id, 6, "held")
    review = {"status": "rejected", "reason": "off topic", "at": now, "by": "cli"}
    rejected = answers[2]
    entry = LedgerEntry(other, f"review#{rejected.assignment_id}", "rejection", 0, now, job_id,
                        rejected.assignment_id, "off topic", "cli")
    assert p.items.review(job_id, rejected.item_id, other, rejected.assignment_id, review,
                          entry, 5, "held")
    assert p.jobs.release_held(job_id) == 10 and p.jobs.release_held(job_id) == 0
    window = payouts.window_of(answers[0].assignment_id)
    accrual = p.ledger.accrual(job_id, worker.account_id, window)
    settlement = LedgerEntry(worker.account_id, payouts.accrual_entry_id(job_id, window, 2),
                             "settlement", 10, now, job_id, None, "2 answers approved", "auto", 2)
    assert p.ledger.settle(accrual, settlement, 2, now, "auto")
    bonus = LedgerEntry(worker.account_id, f"bonus#{job_id}#b1", "bonus", 25, now, job_id)
    assert p.ledger.bonus(bonus, job_id) and not p.ledger.bonus(bonus, job_id)
    # THEN each wrote the money record once, and no other record of the job
    assert written and set(written) == {money_key(job_id)}
    # AND the job reads every figure back: pool 100 - 30 + 10 + 10 released - 25 bonus
    read = p.jobs.get_job(job_id)
    assert (read.pool_cents, read.held_cents, read.paid_cents, read.bonus_cents,
            read.approved_answers, read.rejected_answers) == (65, 0, 10, 25, 2, 1)
    # AND a bonus the pool does not hold is refused, moving nothing
    too_much = replace(bonus, entry_id=f"bonus#{job_id}#b2", amount_cents=66)
    with pytest.raises(Conflict):
        p.ledger.bonus(too_much, job_id)
    assert p.jobs.get_job(job_id).pool_cents == 65
    assert p.ledger.get_entry(worker.account_id, too_much.entry_id) is None


def test_a_gold_items_released_slots_pay_into_the_money_record(p, monkeypatch):
    # GIVEN a gold item with two slots, one free and one leased and expired
    job = active_job(p, "Gold money client", [{"data": {"text": "gold"}}],
                     gold={"label": "yes"}, slots=2, pool_cents=0)
    now = time.time()
    lease = Lease(new_assignment_id(job.job_id, "000000", now), now + 10, now)
    assert p.items.try_lease(job.job_id, "000000", "w1", lease, None, now).ok
    written = _jobs_written(monkeypatch)
    # WHEN they are released THEN their rewards go to the pool on the money record alone
    assert p.items.release_gold_slots(job.job_id, "000000", 1, ["w1"], now + 11, 5) == 10
    assert set(written) == {money_key(job.job_id)}
    assert p.jobs.get_job(job.job_id).pool_cents == 10


def test_a_transition_that_sets_money_sets_it_on_the_money_record(p):
    job = active_job(p, "Money client", [{"data": {"text": "one"}}])
    assert p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, pool_cents=12, held_cents=3)
    assert not MONEY & set(_raw(job.job_id))
    assert _raw(money_key(job.job_id))["pool_cents"] == {"N": "12"}
    assert (p.jobs.get_job(job.job_id).pool_cents, p.jobs.get_job(job.job_id).held_cents) == \
        (12, 3)
    # AND a refused transition moves no money
    assert not p.jobs.transition(job.job_id, (PAUSED,), ACTIVE, pool_cents=99)
    assert p.jobs.get_job(job.job_id).pool_cents == 12
