"""Scoring a gold answer marks the worker's serving of the gold item, not their records: a
worker's record in a job stays one size however many gold answers they give there, and a
retried score counts nothing."""
from __future__ import annotations

import time
from typing import Any

import pytest

from bench.billing import item_size
from chalicelib import deps
from chalicelib.adapters.models import WorkerStatsModel
from chalicelib.domain.ids import item_id, new_assignment_id, new_id


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _size(worker: str, scope: str) -> int:
    raw = WorkerStatsModel._get_connection().get_item(worker, scope, consistent_read=True)
    return item_size(raw["Item"])


def test_a_workers_record_in_a_job_does_not_grow_with_their_gold_answers(p):
    # GIVEN a worker's first gold answer in a job, scored
    worker, job_id, now = new_id("acct"), new_id("job"), time.time()
    assignments = [new_assignment_id(job_id, item_id(n, 1_000_000), now + n) for n in range(60)]
    assert p.stats.record_gold(worker, job_id, assignments[0], True) == (1, 1)
    first = _size(worker, job_id)
    # WHEN 59 more gold answers of other gold items are scored, each twice (a retry)
    for n, assignment in enumerate(assignments[1:], start=2):
        assert p.stats.record_gold(worker, job_id, assignment, n % 2 == 0) == (n, n // 2 + 1)
        assert p.stats.record_gold(worker, job_id, assignment, n % 2 == 0) is None
    # THEN each counted once, and the record is the size it was (its counts' digits aside)
    record = next(r for r in p.stats.of_worker(worker) if r.scope == job_id)
    assert (record.gold_answers, record.gold_correct) == (60, 31)
    assert _size(worker, job_id) <= first + 2
