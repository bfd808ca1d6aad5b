"""Task suites' rules: the lease count, the suite submit's body, gold draws per suite, and the
suite handlers on the fakes."""
from __future__ import annotations

import random

import pytest

from chalicelib.domain.leasing import MAX_SUITE_SIZE, suite_gold_draws
from chalicelib.domain.model import CLIENT, WORKER
from chalicelib.domain.suites import (
    NextSuite, SuiteAnswer, parse_count, parse_suite_submit, suite_length,
)
from chalicelib.errors import Forbidden, InvalidRequest, TransientError
from chalicelib.handlers import accounts, jobs, quality, tasks
from tests.fakes import FakeClock, ingest_all, make_platform

ASG = "asg_76f343c84c8bb153_000000_dfd07b3d_1795853215645_v1"
ASG2 = "asg_76f343c84c8bb153_000001_dfd07b3d_1795853215645_v1"


def test_the_count_is_absent_or_a_whole_number_from_1_to_20():
    assert parse_count(None) is None
    assert parse_count("1") == 1 and parse_count("20") == 20 and parse_count("07") == 7
    for bad in ("0", "21", "", "x", "2.5", "-1", " 3", "²", "٣", "1" * 5000):
        with pytest.raises(InvalidRequest) as refused:
            parse_count(bad)
        assert refused.value.field == "count"


def test_a_suite_is_never_longer_than_the_jobs_suite_size():
    assert suite_length(20, 5) == 5
    assert suite_length(3, 5) == 3
    assert suite_length(4, 1) == 1


def test_a_suite_submit_body_names_each_assignment_once_with_one_answer():
    answers, following = parse_suite_submit({"answers": [
        {"assignment_id": ASG, "answer": {"label": "pos"}},
        {"assignment_id": ASG2, "not_applicable": "empty"}]})
    assert answers == [SuiteAnswer(ASG, {"label": "pos"}),
                       SuiteAnswer(ASG2, {"not_applicable": "empty"})]
    assert following is None
    answers, following = parse_suite_submit({
        "answers": [{"assignment_id": ASG, "not_applicable": {"reason": "empty"}}],
        "next": {"count": 5, "job_id": "job_76f343c84c8bb153"}})
    assert answers == [SuiteAnswer(ASG, {"not_applicable": "empty"})]
    assert following == NextSuite(5, "job_76f343c84c8bb153")
    assert parse_suite_submit({"answers": [{"assignment_id": ASG, "answer": {}}],
                               "next": {}})[1] == NextSuite(MAX_SUITE_SIZE, None)


@pytest.mark.parametrize(("body", "field"), [
    ("answers", "body"),
    ({}, "answers"),
    ({"answers": None}, "answers"),
    ({"answers": []}, "answers"),
    ({"answers": [{"assignment_id": f"{ASG}{n}", "answer": {}} for n in range(21)]}, "answers"),
    ({"answers": [{"assignment_id": ASG, "answer": {}}] * 2}, "answers[1].assignment_id"),
    ({"answers": [{"assignment_id": ASG}]}, "answers[0]"),
    ({"answers": [{"assignment_id": ASG, "answer": {}, "not_applicable": "x"}]}, "answers[0]"),
    ({"answers": [{"answer": {}}]}, "answers[0].assignment_id"),
    ({"answers": [{"assignment_id": 5, "answer": {}}]}, "answers[0].assignment_id"),
    ({"answers": [{"assignment_id": "a" * 201, "answer": {}}]}, "answers[0].assignment_id"),
    ({"answers": [{"assignment_id": ASG, "answer": ["pos"]}]}, "answers[0].answer"),
    ({"answers": [{"assignment_id": ASG, "not_applicable": {"why": "x"}}]},
     "answers[0].not_applicable.why"),
    ({"answers": [{"assignment_id": ASG, "answer": {}, "x": 1}]}, "answers[0].x"),
    ({"answers": ["x"]}, "answers[0]"),
    ({"answers": [{"assignment_id": ASG, "answer": {}}], "next": 3}, "next"),
    ({"answers": [{"assignment_id": ASG, "answer": {}}], "next": {"count": 21}}, "next.count"),
    ({"answers": [{"assignment_id": ASG, "answer": {}}], "next": {"job_id": 7}}, "next.job_id"),
    ({"answers": [{"assignment_id": ASG, "answer": {}}], "later": 1}, "later"),
])
def test_a_malformed_suite_submit_body_is_refused_whole(body, field):
    with pytest.raises(InvalidRequest) as refused:
        parse_suite_submit(body)
    assert refused.value.field == field


def test_gold_draws_follow_the_rate_but_never_fill_a_suite():
    rng = random.Random(3)
    assert suite_gold_draws(5, 0.0, rng) == [False] * 5
    for size in range(2, 8):
        assert sorted(suite_gold_draws(size, 1.0, rng)) == [False] + [True] * (size - 1)
    assert suite_gold_draws(1, 1.0, rng) == [True]  # a suite of one: the single lease's rule
    draws = [draw for _ in range(2000) for draw in suite_gold_draws(5, 0.2, rng)]
    assert 0.17 < sum(draws) / len(draws) < 0.23


