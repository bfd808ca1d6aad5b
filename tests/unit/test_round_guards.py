"""Guards where rounds close and money comes back: races and retries (on the fakes)."""
from __future__ import annotations

import pytest

from chalicelib.api.views import qualification_view, questions_view
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLIENT, OPERATOR, PAUSED, PRODUCTION, WORKER, CountedAnswer,
)
from chalicelib.domain.pricing import job_money
from chalicelib.errors import TransientError
from chalicelib.handlers import accounts, jobs, qualifications, quality, rounds, tasks
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeClock, ingest_all, make_platform


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _post(p, items=3, redundancy=1, gold=(), **extra):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": redundancy, "gold_rate": 0.5})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick one.",
        "answer_schema": {"labels": ["pos", "neg"]},
        "items": [{"data": {"n": n}, **({"gold": {"label": "pos"}} if n in gold else {})}
                  for n in range(items)], **extra})
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _answer_all(p, job, n_workers=1):
    for k in range(n_workers):
        worker = accounts.create_account(p, WORKER, f"w{k}")[0]
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})


def test_a_round_does_not_start_when_an_item_was_reopened_meanwhile(p):
    client, job = _post(p, items=2, pilot={"items": 0})
    _answer_all(p, job)
    for message in p.results_queue.take():
        p.jobs.record_counted(job.job_id, [CountedAnswer(
            message["job_id"], message["item_id"], message["worker_id"],
            message["assignment_id"], message["item_complete"])])
    job = p.jobs.get_job(job.job_id)
    assert job.items_done == 2
    # another consumer reopens an item (a replacement slot) before this one starts the round
    assert p.items.add_slots(job.job_id, "000000", 1, 0)
    rounds.start_aggregation(p, job, require_done=True)
    assert p.jobs.get_job(job.job_id).state == ACTIVE and p.workflow.started == []
    # without the requirement (a stop or the deadline) it does start
    rounds.start_aggregation(p, job)
    assert p.jobs.get_job(job.job_id).state == AGGREGATING
    assert p.workflow.started == [f"{job.job_id}-r1"]


def test_when_a_job_ends_its_unused_gold_slots_go_back_to_the_pool(p):
    # GIVEN 8 regular items and 4 gold, the quote paying 12 gold answers and one slot per
    # item (4 slots per gold item); a worker leases a gold task and lets it expire
    client, job = _post(p, items=12, gold={0, 1, 2, 3}, pilot={"items": 0},
                        quality={"gold_rate": 0.5, "block_after": 0})
    pool = job.pool_cents
    assert job.gold_slots == 16
    worker = accounts.create_account(p, WORKER, "quitter")[0]
    while int((task := tasks.lease_next_task(p, worker, job.job_id)).item.item_id) >= 4:
        tasks.release_assignment(p, worker, task.assignment_id)
    assert p.jobs.get_job(job.job_id).pool_cents == pool  # a gold lease takes no money
    p.clock.advance(job.lease_seconds + 1)  # the gold lease expires, never submitted
    _answer_all(p, job, n_workers=2)
    for message in p.results_queue.take():
        rounds.count_answers(p, [message])
    job = p.jobs.get_job(job.job_id)
    assert job.state == AGGREGATING and job.pool_cents == pool
    # WHEN the round is published and the job is done
    loaded = stages.load_answers(p, {"job_id": job.job_id, "round": job.round})
    fitted = stages.fit_model(p, loaded)
    for shard in fitted["shards"]:
        stages.aggregate_shard(p, shard)
    published = stages.publish_results(p, fitted)
    stages.mark_done(p, published)
    stages.mark_done(p, published)  # a retry releases nothing twice
    # THEN every gold slot nobody answered (free or expired) is back in the pool, and the
    # money adds up with nothing reserved
    job = p.jobs.get_job(job.job_id)
    gold = [p.items.get_item(job.job_id, f"{n:06d}") for n in range(4)]
    answered = sum(item.answer_count for item in gold)
    assert all(item.redundancy == item.answer_count and not item.leases for item in gold)
    assert job.pool_cents == pool + (16 - answered) * job.reward_cents
    money = job_money(job)
    assert money["reserved_cents"] == 0
    assert money["spent_cents"] == job.answered * job.reward_cents == (8 + answered) * 5
    assert money["for_workers_cents"] == money["spent_cents"] + money["pool_cents"]


def test_a_stopped_job_pays_for_no_replacement_slots(p):
    client, job = _post(p, items=2, pilot={"items": 0})
    p.jobs.transition(job.job_id, (ACTIVE,), CANCELLED)
    p.stats.mark_blocked("wrk_x", job.job_id, "spam (by client)", p.now())
    p.ingest_queue.take()
    # the round may close at once: no pass over the items is queued, nothing is reopened
    assert quality.replace_left_out(p, p.jobs.get_job(job.job_id)) is True
    assert p.ingest_queue.sent == []


def test_a_retried_mark_done_still_promotes_a_pilot_that_met_its_thresholds(p):
    client, job = _post(p, items=30, gold={0, 1}, pilot={"items": 3},
                        promotion={"gold_accuracy": 0.5},
                        quality={"gold_rate": 0.5, "block_after": 0})
    _answer_all(p, job, n_workers=3)
    for message in p.results_queue.take():
        rounds.count_answers(p, [message])
    job = p.jobs.get_job(job.job_id)
    loaded = stages.load_answers(p, {"job_id": job.job_id, "round": 1})
    fitted = stages.fit_model(p, loaded)
    for shard in fitted["shards"]:
        stages.aggregate_shard(p, shard)
    published = stages.publish_results(p, fitted)
    # WHEN the promotion's queueing fails the first time
    real = p.ingest_queue.send

    def broken(message, delay_seconds=0):
        raise TransientError("queue unavailable")

    p.ingest_queue.send = broken
    with pytest.raises(TransientError):
        stages.mark_done(p, published)
    assert p.jobs.get_job(job.job_id).state == PAUSED
    # THEN the state machine's retry promotes it
    p.ingest_queue.send = real
    assert stages.mark_done(p, published)["state"] == "promoted"
    job = p.jobs.get_job(job.job_id)
    assert (job.state, job.phase, job.round) == (ACTIVE, PRODUCTION, 2)
    # AND a late retry of round 1 does not touch round 2
    stages.mark_done(p, published)
    assert p.jobs.get_job(job.job_id).state == ACTIVE


def test_a_passed_test_whose_grant_failed_grants_on_the_next_submit(p):
    operator = accounts.create_account(p, OPERATOR, "Ops")[0]
    qual = qualification_view(qualifications.create_qualification(p, operator, {
        "skill": "s", "task_type": "categorical", "instructions": "x",
        "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"t": 1}, "gold": {"label": "a"}}]}))
    worker, token = accounts.create_account(p, WORKER, "w")
    principal = accounts.authenticate(p, token, WORKER)
    attempt = questions_view(*qualifications.start_qualification(p, principal, qual["qualification_id"]))
    body = {"attempt_id": attempt["attempt_id"], "answers": {"000000": {"label": "a"}}}
    real = p.accounts.grant_skill

    def broken(*args):
        raise TransientError("busy")

    p.accounts.grant_skill = broken
    with pytest.raises(TransientError):
        qualifications.submit_qualification(p, principal, qual["qualification_id"], body)
    p.accounts.grant_skill = real
    assert qualifications.submit_qualification(p, principal, qual["qualification_id"], body)["passed"]
    assert "s" in accounts.authenticate(p, token, WORKER).skills
