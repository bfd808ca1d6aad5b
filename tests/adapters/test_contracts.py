"""Contract tests: each port's guarantees, run against the in-memory fakes the unit tests use
and against the DynamoDB adapters on moto. The same test passing on both is what lets the
unit tests on fakes speak for the platform: leases, answers, counters and money stay exact."""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import replace

import pytest

from chalicelib import deps
from chalicelib.adapters.cursors import codec
from chalicelib.adapters.dynamo import DynamoItems
from chalicelib.domain import leasing, payouts, progress
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.ids import new_assignment_id, new_id
from chalicelib.domain.jobs import build_job, parse_items
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLIENT, DONE, INGESTING, PAUSED, PRODUCTION, WORKER,
    CountedAnswer, Job, Lease, LedgerEntry, NewItem, Offer, Principal, StoredAnswer,
)
from chalicelib.domain.ports import LeaseCount
from chalicelib.errors import Conflict, InvalidRequest
from chalicelib.handlers import accounts, jobs
from chalicelib.handlers.platform import Platform
from tests.fakes import CURSORS, make_platform

FIRST, SECOND, THIRD, FOURTH = "000000", "000001", "000002", "000003"


# --- the two sides ------------------------------------------------------------------------

@pytest.fixture(params=["fakes", "dynamodb"])
def p(request) -> Platform:
    """The platform on fresh fakes, or on the DynamoDB adapters of the module's moto stack
    (shared by the module's tests: each writes under ids of its own)."""
    if request.param == "fakes":
        return make_platform(clock=time.time)
    request.getfixturevalue("module_stack")
    return deps.platform()


def on_dynamodb(p: Platform) -> bool:
    return isinstance(p.items, DynamoItems)


# --- helpers ------------------------------------------------------------------------------

def _client(p: Platform, name: str = "Adapter client") -> Principal:
    principal, _ = accounts.create_account(p, CLIENT, name)
    return principal


def _draft(p: Platform, client: Principal, items: int = 1, redundancy: int = 2) -> Job:
    """A job built from a fresh quote of the client's, not yet stored."""
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": redundancy})
    job, _ = build_job(quote, client.account_id, {
        "instructions": "Pick one.", "answer_schema": {"labels": ["yes", "no"]},
        "items": [{"data": {"text": f"item {n}"}} for n in range(items)],
    }, p.now())
    return job


def _active_job(p: Platform, items: int = 1, redundancy: int = 2) -> Job:
    """An active job with its items written through the adapters."""
    job = _draft(p, _client(p), items, redundancy)
    p.jobs.create_job(job)
    p.items.put_items(job.job_id, job.redundancy, parse_items(
        [{"data": {"text": f"item {n}"}} for n in range(items)], items))
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    return job


def _lease(job: Job, item_id: str, now: float, seconds: float = 60) -> Lease:
    return Lease(new_assignment_id(job.job_id, item_id, now), now + seconds, now)


def _answer(lease: Lease, label: str, now: float) -> StoredAnswer:
    return StoredAnswer(lease.assignment_id, {"label": label}, now, lease.leased_at)


def _leased(p: Platform, job: Job, item_id: str, worker: str, now: float,
            seconds: float = 60) -> Lease:
    lease = _lease(job, item_id, now, seconds)
    assert p.items.try_lease(job.job_id, item_id, worker, lease, None, now).ok
    return lease


def _listed(p: Platform, state: str, finalize_before: float | None = None) -> list[Job]:
    """The jobs listed in a state (due by finalize_before), checked to be all in that state,
    all due, and soonest due first: on a shared stack they include other tests' jobs."""
    listed = p.jobs.jobs_in_state(state, finalize_before)
    assert all(job.state == state for job in listed)
    assert all(job.finalize_at is not None for job in listed)
    due_at = [job.finalize_at or 0.0 for job in listed]
    assert due_at == sorted(due_at)
    assert finalize_before is None or all(at <= finalize_before for at in due_at)
    # a bounded listing is the soonest due of them
    assert [job.job_id for job in p.jobs.jobs_in_state(state, finalize_before, limit=2)] == [
        job.job_id for job in listed[:2]]
    return listed


def _open_ids(p: Platform, job: Job, worker: str | None = None, limit: int | None = None,
              now: float | None = None) -> list[str]:
    return [item.item_id for item in p.items.open_items(job.job_id, worker, limit, None, now)]


def _codec(p: Platform):
    """What seals the side's cursors: the stage's codec, or the fakes' own."""
    return codec() if on_dynamodb(p) else CURSORS


def _cursor(p: Platform, key: object) -> str:
    """A cursor sealed with the side's own secret (authentic, whatever key it holds)."""
    return _codec(p).seal(key)