def _job(p, items=10, redundancy=1, suite_size=5, gold=(), gold_rate=0.0):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                          "redundancy": redundancy, "gold_rate": gold_rate})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick one.", "pilot": {"items": 0},
        "answer_schema": {"labels": ["pos", "neg"]}, "suite_size": suite_size,
        "quality": {"gold_rate": gold_rate, "block_after": 0},
        "items": [{"data": {"n": n}, **({"gold": {"label": "pos"}} if n in gold else {})}
                  for n in range(items)]})
    ingest_all(p)
    return p.jobs.get_job(job.job_id)


def test_a_suite_on_the_fakes_is_shuffled_gold_and_regular_and_sends_its_messages_together():
    p = make_platform(FakeClock())
    job = _job(p, items=30, suite_size=3, gold=range(10), gold_rate=0.5)
    assert job.suite_size == 3
    worker = accounts.create_account(p, WORKER, "w")[0]
    seen: list[str] = []
    positions = set()
    while suite := tasks.lease_suite(p, worker, 20, job.job_id):
        assert len(suite) <= 3
        assert any(task.item.gold is None for task in suite)
        positions |= {index for index, task in enumerate(suite) if task.item.gold is not None}
        seen += [task.item.item_id for task in suite]
        outcome = tasks.submit_suite(p, worker, [
            SuiteAnswer(task.assignment_id, {"label": "pos"}) for task in suite])
        assert [result.status for result in outcome.results] == ["accepted"] * len(suite)
    assert len(seen) == len(set(seen))  # never the same item twice
    assert positions == {0, 1, 2}  # gold anywhere in a suite: its place tells nothing
    assert len(p.results_queue.sent) == len(seen)


def test_a_single_submit_still_sends_its_own_message():
    p = make_platform(FakeClock())
    job = _job(p, items=2, suite_size=1)
    worker = accounts.create_account(p, WORKER, "w")[0]
    task = tasks.lease_next_task(p, worker, job.job_id)
    receipt = tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    assert receipt.assignment_id == task.assignment_id
    assert [m["assignment_id"] for m in p.results_queue.sent] == [task.assignment_id]


def test_a_suite_submit_that_fails_midway_still_sends_the_stored_answers_messages():
    # GIVEN a suite of three whose third answer's write meets a busy table
    p = make_platform(FakeClock())
    job = _job(p, items=3, suite_size=3)
    worker = accounts.create_account(p, WORKER, "w")[0]
    suite = tasks.lease_suite(p, worker, 3, job.job_id)
    third = suite[2].assignment_id
    write = p.items.try_submit

    def busy_on_third(job_id, item_id, worker_id, answer, now):
        if answer.assignment_id == third:
            raise TransientError("DynamoDB is busy; try again")
        return write(job_id, item_id, worker_id, answer, now)

    p.items.try_submit = busy_on_third
    # WHEN the suite is submitted
    with pytest.raises(TransientError):
        tasks.submit_suite(p, worker, [SuiteAnswer(t.assignment_id, {"label": "pos"})
                                       for t in suite])
    # THEN the request fails (the client retries it), but the two answers it stored are
    # counted even if it never does: their messages went out
    assert [m["assignment_id"] for m in p.results_queue.sent] == \
        [t.assignment_id for t in suite[:2]]
    # and the retry stores the third, sending all three again (counting is idempotent)
    p.items.try_submit = write
    outcome = tasks.submit_suite(p, worker, [SuiteAnswer(t.assignment_id, {"label": "pos"})
                                             for t in suite])
    assert [r.status for r in outcome.results] == ["duplicate", "duplicate", "accepted"]
    assert len(p.results_queue.sent) == 5


def test_a_suite_keeps_the_single_tasks_rules_on_blocks_and_the_deadline():
    clock = FakeClock()
    p = make_platform(clock)
    job = _job(p, items=12, suite_size=3)
    worker = accounts.create_account(p, WORKER, "w")[0]
    # a suite leased 10 s before the deadline ends with it, each lease alike
    clock.now = job.deadline - 10
    suite = tasks.lease_suite(p, worker, 3, job.job_id)
    assert len(suite) == 3 and {t.lease.expires_at for t in suite} == {job.deadline}
    # a worker blocked from the job meanwhile has the answers stored, but no next suite
    quality.block_in_job(p, job, worker.account_id, "client", "careless")
    outcome = tasks.submit_suite(p, worker, [SuiteAnswer(t.assignment_id, {"label": "pos"})
                                             for t in suite[:2]], NextSuite(3, job.job_id))
    assert [r.status for r in outcome.results] == ["accepted", "accepted"]
    assert outcome.next == [] and outcome.next_error is not None
    assert outcome.next_error.code == "blocked_from_job"
    with pytest.raises(Forbidden):
        tasks.lease_suite(p, worker, 3, job.job_id)
    # past the deadline the last answer is refused on its own, and nobody gets a suite
    clock.now = job.deadline + 1
    late = tasks.submit_suite(p, worker, [SuiteAnswer(suite[2].assignment_id, {"label": "pos"})])
    assert [r.status for r in late.results] == ["lease_expired"]
    other = accounts.create_account(p, WORKER, "o")[0]
    assert tasks.lease_suite(p, other, 3, job.job_id) == []
    assert len(p.results_queue.sent) == 2
