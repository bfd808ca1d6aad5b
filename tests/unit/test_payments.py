"""Reviews, settlements of pay windows, bulk approval, bonuses and earnings on the fakes:
every credit exactly once."""
from __future__ import annotations

import pytest

from chalicelib.domain import payouts
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


def _settle_all(p):
    """Time passes beyond every pay window's due time and the sweeper runs."""
    p.clock.advance(4 * DAY)
    return payments.auto_approve_due(p)


def test_an_approval_is_recorded_once_and_paid_once_with_its_pay_window(p):
    client, job = _post(p)
    worker = _worker(p)
    assignment = _answer(p, job, worker)
    first = payments.review_assignment(p, client, assignment, None, APPROVED)
    again = payments.review_assignment(p, client, assignment, {"reason": "fine"}, APPROVED)
    assert first == again and first.status == "approved" and first.paid_cents == 5
    assert first.decision["by"] == client.account_id
    with pytest.raises(Conflict) as caught:
        payments.review_assignment(p, client, assignment, {"reason": "late change"}, REJECTED)
    assert caught.value.code == "already_reviewed"
    assert caught.value.status == 409 and caught.value.review == first
    # the money comes with the settlement of the worker's pay window, once
    assert p.ledger.balance(worker.account_id) == 0
    count_all(p)
    assert _settle_all(p) == 1 and payments.auto_approve_due(p) == 0
    assert p.ledger.balance(worker.account_id) == 5
    settled = p.jobs.get_job(job.job_id)
    assert (settled.paid_cents, settled.approved_answers) == (5, 1)
    (entry,) = p.ledger.entries(worker.account_id, 10, None)[0]
    assert (entry.kind, entry.amount_cents, entry.answers, entry.job_id) == (
        "settlement", 5, 1, job.job_id)
    assert payments.review_assignment(p, client, assignment, None, APPROVED) == first


def test_an_approval_reads_the_containers_copy_of_the_job_and_a_rejection_reads_it_fresh(p):
    # GIVEN two answers, with the job in this container's cache (it served the leases)
    client, job = _post(p)
    first, second = (_answer(p, job, _worker(p, name)) for name in ("a", "b"))
    reads = []
    get_job = p.jobs.get_job

    def counted_get_job(job_id, consistent=True):
        reads.append(consistent)
        return get_job(job_id, consistent=consistent)

    p.jobs.get_job = counted_get_job
    # WHEN the client approves one THEN the job is not read again (its owner and reward
    # never change)
    assert payments.review_assignment(p, client, first, None, APPROVED).status == "approved"
    assert reads == []
    # AND another client is still refused it
    other = accounts.create_account(p, CLIENT, "Other")[0]
    with pytest.raises(NotFound):
        payments.review_assignment(p, other, second, None, APPROVED)
    # WHEN the client rejects the other THEN the job is read strongly consistent (its state
    # decides where the reward goes)
    payments.review_assignment(p, client, second, {"reason": "off topic"}, REJECTED)
    assert reads and all(reads)


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
    count_all(p)
    with pytest.raises(Conflict) as caught:
        payments.pay_bonus(p, client, job.job_id, {"worker_id": w1.account_id, "reason": "x",
                                                   "amount_cents": pool + 1, "bonus_id": "b"})
    assert caught.value.code == "insufficient_budget"
    # WHEN everyone answers everything they are offered
    for worker in (w1, w2, w3):
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
            count_all(p)
            ingest_all(p)  # the pass over the items before the round closes
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


