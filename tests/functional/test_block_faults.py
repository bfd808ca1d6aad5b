"""Crash after each write of a client's block and retry: the worker ends blocked from the job
and listed once among its blocked workers; a block whose request died after the listing and
was never retried lists nobody as blocked.

A block writes the job's listing of the block (a key-only record, scope "blocked#<job id>")
and then the block itself on the worker's record in the job; a job's blocked workers are read
from the listing, each confirmed on their record.
"""
from __future__ import annotations

import uuid

import pytest

from chalicelib.deps import platform
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import accounts, jobs, quality
from tests.functional.faults import Crash, Plan, crash_after_writes

SITE = "quality.block_in_job > worker_stats.mark_blocked"


def _job_with_worker(name: str) -> tuple[object, str, str]:
    """A client's job (posted, ingesting) and a worker with a gold answer scored in it."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2,
                                          "redundancy": 1})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Sentiment?", "pilot": {"items": 0},
        "answer_schema": {"labels": ["pos", "neg"]},
        "items": [{"data": {"n": n}} for n in range(2)]})
    worker = f"wrk_{uuid.uuid4().hex[:16]}"
    p.stats.record_gold(worker, job.job_id, new_assignment_id(job.job_id, "000000", 1.0), True)
    return client, job.job_id, worker


def _block(client, job_id: str, worker: str) -> None:
    quality.client_blocks_worker(platform(), client, job_id, worker, {"reason": "spam"})


@pytest.mark.parametrize("nth", [1, 2])
def test_a_block_retried_after_a_crash_at_any_write_is_listed_once(stack, nth):
    # GIVEN the clean run's writes: the listing, then the block
    clean = Plan()
    client, job_id, worker = _job_with_worker("Clean blocker")
    with crash_after_writes(clean):
        clean.armed = True
        _block(client, job_id, worker)
    assert clean.writes == [("PutItem", SITE), ("UpdateItem", SITE)]
    assert quality.blocked_workers(platform(), job_id) == [worker]
    # WHEN a block dies after its nth write and the client sends it again
    client, job_id, worker = _job_with_worker(f"Blocker {nth}")
    plan = Plan(crash_site=SITE, nth=nth)
    with crash_after_writes(plan):
        plan.armed = True
        with pytest.raises(Crash):
            _block(client, job_id, worker)
        plan.armed = False
    assert plan.crashed == clean.writes[nth - 1]
    if nth == 1:  # listed, not blocked: the listing alone blocks nobody
        assert quality.blocked_workers(platform(), job_id) == []
        assert platform().stats.blocks_in_job(job_id) == {}
    _block(client, job_id, worker)
    _block(client, job_id, worker)
    # THEN the worker is blocked and listed once
    p = platform()
    assert quality.blocked_workers(p, job_id) == [worker]
    assert list(p.stats.blocks_in_job(job_id)) == [worker]
    assert p.stats.record(worker, job_id).blocked_reason.startswith("spam")


BACKFILL = "quality.backfill_block_listings > worker_stats.list_block"


def test_a_backfill_that_died_after_any_listing_and_ran_again_lists_every_block(stack):
    # GIVEN three blocks made before blocks were listed (their listing records taken away)
    from chalicelib.adapters.dynamo.worker_stats import listing_scope
    from chalicelib.adapters.models import WorkerStatsModel

    p = platform()
    client, job_id, worker = _job_with_worker("Backfill client")
    others = [f"wrk_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    _block(client, job_id, worker)
    for other in others:
        p.stats.mark_blocked(other, "*", "fraud", 5.0)
    blocks = [(worker, job_id)] + [(other, "*") for other in others]
    for who, scope in blocks:
        WorkerStatsModel(who, listing_scope(scope)).delete()
    assert quality.blocked_workers(p, job_id) == []
    # WHEN the backfill dies after each of its listings in turn and is run again from the start
    clean = Plan(crash_site=BACKFILL, nth=0)
    with crash_after_writes(clean):
        clean.armed = True
        quality.backfill_block_listings(p)
    total = clean.site_writes
    assert total >= len(blocks)  # the stack holds other tests' blocks too
    for nth in (1, total):
        for who, scope in blocks:
            WorkerStatsModel(who, listing_scope(scope)).delete()
        plan = Plan(crash_site=BACKFILL, nth=nth)
        with crash_after_writes(plan):
            plan.armed = True
            with pytest.raises(Crash):
                quality.backfill_block_listings(p)
            plan.armed = False
        quality.backfill_block_listings(p)
        # THEN every block is listed once more, and only blocks
        assert quality.blocked_workers(p, job_id) == [worker]
        assert set(others) <= set(p.stats.blocked_everywhere_ids(10_000))
        assert all(WorkerStatsModel.get(who, listing_scope(scope)) for who, scope in blocks)


def test_the_operators_backfill_command_lists_blocks_a_page_at_a_time(stack, monkeypatch):
    import io

    from chalicelib.adapters.dynamo.worker_stats import listing_scope
    from chalicelib.adapters.models import WorkerStatsModel
    from chalicelib.handlers import quality as handlers
    from infra import deploy

    client, job_id, worker = _job_with_worker("Backfill command client")
    _block(client, job_id, worker)
    WorkerStatsModel(worker, listing_scope(job_id)).delete()
    monkeypatch.setattr(handlers, "BACKFILL_PAGE", 50)
    out = io.StringIO()
    deploy.backfill_blocks({}, None, out)
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("next cursor: None") and len(lines) >= 1
    assert quality.blocked_workers(platform(), job_id) == [worker]
