"""A round closes from the job's bounded records when nothing is left out, and otherwise
after a paged pass over its items that reopens each item once, whatever is delivered again
(on the fakes)."""
from __future__ import annotations

import pytest

from chalicelib.domain.model import ACTIVE, AGGREGATING, CLIENT, OPERATOR, WORKER
from chalicelib.handlers import accounts, jobs, quality, rounds, tasks
from tests.fakes import FakeClock, count_all, ingest_all, make_platform

ITEMS = 10


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _post(p, items=ITEMS, redundancy=2):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                          "redundancy": redundancy})
    job = jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "Pick one.",
                                    "answer_schema": {"labels": ["pos", "neg"]},
                                    "pilot": {"items": 0},
                                    "items": [{"data": {"n": n}} for n in range(items)]})
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _worker(p, name):
    return accounts.create_account(p, WORKER, name)[0]


def _answer_everything(p, job, worker):
    while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
        tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})


def test_a_round_with_nothing_left_out_closes_without_reading_an_item(p):
    # GIVEN a job answered in full, and a worker blocked everywhere who never worked on it
    operator = accounts.create_account(p, OPERATOR, "Ops")[0]
    quality.operator_block(p, operator, _worker(p, "elsewhere").account_id, {"reason": "fraud"})
    client, job = _post(p)
    _answer_everything(p, job, _worker(p, "a"))
    _answer_everything(p, job, _worker(p, "b"))
    # WHEN its answers are counted
    reads = p.items.item_reads
    count_all(p)
    # THEN the round closed at once: no item read, no pass queued
    assert p.jobs.get_job(job.job_id).state == AGGREGATING
    assert p.workflow.started == [f"{job.job_id}-r1"]
    assert p.items.item_reads == reads and p.ingest_queue.sent == []


def test_a_blocked_worker_who_answered_starts_a_pass_instead(p):
    # GIVEN a job answered in full, one of whose workers an operator then blocks everywhere
    operator = accounts.create_account(p, OPERATOR, "Ops")[0]
    client, job = _post(p)
    bad = _worker(p, "bad")
    _answer_everything(p, job, bad)
    _answer_everything(p, job, _worker(p, "b"))
    quality.operator_block(p, operator, bad.account_id, {"reason": "fraud"})
    # WHEN its answers are counted THEN a pass is queued and the job keeps taking answers
    count_all(p)
    (message,) = p.ingest_queue.sent
    assert message["left_out"]["after"] is None and message["left_out"]["round"] == 1
    assert p.jobs.get_job(job.job_id).state == ACTIVE and p.workflow.started == []


def test_a_paged_pass_reopens_each_item_once_across_redeliveries(p, monkeypatch):
    monkeypatch.setattr(rounds, "LEFT_OUT_PAGE", 3)
    # GIVEN a job of 10 items taking two answers, every item answered by a worker the client
    # then blocks from the job
    client, job = _post(p)
    bad, good = _worker(p, "bad"), _worker(p, "good")
    _answer_everything(p, job, bad)
    count_all(p)  # a worker is one of the job's once an answer of theirs is counted
    quality.client_blocks_worker(p, client, job.job_id, bad.account_id, {"reason": "spam"})
    _answer_everything(p, job, good)
    pool = p.jobs.get_job(job.job_id).pool_cents
    count_all(p)
    # WHEN every page of the pass is delivered twice, and every page once more at the end
    pages = []
    while messages := p.ingest_queue.take():
        for message in messages:
            reads = p.items.item_reads
            jobs.ingest_chunk(p, message)
            jobs.ingest_chunk(p, message)
            assert p.items.item_reads - reads <= 2 * rounds.LEFT_OUT_PAGE
            pages.append(message)
    for message in pages:
        jobs.ingest_chunk(p, message)
    ingest_all(p)
    # THEN the pass ran in four pages, each item got one replacement slot, paid once from
    # the blocked worker's rejected rewards, and the round is still open for the answers
    assert [m["left_out"]["after"] for m in pages] == [None, "000002", "000005", "000008"]
    items = [p.items.get_item(job.job_id, f"{n:06d}") for n in range(ITEMS)]
    assert all(item.replaced == 1 and item.redundancy == 3 and item.free == 1 for item in items)
    job = p.jobs.get_job(job.job_id)
    assert job.state == ACTIVE and p.workflow.started == []
    assert job.rejected_answers == ITEMS and job.pool_cents == pool and job.held_cents == 0
    # WHEN someone answers the reopened items, counted, with the second pass's pages
    _answer_everything(p, job, _worker(p, "third"))
    count_all(p)
    assert p.ingest_queue.sent  # the second pass
    ingest_all(p)
    # THEN that pass reopened nothing and closed the round, once
    assert p.jobs.get_job(job.job_id).state == AGGREGATING
    assert p.workflow.started == [f"{job.job_id}-r1"]
    assert all(p.items.get_item(job.job_id, f"{n:06d}").replaced == 1 for n in range(ITEMS))


def test_a_second_pass_waits_while_one_holds_the_job(p, monkeypatch):
    monkeypatch.setattr(rounds, "LEFT_OUT_PAGE", 3)
    # GIVEN a pass that has run its first page, and a second pass queued (a count message
    # delivered again)
    client, job = _post(p)
    bad = _worker(p, "bad")
    _answer_everything(p, job, bad)
    count_all(p)  # a worker is one of the job's once an answer of theirs is counted
    quality.client_blocks_worker(p, client, job.job_id, bad.account_id, {"reason": "spam"})
    _answer_everything(p, job, _worker(p, "good"))
    count_all(p)
    (first,) = p.ingest_queue.take()
    jobs.ingest_chunk(p, first)
    (following,) = p.ingest_queue.take()
    assert quality.replace_left_out(p, p.jobs.get_job(job.job_id)) is False
    (second,) = p.ingest_queue.take()
    # WHEN the second pass's first page comes THEN it reads nothing and queues nothing
    reads = p.items.item_reads
    jobs.ingest_chunk(p, second)
    assert p.items.item_reads == reads and p.ingest_queue.sent == []
    # AND the first pass goes on to its end
    jobs.ingest_chunk(p, following)
    ingest_all(p)
    assert all(p.items.get_item(job.job_id, f"{n:06d}").replaced == 1 for n in range(ITEMS))
    # AND a pass whose pages stopped is taken over once it has been quiet long enough
    assert p.jobs.claim_pass(job.job_id, "pass_x", None, p.now(), p.now() - 1)
    assert quality.replace_left_out(p, p.jobs.get_job(job.job_id)) is False
    (taken,) = p.ingest_queue.take()
    jobs.ingest_chunk(p, taken)
    assert p.ingest_queue.sent == []  # held by pass_x
    p.clock.advance(rounds.PASS_STALE_SECONDS + 1)
    jobs.ingest_chunk(p, taken)
    assert p.ingest_queue.sent  # taken over: its next page is queued


def test_a_page_of_a_round_gone_by_does_nothing(p):
    client, job = _post(p)
    p.jobs.claim_pass(job.job_id, "pass_old", None, p.now(), 0)
    reads = p.items.item_reads
    jobs.ingest_chunk(p, {"job_id": job.job_id, "left_out": {
        "round": job.round + 1, "pass": "pass_old", "after": None, "reopened": 0}})
    assert p.items.item_reads == reads and p.ingest_queue.sent == []
    assert p.jobs.claim_pass(job.job_id, "pass_new", None, p.now(), 0)  # let go of the job