def _plain_cursor(key: object) -> str:
    """A cursor as they once were: readable base64 of the key."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


# --- leasing ------------------------------------------------------------------------------

# --- accounts -----------------------------------------------------------------------------

def test_a_worker_s_locale_reaches_the_principal_and_follows_a_rotation(p):
    # GIVEN a worker registered in US-CA
    account_id, token = new_id("wrk"), f"hash-{uuid.uuid4().hex}"
    p.accounts.create_account(account_id, WORKER, "w", ["en"], token, 1.0, "US", "CA")
    principal = p.accounts.principal_for(token)
    assert principal is not None and (principal.country, principal.subdivision) == ("US", "CA")
    # WHEN the locale changes, THEN the credential carries the change (one read per call)
    assert p.accounts.set_locale(account_id, "DE", None)
    changed = p.accounts.principal_for(token)
    assert changed is not None and (changed.country, changed.subdivision) == ("DE", None)
    # AND a rotated credential starts with it, and a later change reaches that one
    rotated = f"hash-{uuid.uuid4().hex}"
    assert p.accounts.rotate(account_id, token, rotated, 2.0)
    assert p.accounts.principal_for(rotated).country == "DE"
    assert p.accounts.set_locale(account_id, None, None)
    cleared = p.accounts.principal_for(rotated)
    assert cleared is not None and (cleared.country, cleared.subdivision) == (None, None)
    assert cleared.skills == frozenset({"en"})
    # an account that does not exist changes nothing
    assert not p.accounts.set_locale(new_id("wrk"), "US", None)


def test_writing_a_chunk_again_leaves_its_items_as_workers_left_them(p):
    # GIVEN a job whose two items were written, and one of them leased since
    job = _active_job(p, items=2, redundancy=2)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    before = list(p.items.iter_items(job.job_id))
    # WHEN the same chunk is written again (a redelivered ingest message)
    p.items.put_items(job.job_id, job.redundancy, parse_items(
        [{"data": {"text": f"item {n}"}} for n in range(2)], 2))
    # THEN nothing is overwritten: the lease and the spent slot are still there
    after = list(p.items.iter_items(job.job_id))
    assert after == before
    assert after[0].leases == {"w1": lease} and after[0].free == 1



def test_an_ingest_chunk_is_counted_once_and_only_with_every_item_in(p):
    # GIVEN an ingesting job of 5 items in two chunks
    job = _draft(p, _client(p), items=5)
    p.jobs.create_job(job)
    items = parse_items([{"data": {"text": f"item {n}"}} for n in range(5)], 5)
    first, second = items[:3], items[3:]
    assert p.jobs.get_job(job.job_id).chunks_written == 0
    # WHEN a chunk is written THEN its items are there and the job counts it
    assert p.items.put_chunk(job.job_id, job.redundancy, first)
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    assert [i.item_id for i in p.items.iter_items(job.job_id)] == [FIRST, SECOND, THIRD]
    # WHEN it comes again (a redelivered message) THEN nothing is written or counted
    assert not p.items.put_chunk(job.job_id, job.redundancy, first)
    assert not p.items.put_chunk(job.job_id, job.redundancy, first[1:])
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    assert len(list(p.items.iter_items(job.job_id))) == 3
    # WHEN a delivery of the second chunk died after writing its first item (not its last)
    p.items.put_items(job.job_id, job.redundancy, second[:1])
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    # THEN the next delivery writes the rest and counts the chunk, once
    assert p.items.put_chunk(job.job_id, job.redundancy, second)
    assert not p.items.put_chunk(job.job_id, job.redundancy, second)
    assert p.jobs.get_job(job.job_id).chunks_written == 2
    assert [i.item_id for i in p.items.iter_items(job.job_id)] == [
        FIRST, SECOND, THIRD, FOURTH, "000004"]
    # AND a chunk of a job that does not exist is not counted, and its last item not written
    gone = new_id("job")
    assert not p.items.put_chunk(gone, 1, second)
    assert [i.item_id for i in p.items.iter_items(gone)] == [FOURTH]


def test_a_jobs_gold_items_are_listed_apart_as_they_are_written(p):
    # GIVEN an ingesting job whose items 1, 3 and 4 are gold, written by a chunk, a range
    # (delivered twice) and a chunk
    job = _draft(p, _client(p), items=6)
    p.jobs.create_job(job)
    gold = {"label": "pos"}
    items = [NewItem(f"{n:06d}", {"n": n}, gold=gold if n in (1, 3, 4) else None,
                     slots=2 if n in (1, 3, 4) else None) for n in range(6)]
    assert p.items.gold_items(job.job_id, None, 10) == ([], None)
    p.items.put_chunk(job.job_id, job.redundancy, items[:2])
    for _ in range(2):
        p.items.put_range(job.job_id, job.redundancy, items[2:4], 0,
                          {"lines": 2, "items": 2, "bad": 0, "pilot": 0})
    p.items.put_chunk(job.job_id, job.redundancy, items[4:])
    # WHEN they are read a page of two at a time THEN the gold items come whole, in order
    page, cursor = p.items.gold_items(job.job_id, None, 2)
    assert [(i.item_id, i.gold, i.free) for i in page] == [(SECOND, gold, 2), (FOURTH, gold, 2)]
    assert cursor == FOURTH
    page, cursor = p.items.gold_items(job.job_id, cursor, 2)
    assert [i.item_id for i in page] == ["000004"] and cursor is None
    # AND another job lists none of them
    assert p.items.gold_items(new_id("job"), None, 2) == ([], None)


def test_an_ingest_range_counts_once_with_its_summary_and_its_items_all_in(p):
    # GIVEN an uploaded job of three ranges (its upload named on it)
    job = replace(_draft(p, _client(p), items=4), chunk_count=3,
                  upload={"key": "uploads/a/up_1.jsonl", "format": "jsonl", "bytes": 300,
                          "skip_bad_lines": True, "pilot": 0})
    p.jobs.create_job(job)
    assert p.jobs.get_job(job.job_id).upload == job.upload
    items = [NewItem(f"{offset:06d}", {"text": f"at {offset}"}) for offset in (0, 40, 90, 130)]
    summary = {"lines": 3, "items": 2, "bad": 1, "pilot": 0}
    # WHEN range 0 is written THEN its items are in and it counts, with its summary
    assert p.items.put_range(job.job_id, job.redundancy, items[:2], 0, summary)
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    assert p.jobs.ingest_ranges(job.job_id, 3) == [summary, None, None]
    # WHEN it comes again THEN nothing more is counted
    assert not p.items.put_range(job.job_id, job.redundancy, items[:2], 0, summary)
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    # WHEN a range without items comes, and one whose earlier delivery wrote an item and died
    assert p.items.put_range(job.job_id, job.redundancy, [], 2, {"lines": 1, "items": 0,
                                                                 "bad": 1, "pilot": 0})
    p.items.put_items(job.job_id, job.redundancy, items[2:3])
    assert p.items.put_range(job.job_id, job.redundancy, items[2:], 1,
                             {"lines": 2, "items": 2, "bad": 0, "pilot": 0})
    # THEN every range counts once and every item is there once
    assert p.jobs.get_job(job.job_id).chunks_written == 3
    assert [s["lines"] for s in p.jobs.ingest_ranges(job.job_id, 3)] == [3, 2, 1]
    assert p.jobs.ingest_ranges(job.job_id, 2, 1) == [
        {"lines": 2, "items": 2, "bad": 0, "pilot": 0},
        {"lines": 1, "items": 0, "bad": 1, "pilot": 0}]
    assert [i.item_id for i in p.items.iter_items(job.job_id)] == [i.item_id for i in items]
    # AND a range of a job that does not exist is not counted
    assert not p.items.put_range(new_id("job"), 1, [], 0, summary)


def test_a_chunk_delivered_again_after_the_job_went_active_leaves_leased_items_alone(p):
    # GIVEN an active job whose only chunk was written, and both its items leased since
    job = _draft(p, _client(p), items=2, redundancy=2)
    p.jobs.create_job(job)
    chunk = parse_items([{"data": {"text": f"item {n}"}} for n in range(2)], 2)
    assert p.items.put_chunk(job.job_id, job.redundancy, chunk)
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    now = time.time()
    leases = {item_id: _leased(p, job, item_id, "w1", now) for item_id in (FIRST, SECOND)}
    before = list(p.items.iter_items(job.job_id))
    # WHEN the chunk is written again (a redelivered ingest message)
    counted = p.items.put_chunk(job.job_id, job.redundancy, chunk)
    # THEN it is not counted again and neither item is overwritten
    assert not counted
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    after = list(p.items.iter_items(job.job_id))
    assert after == before
    assert [(i.leases, i.free) for i in after] == [({"w1": leases[FIRST]}, 1),
                                                   ({"w1": leases[SECOND]}, 1)]


def test_a_lease_takes_a_free_slot_once_per_worker_until_no_slot_is_free(p):
    # GIVEN an item that takes two answers
    job = _active_job(p, redundancy=2)
    now = time.time()
    # WHEN w1 leases it
    first = _lease(job, FIRST, now)
    taken = p.items.try_lease(job.job_id, FIRST, "w1", first, None, now)
    # THEN the slot is w1's: one slot fewer, w1 holds the lease and has seen the item
    assert taken.ok
    assert taken.item.free == 1
    assert taken.item.leases == {"w1": first}
    assert taken.item.seen == {"w1"}
    # WHEN w1 asks for the same item again
    again = p.items.try_lease(job.job_id, FIRST, "w1", _lease(job, FIRST, now + 1), None, now + 1)
    # THEN it is refused and the item comes back as it stands, w1's first lease untouched
    assert not again.ok
    assert again.item == p.items.get_item(job.job_id, FIRST)
    assert again.item.free == 1 and again.item.leases == {"w1": first}
    assert again.item.data == {"text": "item 0"}
    # WHEN w2 takes the last slot and w3 then asks
    assert p.items.try_lease(job.job_id, FIRST, "w2", _lease(job, FIRST, now), None, now).ok
    full = p.items.try_lease(job.job_id, FIRST, "w3", _lease(job, FIRST, now), None, now)
    # THEN w3 is refused, and leaves no trace on the item
    assert not full.ok
    assert full.item.free == 0
    stored = p.items.get_item(job.job_id, FIRST)
    assert set(stored.leases) == {"w1", "w2"} and stored.seen == {"w1", "w2"}


def test_a_lease_written_by_a_try_whose_reply_was_lost_is_the_workers_on_its_repeat(p):
    # GIVEN an item that takes two answers, leased by w1 on a try whose reply never came back
    job = _active_job(p, redundancy=2)
    now = time.time()
    lease = _lease(job, FIRST, now)
    assert p.items.try_lease(job.job_id, FIRST, "w1", lease, None, now).ok
    # WHEN the client repeats the very same write (same lease, same assignment id)
    repeat = p.items.try_lease(job.job_id, FIRST, "w1", lease, None, now)
    # THEN it is w1's lease (not a lost race), and the item holds it once: one slot taken
    assert repeat.ok
    assert repeat.item.leases == {"w1": lease} and repeat.item.free == 1
    # AND a new lease of w1's on the item (another assignment) is still refused
    assert not p.items.try_lease(job.job_id, FIRST, "w1", _lease(job, FIRST, now + 1), None,
                                 now + 1).ok


def test_an_expired_lease_is_reclaimed_by_another_worker_but_a_live_one_is_not(p):
    # GIVEN an item with one slot, leased by w1 for 60 s
    job = _active_job(p, redundancy=1)
    now = time.time()
    old = _leased(p, job, FIRST, "w1", now, seconds=60)
    # WHEN w2 tries to reclaim it while the lease is live
    early = p.items.try_lease(job.job_id, FIRST, "w2", _lease(job, FIRST, now + 30), "w1",
                              now + 30)
    # THEN it is refused and w1 keeps the slot
    assert not early.ok
    assert early.item.leases == {"w1": old}
    # WHEN w2 reclaims it after the lease has run out
    new = _lease(job, FIRST, now + 61)
    late = p.items.try_lease(job.job_id, FIRST, "w2", new, "w1", now + 61)
    # THEN w1's lease is gone, w2 holds the same slot, and the free count did not move
    assert late.ok
    assert late.item.leases == {"w2": new}
    assert late.item.free == 0
    assert late.item.seen == {"w1", "w2"}
    assert p.items.get_item(job.job_id, FIRST) == late.item


def test_a_released_slot_is_free_again_but_not_for_the_worker_who_released_it(p):
    # GIVEN an item that takes two answers, leased by w1
    job = _active_job(p, items=2, redundancy=2)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    # WHEN a release names another assignment THEN nothing changes
    wrong = p.items.try_release(job.job_id, FIRST, "w1", lease.assignment_id + "0")
    assert not wrong.ok and wrong.item.free == 1 and "w1" in wrong.item.leases
    # WHEN w1 releases its own assignment
    released = p.items.try_release(job.job_id, FIRST, "w1", lease.assignment_id)
    # THEN the slot is free again, w1 holds no lease but stays in 'seen'
    assert released.ok
    assert released.item.free == 2 and released.item.leases == {}
    assert released.item.seen == {"w1"}
    # AND w1 is neither offered the item nor able to lease it again; w2 is
    assert _open_ids(p, job, "w1") == [SECOND]
    assert not p.items.try_lease(job.job_id, FIRST, "w1", _lease(job, FIRST, now), None, now).ok
    assert p.items.try_lease(job.job_id, FIRST, "w2", _lease(job, FIRST, now), None, now).ok


# --- submitting ---------------------------------------------------------------------------

def test_a_submit_is_accepted_once_and_only_for_the_live_lease_it_names(p):
    # GIVEN an item taking three answers, leased by w1, w2 (for 30 s only) and w3
    job = _active_job(p, redundancy=3)
    now = time.time()
    w1 = _leased(p, job, FIRST, "w1", now, seconds=60)
    w2 = _leased(p, job, FIRST, "w2", now, seconds=30)
    w3 = _leased(p, job, FIRST, "w3", now, seconds=60)
    # WHEN w1 submits under an assignment id that is not its lease's
    forged = replace(_answer(w1, "yes", now + 5), assignment_id=w2.assignment_id)
    refused = p.items.try_submit(job.job_id, FIRST, "w1", forged, now + 5)
    # THEN it is refused and w1's lease stands
    assert not refused.ok
    assert refused.item.answers == {} and refused.item.leases["w1"] == w1
    # WHEN w1 submits for its live lease
    answer = _answer(w1, "yes", now + 10)
    accepted = p.items.try_submit(job.job_id, FIRST, "w1", answer, now + 10)
    # THEN the answer is stored as the item's first, the lease is gone and the item has one answer
    assert accepted.ok
    assert accepted.item.answers == {"w1": replace(answer, ordinal=0)}
    assert "w1" not in accepted.item.leases
    assert accepted.item.answer_count == 1
    # WHEN the same submit arrives again (a retry)
    retry = p.items.try_submit(job.job_id, FIRST, "w1", _answer(w1, "yes", now + 11), now + 11)
    # THEN it is refused, shows the first answer, and counts nothing twice
    assert not retry.ok
    assert retry.item.answers["w1"] == replace(answer, ordinal=0)
    assert retry.item.answer_count == 1
    # WHEN w2 submits after its lease ran out
    late = p.items.try_submit(job.job_id, FIRST, "w2", _answer(w2, "no", now + 31), now + 31)
    # THEN it is refused and not stored
    assert not late.ok
    assert set(late.item.answers) == {"w1"} and late.item.answer_count == 1
    # AND the next accepted answer is the item's second
    second = p.items.try_submit(job.job_id, FIRST, "w3", _answer(w3, "no", now + 40), now + 40)
    assert second.ok and second.item.answer_count == 2
    assert {w: a.ordinal for w, a in second.item.answers.items()} == {"w1": 0, "w3": 1}


# --- listing open items -------------------------------------------------------------------

def test_open_items_lists_open_items_unseen_by_the_worker_without_data_or_answers(p):
    # GIVEN four items taking two answers: the first complete and counted, the second
    # answered once by w1, the third leased by w3, the fourth untouched
    job = _active_job(p, items=4, redundancy=2)
    now = time.time()
    for worker in ("w1", "w2"):
        lease = _leased(p, job, FIRST, worker, now)
        assert p.items.try_submit(job.job_id, FIRST, worker, _answer(lease, "yes", now), now).ok
    lease = _leased(p, job, SECOND, "w1", now)
    assert p.items.try_submit(job.job_id, SECOND, "w1", _answer(lease, "no", now), now).ok
    p.jobs.record_counted(job.job_id, [
        CountedAnswer(job.job_id, FIRST, "w1", "a1", False),
        CountedAnswer(job.job_id, FIRST, "w2", "a2", True),
    ])
    w3 = _leased(p, job, THIRD, "w3", now)
    # WHEN open items are listed: for anyone, for w1, and two at most
    listed = p.items.open_items(job.job_id, None, None)
    # THEN only the incomplete items are there, in item order
    assert [item.item_id for item in listed] == [SECOND, THIRD, FOURTH]
    assert _open_ids(p, job, "w1") == [THIRD, FOURTH]
    assert _open_ids(p, job, "w3") == [SECOND, FOURTH]
    assert _open_ids(p, job, None, 2) == [SECOND, THIRD]
    assert _open_ids(p, job, "w1", 1) == [THIRD]
    # AND from a start they run from that item on, then from the first
    assert [i.item_id for i in p.items.open_items(job.job_id, None, None, THIRD)] == \
        [THIRD, FOURTH, SECOND]
    assert [i.item_id for i in p.items.open_items(job.job_id, "w3", 2, FOURTH)] == \
        [FOURTH, SECOND]
    assert [i.item_id for i in p.items.open_items(job.job_id, None, 1, FIRST)] == [SECOND]
    # AND each carries what picking a slot needs and a lease changes: the slots taken, the
    # workers seen and when the newest lease ends; not the data, the leases or the answers
    answered, leased, untouched = listed
    assert answered.taken == 1 and answered.seen == {"w1"} and answered.free == 1
    assert leased.taken == 1 and leased.seen == {"w3"} and leased.last_expiry == w3.expires_at
    assert untouched.taken == 0 and untouched.last_expiry is None
    assert all(item.listed and item.data == {} and item.answers == {} and item.leases == {}
               for item in listed)
    # AND the leases still out are counted from the items whose newest lease has not ended
    whole = p.items.live_leases(job.job_id, now, 10)
    assert (whole.leased, whole.entries, whole.complete, whole.exact) == (1, 3, True, True)
    assert p.items.live_leases(job.job_id, w3.expires_at, 10).leased == 0
    # AND a bounded listing says whether it reached the last open item, from a start on
    # (not wrapping), and with fewer reads than items that may hold a lease it is scaled
    assert _lease_count(p.items.live_leases(job.job_id, now, 2)) == (1, 2, False, False)
    assert _lease_count(p.items.live_leases(job.job_id, now, 3)) == (1, 3, True, True)
    assert _lease_count(p.items.live_leases(job.job_id, now, 5, FOURTH)) == (0, 1, True, False)
    assert _lease_count(p.items.live_leases(job.job_id, now, 5, THIRD)) == (1, 2, True, False)
    assert _lease_count(p.items.live_leases(job.job_id, now, 5, reads=0)) == (0, 3, True, False)
    assert p.items.get_item(job.job_id, SECOND).answers["w1"].answer == {"label": "no"}


def test_live_leases_reads_one_listing_and_one_batch_of_leases_at_most(p, monkeypatch):
    # GIVEN 150 open items, 120 of them leased
    job = _draft(p, _client(p), 150, 2)
    p.jobs.create_job(job)
    for start in range(0, 150, 50):
        p.items.put_items(job.job_id, 2, [NewItem(numbered(n, 150), {"n": n})
                                          for n in range(start, start + 50)])
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    now = time.time()
    for n in range(120):
        assert p.items.try_lease(job.job_id, numbered(n, 150), f"w{n}",
                                 _lease(job, numbered(n, 150), now), None, now).ok
    calls = _count_calls(monkeypatch) if on_dynamodb(p) else None
    # WHEN the live leases are counted with at most 100 leases read
    count = p.items.live_leases(job.job_id, now, 1000, reads=100)
    # THEN all 150 items are listed, 100 of the leased ones read and the count scaled to 120
    assert _lease_count(count) == (120, 150, True, False)
    # AND on DynamoDB that took one query and one batch read
    if calls is not None:
        assert calls == {"Query": 1, "BatchGetItem": 1}, calls


def test_progress_of_a_pool_larger_than_one_listing_is_sampled_with_six_requests_at_most(
        p, monkeypatch):
    # GIVEN 150 open items, every other one leased, and listings bounded to 50 open items
    monkeypatch.setattr(progress, "EXACT_ENTRIES", 50)
    monkeypatch.setattr(progress, "SAMPLE_ENTRIES", 20)
    job = replace(_draft(p, _client(p), 150, 2), phase=PRODUCTION, pilot_items=0)
    p.jobs.create_job(job)
    for start in range(0, 150, 50):
        p.items.put_items(job.job_id, 2, [NewItem(numbered(n, 150), {"n": n})
                                          for n in range(start, start + 50)])
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    now = time.time()
    for n in range(0, 150, 2):
        assert p.items.try_lease(job.job_id, numbered(n, 150), f"w{n}",
                                 _lease(job, numbered(n, 150), now), None, now).ok
    job = p.jobs.get_job(job.job_id)
    calls = _count_calls(monkeypatch) if on_dynamodb(p) else None
    # WHEN the job's live leases are counted
    leased, estimated = jobs.live_leases(p, job)
    # THEN they are estimated from three samples, near the 75 there are
    assert estimated and abs(leased - 75) <= 20, leased
    # AND on DynamoDB that took three queries and three batch reads at most
    if calls is not None:
        assert calls["Query"] == 3 and calls.get("BatchGetItem", 0) <= 3, calls
        assert set(calls) <= {"Query", "BatchGetItem"}, calls


def _count_calls(monkeypatch) -> dict[str, int]:
    """Count the DynamoDB requests made from now on, by operation."""
    import botocore.client

    calls: dict[str, int] = {}
    original = botocore.client.BaseClient._make_api_call

    def call(self, operation, params):  # noqa: ANN001 (botocore's signature)
        calls[operation] = calls.get(operation, 0) + 1
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    return calls


def test_held_item_ids_come_a_bounded_page_at_a_time_between_two_ids(p):
    # GIVEN six items, all but the first and the fourth held
    job = _draft(p, _client(p), 6, 1)
    p.jobs.create_job(job)
    p.items.put_items(job.job_id, 1, [NewItem(numbered(n, 6), {"n": n}, held=n not in (0, 3))
                                      for n in range(6)])
    ids = [numbered(n, 6) for n in range(6)]
    # WHEN they are read three items at a time THEN each page holds the held ones among the
    # three read, with the last id read as the cursor while more may follow
    first, cursor = p.items.held_item_ids(job.job_id, None, None, 3)
    assert (first, cursor) == (ids[1:3], ids[2])
    second, cursor = p.items.held_item_ids(job.job_id, cursor, None, 3)
    assert second == ids[4:6]
    if cursor is not None:  # a full last page may not know it was the last
        assert p.items.held_item_ids(job.job_id, cursor, None, 3) == ([], None)
    # AND between two ids only those strictly between are read
    assert p.items.held_item_ids(job.job_id, ids[1], ids[5], 10) == (ids[2:3] + ids[4:5], None)
    assert p.items.held_item_ids(job.job_id, None, ids[2], 10) == ([ids[1]], None)
    page, cursor = p.items.held_item_ids(job.job_id, ids[0], ids[5], 2)
    assert (page, cursor) == (ids[1:3], ids[2])
    page, cursor = p.items.held_item_ids(job.job_id, cursor, ids[5], 2)
    assert page == [ids[4]] and cursor in (None, ids[4])
    assert p.items.held_item_ids(job.job_id, ids[4], ids[5], 2) == ([], None)


def _lease_count(count: LeaseCount) -> tuple[float, int, bool, bool]:
    return count.leased, count.entries, count.complete, count.exact


# --- counting -----------------------------------------------------------------------------

def test_counting_counts_each_answer_once_and_closes_completed_items(p):
    # GIVEN a job of two items taking two answers each
    job = _active_job(p, items=2, redundancy=2)
    a1 = CountedAnswer(job.job_id, FIRST, "w1", "asg-1", False)
    a2 = CountedAnswer(job.job_id, SECOND, "w2", "asg-2", False)
    a3 = CountedAnswer(job.job_id, SECOND, "w3", "asg-3", False)
    a4 = CountedAnswer(job.job_id, FIRST, "w4", "asg-4", True)
    # WHEN two answers are counted, and the same two again (a redelivery)
    first = p.jobs.record_counted(job.job_id, [a1, a2])
    repeat = p.jobs.record_counted(job.job_id, [a1, a2])
    # THEN they are counted once
    assert (first, repeat) == (2, 0)
    assert p.jobs.get_job(job.job_id).answered == 2
    # WHEN a batch mixes a counted answer with two new ones, one completing its item
    mixed = p.jobs.record_counted(job.job_id, [a2, a3, a4])
    # THEN only the new ones count, and the completed item is done and closed
    assert mixed == 2
    counted = p.jobs.get_job(job.job_id)
    assert (counted.answered, counted.items_done) == (4, 1)
    assert _open_ids(p, job) == [SECOND]
    now = time.time()
    closed = p.items.try_lease(job.job_id, FIRST, "w9", _lease(job, FIRST, now), None, now)
    assert not closed.ok and "w9" not in closed.item.seen
    # AND counting the completing answer again closes nothing twice
    assert p.jobs.record_counted(job.job_id, [a4]) == 0
    assert p.jobs.get_job(job.job_id).items_done == 1


# --- jobs ---------------------------------------------------------------------------------

def test_a_transition_happens_only_from_the_named_states(p):
    # GIVEN an active job
    job = _active_job(p)
    now = time.time()
    # WHEN it is moved from a state it is not in THEN nothing changes
    assert not p.jobs.transition(job.job_id, (INGESTING, DONE), CANCELLED, cancelled_at=now)
    unchanged = p.jobs.get_job(job.job_id)
    assert unchanged.state == ACTIVE and unchanged.cancelled_at is None
    # WHEN it is moved from its own state THEN it moves, with the changes set alongside
    assert p.jobs.transition(job.job_id, (INGESTING, ACTIVE), CANCELLED, cancelled_at=now,
                             error="stopped")
    moved = p.jobs.get_job(job.job_id)
    assert (moved.state, moved.cancelled_at, moved.error) == (CANCELLED, now, "stopped")
    # AND a None change removes the attribute
    assert p.jobs.transition(job.job_id, (CANCELLED,), CANCELLED, error=None)
    assert p.jobs.get_job(job.job_id).error is None
    # AND a job that does not exist is not created by a transition
    missing = new_id("job")
    assert not p.jobs.transition(missing, (ACTIVE,), DONE)
    assert p.jobs.get_job(missing) is None


def test_the_counted_conditions_read_the_counters_as_counting_moved_them(p):
    # GIVEN an active job of two items taking one answer each, one counted complete
    job = _active_job(p, items=2, redundancy=1)
    p.jobs.record_counted(job.job_id, [CountedAnswer(job.job_id, FIRST, "w1", "asg-1", True)])
    # THEN a move that needs both items done is refused, and leaves the job as it was
    assert not p.jobs.transition(job.job_id, (ACTIVE,), CANCELLED, expect_items_done=2)
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    # AND a second answer counts on the same counters record
    p.jobs.record_counted(job.job_id, [CountedAnswer(job.job_id, SECOND, "w2", "asg-2", True)])
    # WHEN both are done THEN the move goes through
    assert p.jobs.transition(job.job_id, (ACTIVE,), CANCELLED, expect_items_done=2)
    # AND reopening an item uncounts it
    assert p.items.add_slots(job.job_id, FIRST, 1, 0)
    reopened = p.jobs.get_job(job.job_id)
    assert (reopened.state, reopened.answered, reopened.items_done) == (CANCELLED, 2, 1)
    # AND a move between states off the open-jobs index keeps the same condition
    assert not p.jobs.transition(job.job_id, (CANCELLED,), AGGREGATING, expect_items_done=2)
    assert p.jobs.transition(job.job_id, (CANCELLED,), AGGREGATING, expect_items_done=1)



def _open(p: Platform, key: str, job: Job) -> list[Offer]:
    """The job's entries in the open-jobs index under key (other tests' jobs may share it)."""
    return [offer for offer in p.jobs.open_jobs(key) if offer.job_id == job.job_id]


def test_a_job_is_in_the_open_jobs_index_exactly_while_active(p):
    # GIVEN a job requiring skills, ingesting, and a job requiring none
    client = _client(p)
    skilled = replace(_draft(p, client), required_skills=("ja", "en"),
                      min_skill_scores={"ja": 0.8})
    plain = _draft(p, client)
    for job in (skilled, plain):
        p.jobs.create_job(job)
    key = Offer.of(skilled).key
    assert key == "en" and Offer.of(plain).key.startswith("any#")
    assert _open(p, key, skilled) == []
    # WHEN they become active THEN each is listed under its key with what a worker sees
    for job in (skilled, plain):
        assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE)
    [offer] = _open(p, key, skilled)
    assert offer == Offer.of(p.jobs.get_job(skilled.job_id))
    assert (offer.title, offer.instructions, offer.reward_cents) == \
        (skilled.title, skilled.instructions, skilled.reward_cents)
    assert offer.min_skill_scores == {"ja": 0.8} and set(offer.required_skills) == {"ja", "en"}
    assert [o.job_id for o in _open(p, Offer.of(plain).key, plain)] == [plain.job_id]
    assert _open(p, "ja", skilled) == []  # one key per job
    # AND a refused transition changes nothing
    assert not p.jobs.transition(skilled.job_id, (PAUSED,), ACTIVE)
    assert len(_open(p, key, skilled)) == 1
    # WHEN it leaves active THEN it leaves the index
    assert p.jobs.transition(skilled.job_id, (ACTIVE,), PAUSED)
    assert _open(p, key, skilled) == []
    # AND it comes back with the instructions it comes back with
    assert p.jobs.transition(skilled.job_id, (PAUSED,), ACTIVE, instructions="Read twice.",
                             instruction_version=2)
    [back] = _open(p, key, skilled)
    assert (back.instructions, back.instruction_version) == ("Read twice.", 2)
    assert p.jobs.transition(skilled.job_id, (ACTIVE, CANCELLED), CANCELLED)
    assert _open(p, key, skilled) == []


def test_the_instructions_and_their_version_change_together(p):
    # GIVEN a job paused in calibration, at its first instructions
    client = _client(p)
    job = _draft(p, client)
    p.jobs.create_job(job)
    assert p.jobs.transition(job.job_id, (INGESTING,), PAUSED)

    def seen() -> list[tuple[str, int]]:
        """The instructions and version as each way of reading the job shows them."""
        page, _ = p.jobs.jobs_of_client(client.account_id, 10, None)
        listed = [j for j in page + _listed(p, PAUSED) if j.job_id == job.job_id]
        return [(j.instructions, j.instruction_version)
                for j in [p.jobs.get_job(job.job_id), p.jobs.get_job(job.job_id, False),
                          *listed]]

    assert set(seen()) == {("Pick one.", 1)}
    # WHEN one is changed without the other THEN it is refused and nothing changes
    for alone in ({"instructions": "Pick two."}, {"instruction_version": 2},
                  {"instructions": None, "instruction_version": 2}):
        with pytest.raises(ValueError):
            p.jobs.transition(job.job_id, (PAUSED,), PAUSED, **alone)
    # AND a transition refused by its state writes neither
    assert not p.jobs.transition(job.job_id, (ACTIVE,), PAUSED, instructions="Pick two.",
                                 instruction_version=2)
    assert set(seen()) == {("Pick one.", 1)}
    # AND so does a revision at a version not above the job's: a version's text never changes
    assert not p.jobs.transition(job.job_id, (PAUSED,), PAUSED, instructions="Pick two.",
                                 instruction_version=1)
    assert set(seen()) == {("Pick one.", 1)}
    # WHEN they are revised in a transition that stays off active THEN both change
    assert p.jobs.transition(job.job_id, (PAUSED,), PAUSED, instructions="Pick two.",
                             instruction_version=2)
    assert set(seen()) == {("Pick two.", 2)} and len(seen()) == 4
    # AND in one into active, where the open-jobs index lists them as well
    assert p.jobs.transition(job.job_id, (PAUSED,), ACTIVE, instructions="Pick three.",
                             instruction_version=3)
    promoted = p.jobs.get_job(job.job_id)
    assert (promoted.instructions, promoted.instruction_version) == ("Pick three.", 3)
    assert [(o.instructions, o.instruction_version)
            for o in _open(p, Offer.of(promoted).key, promoted)] == [("Pick three.", 3)]


def test_a_quote_buys_one_job(p):
    # GIVEN a job created from a quote
    client = _client(p)
    job = _draft(p, client)
    p.jobs.create_job(job)
    # WHEN a second job is created from the same quote
    second = replace(job, job_id=new_id("job"))
    with pytest.raises(Conflict) as raised:
        p.jobs.create_job(second)
    # THEN it is refused as quote_used, no second job exists, and the quote names the first
    assert raised.value.code == "quote_used"
    assert p.jobs.get_job(second.job_id) is None
    assert p.quotes.get_quote(job.quote_id).job_id == job.job_id


def test_jobs_are_listed_by_state_and_due_time_and_paged_per_client_newest_first(p):
    # GIVEN three jobs of one client created a minute apart, due in 1, 2 and 3 hours,
    # and one job of another client
    client, other = _client(p, "c1"), _client(p, "c2")
    now = time.time()
    jobs = []
    for n in range(3):
        job = replace(_draft(p, client), created_at=now + 60 * n, finalize_at=now + 3600 * (n + 1))
        p.jobs.create_job(job)
        jobs.append(job)
    elsewhere = replace(_draft(p, other), finalize_at=now + 60)
    p.jobs.create_job(elsewhere)
    # WHEN jobs are listed by state, all and only those due within 2 hours (other tests'
    # jobs are listed too: every listed job is checked, and these four are compared)
    mine = {job.job_id for job in [*jobs, elsewhere]}
    ingesting = {job.job_id for job in _listed(p, INGESTING)} & mine
    due = [job.job_id for job in _listed(p, INGESTING, finalize_before=now + 7200)
           if job.job_id in mine]
    # THEN the due list holds the jobs due by then, soonest first
    assert len(ingesting) == 4
    assert due == [elsewhere.job_id, jobs[0].job_id, jobs[1].job_id]
    assert [job for job in _listed(p, ACTIVE) if job.job_id in mine] == []
    # WHEN the client pages through its jobs two at a time
    page1, cursor = p.jobs.jobs_of_client(client.account_id, 2, None)
    page2, end = p.jobs.jobs_of_client(client.account_id, 2, cursor)
    # THEN it sees its own jobs, newest first, and the last page has no cursor
    assert [job.job_id for job in page1 + page2] == [j.job_id for j in reversed(jobs)]
    assert cursor is not None and end is None
    # AND a cursor that is not one of ours, or not one of this listing's, is an invalid request
    forged = [_cursor(p, {"job_id": {"S": "job_x"}}),
              _cursor(p, {"job_id": {"S": "job_x"}, "item_id": {"S": FIRST}}),
              _cursor(p, {"job_id": {"S": "x"}, "client_id": {"S": "y"}, "created_at": "z"}),
              _plain_cursor({"job_id": {"S": page2[0].job_id},
                             "client_id": {"S": client.account_id},
                             "created_at": {"S": "2000-01-01T00:00:00Z"}})]
    for tampered in ["not a cursor", _cursor(p, [1, 2]), cursor[:-6], *forged]:
        with pytest.raises(InvalidRequest):
            p.jobs.jobs_of_client(client.account_id, 2, tampered)


def test_a_cursor_with_the_right_keys_but_wrong_types_is_an_invalid_request(p):
    # GIVEN a client with two jobs and the cursor of its first page
    client = _client(p)
    for _ in range(2):
        p.jobs.create_job(_draft(p, client))
    _, cursor = p.jobs.jobs_of_client(client.account_id, 1, None)
    key = _codec(p).open(cursor)
    # WHEN it pages on with that cursor's created_at turned into a number
    forged = _cursor(p, {**key, "created_at": {"N": "1"}})
    # THEN it is told the cursor is invalid
    with pytest.raises(InvalidRequest):
        p.jobs.jobs_of_client(client.account_id, 1, forged)


# --- results ------------------------------------------------------------------------------

def _walk(p: Platform, job_id: str, limit: int, item_count: int) -> list[list[dict]]:
    """Every page of a job's results, following the cursors to the end."""
    pages, cursor = [], None
    while True:
        page = p.results.page(job_id, limit, cursor, item_count)
        pages.append(page.entries)
        cursor = page.cursor
        if cursor is None:
            return pages


