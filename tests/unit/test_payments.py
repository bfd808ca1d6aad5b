"""Reviews, automatic approval, bonuses and earnings on the fakes: every credit exactly once."""
from __future__ import annotations

import pytest

from chalicelib.domain.model import APPROVED, CLIENT, REJECTED, WORKER
from chalicelib.errors import Conflict, InvalidRequest, NotFound
from chalicelib.handlers import accounts, jobs, payments, tasks
from tests.fakes import FakeClock, count_all, ingest_all, make_platform

DAY = 24 * 3600


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _post(p, items=2, redundancy=2, **extra):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": redundancy})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick one.",
        "answer_schema": {"labels": ["pos", "neg"]}, "pilot": {"items": 0},
        "items": [{"data": {"n": n}} for n in range(items)], **extra})
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _answer(p, job, worker, label="pos"):
    task = tasks.lease_next_task(p, worker, job.job_id)
    p.clock.advance(5)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": label})
    return task.assignment_id


def _worker(p, name="w"):
    return accounts.create_account(p, WORKER, name)[0]


def test_an_approval_pays_once_however_often_it_is_sent(p):
    client, job = _post(p)
    worker = _worker(p)
    assignment = _answer(p, job, worker)
    first = payments.review_assignment(p, client, assignment, None, APPROVED)
    again = payments.review_assignment(p, client, assignment, {"reason": "fine"}, APPROVED)
    assert first == again and first.status == "approved" and first.paid_cents == 5
    assert p.ledger.balance(worker.account_id) == 5
    assert p.jobs.get_job(job.job_id).paid_cents == 5
    with pytest.raises(Conflict) as caught:
        payments.review_assignment(p, client, assignment, {"reason": "late change"}, REJECTED)
    assert caught.value.code == "already_reviewed"
    assert caught.value.status == 409 and caught.value.review == first


def test_reviews_are_the_jobs_clients_only_and_a_rejection_needs_a_reason(p):
    client, job = _post(p)
    assignment = _answer(p, job, _worker(p))
    other = accounts.create_account(p, CLIENT, "Other")[0]
    with pytest.raises(NotFound):
        payments.review_assignment(p, other, assignment, None, APPROVED)
    with pytest.raises(NotFound):
        payments.review_assignment(p, client, assignment[:-5] + "9_v1", None, APPROVED)
    with pytest.raises(InvalidRequest) as caught:
        payments.review_assignment(p, client, assignment, {}, REJECTED)
    assert caught.value.field == "reason"


def test_a_rejected_answer_is_not_paid_left_out_and_its_slot_offered_again(p):
    # GIVEN 2 items x 2 answers; w1 answers item 0 and the client rejects it at once
    client, job = _post(p, items=2, redundancy=2)
    w1, w2, w3 = _worker(p, "w1"), _worker(p, "w2"), _worker(p, "w3")
    rejected = _answer(p, job, w1)
    pool = p.jobs.get_job(job.job_id).pool_cents
    review = payments.review_assignment(p, client, rejected, {"reason": "Spam text"}, REJECTED)
    assert review.status == "rejected" and review.decision["reason"] == "Spam text"
    assert review.paid_cents == 0
    # its reward is held for the replacement slot, out of the pool's reach: a bonus cannot
    # take it (item 0 must still get its two answers)
    job = p.jobs.get_job(job.job_id)
    assert (job.pool_cents, job.held_cents) == (pool, job.reward_cents)
    with pytest.raises(Conflict) as caught:
        payments.pay_bonus(p, client, job.job_id, {"worker_id": w1.account_id, "reason": "x",
                                                   "amount_cents": pool + 1, "bonus_id": "b"})
    assert caught.value.code == "insufficient_budget"
    # WHEN everyone answers everything they are offered
    for worker in (w1, w2, w3):
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
            count_all(p)
    # THEN the rejected answer's item got one more slot before the round closed, filled by
    # another worker, and the round aggregates without the rejected answer
    job = p.jobs.get_job(job.job_id)
    item = p.items.get_item(job.job_id, rejected.split("_")[2])
    assert item.replaced == 1 and item.redundancy == 3 and item.answer_count == 3
    assert job.state == "aggregating"
    assert (job.pool_cents, job.held_cents) == (pool, 0)
    assert p.ledger.balance(w1.account_id) == 0
    history = p.ledger.entries(w1.account_id, 10, None)[0]
    assert [(e.kind, e.reason) for e in history] == [("rejection", "Spam text")]