def test_unreviewed_answers_are_approved_when_their_pay_window_is_due(p):
    # GIVEN a day's review period, an answer from each of two workers, one of them rejected
    client, job = _post(p, auto_approve_seconds=DAY)
    worker = _worker(p)
    first = _answer(p, job, worker)
    second = _answer(p, job, _worker(p, "w2"))
    count_all(p)
    payments.review_assignment(p, client, second, {"reason": "no"}, REJECTED)
    accrual = p.ledger.accrual(job.job_id, worker.account_id, payouts.window_of(first))
    due = payouts.due_at(accrual.window, job.lease_seconds, DAY)
    assert accrual.due_at == due and accrual.accrued == 1
    # WHEN the sweeper runs before the window is due THEN nothing is paid
    p.clock.set(due - 1)
    assert payments.auto_approve_due(p) == 0
    # WHEN it runs once it is due THEN the unreviewed answer is paid, the rejected one not
    p.clock.set(due)
    assert payments.auto_approve_due(p) == 1
    assert p.ledger.balance(worker.account_id) == job.reward_cents
    entry = p.ledger.get_entry(worker.account_id,
                               payouts.accrual_entry_id(job.job_id, accrual.window, 1))
    assert entry.by == "auto" and entry.kind == "settlement" and entry.answers == 1
    # AND a rerun pays nothing: the settled accrual left the due index
    assert p.ledger.accruals_due(p.now() + 10 * DAY, 100) == []
    assert payments.auto_approve_due(p) == 0
    assert p.ledger.balance(worker.account_id) == job.reward_cents
    # AND rejecting it is too late (409: approved by the settlement); a client approving it
    # after the settlement gets an approval, not a payment
    with pytest.raises(Conflict) as caught:
        payments.review_assignment(p, client, first, {"reason": "too late"}, REJECTED)
    assert caught.value.review.status == "approved" and caught.value.review.decision["by"] == "auto"
    again = payments.review_assignment(p, client, first, None, APPROVED)
    assert again.status == "approved" and p.ledger.balance(worker.account_id) == 5
    assert p.jobs.get_job(job.job_id).rejected_answers == 1


def test_a_settlement_repeated_by_two_sweepers_or_a_redelivery_pays_once(p):
    _, job = _post(p, items=4, redundancy=1, auto_approve_seconds=0)
    worker = _worker(p)
    for _ in range(3):
        _answer(p, job, worker)
    count_all(p, times=3)  # every count message delivered three times
    p.clock.advance(2 * 3600 + job.lease_seconds)
    (accrual,) = p.ledger.accruals_due(p.now(), 10)
    assert accrual.accrued == 3
    # two sweepers read the same accrual; both settle it
    assert payments.settle_accrual(p, accrual, "auto") == 3
    assert payments.settle_accrual(p, accrual, "auto") == 0
    assert payments.auto_approve_due(p) == 0
    assert p.ledger.balance(worker.account_id) == 3 * job.reward_cents
    assert len(p.ledger.entries(worker.account_id, 10, None)[0]) == 1


def test_an_answer_counted_after_its_window_was_settled_is_paid_once_later(p):
    # GIVEN two answers of a worker in one pay window, of which only the first is counted
    _, job = _post(p, items=4, redundancy=1, auto_approve_seconds=0)
    worker = _worker(p)
    _answer(p, job, worker)
    _answer(p, job, worker)
    late = p.results_queue.take()
    p.results_queue.send_many(late[:1])
    count_all(p)
    p.clock.advance(2 * 3600 + job.lease_seconds)
    assert payments.auto_approve_due(p) == 1
    # WHEN the second is counted late (and again) THEN the next run pays it alone, once
    p.results_queue.send_many(late[1:])
    count_all(p, times=2)
    assert payments.auto_approve_due(p) == 1 and payments.auto_approve_due(p) == 0
    assert p.ledger.balance(worker.account_id) == 2 * job.reward_cents
    assert sorted(e.answers for e in p.ledger.entries(worker.account_id, 10, None)[0]) == [1, 1]
    assert p.jobs.get_job(job.job_id).approved_answers == 2


def test_the_sweeper_settles_a_page_per_run_and_continues_where_it_stopped(p):
    _, job = _post(p, items=5, redundancy=1, auto_approve_seconds=0)
    workers = [_worker(p, f"w{n}") for n in range(5)]
    for worker in workers:
        _answer(p, job, worker)
    count_all(p)
    p.clock.advance(2 * 3600 + job.lease_seconds)
    assert [payments.auto_approve_due(p, page=2) for _ in range(4)] == [2, 2, 1, 0]
    assert all(p.ledger.balance(w.account_id) == job.reward_cents for w in workers)