def test_results_are_paged_in_item_order_across_their_partitions(p):
    # GIVEN lines of a 3,000-item job on both sides of bucket boundaries (rows of a thousand
    # items share a partition), written out of order, and a line of another job
    job_a, job_b = new_id("job"), new_id("job")
    lines = [{"item_id": f"{n:06d}", "answer": {"label": "yes"}, "n_answers": 2}
             for n in (0, 1, 998, 999, 1000, 1001, 2500)]
    p.results.put_results(job_a, reversed(lines))
    p.results.put_results(job_b, [{"item_id": FIRST, "answer": None}])
    # WHEN they are read two at a time, following the cursor
    pages = _walk(p, job_a, 2, 3000)
    # THEN every line comes back once, in item order, in pages of at most two
    assert all(len(entries) <= 2 for entries in pages)
    assert [line for entries in pages for line in entries] == lines
    # AND in one page when it is big enough
    assert _walk(p, job_a, 1000, 3000) == [lines]
    # AND writing the same lines again changes nothing
    p.results.put_results(job_a, lines)
    assert p.results.page(job_a, 10, None, 3000).entries == lines
    assert p.results.page(job_b, 10, None, 1).entries == [{"item_id": FIRST, "answer": None}]
    # AND a cursor is refused for another job, and when it is not one handed out
    cursor = p.results.page(job_a, 2, None, 3000).cursor
    with pytest.raises(InvalidRequest):
        p.results.page(job_b, 2, cursor, 3000)
    with pytest.raises(InvalidRequest):
        p.results.page(job_a, 2, "%%%", 3000)


