"""Crash after every write of an ingest and deliver every chunk again: each item is written
once, and the job goes active exactly when every chunk of it is in.

A 7-item job is posted in chunks of 3 (3, 3 and 1 items). Its chunks go to the ingest
consumer one message at a time, once without faults, recording the writes (each item of a
chunk but the last by a PutItem of its own, then the last item and the chunk's count in one
transaction, then the move to active); then once per such write with a crash right after it.
A delivery that died is delivered again, as SQS does, and then every chunk three more times.
After every delivery the job is active only with every item in, and its chunks_written is
the number of chunks whose every item is in; at the end every item is there once, as
written, and an item leased once the job went active is left as the worker had it.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.deps import platform
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import ACTIVE, CLIENT, INGESTING, Lease
from chalicelib.handlers import accounts, jobs
from tests.functional.faults import Crash, Plan, crash_after_writes, messages_sent

ITEMS = 7
CHUNK = 3
CHUNKS = [[f"{n:06d}" for n in range(start, min(start + CHUNK, ITEMS))]
          for start in range(0, ITEMS, CHUNK)]
PUT_CHUNK = "jobs.ingest_chunk > items.put_chunk"
TO_ACTIVE = "jobs.ingest_chunk > jobs.transition"
COPIES = 3


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest chunks of CHUNK items, so a small job has several, one of them short."""
    monkeypatch.setattr("chalicelib.domain.jobs.CHUNK_ITEMS", CHUNK)


def _post(name: str) -> tuple[str, list[dict[str, Any]]]:
    """A job of ITEMS items posted by a new client, and its ingest messages as sent."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": ITEMS,
                                          "redundancy": 2})
    with messages_sent() as sent:
        job = jobs.post_job(p, client, {
            "quote_id": quote.quote_id, "instructions": "Sentiment?", "pilot": {"items": 0},
            "answer_schema": {"labels": ["pos", "neg"]},
            "items": [{"data": {"text": f"item {n}"}} for n in range(ITEMS)]})
    return job.job_id, [json.loads(body) for _, body in sent]


def _check(job_id: str) -> tuple[str, set[str]]:
    """The job's state and items in, checked: active only with every chunk in, and every
    chunk whose items are all in counted, no other."""
    p = platform()
    job = p.jobs.get_job(job_id)
    items = {item.item_id for item in p.items.iter_items(job_id)}
    whole = sum(1 for chunk in CHUNKS if set(chunk) <= items)
    assert job.chunks_written == whole, (job.chunks_written, sorted(items))
    assert job.state in (INGESTING, ACTIVE)
    if job.state == ACTIVE:
        assert whole == len(CHUNKS), sorted(items)
    return job.state, items


def _ingest(job_id: str, messages: list[dict[str, Any]]) -> int:
    """Deliver each message until it goes through (a crashed one again, after the others),
    checking the job after every delivery; how many deliveries died."""
    p = platform()
    waiting, died = list(messages), 0
    while waiting:
        message = waiting.pop(0)
        try:
            jobs.ingest_chunk(p, message)
        except Crash:
            waiting.append(message)
            died += 1
        _check(job_id)
    return died


def _lease_first(job_id: str) -> Lease:
    now = time.time()
    lease = Lease(new_assignment_id(job_id, CHUNKS[0][0], now), now + 600, now)
    assert platform().items.try_lease(job_id, CHUNKS[0][0], "w1", lease, None, now).ok
    return lease


def _run(plan: Plan, name: str) -> tuple[str, list[dict[str, Any]]]:
    """Post a job and deliver its chunks with the plan armed, then every chunk COPIES more
    times with the first item leased in between; checked all along."""
    job_id, messages = _post(name)
    assert len(messages) == len(CHUNKS)
    with crash_after_writes(plan):
        plan.armed = True
        died = _ingest(job_id, messages)
        plan.armed = False
    assert died == (plan.crashed is not None)
    state, items = _check(job_id)
    assert (state, items) == (ACTIVE, {item_id for chunk in CHUNKS for item_id in chunk})
    lease = _lease_first(job_id)
    for _ in range(COPIES):
        _ingest(job_id, messages)
    p = platform()
    written = {item.item_id: item for item in p.items.iter_items(job_id)}
    assert sorted(written) == [item_id for chunk in CHUNKS for item_id in chunk]
    assert [(item.data, item.redundancy) for item in written.values()] == [
        ({"text": f"item {n}"}, 2) for n in range(ITEMS)]
    first = written[CHUNKS[0][0]]
    assert (first.leases, first.free) == ({"w1": lease}, 1)
    assert all(item.free == 2 and not item.leases for item in list(written.values())[1:])
    assert p.jobs.get_job(job_id).chunks_written == len(CHUNKS)
    return job_id, messages


def test_a_crash_after_any_write_of_an_ingest_leaves_every_item_once_and_the_job_active(
        stack, small_chunks):
    clean = Plan()
    _run(clean, "Ingest client")
    # each chunk's items but its last one by one, then its last item with its count; then
    # the move to active
    assert clean.writes == [
        (op, PUT_CHUNK) for chunk in CHUNKS
        for op in ["PutItem"] * (len(chunk) - 1) + ["TransactWriteItems"]] + [
        ("TransactWriteItems", TO_ACTIVE)]
    crashed = []
    for site in (PUT_CHUNK, TO_ACTIVE):
        for nth in range(1, sum(1 for _, at in clean.writes if at == site) + 1):
            plan = Plan(crash_site=site, nth=nth)
            _run(plan, f"Ingest client {len(crashed)}")
            assert plan.crashed is not None, (site, nth)
            crashed.append(plan.crashed)
    assert len(crashed) == len(clean.writes) == 8


GOLD = {1, 5}


def _listing(operation: str, params: dict) -> bool:
    """Whether a write is a gold item's listing (its partition key ends in #gold)."""
    return operation == "PutItem" and params["Item"]["job_id"]["S"].endswith("#gold")