def test_a_bulk_approval_pays_every_window_before_it_is_due_in_pages(p):
    # GIVEN three workers' answers in a job with a week's review period, one rejected
    client, job = _post(p, items=4, redundancy=1, auto_approve_seconds=7 * DAY)
    workers = [_worker(p, f"w{n}") for n in range(3)]
    answers = [_answer(p, job, worker) for worker in workers]
    count_all(p)
    payments.review_assignment(p, client, answers[0], {"reason": "spam"}, REJECTED)
    assert payments.auto_approve_due(p) == 0
    # WHEN the client approves the job's windows ended before now: none has ended yet
    cutoff = {"submitted_before": "2001-01-01T00:00:00Z"}
    assert payments.approve_job(p, client, job.job_id, cutoff)["status"] == "approving"
    assert payments.auto_approve_due(p, page=1) == 0
    # WHEN it approves every window THEN the sweeper pays a page of accruals per run
    payments.approve_job(p, client, job.job_id, None)
    paid = [payments.auto_approve_due(p, page=1) for _ in range(4)]
    assert sum(paid) == 2 and max(paid) == 1 and payments.auto_approve_due(p) == 0
    assert [p.ledger.balance(w.account_id) for w in workers] == [0, 5, 5]
    settled = p.jobs.get_job(job.job_id)
    assert (settled.approved_answers, settled.rejected_answers, settled.paid_cents) == (2, 1, 10)
    with pytest.raises(Conflict) as caught:
        payments.review_assignment(p, client, answers[1], {"reason": "late"}, REJECTED)
    assert caught.value.review.decision["by"] == client.account_id
    with pytest.raises(InvalidRequest) as caught:
        payments.approve_job(p, client, job.job_id, {"submitted_before": "yesterday"})
    assert caught.value.field == "submitted_before"
    with pytest.raises(NotFound):
        payments.approve_job(p, accounts.create_account(p, CLIENT, "Other")[0], job.job_id, None)


def test_a_bonus_is_paid_once_per_bonus_id_from_the_jobs_pool(p):
    client, job = _post(p, items=4, redundancy=2)
    worker = _worker(p)
    _answer(p, job, worker)
    count_all(p)
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
    count_all(p)
    payments.pay_bonus(p, client, job.job_id, {"worker_id": worker.account_id,
                                               "amount_cents": 2, "reason": "fast",
                                               "bonus_id": "x"})
    count_all(p)
    _settle_all(p)
    seen = payments.earnings(p, worker, {})
    assert seen.balance_cents == 7
    assert [(e.kind, e.amount_cents, e.reason, e.answers) for e in seen.entries] == [
        ("settlement", 5, "1 answer approved", 1), ("bonus", 2, "fast", None),
        ("rejection", 0, "wrong language", None)]
    page = payments.earnings(p, worker, {"limit": "2"})
    assert len(page.entries) == 2 and page.next_cursor


def test_a_bonus_goes_to_a_worker_with_an_answer_counted_in_the_job_items_unread(p):
    client, job = _post(p, items=4, redundancy=2)
    answered, leased, other_job = _worker(p, "a"), _worker(p, "l"), _worker(p, "o")
    _answer(p, job, answered)
    tasks.lease_next_task(p, leased, job.job_id)
    _, elsewhere = _post(p, items=2, redundancy=1)
    _answer(p, elsewhere, other_job)
    body = {"amount_cents": 2, "reason": "thanks", "bonus_id": "b"}
    # an answer not yet counted (the counting queue is seconds behind) does not count yet
    with pytest.raises(NotFound):
        payments.pay_bonus(p, client, job.job_id, {**body, "worker_id": answered.account_id})
    count_all(p)
    walks = []
    p.items.iter_items = lambda *args, **kwargs: walks.append(args) or iter(())
    _, new = payments.pay_bonus(p, client, job.job_id, {**body, "worker_id": answered.account_id})
    assert new and p.ledger.balance(answered.account_id) == 2
    for worker in (leased, other_job):  # a lease never answered; a worker of another job
        with pytest.raises(NotFound) as caught:
            payments.pay_bonus(p, client, job.job_id, {**body, "worker_id": worker.account_id})
        assert caught.value.code == "worker_not_found" and caught.value.field == "worker_id"
    assert walks == []