def test_a_results_page_queries_a_bounded_number_of_partitions(p):
    # GIVEN a 40,000-item job (40 partitions) with one row, in its last partition
    job_id = new_id("job")
    line = {"item_id": "039999", "answer": {"label": "no"}}
    p.results.put_results(job_id, [line])
    # WHEN its first page is read THEN it is empty, with a cursor to carry on
    first = p.results.page(job_id, 100, None, 40_000)
    assert first.entries == [] and first.cursor
    # AND following the cursors reaches the row, in pages of at most 16 partitions each
    pages = _walk(p, job_id, 100, 40_000)
    assert [entry for entries in pages for entry in entries] == [line]
    assert len(pages) == 3  # partitions -1 (rows written before) and 0..14, 15..30, 31..39
    # AND a cursor of the job's is refused once the job is read as smaller than it names
    with pytest.raises(InvalidRequest):
        p.results.page(job_id, 100, first.cursor, 1000)


# --- races --------------------------------------------------------------------------------

def test_racing_workers_never_take_more_slots_than_an_item_has(p):
    # GIVEN three items with two slots each
    job = _active_job(p, items=3, redundancy=2)
    now = time.time()
    for item_id in (FIRST, SECOND, THIRD):
        # WHEN eight workers, each with their own adapter, race to lease the item
        start = threading.Barrier(8)
        outcomes: dict[str, bool] = {}

        def race(worker: str, item_id: str = item_id) -> None:
            items = DynamoItems() if on_dynamodb(p) else p.items
            lease = _lease(job, item_id, now)
            start.wait()
            outcomes[worker] = items.try_lease(job.job_id, item_id, worker, lease, None, now).ok

        threads = [threading.Thread(target=race, args=(f"w{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        # THEN exactly two win, and the item holds exactly their leases
        winners = {worker for worker, ok in outcomes.items() if ok}
        assert len(outcomes) == 8 and len(winners) == 2
        stored = p.items.get_item(job.job_id, item_id)
        assert stored.free == 0 and set(stored.leases) == winners and stored.seen == winners


# --- quality, pool and replacement slots ----------------------------------------------------

def test_the_pool_is_never_overdrawn_and_refunds_return_to_it(p):
    job = _active_job(p)
    assert p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, pool_cents=10)
    assert p.jobs.reserve(job.job_id, 6) and not p.jobs.reserve(job.job_id, 6)
    p.jobs.refund(job.job_id, 6)
    assert p.jobs.get_job(job.job_id).pool_cents == 10


def test_replacement_slots_reopen_a_counted_item_once_and_uncount_it(p):
    job = _active_job(p, items=1, redundancy=1)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(lease, "yes", now), now).ok
    p.jobs.record_counted(job.job_id, [CountedAnswer(job.job_id, FIRST, "w1", lease.assignment_id,
                                                     True)])
    assert p.jobs.get_job(job.job_id).items_done == 1 and _open_ids(p, job) == []
    # WHEN the item gets one replacement slot THEN it is open again and no longer done
    assert p.items.add_slots(job.job_id, FIRST, 1, 0)
    item = p.items.get_item(job.job_id, FIRST)
    assert (item.redundancy, item.free, item.replaced) == (2, 1, 1)
    assert _open_ids(p, job) == [FIRST] and p.jobs.get_job(job.job_id).items_done == 0
    # AND a second call that read the item before the first changes nothing
    assert not p.items.add_slots(job.job_id, FIRST, 1, 0)
    assert p.jobs.get_job(job.job_id).items_done == 0


def test_gold_is_scored_once_per_assignment_in_the_job_and_overall(p, uid):
    w1, w2 = f"w1-{uid}", f"w2-{uid}"
    job_a, job_b = new_id("job"), new_id("job")
    asg_1 = new_assignment_id(job_a, FIRST, time.time())
    asg_2 = new_assignment_id(job_b, FIRST, time.time())
    assert p.stats.record_gold(w1, job_a, asg_1, True) == (1, 1)
    assert p.stats.record_gold(w1, job_a, asg_1, True) is None
    assert p.stats.record_gold(w1, job_b, asg_2, False) == (1, 0)
    overall = [r for r in p.stats.of_worker(w1) if r.scope == "*"][0]
    assert (overall.gold_answers, overall.gold_correct) == (2, 1)
    p.stats.publish_shown(job_a)
    (record,) = p.stats.of_job(job_a, 1000, None)[0]
    assert (record.shown_gold_answers, record.shown_gold_correct) == (1, 1)
    p.stats.mark_blocked(w1, "*", "fraud", 5.0)
    p.stats.mark_blocked(w1, "*", "later", 6.0)  # the first block is kept
    assert p.stats.blocked_everywhere([w1, w2]) == {w1}
    assert [r.blocked_reason for r in p.stats.of_worker(w1) if r.scope == "*"] == ["fraud"]
    p.stats.unblock(w1, "*")
    assert p.stats.blocked_everywhere([w1]) == set()


def test_a_jobs_workers_come_in_pages_by_worker_id(p, uid):
    job, other = new_id("job"), new_id("job")
    workers = [f"w{n}-{uid}" for n in range(5)]
    for n, worker in enumerate(workers):
        p.stats.mark_blocked(worker, job, f"reason {n}", 5.0)
    p.stats.mark_blocked(workers[0], other, "elsewhere", 5.0)
    pages, cursor = [], None
    while True:
        page, cursor = p.stats.of_job(job, 2, cursor)
        pages.append([r.worker_id for r in page])
        if cursor is None:
            break
        with pytest.raises(InvalidRequest):  # another job's listing refuses it
            p.stats.of_job(other, 2, cursor)
    assert [w for page in pages for w in page] == workers
    assert all(len(page) <= 2 for page in pages) and len(pages) in (3, 4)
    assert [r.blocked_reason for r in p.stats.of_job(other, 10, None)[0]] == ["elsewhere"]


def test_a_walk_over_the_workers_records_finds_every_block_and_lists_it(p, uid):
    job = new_id("job")
    w1, w2, w3 = f"w1-{uid}", f"w2-{uid}", f"w3-{uid}"
    p.stats.mark_blocked(w1, "*", "fraud", 5.0)
    p.stats.mark_blocked(w2, job, "spam", 5.0)
    p.stats.record_gold(w3, job, new_assignment_id(job, FIRST, time.time()), True)
    found, cursor, pages = [], None, 0
    while True:
        records, cursor = p.stats.blocks_page(cursor, 3)
        found += [(r.worker_id, r.scope) for r in records if r.worker_id.endswith(uid)]
        pages += 1
        assert all(r.blocked_at is not None for r in records)
        if cursor is None:
            break
    assert sorted(found) == [(w1, "*"), (w2, job)] and pages >= 2
    # listing again is harmless, and what is listed is what a block lists
    p.stats.list_block(w2, job)
    p.stats.list_block(w1, "*")
    assert p.stats.blocks_in_job(job) == {w2: 5.0}
    assert w1 in p.stats.blocked_everywhere_ids(10_000)


def test_one_record_of_a_worker_is_read_by_its_scope(p, uid):
    w1, w2, job = f"w1-{uid}", f"w2-{uid}", new_id("job")
    p.stats.record_gold(w1, job, new_assignment_id(job, FIRST, time.time()), False)
    p.stats.mark_blocked(w2, job, "careless", 5.0)
    assert (p.stats.record(w1, job).gold_answers, p.stats.record(w1, job).blocked_at) == (1, None)
    assert p.stats.record(w1, "*").gold_correct == 0
    assert (p.stats.record(w2, job).blocked_reason, p.stats.record(w2, job).gold_answers) == (
        "careless", 0)
    assert p.stats.record(w2, "*") is None and p.stats.record(w1, new_id("job")) is None


def test_money_held_for_replacements_is_apart_from_the_pool_and_released_into_it(p):
    job = _active_job(p)
    assert p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, pool_cents=10)
    p.jobs.refund(job.job_id, 5, "held")
    # the held money pays replacements, never what asks the pool for more than it holds
    assert not p.jobs.reserve(job.job_id, 11)
    assert p.jobs.reserve(job.job_id, 5, "held") and not p.jobs.reserve(job.job_id, 1, "held")
    p.jobs.refund(job.job_id, 5, "held")
    assert (p.jobs.get_job(job.job_id).pool_cents, p.jobs.get_job(job.job_id).held_cents) == (10, 5)
    # released once: the pool gets it, a second release moves nothing
    assert p.jobs.release_held(job.job_id) == 5 and p.jobs.release_held(job.job_id) == 0
    released = p.jobs.get_job(job.job_id)
    assert (released.pool_cents, released.held_cents) == (15, 0)