def _not_listing(operation: str, params: dict) -> bool:
    return not _listing(operation, params)


def _post_gold(name: str) -> tuple[str, list[dict[str, Any]]]:
    """A job of ITEMS items of which those in GOLD are gold, and its ingest messages."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": ITEMS,
                                          "redundancy": 2, "gold_rate": 0.3})
    with messages_sent() as sent:
        job = jobs.post_job(p, client, {
            "quote_id": quote.quote_id, "instructions": "Sentiment?", "pilot": {"items": 0},
            "answer_schema": {"labels": ["pos", "neg"]},
            "items": [{"data": {"text": f"item {n}"},
                       **({"gold": {"label": "pos"}} if n in GOLD else {})}
                      for n in range(ITEMS)]})
    return job.job_id, [json.loads(body) for _, body in sent]


def _gold_listed(job_id: str) -> list[str]:
    items, cursor = platform().items.gold_items(job_id, None, 100)
    assert cursor is None
    return [item.item_id for item in items]


def test_a_crash_after_any_write_of_an_ingest_lists_every_gold_item_written(stack, small_chunks):
    # GIVEN the clean run's writes: each chunk lists its gold items, then writes its items
    listings = Plan(crash_site=PUT_CHUNK, nth=0, only=_listing)
    job_id, messages = _post_gold("Gold ingest client")
    with crash_after_writes(listings):
        listings.armed = True
        assert _ingest(job_id, messages) == 0
    written = sum(1 for _, at in listings.writes if at == PUT_CHUNK)
    assert listings.site_writes == len(GOLD) and written == ITEMS + len(GOLD)
    assert _gold_listed(job_id) == [f"{n:06d}" for n in sorted(GOLD)]
    # WHEN a delivery dies after each write of the chunks in turn (listings, items, counts)
    # and is delivered again
    crashed = []
    for only, count in ((_listing, len(GOLD)), (_not_listing, written - len(GOLD))):
        for nth in range(1, count + 1):
            plan = Plan(crash_site=PUT_CHUNK, nth=nth, only=only)
            job_id, messages = _post_gold(f"Gold ingest client {len(crashed)}")
            with crash_after_writes(plan):
                plan.armed = True
                assert _ingest(job_id, messages) == 1
                plan.armed = False
            crashed.append(plan.crashed)
            # THEN every gold item written is listed once, and no other item
            p = platform()
            assert p.jobs.get_job(job_id).state == ACTIVE
            assert _gold_listed(job_id) == [item.item_id for item in p.items.iter_items(job_id)
                                            if item.gold is not None] == [
                f"{n:06d}" for n in sorted(GOLD)]
    assert len(crashed) == written and all(crashed)
