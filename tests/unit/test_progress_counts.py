"""Progress from the job's counters and a bounded look at its task pool: the live leases are
counted exactly when the pool's open items fit in one listing, else estimated from a few
samples, with a bounded number of reads at any size (on the fakes)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.domain import progress
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.leasing import new_lease
from chalicelib.domain.model import CLIENT, NewItem
from chalicelib.handlers import accounts, jobs
from tests.fakes import FakeClock, ingest_all, make_platform


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _job(p, items: int, leased_every: int):
    """An active job of `items` open items taking two answers, every leased_every-th of them
    leased by one worker (written straight into the fakes: the bound on posted items is not
    what is measured here); the true count of live leases."""
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1,
                                          "redundancy": 2})
    job = jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "Pick one.",
                                    "answer_schema": {"labels": ["pos", "neg"]},
                                    "pilot": {"items": 0}, "items": [{"data": {"n": 0}}]})
    ingest_all(p)
    job = replace(p.jobs.get_job(job.job_id), item_count=items)
    p.jobs.jobs[job.job_id] = job
    p.items.put_items(job.job_id, 2, [NewItem(numbered(n, items), {"n": n})
                                      for n in range(1, items)])
    now = p.now()
    leased = 0
    for n in range(0, items, leased_every):
        item_id = numbered(n, items)
        assert p.items.try_lease(job.job_id, item_id, f"w{n}", new_lease(job, item_id, now),
                                 None, now).ok
        leased += 1
    return job, leased


def _reads(p) -> tuple[int, int, int]:
    """Requests a progress call made: listings of the pool (one query each), batch reads of
    the items' leases (one per 100 items) and the items read."""
    return p.items.lease_listings, p.items.lease_batches, p.items.item_reads


def test_a_job_whose_open_items_fit_in_one_listing_gets_an_exact_count_from_two_reads(p):
    # GIVEN a job of 1,000 open items, 100 of them leased
    job, leased = _job(p, 1000, 10)
    # WHEN its progress is read
    counts = jobs.job_progress(p, job)
    # THEN the count is exact, from one listing and one batch read of the leased items
    assert (counts["leased"], counts["leased_estimated"]) == (leased, False) == (100, False)
    assert _reads(p) == (1, 1, 100)


def test_a_job_with_more_leased_items_than_one_batch_read_gets_a_scaled_count(p):
    # GIVEN a job of 1,000 open items, 500 of them leased
    job, leased = _job(p, 1000, 2)
    # WHEN its progress is read THEN 100 of the leased items are read and the count scaled
    counts = jobs.job_progress(p, job)
    assert counts == {**counts, "leased": leased, "leased_estimated": True}
    assert _reads(p) == (1, 1, 100)


def test_a_job_with_more_open_items_than_one_listing_gets_an_estimate_from_a_few_reads(p):
    # GIVEN a job of 100,000 open items, every tenth leased
    job, leased = _job(p, 100_000, 10)
    # WHEN its progress is read
    counts = jobs.job_progress(p, job)
    # THEN it is an estimate near the truth, from three sampled listings of 100 items and at
    # most three batch reads: not from the 100,000 items
    assert counts["leased_estimated"] is True
    assert abs(counts["leased"] - leased) <= 0.25 * leased, (counts["leased"], leased)
    listings, batches, items_read = _reads(p)
    assert listings == progress.SAMPLES and batches <= progress.SAMPLES
    assert items_read <= progress.SAMPLES * progress.SAMPLE_ENTRIES
    assert p.items.index_reads <= progress.SAMPLES * (progress.SAMPLE_ENTRIES + 1)
    # AND read again within the cache's seconds it reads nothing more
    assert jobs.job_progress(p, job)["leased"] == counts["leased"]
    assert _reads(p) == (listings, batches, items_read)


def test_stopping_a_large_job_whose_estimate_shows_no_lease_still_waits_for_the_leases(p):
    # GIVEN a job too large to list, with no lease out
    job, _ = _job(p, 5000, 10 ** 9)
    p.items.try_release(job.job_id, numbered(0, 5000), "w0",
                        p.items.get_item(job.job_id, numbered(0, 5000)).leases["w0"].assignment_id)
    assert jobs.live_leases(p, job) == (0, True)
    client = accounts.create_account(p, CLIENT, "other")[0]
    owner = replace(client, account_id=job.client_id)
    # WHEN the client stops it
    stopped = jobs.stop_job(p, owner, job.job_id)
    # THEN it waits a lease period before aggregating: an estimate of none is not none
    assert stopped.state == "cancelled" and p.workflow.started == []
    assert stopped.finalize_at == p.now() + job.lease_seconds + p.cache_seconds