def test_a_rejection_refunds_to_the_pool_or_holds_the_reward_once(p):
    job = _active_job(p, items=2, redundancy=1)
    now = time.time()
    for item_id, worker, refund_to in ((FIRST, "w1", "held"), (SECOND, "w2", "pool")):
        lease = _leased(p, job, item_id, worker, now)
        assert p.items.try_submit(job.job_id, item_id, worker, _answer(lease, "no", now), now).ok
        entry = LedgerEntry(worker, f"review#{lease.assignment_id}", "rejection", 0, now,
                                     job.job_id, lease.assignment_id, "off topic", "cli")
        review = {"status": "rejected", "reason": "off topic", "at": now, "by": "cli"}
        assert p.items.review(job.job_id, item_id, worker, lease.assignment_id, review, entry,
                              5, refund_to)
        assert not p.items.review(job.job_id, item_id, worker, lease.assignment_id, review,
                                  entry, 5, refund_to)
    after = p.jobs.get_job(job.job_id)
    assert (after.held_cents, after.pool_cents, after.rejected_answers) == (5, job.pool_cents + 5, 2)


def _submitted(p: Platform, job: Job, item_id: str, worker: str, now: float) -> CountedAnswer:
    lease = _leased(p, job, item_id, worker, now)
    assert p.items.try_submit(job.job_id, item_id, worker, _answer(lease, "no", now), now).ok
    return CountedAnswer(job.job_id, item_id, worker, lease.assignment_id, False)


