"""Promotion opens the held items a bounded page per ingest message, a large job's ranges
side by side, whatever is delivered twice (on the fakes)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.model import ACTIVE, CALIBRATION, CLIENT, PAUSED, PRODUCTION, NewItem
from chalicelib.handlers import accounts, jobs, rounds
from tests.fakes import FakeClock, ingest_all, make_platform


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _paused_job(p, items: int, pilot_every: int):
    """A job paused in calibration with `items` items, every pilot_every-th of them answered
    in the pilot and the others held (written straight into the fakes: the bound on posted
    items is not what is measured here)."""
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1,
                                          "redundancy": 1})
    job = jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "Pick one.",
                                    "answer_schema": {"labels": ["pos", "neg"]},
                                    "pilot": {"items": 0}, "items": [{"data": {"n": 0}}]})
    ingest_all(p)
    job = replace(p.jobs.get_job(job.job_id), item_count=items, state=PAUSED, phase=CALIBRATION)
    p.jobs.jobs[job.job_id] = job
    p.items.put_items(job.job_id, 1, [NewItem(numbered(n, items), {"n": n},
                                              held=n % pilot_every != 0)
                                      for n in range(1, items)])
    held = {numbered(n, items) for n in range(items) if n % pilot_every}
    return client, job, held


def _deliver_twice(p) -> list[dict]:
    """Deliver every ingest message twice, as SQS may, until none is left; the messages."""
    delivered = []
    while messages := p.ingest_queue.take():
        for message in messages:
            reads = p.items.item_reads
            jobs.ingest_chunk(p, message)
            jobs.ingest_chunk(p, message)
            assert p.items.item_reads - reads <= 2 * rounds.OPEN_PAGE, message
            delivered.append(message)
    return delivered


def test_promotion_queues_one_message_and_the_pages_open_every_held_item(p, monkeypatch):
    monkeypatch.setattr(rounds, "OPEN_PAGE", 7)
    monkeypatch.setattr(rounds, "OPEN_FAN_OUT", 3)
    monkeypatch.setattr(rounds, "OPEN_SPLIT", 21)
    # GIVEN a job of 200 items paused in calibration, 150 of them held
    client, job, held = _paused_job(p, 200, 4)
    assert len(held) == 150
    # WHEN the client promotes it
    jobs.promote_job(p, client, job.job_id, {})
    # THEN the request read no item and queued one message; the job is in production
    assert p.items.item_reads == 0
    assert p.ingest_queue.sent == [{"job_id": job.job_id, "open_range": [0, 200],
                                    "items": 200}]
    promoted = p.jobs.get_job(job.job_id)
    assert (promoted.state, promoted.phase, promoted.round) == (ACTIVE, PRODUCTION, 2)
    # WHEN every message (and every one it queues) is delivered twice
    delivered = _deliver_twice(p)
    # THEN every held item is open, each once, and each message read at most a page
    assert not any(p.items.get_item(job.job_id, item_id).held for item_id in held)
    assert all(p.items.is_open(job.job_id, item_id) for item_id in held)
    # AND the large ranges were split, and the small ones paged with a cursor
    assert any("after" in m for m in delivered)
    assert {tuple(m["open_range"]) for m in delivered if "after" not in m} >= {
        (0, 200), (0, 67), (67, 134), (134, 200)}


def test_a_promotion_page_opens_nothing_outside_its_range(p):
    # GIVEN a job whose every item but the first is held
    client, job, held = _paused_job(p, 30, 10 ** 6)
    # WHEN one range's message is delivered
    jobs.ingest_chunk(p, {"job_id": job.job_id, "open_range": [10, 20], "items": 30})
    # THEN exactly that range's held items are open
    opened = {item_id for item_id in held if not p.items.get_item(job.job_id, item_id).held}
    assert opened == {numbered(n, 30) for n in range(10, 20)}
    assert p.ingest_queue.sent == []
