"""Command handlers in chalicelib.handlers (jobs, tasks, rounds, accounts), against the in-memory fakes."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chalicelib.api import views
from chalicelib.domain import leasing
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLIENT, INGESTING, OFFER_INSTRUCTIONS, WORKER, Job, NewItem,
    Principal,
)
from chalicelib.domain.qualifications import Cohort
from chalicelib.errors import (
    Conflict, Forbidden, InvalidRequest, NotFound, TransientError, Unauthorized,
)
from chalicelib.handlers import accounts, jobs, quality, rounds, tasks
from chalicelib.handlers.platform import client_job
from tests.fakes import FakeClock, another_container, make_platform
from tests.fakes import count_all as _count_all, ingest_all as _ingest_all

LEASE_SECONDS = 60


@pytest.fixture
def p():
    return make_platform(FakeClock())


# --- helpers ---------------------------------------------------------------------------------

def _client(p, name="Acme") -> Principal:
    return accounts.create_account(p, CLIENT, name)[0]


def _worker(p, skills=()) -> Principal:
    return accounts.create_account(p, WORKER, "w", skills)[0]


def _post(p, client, items=2, redundancy=2, cohort=None, **body) -> Job:
    spec = {"task_type": "categorical", "items": items, "redundancy": redundancy}
    if cohort:
        p.catalog.put_cohort(Cohort(cohort, (cohort,)))
        spec["cohort"] = cohort
    quote = jobs.create_quote(p, client, spec)
    job_body = {"quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
                "answer_schema": {"labels": ["pos", "neg"]}, "lease_seconds": LEASE_SECONDS,
                "items": [{"data": {"n": n}} for n in range(items)]}
    job_body.update(body)
    return jobs.post_job(p, client, job_body)


def _active_job(p, client=None, **kwargs) -> Job:
    job = _post(p, client or _client(p), **kwargs)
    _ingest_all(p)
    return p.jobs.get_job(job.job_id)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


def _answers_per_item(p, job_id) -> dict[str, int]:
    return {item.item_id: item.answer_count for item in p.items.iter_items(job_id)}


# --- posting and ingest ---------------------------------------------------------------------

def test_posting_a_job_fans_its_items_out_in_chunks_of_25(p):
    # GIVEN a client with a quote for 60 items
    client = _client(p)
    # WHEN the job is posted
    job = _post(p, client, items=60)
    # THEN it is ingesting, with 60 items in three ingest messages and none written yet
    assert job.state == INGESTING and job.chunk_count == 3
    messages = p.ingest_queue.sent
    assert [len(m["items"]) for m in messages] == [25, 25, 10]
    assert [m["chunk"] for m in messages] == [0, 1, 2]
    assert list(p.items.iter_items(job.job_id)) == []


def test_a_repeated_chunk_creates_nothing_twice(p):
    # GIVEN a posted job of 60 items
    job = _post(p, _client(p), items=60)
    messages = p.ingest_queue.take()
    # WHEN every chunk is delivered twice
    for message in messages + messages:
        jobs.ingest_chunk(p, message)
    # THEN each item exists once, each chunk counted once, and the job is active
    assert [i.item_id for i in p.items.iter_items(job.job_id)] == [f"{n:06d}" for n in range(60)]
    assert (p.jobs.get_job(job.job_id).chunks_written, p.jobs.get_job(job.job_id).state) \
        == (3, ACTIVE)
    # AND a chunk redelivered after work began leaves the work in place
    task = tasks.lease_next_task(p, _worker(p), job.job_id)
    jobs.ingest_chunk(p, messages[int(task.item.item_id) // 25])
    item = p.items.get_item(job.job_id, task.item.item_id)
    assert [lease.assignment_id for lease in item.leases.values()] == [task.assignment_id]


def test_a_job_becomes_active_only_when_every_chunk_is_ingested(p):
    # GIVEN a 60-item job with two of its three chunks ingested
    job = _post(p, _client(p), items=60)
    first, second, last = p.ingest_queue.take()
    jobs.ingest_chunk(p, first)
    jobs.ingest_chunk(p, second)
    worker = _worker(p)
    # THEN it is still ingesting and offers no work
    assert p.jobs.get_job(job.job_id).state == INGESTING
    assert tasks.lease_next_task(p, worker) is None
    # WHEN the last chunk arrives (in any order)
    jobs.ingest_chunk(p, last)
    # THEN it is active and, once the container's job cache has aged, offers work
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    p.clock.advance(p.cache_seconds)
    assert tasks.lease_next_task(p, worker).job.job_id == job.job_id


def test_a_last_chunk_whose_delivery_died_half_way_is_counted_by_the_next_delivery(p):
    # GIVEN a 60-item job with two chunks in, and the delivery of the last one dead after
    # writing its first item
    job = _post(p, _client(p), items=60)
    first, second, last = p.ingest_queue.take()
    jobs.ingest_chunk(p, first)
    jobs.ingest_chunk(p, second)
    p.items.put_items(job.job_id, job.redundancy, [NewItem(
        last["items"][0]["item_id"], last["items"][0]["data"], None)])
    # THEN the chunk is not counted and the job still ingests
    assert (p.jobs.get_job(job.job_id).chunks_written, p.jobs.get_job(job.job_id).state) \
        == (2, INGESTING)
    # WHEN the chunk is delivered again, twice
    jobs.ingest_chunk(p, last)
    jobs.ingest_chunk(p, last)
    # THEN every item is in once, the chunk counted once and the job active
    assert [i.item_id for i in p.items.iter_items(job.job_id)] == [f"{n:06d}" for n in range(60)]
    assert (p.jobs.get_job(job.job_id).chunks_written, p.jobs.get_job(job.job_id).state) \
        == (3, ACTIVE)


def test_a_quote_buys_one_job(p):
    # GIVEN a job posted from a quote
    client = _client(p)
    job = _post(p, client)
    # WHEN the same quote is posted again
    with pytest.raises(Conflict) as caught:
        jobs.post_job(p, client, {
            "quote_id": job.quote_id, "instructions": "Again.",
            "answer_schema": {"labels": ["pos", "neg"]},
            "items": [{"data": {"n": 0}}, {"data": {"n": 1}}]})
    # THEN it is refused naming the job that used it, and nothing more is queued
    assert caught.value.code == "quote_used"
    assert caught.value.details == {"job_id": job.job_id}
    assert len(p.ingest_queue.sent) == 1


def test_another_clients_quote_is_not_found(p):
    # GIVEN a quote of one client
    quote = jobs.create_quote(p, _client(p, "A"), {"task_type": "categorical", "items": 1})
    # WHEN another client posts a job with it
    with pytest.raises(NotFound) as caught:
        jobs.post_job(p, _client(p, "B"), {
            "quote_id": quote.quote_id, "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"n": 0}}]})
    # THEN the quote does not exist for them
    assert caught.value.code == "quote_not_found"


# --- access ---------------------------------------------------------------------------------

def test_authenticate_tells_missing_unknown_and_wrong_role_apart(p):
    # GIVEN a worker's secret
    worker, secret = accounts.create_account(p, WORKER, "w", ["en"])
    # THEN no secret and an unknown one are unauthorized, with different codes
    with pytest.raises(Unauthorized) as missing:
        accounts.authenticate(p, None, WORKER)
    assert missing.value.code == "missing_credentials"
    with pytest.raises(Unauthorized) as unknown:
        accounts.authenticate(p, "wt_nope", WORKER)
    assert unknown.value.code == "invalid_credentials"
    # AND the worker's secret on a client endpoint is forbidden
    with pytest.raises(Forbidden) as wrong:
        accounts.authenticate(p, secret, CLIENT)
    assert wrong.value.code == "wrong_role"
    # AND on a worker endpoint it is the worker, with their skills
    assert accounts.authenticate(p, secret, WORKER) == worker
    assert worker.skills == frozenset({"en"})


def test_another_clients_job_is_not_found(p):
    # GIVEN a job of client A
    job = _post(p, _client(p, "A"))
    other = _client(p, "B")
    # WHEN client B asks for it, or for something that is not a job id
    # THEN both look like nothing is there
    for job_id in (job.job_id, "job_nothing"):
        with pytest.raises(NotFound) as caught:
            client_job(p, other, job_id)
        assert caught.value.code == "job_not_found"
    with pytest.raises(NotFound):
        jobs.stop_job(p, other, job.job_id)


def test_worker_self_registration_is_closed_unless_the_stage_opens_it(p):
    # GIVEN a platform with registration closed, and one with it open
    opened = make_platform(open_registration=True)
    # WHEN a worker registers on each
    with pytest.raises(Forbidden) as caught:
        accounts.register_worker(p, {"name": "Ana", "skills": ["es"]})
    worker, secret = accounts.register_worker(opened, {"name": " Ana ", "skills": ["es", "en"]})
    # THEN the closed one refuses and the open one gives a working worker secret
    assert caught.value.code == "registration_closed"
    assert accounts.authenticate(opened, secret, WORKER) == worker
    assert worker.name == "Ana" and worker.skills == frozenset({"en", "es"})


def test_a_worker_s_country_is_given_at_registration_and_changed_in_the_profile():
    # GIVEN a worker who registered in California, signed in on two containers
    p = make_platform(FakeClock(), open_registration=True)
    other = another_container(p, 1)
    worker, secret = accounts.register_worker(p, {"name": "Ana", "country": "us",
                                                  "subdivision": "CA"})
    assert (worker.country, worker.subdivision) == ("US", "CA")
    assert accounts.authenticate(p, secret, WORKER) == worker
    assert accounts.authenticate(other, secret, WORKER) == worker
    # WHEN they move to Germany
    moved = accounts.change_profile(p, worker, secret, {"country": "DE"})
    # THEN the old subdivision goes with the old country; this container sees it at once and
    # the other once its cached principal expires
    assert (moved.country, moved.subdivision) == ("DE", None)
    assert accounts.authenticate(p, secret, WORKER) == moved
    assert accounts.authenticate(other, secret, WORKER).country == "US"
    p.clock.advance(accounts.PRINCIPAL_CACHE_SECONDS + 1)
    assert accounts.authenticate(other, secret, WORKER) == moved
    # AND null clears it
    cleared = accounts.change_profile(p, moved, secret, {"country": None})
    assert accounts.authenticate(p, secret, WORKER) == cleared
    assert (cleared.country, cleared.subdivision) == (None, None)


@pytest.mark.parametrize("body, field", [
    ({"name": "Ana", "country": "XX"}, "country"),
    ({"name": "Ana", "subdivision": "CA"}, "subdivision"),
    ({"name": "Ana", "country": "US", "subdivision": "US-CA"}, "subdivision"),
])
def test_a_registration_with_a_bad_locale_is_refused_and_opens_nothing(body, field):
    p = make_platform(open_registration=True)
    with pytest.raises(InvalidRequest) as caught:
        accounts.register_worker(p, body)
    assert caught.value.field == field
    assert p.accounts.accounts == {}


@pytest.mark.parametrize("body, field", [
    ({}, "country"), ({"name": "Bo"}, "name"), ({"country": "Germany"}, "country"),
    ({"country": None, "subdivision": "CA"}, "subdivision"),
])
def test_a_bad_profile_change_is_refused_and_changes_nothing(body, field):
    p = make_platform(open_registration=True)
    worker, secret = accounts.register_worker(p, {"name": "Ana", "country": "US"})
    with pytest.raises(InvalidRequest) as caught:
        accounts.change_profile(p, worker, secret, body)
    assert caught.value.field == field
    assert accounts.authenticate(p, secret, WORKER).country == "US"


# --- leasing --------------------------------------------------------------------------------

def test_a_slot_is_leased_to_one_worker_at_a_time(p):
    # GIVEN a one-item job that takes one answer, leased by a worker
    job = _active_job(p, items=1, redundancy=1)
    first = tasks.lease_next_task(p, _worker(p), job.job_id)
    # WHEN another worker asks for work
    second = tasks.lease_next_task(p, _worker(p), job.job_id)
    # THEN there is none for them
    assert first is not None and first.item.data == {"n": 0}
    assert second is None


@pytest.mark.parametrize("counted", [False, True], ids=["answered", "counted"])
def test_a_worker_gets_the_last_free_slot_though_the_pool_still_lists_items_done_elsewhere(
        p, counted):
    # GIVEN a 100-item job taking one answer each, whose items this container's pool has read
    job = _active_job(p, items=100, redundancy=1, pilot={"items": 0})
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    # AND another container's workers answered all but one of the others meanwhile (and,
    # in the second case, those answers were counted: the items left the open items)
    there = another_container(p, seed=7)
    for _ in range(98):
        other = _worker(there)
        leased = tasks.lease_next_task(there, other, job.job_id)
        tasks.submit_answer(there, other, leased.assignment_id, {"label": "neg"})
    if counted:
        _count_all(p)
    (free,) = [item.item_id for item in p.items.iter_items(job.job_id) if not item.complete]
    # WHEN a new worker asks here, where the pool still shows the answered items as open
    last = tasks.lease_next_task(p, _worker(p), job.job_id)
    # THEN they get the free item, which the refresh read, not "nothing left"
    assert last is not None and last.item.item_id == free


def test_a_worker_gets_a_free_slot_past_a_pool_refresh_s_worth_of_answered_uncounted_items(
        p, monkeypatch):
    # GIVEN a job taking one answer per item, all answered but its last, none counted yet
    # (the counting consumer lags), more answered items than one pool refresh reads
    items = tasks.POOL_REFRESH_SIZE + 2
    job = _active_job(p, items=items, redundancy=1, pilot={"items": 0})
    for n in range(items - 1):
        other = _worker(p)
        lease = leasing.new_lease(job, numbered(n, items), p.now())
        assert p.items.try_lease(job.job_id, numbered(n, items), other.account_id, lease, None,
                                 p.now()).ok
        tasks.submit_answer(p, other, lease.assignment_id, {"label": "neg"})
    free = numbered(items - 1, items)
    assert not p.items.get_item(job.job_id, free).complete
    # WHEN a new worker asks here, the refresh reading from the first item on
    monkeypatch.setattr(p.rng, "randrange", lambda stop: 0)
    last = tasks.lease_next_task(p, _worker(p), job.job_id)
    # THEN they get the free item, not "nothing left"
    assert last is not None and last.item.item_id == free


def test_an_expired_lease_frees_its_slot_for_another_worker(p):
    # GIVEN a one-slot job leased by worker A
    job = _active_job(p, items=1, redundancy=1)
    a, b = _worker(p), _worker(p)
    mine = tasks.lease_next_task(p, a, job.job_id)
    # WHEN the lease time passes and worker B asks for work
    p.clock.advance(LEASE_SECONDS)
    theirs = tasks.lease_next_task(p, b, job.job_id)
    # THEN B gets the slot, and A can no longer submit on it
    assert theirs is not None and theirs.item.item_id == mine.item.item_id
    with pytest.raises(Conflict) as caught:
        tasks.submit_answer(p, a, mine.assignment_id, {"label": "pos"})
    assert caught.value.code == "assignment_not_active"
    assert tasks.submit_answer(p, b, theirs.assignment_id, {"label": "neg"}).item_complete


def test_a_worker_never_gets_the_same_item_twice(p):
    # GIVEN a one-item job taking three answers
    job = _active_job(p, items=1, redundancy=3)
    a, b = _worker(p), _worker(p)
    # WHEN worker A answers it and asks again
    task = tasks.lease_next_task(p, a, job.job_id)
    tasks.submit_answer(p, a, task.assignment_id, {"label": "pos"})
    # THEN there is nothing more for A
    assert tasks.lease_next_task(p, a, job.job_id) is None
    # AND when B leases and releases it, B is not offered it again either
    task = tasks.lease_next_task(p, b, job.job_id)
    tasks.release_assignment(p, b, task.assignment_id)
    assert tasks.lease_next_task(p, b, job.job_id) is None
    # AND the released slot went back: two workers can still take it
    assert p.items.get_item(job.job_id, "000000").free == 2
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is not None
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is not None
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is None


def test_no_item_gets_more_answers_than_its_redundancy(p):
    # GIVEN a job of 3 items taking 2 answers each, and 5 eager workers
    job = _active_job(p, items=3, redundancy=2)
    workers = [_worker(p) for _ in range(5)]
    # WHEN every worker leases and answers until there is nothing left for anyone
    submitted = 0
    while True:
        leased = [(w, tasks.lease_next_task(p, w, job.job_id)) for w in workers]
        leased = [(w, task) for w, task in leased if task is not None]
        if not leased:
            break
        for worker, task in leased:
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
            submitted += 1
    # THEN each item got exactly two answers, from two different workers
    assert submitted == 6
    assert _answers_per_item(p, job.job_id) == {"000000": 2, "000001": 2, "000002": 2}
    for item in p.items.iter_items(job.job_id):
        assert len(item.answers) == 2 and item.free == 0 and not item.leases


def test_leasing_honours_required_skills(p):
    # GIVEN a job for French speakers (the quote's cohort)
    job = _active_job(p, items=1, redundancy=1, cohort="fr")
    english, french = _worker(p, ["en"]), _worker(p, ["en", "fr"])
    # THEN a worker without French is offered nothing and refused that job by name
    assert job.required_skills == ("fr",)
    assert tasks.lease_next_task(p, english) is None
    with pytest.raises(Forbidden) as caught:
        tasks.lease_next_task(p, english, job.job_id)
    assert caught.value.code == "not_qualified"
    assert caught.value.details == {"required_skills": ["fr"], "min_skill_scores": {}}
    # AND a French speaker gets the task without naming the job
    assert tasks.lease_next_task(p, french).job.job_id == job.job_id


def test_leasing_an_unknown_job_is_not_found(p):
    # GIVEN a worker WHEN they name a job that does not exist THEN it is not found
    with pytest.raises(NotFound) as caught:
        tasks.lease_next_task(p, _worker(p), "job_0000000000000000")
    assert caught.value.code == "job_not_found"


# --- submit and release ---------------------------------------------------------------------

def test_a_submit_after_the_lease_expired_is_refused_and_not_counted(p):
    # GIVEN a worker whose lease has run out (nobody took the slot)
    job = _active_job(p, items=1, redundancy=1)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    p.clock.advance(LEASE_SECONDS)
    # WHEN they submit
    with pytest.raises(Conflict) as caught:
        tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    # THEN it is refused as expired, nothing is announced and nothing is counted
    assert caught.value.code == "lease_expired"
    assert p.results_queue.sent == []
    assert _answers_per_item(p, job.job_id) == {"000000": 0}
    assert p.jobs.get_job(job.job_id).answered == 0


def test_a_repeated_submit_returns_an_equal_receipt_and_changes_nothing(p):
    # GIVEN an accepted answer
    job = _active_job(p, items=1, redundancy=2)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    first = tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    # WHEN the worker submits again later, even with another answer
    p.clock.advance(5)
    again = tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
    # THEN the receipt is the first one marked duplicate, and the first answer stands once
    assert again == replace(first, duplicate=True)
    assert first.reward_cents == job.reward_cents and not first.duplicate
    item = p.items.get_item(job.job_id, "000000")
    assert item.answer_count == 1 and item.answers[worker.account_id].answer == {"label": "pos"}
    _count_all(p)
    assert p.jobs.get_job(job.job_id).answered == 1


def test_submitting_with_an_id_that_was_never_yours_is_not_found(p):
    # GIVEN worker A's live assignment
    job = _active_job(p, items=1, redundancy=2)
    a, b = _worker(p), _worker(p)
    task = tasks.lease_next_task(p, a, job.job_id)
    # WHEN worker B, or anyone with a made-up id, submits on it
    # THEN it is not found for them and A's lease is untouched
    for worker, assignment_id in ((b, task.assignment_id), (a, "asg_forged")):
        with pytest.raises(NotFound) as caught:
            tasks.submit_answer(p, worker, assignment_id, {"label": "pos"})
        assert caught.value.code == "assignment_not_found"
    assert tasks.submit_answer(p, a, task.assignment_id, {"label": "pos"}).job_id == job.job_id


def test_release_then_submit_is_refused_and_submit_then_release_too(p):
    # GIVEN a job with two workers' leases
    job = _active_job(p, items=1, redundancy=2)
    a, b = _worker(p), _worker(p)
    released = tasks.lease_next_task(p, a, job.job_id)
    answered = tasks.lease_next_task(p, b, job.job_id)
    # WHEN A releases then submits, and B submits then releases
    tasks.release_assignment(p, a, released.assignment_id)
    tasks.submit_answer(p, b, answered.assignment_id, {"label": "pos"})
    # THEN both second steps are refused, each saying why
    with pytest.raises(Conflict) as gone:
        tasks.submit_answer(p, a, released.assignment_id, {"label": "pos"})
    assert gone.value.code == "assignment_not_active"
    with pytest.raises(Conflict) as submitted:
        tasks.release_assignment(p, b, answered.assignment_id)
    assert submitted.value.code == "already_submitted"
    assert p.items.get_item(job.job_id, "000000").free == 1


# --- counting and the aggregation trigger ---------------------------------------------------

def _answer_everything(p, job) -> None:
    workers = [_worker(p) for _ in range(job.redundancy)]
    for worker in workers:
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})


def test_counting_is_idempotent_and_starts_aggregation_once(p):
    # GIVEN a 3-item job fully answered, its result messages still queued
    job = _active_job(p, items=3, redundancy=2)
    _answer_everything(p, job)
    messages = p.results_queue.take()
    assert len(messages) == 6
    # WHEN each message is delivered three times, alone and then all in one batch
    for message in messages:
        for _ in range(3):
            rounds.count_answers(p, [message])
    rounds.count_answers(p, messages * 3)
    # THEN every answer and item is counted once, and one aggregation round was started
    counted = p.jobs.get_job(job.job_id)
    assert (counted.answered, counted.items_done) == (6, 3)
    assert counted.spent_cents == 6 * job.reward_cents
    assert counted.state == AGGREGATING
    assert p.workflow.executions == {f"{job.job_id}-r1": {"job_id": job.job_id, "round": 1}}


def test_aggregation_waits_for_the_last_item(p):
    # GIVEN a 2-item job where one item has all its answers counted
    job = _active_job(p, items=2, redundancy=1)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    _count_all(p)
    # THEN nothing has started and progress shows one of two items done
    assert p.workflow.started == []
    assert jobs.job_progress(p, p.jobs.get_job(job.job_id)) == {
        "items": 2, "leased": 0, "leased_estimated": False, "answered": 1, "done": 1,
        "gold": 0}
    # WHEN the other item's answer is counted THEN aggregation starts
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "neg"})
    _count_all(p)
    assert p.workflow.started == [f"{job.job_id}-r1"]


def test_a_lost_count_message_is_repaired_by_a_retried_submit(p):
    # GIVEN an accepted answer whose result message was lost
    job = _active_job(p, items=1, redundancy=1)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    p.results_queue.take()
    # WHEN the worker retries the submit and its message is counted
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    _count_all(p)
    # THEN the answer is counted and the job goes to aggregation
    assert p.jobs.get_job(job.job_id).answered == 1
    assert p.workflow.started == [f"{job.job_id}-r1"]


def test_a_retried_submit_does_not_count_its_item_done_twice(p):
    # GIVEN a 2-item job taking two answers each; A and B both lease both items
    job = _active_job(p, items=2, redundancy=2)
    a, b = _worker(p), _worker(p)
    a_tasks = {t.item.item_id: t for t in (tasks.lease_next_task(p, a, job.job_id),
                                           tasks.lease_next_task(p, a, job.job_id))}
    b_tasks = {t.item.item_id: t for t in (tasks.lease_next_task(p, b, job.job_id),
                                           tasks.lease_next_task(p, b, job.job_id))}
    # AND on item 0, A's answer is accepted (its message lost), B's completes the item,
    # and A retries its submit (a retry reports what its first submit did)
    tasks.submit_answer(p, a, a_tasks["000000"].assignment_id, {"label": "pos"})
    p.results_queue.take()
    tasks.submit_answer(p, b, b_tasks["000000"].assignment_id, {"label": "pos"})
    tasks.submit_answer(p, a, a_tasks["000000"].assignment_id, {"label": "pos"})
    # WHEN those messages are counted
    _count_all(p)
    # THEN one item is done, and aggregation has not started: item 1 has no answers yet
    assert p.jobs.get_job(job.job_id).items_done == 1
    assert p.workflow.started == []


# --- cancel and finalize --------------------------------------------------------------------

def test_cancel_with_nothing_leased_starts_aggregation_at_once(p):
    # GIVEN an active job with no live leases
    client = _client(p)
    job = _active_job(p, client, items=2, redundancy=1)
    # WHEN the client cancels it
    cancelled = jobs.stop_job(p, client, job.job_id)
    # THEN aggregation starts right away and no worker can lease
    assert cancelled.state == AGGREGATING and cancelled.cancelled_at == p.now()
    assert p.workflow.started == [f"{job.job_id}-r1"]
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is None
    # AND cancelling again is refused
    with pytest.raises(Conflict) as caught:
        jobs.stop_job(p, client, job.job_id)
    assert caught.value.code == "job_not_active"


def test_cancel_with_a_live_lease_waits_for_the_lease_time(p):
    # GIVEN an active job where a worker holds a live lease
    client = _client(p)
    job = _active_job(p, client, items=2, redundancy=1)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    # WHEN the client cancels it
    cancelled = jobs.stop_job(p, client, job.job_id)
    # THEN it is cancelled without aggregating, new leases are refused, leased work is taken
    # (other containers may hand out leases for cache_seconds more, so it waits that too)
    assert cancelled.state == CANCELLED
    assert cancelled.finalize_at == p.now() + LEASE_SECONDS + p.cache_seconds
    assert p.workflow.started == []
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is None
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    _count_all(p)
    assert p.workflow.started == []
    # AND the sweeper starts aggregation only once the lease time has passed
    assert rounds.finalize_due_jobs(p) == []
    p.clock.advance(LEASE_SECONDS + p.cache_seconds)
    assert rounds.finalize_due_jobs(p) == [job.job_id]
    assert p.workflow.started == [f"{job.job_id}-r1"]
    assert p.jobs.get_job(job.job_id).state == AGGREGATING
    assert rounds.finalize_due_jobs(p) == []


def test_a_container_reads_a_job_it_wrote_strongly_and_an_expired_one_for_half_the_units(p):
    # GIVEN an active job this container leases from, every job read recorded
    client = _client(p)
    job = _active_job(p, client, items=4, redundancy=1)
    reads: list[bool] = []
    read = p.jobs.get_job
    p.jobs.get_job = lambda job_id, consistent=True: reads.append(consistent) or read(
        job_id, consistent)
    tasks.lease_next_task(p, _worker(p), job.job_id)
    # WHEN its cached copy expires THEN it is read again eventually consistent
    p.clock.advance(p.cache_seconds)
    reads.clear()
    tasks.lease_next_task(p, _worker(p), job.job_id)
    assert reads == [False]
    # WHEN this container stops the job THEN its next lease reads the job strongly consistent
    # and is refused at once
    jobs.stop_job(p, client, job.job_id)
    reads.clear()
    assert tasks.lease_next_task(p, _worker(p), job.job_id) is None
    assert reads[:1] == [True]


def test_finalize_due_jobs_starts_a_job_past_its_deadline(p):
    # GIVEN an active job with a deadline an hour away, with answers still missing
    deadline = p.now() + 3600
    job = _active_job(p, items=2, redundancy=1, deadline=_iso(deadline))
    # WHEN the sweeper runs before and after the deadline
    before = rounds.finalize_due_jobs(p)
    p.clock.set(deadline)
    after = rounds.finalize_due_jobs(p)
    # THEN only the second run starts aggregation, and workers get nothing after it
    assert (before, after) == ([], [job.job_id])
    assert p.workflow.started == [f"{job.job_id}-r1"]
    p.clock.advance(p.cache_seconds)
    assert tasks.lease_next_task(p, _worker(p)) is None


def test_the_sweeper_handles_a_bounded_number_of_due_jobs_a_run_and_goes_on_next_run(p, monkeypatch):
    # GIVEN five active jobs past their deadlines (a minute apart), two handled a run
    monkeypatch.setattr(rounds, "SWEEP_JOBS", 2)
    start = p.now()
    due = [_active_job(p, items=1, redundancy=1, deadline=_iso(start + 3600 + 60 * n)).job_id
           for n in range(5)]
    p.clock.set(start + 3600 + 300)
    listed = []
    in_state = p.jobs.jobs_in_state
    p.jobs.jobs_in_state = lambda *args, **kwargs: listed.append(kwargs.get("limit")) or \
        in_state(*args, **kwargs)
    # WHEN the sweeper runs a minute apart THEN each run starts the two soonest due, until all
    runs = []
    for _ in range(4):
        runs.append(rounds.finalize_due_jobs(p))
        p.clock.advance(60)
    assert runs == [due[:2], due[2:4], due[4:], []]
    assert p.workflow.started == [f"{job_id}-r1" for job_id in due]
    assert set(listed) == {2}  # every listing bounded


def test_a_lease_taken_near_the_deadline_ends_at_the_deadline(p):
    # GIVEN a job whose deadline is 10 s after a worker leases
    deadline = p.now() + 3600
    job = _active_job(p, items=1, redundancy=1, deadline=_iso(deadline))
    p.clock.set(deadline - 10)
    worker = _worker(p)
    # WHEN the worker leases
    task = tasks.lease_next_task(p, worker, job.job_id)
    # THEN the lease ends at the deadline, not a full lease time later
    assert task.lease.expires_at == deadline


# --- results ----------------------------------------------------------------------------------

def test_results_cannot_be_downloaded_before_they_are_published(p):
    # GIVEN an active job WHEN its client asks for the download link
    client = _client(p)
    job = _active_job(p, client)
    with pytest.raises(Conflict) as caught:
        jobs.result_download(p, client, job.job_id)
    # THEN it is not ready, and the results page is empty
    assert caught.value.code == "results_not_ready"
    _, page = jobs.result_page(p, client, job.job_id, {})
    assert page.entries == [] and page.cursor is None


def test_the_download_format_is_jsonl_or_csv_and_a_csv_published_before_is_named_missing(p):
    # GIVEN a job whose JSON Lines results were published before CSV downloads were made
    client = _client(p)
    job = _active_job(p, client)
    key = f"jobs/{job.job_id}/results.jsonl"
    p.blobs.put_text(key, '{"item_id": "000000"}\n', "application/x-ndjson")
    p.jobs.jobs[job.job_id] = replace(p.jobs.get_job(job.job_id), results_key=key,
                                      result_count=1)
    # WHEN its client asks for each format THEN JSON Lines is there, CSV is a 409 naming format
    assert jobs.result_download(p, client, job.job_id, {"format": "jsonl"})[1] == "jsonl"
    with pytest.raises(Conflict) as missing:
        jobs.result_download(p, client, job.job_id, {"format": "csv"})
    assert (missing.value.code, missing.value.field) == ("csv_not_published", "format")
    # AND once the CSV is published its link names it
    p.blobs.put_text(f"jobs/{job.job_id}/results.csv", "item_id\r\n", "text/csv")
    _, fmt, url = jobs.result_download(p, client, job.job_id, {"format": "csv"})
    assert fmt == "csv" and f"jobs/{job.job_id}/results.csv" in url
    # AND any other format, or another parameter, is a 400 naming it
    for query, field in (({"format": "xlsx"}, "format"), ({"format": ""}, "format"),
                         ({"fmt": "csv"}, "query.fmt")):
        with pytest.raises(InvalidRequest) as bad:
            jobs.result_download(p, client, job.job_id, query)
        assert bad.value.field == field


def test_a_clients_jobs_are_listed_newest_first_in_pages(p):
    # GIVEN a client with three jobs posted a second apart, and another client's job
    client = _client(p)
    posted = []
    for _ in range(3):
        posted.append(_post(p, client, items=1).job_id)
        p.clock.advance(1)
    _post(p, _client(p, "Other"), items=1)
    # WHEN the client pages through two at a time
    first, cursor = jobs.client_jobs(p, client, {"limit": "2"})
    second, _ = jobs.client_jobs(p, client, {"limit": "2", "cursor": cursor})
    # THEN they see their own jobs, newest first, each once
    assert [j.job_id for j in first + second] == posted[::-1]



def test_a_job_whose_items_cannot_be_queued_is_undone_and_its_quote_freed(p):
    # GIVEN an ingest queue that refuses to send
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2})
    body = {"quote_id": quote.quote_id, "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"n": 1}}] * 2}

    def refuse(messages):
        raise RuntimeError("SQS is down")

    original = p.ingest_queue.send_many
    p.ingest_queue.send_many = refuse
    # WHEN the job is posted THEN the client is told to try again and no job exists
    with pytest.raises(TransientError):
        jobs.post_job(p, client, body)
    assert p.jobs.jobs_of_client(client.account_id, 10, None)[0] == []
    # AND the same request succeeds once the queue is back
    p.ingest_queue.send_many = original
    job = jobs.post_job(p, client, body)
    assert job.quote_id == quote.quote_id


def test_a_lost_aggregation_start_is_started_again_by_the_sweeper(p):
    # GIVEN a job whose items are all answered, moved to aggregating, but whose start was lost
    client = _client(p)
    job = _active_job(p, client, items=1, redundancy=1)
    worker = _worker(p)
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    real_start = p.workflow.start
    p.workflow.start = lambda name, payload: (_ for _ in ()).throw(RuntimeError("lost"))
    with pytest.raises(RuntimeError):
        _count_all(p)
    p.workflow.start = real_start
    assert p.jobs.get_job(job.job_id).state == AGGREGATING and p.workflow.started == []
    # WHEN the sweeper runs after the check interval
    p.clock.advance(rounds.AGGREGATION_CHECK_SECONDS + 1)
    rounds.finalize_due_jobs(p)
    # THEN the round's execution is started, once
    assert p.workflow.started == [f"{job.job_id}-r1"]


def test_a_job_whose_items_never_arrive_fails_at_its_deadline(p):
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1})
    job = jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "x",
                                        "answer_schema": {"labels": ["a", "b"]},
                                        "items": [{"data": {"n": 1}}]})
    p.ingest_queue.take()  # the chunk is lost (in the dead-letter queue)
    p.clock.advance(job.deadline - p.now() + 1)
    rounds.finalize_due_jobs(p)
    failed = p.jobs.get_job(job.job_id)
    assert failed.state == "failed" and "ingested" in failed.error


def test_nan_and_deep_nesting_are_malformed_json():
    from chalicelib.api.common import json_body
    from chalicelib.errors import InvalidRequest

    class Request:
        headers = {"content-type": "application/json"}

        def __init__(self, raw):
            self.raw_body = raw

    for raw in (b'{"data": {"t": NaN}}', b'{"x": Infinity}', b'{"x": 1e400}', b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(InvalidRequest) as caught:
            json_body(Request(raw))
        assert caught.value.code == "malformed_json"


def test_item_ids_have_no_small_ceiling_and_keep_their_order():
    from chalicelib.domain.ids import item_id

    # a job of up to a million items numbers them with six digits, as always
    assert item_id(0, 3) == "000000" and item_id(999_999, 1_000_000) == "999999"
    # a bigger job gives every item as many digits as its last one needs, so its ids sort in
    # item order: 10,000,000 items end at 9999999, a billion at 999999999
    assert [item_id(n, 10_000_000) for n in (0, 999_999, 1_000_000, 9_999_999)] == \
        ["0000000", "0999999", "1000000", "9999999"]
    sample = [0, 7, 999_999, 1_000_000, 5_000_001, 999_999_999]
    assert sorted(item_id(n, 1_000_000_000) for n in sample) == \
        [item_id(n, 1_000_000_000) for n in sorted(sample)]


def test_an_item_numbered_past_a_million_is_leased_submitted_and_counted(p):
    # GIVEN a job holding an item whose number needs seven digits (as in a 10M-item job)
    job = _active_job(p, items=1, redundancy=1)
    p.items.put_items(job.job_id, 1, [NewItem("1000000", {"n": 1_000_000})])
    worker = _worker(p)
    # WHEN the worker leases and submits every task
    leased = [tasks.lease_next_task(p, worker, job.job_id) for _ in range(2)]
    receipts = [tasks.submit_answer(p, worker, a.assignment_id, {"label": "pos"})
                for a in leased if a is not None]
    _count_all(p)
    # THEN the seven-digit item took its answer like any other
    assert sorted(a.item.item_id for a in leased if a is not None) == ["000000", "1000000"]
    assert len(receipts) == 2 and not any(r.duplicate for r in receipts)
    assert p.items.get_item(job.job_id, "1000000").answer_count == 1


def test_a_workers_job_list_shows_the_start_of_long_instructions_and_a_task_all_of_them(p):
    # GIVEN an active job whose instructions run to 20,000 characters
    text = "".join(f"Rule {n}: read the whole review first. " for n in range(600))[:20_000]
    job = _active_job(p, instructions=text)
    worker = _worker(p)
    # WHEN the worker lists their jobs THEN the entry holds the first 1,000 characters and
    # says there is more
    (offer,) = [o for o in tasks.available_jobs(p, worker) if o.job_id == job.job_id]
    view = views.offer_view(offer)
    assert view["instructions"] == text[:OFFER_INSTRUCTIONS] and view["instructions_truncated"]
    # AND a task of the job carries the whole text
    task = tasks.lease_next_task(p, worker, job.job_id)
    assert views.assignment_view(task)["instructions"] == text
    # AND a job with short instructions is listed whole
    short = _active_job(p)
    p.clock.advance(p.cache_seconds)  # past the container's cached job list
    (listed,) = [o for o in tasks.available_jobs(p, worker) if o.job_id == short.job_id]
    assert views.offer_view(listed)["instructions"] == "Pick the sentiment."
    assert not views.offer_view(listed)["instructions_truncated"]


def test_a_worker_lists_and_leases_from_the_open_jobs_index_not_from_every_job(p):
    # GIVEN jobs requiring no skill, one requiring "ja", one requiring "en" at 0.8 or better
    client = _client(p)
    posted = []
    for kwargs in ({}, {}, {"cohort": "ja"}, {"cohort": "en", "min_skill_scores": {"en": 0.8}}):
        posted.append(_active_job(p, client, **kwargs))
        p.clock.advance(1)
    plain, other, japanese, scored = posted
    worker = _worker(p, ["en"])
    reads = {"get_job": 0, "jobs_in_state": 0}
    for name in reads:
        real = getattr(p.jobs, name)

        def counted(*args, name=name, real=real, **kwargs):
            reads[name] += 1
            return real(*args, **kwargs)
        setattr(p.jobs, name, counted)
    # WHEN the worker lists their jobs THEN they see those they qualify for, oldest first,
    # read from the index alone
    assert [o.job_id for o in tasks.available_jobs(p, worker)] == [plain.job_id, other.job_id]
    assert reads == {"get_job": 0, "jobs_in_state": 0}
    # AND a lease reads only the job it is taken from
    p.cache.jobs.clear()
    assert tasks.lease_next_task(p, worker).job.job_id == plain.job_id
    assert reads == {"get_job": 1, "jobs_in_state": 0}
    # WHEN a job stops and the worker is blocked from another THEN neither is listed
    jobs.stop_job(p, client, plain.job_id)
    quality.block_in_job(p, p.jobs.get_job(other.job_id), worker.account_id, "client", "spam")
    p.clock.advance(p.cache_seconds)
    assert tasks.available_jobs(p, worker) == []
    # AND workers holding the skills (and scores) see the skilled jobs
    linguist = replace(_worker(p, ["ja", "en"]), scores=(("en", 0.9),))
    assert [o.job_id for o in tasks.available_jobs(p, linguist)] == \
        [other.job_id, japanese.job_id, scored.job_id]