def test_counted_answers_accrue_once_and_a_settlement_pays_them_once(p):
    # GIVEN three answers of two workers in one job, counted with a pay delay, then again
    job = _active_job(p, items=3, redundancy=2)
    worker = f"wrk_{uuid.uuid4().hex[:12]}"
    accounts_of = [worker, f"{worker}b"]
    now = time.time()
    answers = [_submitted(p, job, item_id, accounts_of[0], now) for item_id in (FIRST, SECOND)]
    answers.append(_submitted(p, job, FIRST, accounts_of[1], now))
    assert p.jobs.record_counted(job.job_id, answers, pay_delay=-10 ** 6) == 3
    assert p.jobs.record_counted(job.job_id, answers, pay_delay=-10 ** 6) == 0
    window = payouts.window_of(answers[0].assignment_id)
    accrual = p.ledger.accrual(job.job_id, worker, window)
    assert (accrual.accrued, accrual.rejected, accrual.paid) == (2, 0, 0)
    assert accrual.due_at == payouts.window_end(window) - 10 ** 6
    # AND both accruals are on the due index (past due), found whatever else is there
    due = [a for a in p.ledger.accruals_due(time.time(), 1000) if a.job_id == job.job_id]
    assert sorted(a.worker_id for a in due) == sorted(accounts_of)
    # WHEN two sweepers settle the same read
    entry = LedgerEntry(worker, payouts.accrual_entry_id(job.job_id, window, 2), "settlement",
                        10, now, job.job_id, None, "2 answers approved", "auto", 2)
    assert p.ledger.settle(accrual, entry, 2, now, "auto")
    assert not p.ledger.settle(accrual, entry, 2, now, "auto")
    # THEN the worker was paid once, the job's totals moved once, the accrual left the index
    assert p.ledger.balance(worker) == 10 and p.ledger.get_entry(worker, entry.entry_id).answers == 2
    paid = p.jobs.get_job(job.job_id)
    assert (paid.paid_cents, paid.approved_answers) == (10, 2)
    settled = p.ledger.accrual(job.job_id, worker, window)
    assert (settled.paid, settled.settled_by, settled.due_at) == (2, "auto", None)
    assert all(a.worker_id != worker for a in p.ledger.accruals_due(time.time(), 1000)
               if a.job_id == job.job_id)
    # AND a rejection of a settled accrual's answer is refused; the other worker's is taken
    review = {"status": "rejected", "reason": "late", "at": now, "by": "cli"}
    late = LedgerEntry(worker, f"review#{answers[0].assignment_id}", "rejection", 0, now,
                       job.job_id, answers[0].assignment_id, "late", "cli")
    assert not p.items.review(job.job_id, FIRST, worker, answers[0].assignment_id, review,
                              late, 5, "pool")
    other = answers[2]
    rejection = replace(late, account_id=other.worker_id, entry_id=f"review#{other.assignment_id}",
                        assignment_id=other.assignment_id)
    assert p.items.review(job.job_id, FIRST, other.worker_id, other.assignment_id, review,
                          rejection, 5, "pool")
    rejected = p.ledger.accrual(job.job_id, other.worker_id, window)
    assert (rejected.accrued, rejected.rejected, rejected.payable) == (1, 1, 0)
    # a client's approval is a mark on the answer, once
    approval = {"status": "approved", "reason": None, "at": now, "by": "cli"}
    assert p.items.approve(job.job_id, SECOND, worker, answers[1].assignment_id, approval)
    assert not p.items.approve(job.job_id, SECOND, worker, answers[1].assignment_id, approval)
    assert p.items.get_item(job.job_id, SECOND).answers[worker].review["status"] == "approved"


def test_workers_in_job_are_those_with_an_answer_counted_in_it(p):
    job, other = _active_job(p, items=2, redundancy=1), _active_job(p, items=1, redundancy=1)
    now = time.time()
    w1, w2, w3 = (f"wrk_{uuid.uuid4().hex[:12]}" for _ in range(3))
    p.jobs.record_counted(job.job_id, [_submitted(p, job, FIRST, w1, now)], pay_delay=0)
    p.jobs.record_counted(other.job_id, [_submitted(p, other, FIRST, w2, now)], pay_delay=0)
    assert p.ledger.workers_in_job(job.job_id, [w1, w2, w3]) == {w1}
    assert p.ledger.workers_in_job(other.job_id, [w1, w2, w3]) == {w2}
    assert p.ledger.workers_in_job(job.job_id, []) == set()


def test_blocks_everywhere_are_listed_apart_until_lifted(p):
    w1, w2 = f"wrk_{uuid.uuid4().hex[:12]}", f"wrk_{uuid.uuid4().hex[:12]}"
    p.stats.mark_blocked(w1, "*", "fraud", 5.0)
    p.stats.mark_blocked(w2, "*", "fraud", 5.0)
    p.stats.mark_blocked(w2, new_id("job"), "gold (by rule)", 5.0)  # a job's: not listed
    listed = p.stats.blocked_everywhere_ids(1000)
    assert {w1, w2} <= set(listed) and len(listed) == len(set(listed))
    assert len(p.stats.blocked_everywhere_ids(0)) == 1  # one past the limit: there are more
    p.stats.unblock(w1, "*")
    listed = p.stats.blocked_everywhere_ids(1000)
    assert w1 not in listed and w2 in listed
    # the listing is no block: the worker's records show none beside it
    assert {r.scope for r in p.stats.of_worker(w1) if r.blocked_at is not None} == set()