def test_unreviewed_answers_are_approved_after_the_jobs_review_period(p):
    client, job = _post(p, auto_approve_seconds=DAY)
    worker = _worker(p)
    first = _answer(p, job, worker)
    count_all(p)
    p.clock.advance(DAY / 2)
    second = _answer(p, job, _worker(p, "w2"))
    count_all(p)
    payments.review_assignment(p, client, second, {"reason": "no"}, REJECTED)
    # WHEN the sweeper runs before the period ends THEN nothing is approved
    assert payments.auto_approve_due(p) == 0
    # WHEN it runs after the first answer's period THEN only that one is approved
    p.clock.advance(DAY / 2 + 1)
    assert payments.auto_approve_due(p) == 1
    assert p.ledger.balance(worker.account_id) == job.reward_cents
    entry = p.ledger.get_entry(worker.account_id, f"review#{first}")
    assert entry.by == "auto" and entry.kind == "approval"
    # AND the job leaves the queue when nothing is left to approve; a rerun pays nothing
    assert p.jobs.jobs_due_for_review(p.now() + 10 * DAY) == []
    assert payments.auto_approve_due(p) == 0
    assert p.ledger.balance(worker.account_id) == job.reward_cents
    # AND a client approving after the sweeper gets the sweeper's approval back, not a payment
    again = payments.review_assignment(p, client, first, None, APPROVED)
    assert again.decision["by"] == "auto" and p.ledger.balance(worker.account_id) == 5


def test_a_bonus_is_paid_once_per_bonus_id_from_the_jobs_pool(p):
    client, job = _post(p, items=4, redundancy=2)
    worker = _worker(p)
    _answer(p, job, worker)
    pool = p.jobs.get_job(job.job_id).pool_cents
    body = {"worker_id": worker.account_id, "amount_cents": 3, "reason": "careful notes",
            "bonus_id": "b-1"}
    entry, new = payments.pay_bonus(p, client, job.job_id, body)
    again, repeated = payments.pay_bonus(p, client, job.job_id, body)
    assert new and not repeated and entry == again and entry.kind == "bonus"
    assert p.ledger.balance(worker.account_id) == 3
    job = p.jobs.get_job(job.job_id)
    assert (job.pool_cents, job.bonus_cents) == (pool - 3, 3)
    with pytest.raises(Conflict) as caught:
        payments.pay_bonus(p, client, job.job_id, {**body, "amount_cents": 4})
    assert caught.value.code == "bonus_id_reused"
    with pytest.raises(Conflict) as caught:
        payments.pay_bonus(p, client, job.job_id, {**body, "bonus_id": "b-2",
                                                   "amount_cents": pool})
    assert caught.value.code == "insufficient_budget"
    with pytest.raises(NotFound):
        payments.pay_bonus(p, client, job.job_id, {**body, "worker_id": "wrk_nobody",
                                                   "bonus_id": "b-3"})
    with pytest.raises(InvalidRequest) as caught:
        payments.pay_bonus(p, client, job.job_id, {**body, "reason": ""})
    assert caught.value.field == "reason"


def test_a_worker_sees_balance_and_history_newest_first(p):
    client, job = _post(p, items=4, redundancy=1)
    worker = _worker(p)
    first = _answer(p, job, worker)
    second = _answer(p, job, worker)
    payments.review_assignment(p, client, first, None, APPROVED)
    p.clock.advance(1)
    payments.review_assignment(p, client, second, {"reason": "wrong language"}, REJECTED)
    p.clock.advance(1)
    payments.pay_bonus(p, client, job.job_id, {"worker_id": worker.account_id,
                                               "amount_cents": 2, "reason": "fast",
                                               "bonus_id": "x"})
    seen = payments.earnings(p, worker, {})
    assert seen.balance_cents == 7
    assert [(e.kind, e.amount_cents, e.reason) for e in seen.entries] == [
        ("bonus", 2, "fast"), ("rejection", 0, "wrong language"), ("approval", 5, None)]
    page = payments.earnings(p, worker, {"limit": "2"})
    assert len(page.entries) == 2 and page.next_cursor