def test_a_pass_holds_a_job_page_by_page_until_it_ends_or_goes_stale(p):
    job_id = _active_job(p).job_id
    assert p.jobs.claim_pass(job_id, "pass_a", None, 100.0, 0.0)
    assert p.jobs.claim_pass(job_id, "pass_a", None, 105.0, 0.0)  # its page, again
    p.jobs.advance_pass(job_id, "pass_a", None, "000002")
    p.jobs.advance_pass(job_id, "pass_a", None, "000009")  # a repeat: moves nothing
    assert not p.jobs.claim_pass(job_id, "pass_a", None, 106.0, 0.0)  # moved on
    assert p.jobs.claim_pass(job_id, "pass_a", "000002", 110.0, 10.0)  # its next page
    assert not p.jobs.claim_pass(job_id, "pass_b", None, 120.0, 100.0)  # a page ran at 110
    assert p.jobs.claim_pass(job_id, "pass_b", None, 200.0, 111.0)  # stale: taken over
    assert not p.jobs.claim_pass(job_id, "pass_a", "000002", 201.0, 0.0)
    p.jobs.end_pass(job_id, "pass_a")  # not its holder: nothing changes
    assert not p.jobs.claim_pass(job_id, "pass_a", None, 210.0, 0.0)
    p.jobs.end_pass(job_id, "pass_b")
    p.jobs.end_pass(job_id, "pass_b")  # a repeat
    assert p.jobs.claim_pass(job_id, "pass_a", "000005", 220.0, 0.0)


def test_items_come_a_bounded_page_at_a_time_with_everything_on_them(p):
    job = _active_job(p, items=5, redundancy=1)
    now = time.time()
    answer = _submitted(p, job, SECOND, "w1", now)
    first, cursor = p.items.item_page(job.job_id, None, 2)
    assert [i.item_id for i in first] == [FIRST, SECOND] and cursor == SECOND
    assert first[1].answers["w1"].assignment_id == answer.assignment_id
    second, cursor = p.items.item_page(job.job_id, cursor, 2)
    assert [i.item_id for i in second] == [THIRD, FOURTH] and cursor == FOURTH
    assert [i.item_id for i in p.items.item_page(job.job_id, cursor, 2)[0]] == [numbered(4, 5)]
    assert p.items.item_page(job.job_id, cursor, 2)[1] is None


def test_a_jobs_accruals_page_in_window_order_for_a_bulk_approval(p):
    job = _active_job(p, items=3, redundancy=1)
    now = time.time()
    answers = [_submitted(p, job, item_id, f"wrk_{uuid.uuid4().hex[:12]}", now)
               for item_id in (FIRST, SECOND, THIRD)]
    p.jobs.record_counted(job.job_id, answers, pay_delay=0)
    window = payouts.window_of(answers[0].assignment_id)
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = p.ledger.accruals_of_job(job.job_id, None, cursor, 2)
        seen += [a.worker_id for a in page]
        pages += 1
        if cursor is None:
            break
    assert sorted(seen) == sorted(a.worker_id for a in answers) and pages == 2
    assert p.ledger.accruals_of_job(job.job_id, window, None, 10) == ([], None)
    assert len(p.ledger.accruals_of_job(job.job_id, window + 1, None, 10)[0]) == 3
    # AND a bulk approval is queued, continued, and finished unless asked again meanwhile
    p.jobs.request_approval(job.job_id, None, "cli", now)
    (request,) = [r for r in p.jobs.approvals_requested(now) if r.job_id == job.job_id]
    assert (request.before, request.by, request.cursor) == (None, "cli", None)
    p.jobs.advance_approval(request, "next")
    (request,) = [r for r in p.jobs.approvals_requested(now) if r.job_id == job.job_id]
    assert request.cursor == "next"
    p.jobs.request_approval(job.job_id, now - 5, "cli", now + 1)
    p.jobs.advance_approval(request, None)  # a newer request came: kept, from the start
    (newer,) = [r for r in p.jobs.approvals_requested(now + 1) if r.job_id == job.job_id]
    assert (newer.before, newer.cursor) == (now - 5, None)
    p.jobs.advance_approval(newer, None)
    assert [r for r in p.jobs.approvals_requested(now + 1) if r.job_id == job.job_id] == []


def test_a_block_starts_when_told_and_a_block_at_once_replaces_a_later_start(p):
    job = _active_job(p)
    p.stats.mark_blocked("w1", job.job_id, "gold (by rule)", 500.0, 1000.0)
    p.stats.mark_blocked("w1", job.job_id, "gold (by rule)", 600.0, 2000.0)  # keeps the first
    # a worker of the job, not blocked
    p.stats.record_gold("w3", job.job_id, new_assignment_id(job.job_id, FIRST, time.time()), True)
    assert p.stats.blocks_in_job(job.job_id) == {"w1": 1000.0}
    p.stats.mark_blocked("w2", job.job_id, "spam (by client)", 700.0)
    p.stats.mark_blocked("w1", job.job_id, "spam (by client)", 800.0)  # by hand: at once
    p.stats.mark_blocked("w2", job.job_id, "again (by client)", 900.0)  # keeps the first
    assert p.stats.blocks_in_job(job.job_id) == {"w1": 800.0, "w2": 700.0}
    assert p.stats.blocks_in_job(job.job_id, ["w2", "w3", "w4"]) == {"w2": 700.0}
    assert p.stats.blocks_in_job(job.job_id, []) == {}
    reasons = {r.worker_id: r.blocked_reason for r in p.stats.of_job(job.job_id, 1000, None)[0]}
    assert reasons == {"w1": "spam (by client)", "w2": "spam (by client)", "w3": None}
    assert p.stats.blocks_in_job(job.job_id, limit=1) == {"w1": 800.0}  # the first listed
    p.stats.unblock("w2", job.job_id)  # a lifted block is no longer listed
    assert p.stats.blocks_in_job(job.job_id) == {"w1": 800.0}


def test_a_gold_items_unused_slots_are_paid_back_once(p):
    # GIVEN a gold item with 3 slots: one answered, one leased and expired, one free
    job = _draft(p, _client(p), items=1, redundancy=1)
    p.jobs.create_job(job)
    p.items.put_items(job.job_id, 1, [replace(item, gold={"label": "yes"}, slots=3)
                                      for item in parse_items([{"data": {"n": 0}}], 1)])
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, pool_cents=0)
    now = time.time()
    answered = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(answered, "yes", now), now).ok
    _leased(p, job, FIRST, "w2", now, seconds=10)
    item = p.items.get_item(job.job_id, FIRST)
    assert (item.redundancy, item.free) == (3, 1)
    # WHEN a release names a live lease, or a stale free count THEN nothing moves
    assert p.items.release_gold_slots(job.job_id, FIRST, 1, ["w2"], now, 5) == 0
    assert p.items.release_gold_slots(job.job_id, FIRST, 2, [], now + 11, 5) == 0
    # WHEN the free slot and the expired lease's are released THEN their rewards are paid in
    assert p.items.release_gold_slots(job.job_id, FIRST, 1, ["w2"], now + 11, 5) == 10
    item = p.items.get_item(job.job_id, FIRST)
    assert (item.redundancy, item.free, item.leases, item.answer_count) == (1, 0, {}, 1)
    assert p.jobs.get_job(job.job_id).pool_cents == 10
    assert p.items.release_gold_slots(job.job_id, FIRST, 1, ["w2"], now + 11, 5) == 0


def _gold_job(p: Platform, slots: int) -> Job:
    """An active job whose one item is gold with `slots` slots."""
    job = _draft(p, _client(p), items=1, redundancy=1)
    p.jobs.create_job(job)
    p.items.put_items(job.job_id, 1, [replace(item, gold={"label": "yes"}, slots=slots)
                                      for item in parse_items([{"data": {"n": 0}}], 1)])
    assert p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, pool_cents=0)
    return job


def test_a_gold_item_is_served_to_each_worker_once_and_an_expired_leases_slot_again(p):
    # GIVEN a gold item with 2 slots, leased by w1 (60 s) and w2 (10 s)
    job = _gold_job(p, slots=2)
    now = time.time()
    first = _leased(p, job, FIRST, "w1", now)
    second = _leased(p, job, FIRST, "w2", now, seconds=10)
    # WHEN w3 asks while both leases are live THEN no slot is free for them
    assert not p.items.try_lease(job.job_id, FIRST, "w3", _lease(job, FIRST, now), None, now).ok
    # WHEN w1 answers, twice (a retry) THEN the answer is accepted once, as w1's
    done = p.items.try_submit(job.job_id, FIRST, "w1", _answer(first, "yes", now + 1), now + 1)
    assert done.ok and done.item.answers["w1"].assignment_id == first.assignment_id
    again = p.items.try_submit(job.job_id, FIRST, "w1", _answer(first, "yes", now + 2), now + 2)
    assert not again.ok and again.item.answers["w1"].assignment_id == first.assignment_id
    # AND w1 never gets the item again, not even with a slot free
    assert not p.items.try_lease(job.job_id, FIRST, "w1", _lease(job, FIRST, now + 3), None,
                                 now + 3).ok
    # WHEN w2's lease has run out (its minute with it) THEN w3 takes its slot, w2 cannot
    # answer, and w2 gets no second lease
    late = now + 130
    taken = p.items.try_lease(job.job_id, FIRST, "w3", _lease(job, FIRST, late),
                              next(iter(_pending(p, job, late)), None), late)
    assert taken.ok
    assert not p.items.try_submit(job.job_id, FIRST, "w2", _answer(second, "no", late), late).ok
    assert not p.items.try_lease(job.job_id, FIRST, "w2", _lease(job, FIRST, late), None,
                                 late).ok
    item = p.items.get_item(job.job_id, FIRST)
    assert item.seen == {"w1", "w2", "w3"} and set(item.answers) == {"w1"}
    assert item.answer_count == 1 and item.redundancy == 2 and item.free == 0
    # WHEN w3 releases THEN the slot is free again, for a new worker only
    assert p.items.try_release(job.job_id, FIRST, "w3", taken.item.leases["w3"].assignment_id).ok
    assert p.items.get_item(job.job_id, FIRST).free == 1
    assert not p.items.try_lease(job.job_id, FIRST, "w3", _lease(job, FIRST, late), None,
                                 late).ok
    assert p.items.try_lease(job.job_id, FIRST, "w4", _lease(job, FIRST, late), None, late).ok


def test_items_answered_or_leased_in_full_do_not_fill_a_workers_listing(p):
    # GIVEN four items taking one answer: the first two answered (not counted yet), the
    # third leased for 60 s, the fourth untouched
    job = _active_job(p, items=4, redundancy=1)
    now = time.time()
    for item_id, worker in ((FIRST, "w1"), (SECOND, "w2")):
        lease = _leased(p, job, item_id, worker, now)
        assert p.items.try_submit(job.job_id, item_id, worker, _answer(lease, "yes", now), now).ok
    leased = _leased(p, job, THIRD, "w3", now)
    # WHEN a fourth worker asks for two open items they could take now, from the first on
    listed = _open_ids(p, job, "w4", 2, now)
    # THEN the items answered or leased in full do not take up the two: the untouched one
    # is found
    assert listed == [FOURTH]
    # AND an item whose last slot was answered left the listing at once, before counting
    assert _open_ids(p, job) == [THIRD, FOURTH]
    # AND once the full item's newest lease has ended, it is listed for them to look at
    # (its slot may be taken back)
    assert _open_ids(p, job, "w4", None, leased.expires_at) == [THIRD, FOURTH]
    # AND counting the answered items leaves them out, counted complete
    p.jobs.record_counted(job.job_id, [
        CountedAnswer(job.job_id, FIRST, "w1", "a1", True),
        CountedAnswer(job.job_id, SECOND, "w2", "a2", True)])
    assert _open_ids(p, job) == [THIRD, FOURTH]
    assert p.jobs.get_job(job.job_id).items_done == 2
    # AND a counted-complete item takes replacement slots (an item not counted complete
    # does not)
    assert not p.items.add_slots(job.job_id, THIRD, 1, 0)
    assert p.items.add_slots(job.job_id, FIRST, 1, 0)
    assert _open_ids(p, job) == [FIRST, THIRD, FOURTH]


def _pending(p: Platform, job: Job, now: float) -> list[str]:
    """The expired leases the pool would offer to reclaim on the job's first item: found
    from the listing (a regular item's newest lease has ended: read it), as the pool does."""
    found = []
    for item in p.items.open_items(job.job_id, None, None):
        plan = leasing.plan_for(item, "someone-new", now)
        if plan is not None and plan.look:
            read = p.items.get_item(job.job_id, item.item_id)
            plan = None if read is None else leasing.plan_for(read, "someone-new", now)
        if plan is not None and plan.reclaim_from is not None:
            found.append(plan.reclaim_from)
    return found


def test_a_gold_answer_is_counted_and_reviewed_once(p, uid):
    # GIVEN a gold answer by w1
    job = _gold_job(p, slots=3)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(lease, "yes", now), now).ok
    counted = CountedAnswer(job.job_id, FIRST, "w1", lease.assignment_id, False, gold=True)
    # WHEN it is counted twice THEN it counts once
    assert p.jobs.record_counted(job.job_id, [counted]) == 1
    assert p.jobs.record_counted(job.job_id, [counted]) == 0
    assert p.jobs.get_job(job.job_id).answered == 1
    # WHEN it is approved twice THEN the approval mark is made once, on the answer
    review = {"status": "approved", "reason": None, "at": now, "by": "c"}
    assert not p.items.approve(job.job_id, FIRST, f"gold-{uid}", lease.assignment_id, review,
                               gold=True)
    assert p.items.approve(job.job_id, FIRST, "w1", lease.assignment_id, review, gold=True)
    assert not p.items.approve(job.job_id, FIRST, "w1", lease.assignment_id, review, gold=True)
    stored = p.items.get_item(job.job_id, FIRST).answers["w1"]
    assert stored.review["status"] == "approved"
    # AND WHEN another worker's gold answer is rejected twice THEN it is rejected once
    second = _leased(p, job, FIRST, "w2", now)
    assert p.items.try_submit(job.job_id, FIRST, "w2", _answer(second, "no", now), now).ok
    entry = LedgerEntry("w2", f"review#{second.assignment_id}", "rejection", 0, now, job.job_id,
                        second.assignment_id, "wrong", "c")
    rejection = {"status": "rejected", "reason": "wrong", "at": now, "by": "c"}
    assert p.items.review(job.job_id, FIRST, "w2", second.assignment_id, rejection, entry, 5)
    assert not p.items.review(job.job_id, FIRST, "w2", second.assignment_id, rejection, entry, 5)
    answers = p.items.get_item(job.job_id, FIRST).answers
    assert answers["w2"].review["status"] == "rejected"
    assert answers["w1"].review["status"] == "approved"
    assert p.jobs.get_job(job.job_id).rejected_answers == 1


def test_a_full_items_expired_lease_is_found_from_the_listing_once_its_newest_has_ended(p):
    # GIVEN an item taking two answers, leased by w1 (10 s) and then w2 (60 s)
    job = _active_job(p, items=1, redundancy=2)
    now = time.time()
    _leased(p, job, FIRST, "w1", now, seconds=10)
    w2 = _leased(p, job, FIRST, "w2", now + 1)
    # WHEN w1's lease has ended but w2's has not THEN the listing offers nothing yet (it
    # holds when the newest lease ends, not the leases)
    (listed,) = p.items.open_items(job.job_id, None, None)
    assert listed.free == 0 and listed.last_expiry == w2.expires_at
    assert leasing.plan_for(listed, "w3", now + 30) is None
    # WHEN w2's has ended too THEN the listing says to read the item, and the item read
    # names an expired lease to take over, which w3 then takes
    later = w2.expires_at + 1
    assert leasing.plan_for(listed, "w3", later) == leasing.LeasePlan(FIRST, look=True)
    assert _pending(p, job, later) == ["w1"]
    assert p.items.try_lease(job.job_id, FIRST, "w3", _lease(job, FIRST, later), "w1",
                             later).ok
    # AND an item whose slots are all answered is read once and offered to nobody
    assert leasing.plan_for(p.items.open_items(job.job_id, None, None)[0], "w4", later) is None


def test_an_answered_item_not_yet_counted_complete_takes_one_more_slot_once(p):
    # GIVEN an item taking one answer, answered (out of the listing), not yet counted
    job = _active_job(p, items=1, redundancy=1)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(lease, "yes", now), now).ok
    assert _open_ids(p, job) == []
    # WHEN adaptive redundancy adds a slot, twice for the same answer
    assert p.items.extend(job.job_id, FIRST, 1)
    assert not p.items.extend(job.job_id, FIRST, 1)
    # THEN the item is listed again with one free slot, which a second worker takes
    (listed,) = p.items.open_items(job.job_id, "w2", None, None, now)
    assert listed.free == 1 and listed.redundancy == 2
    assert _leased(p, job, FIRST, "w2", now)
    # AND once counted complete, it takes no more
    p.jobs.record_counted(job.job_id, [CountedAnswer(job.job_id, FIRST, "w1", "a1", True)])
    assert not p.items.extend(job.job_id, FIRST, 2)


def test_a_paid_slot_takes_its_money_with_it_or_nothing_at_all(p):
    # GIVEN an answered item not yet counted, and 5 cents in the pool
    job = _active_job(p, items=1, redundancy=1)
    assert p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, pool_cents=5)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(lease, "yes", now), now).ok
    # WHEN a slot costs more than the pool holds THEN neither the slot nor the money moves
    assert p.items.extend(job.job_id, FIRST, 1, 6) is None
    assert p.items.get_item(job.job_id, FIRST).redundancy == 1
    # WHEN it costs what the pool holds THEN both move, once
    assert p.items.extend(job.job_id, FIRST, 1, 5) is True
    assert p.items.extend(job.job_id, FIRST, 1, 0) is False
    assert (p.items.get_item(job.job_id, FIRST).redundancy,
            p.jobs.get_job(job.job_id).pool_cents) == (2, 0)


def test_replacement_slots_take_their_money_with_them_or_nothing_at_all(p):
    # GIVEN a counted-complete item, 4 cents held for replacements and 10 in the pool
    job = _active_job(p, items=1, redundancy=1)
    assert p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, pool_cents=10, held_cents=4)
    now = time.time()
    lease = _leased(p, job, FIRST, "w1", now)
    assert p.items.try_submit(job.job_id, FIRST, "w1", _answer(lease, "yes", now), now).ok
    p.jobs.record_counted(job.job_id, [CountedAnswer(job.job_id, FIRST, "w1",
                                                     lease.assignment_id, True)])
    # WHEN the held money is short THEN nothing moves
    assert p.items.add_slots(job.job_id, FIRST, 1, 0, 5, "held") is None
    assert p.jobs.get_job(job.job_id).items_done == 1
    # WHEN the pool pays THEN the slot opens and the money leaves the pool, once
    assert p.items.add_slots(job.job_id, FIRST, 1, 0, 5, "pool") is True
    assert p.items.add_slots(job.job_id, FIRST, 1, 0, 5, "pool") is False
    read = p.jobs.get_job(job.job_id)
    assert (read.items_done, read.pool_cents, read.held_cents) == (0, 5, 4)
    assert p.items.get_item(job.job_id, FIRST).replaced == 1


def test_a_batch_of_a_hundred_answers_by_many_workers_is_counted_once(p):
    # GIVEN 100 answers on 100 items by 60 workers (more writes than one transaction holds)
    job = _active_job(p, items=100, redundancy=1)
    now = time.time()
    answers = []
    for n in range(100):
        item, worker = numbered(n, 100), f"w{n % 60}"
        lease = _leased(p, job, item, worker, now)
        assert p.items.try_submit(job.job_id, item, worker, _answer(lease, "yes", now), now).ok
        answers.append(CountedAnswer(job.job_id, item, worker, lease.assignment_id, True))
    # WHEN the batch is counted, twice (a redelivery)
    assert p.jobs.record_counted(job.job_id, answers, pay_delay=0) == 100
    assert p.jobs.record_counted(job.job_id, answers, pay_delay=0) == 0
    # THEN every answer counted once, every item done
    counted = p.jobs.get_job(job.job_id)
    assert (counted.answered, counted.items_done) == (100, 100)
