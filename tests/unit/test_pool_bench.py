"""bench/pool.py's simulation at a tiny size: a job served to many workers ends with every
answer accepted once and counted once, and the bench's own checks see what they claim to."""
from __future__ import annotations

import pytest

from bench.pool import Settings, report, simulate
from tests.fakes import FakeItems

TINY = Settings(workers=20, items=200, redundancy=3, containers=3, seed=7, fast_forward=False)


@pytest.mark.parametrize("fast_forward", [False, True])
def test_a_tiny_pool_run_leases_every_slot_once_and_counts_every_answer(fast_forward):
    # GIVEN 20 workers over 3 containers on a 200-item job at redundancy 3
    settings = Settings(**{**TINY.__dict__, "fast_forward": fast_forward})
    # WHEN the schedule runs to the end, every refusal's free-slot verdict checked by a scan
    out = simulate(settings, check_exhaustively=True)
    # THEN the job finished with no double lease and no item or worker over its answers
    assert out.finished and out.job_state == "aggregating"
    assert out.double_leases == 0 and out.over_redundancy_items == 0 and out.double_answers == 0
    # every answer was accepted once and counted once, and every item closed
    assert out.accepted == out.counted_answers == out.counted_marks == 600
    assert out.items_done == 200
    # every request was granted or refused, and every granted task was acted on
    assert out.requests["all"] == out.granted["all"] + out.refused["all"] > 0
    assert out.refused["all"] > 0  # so the free-slot check was exercised
    assert out.granted["all"] == out.accepted_simulated + out.released + out.abandoned \
        + out.held_at_end
    # the meters saw the handlers' store calls and writes
    lease_calls = sum(counts["items.try_lease"] for (kind, _), counts in out.calls.items()
                      if kind == "lease")
    assert lease_calls >= out.granted["all"]
    assert sum(n for key, n in out.writes.items() if key[0] == "jobs") > 0
    assert "refused while a free slot existed" in report(out)


def test_the_bench_reports_double_leases_when_the_store_forgets_an_item_is_full(monkeypatch):
    # GIVEN an items store that lets a lease through on a full item
    original = FakeItems.try_lease

    def careless(self, job_id, item_id, worker_id, lease, reclaim_from, now):
        record = self.records.get((job_id, item_id))
        if record is not None and reclaim_from is None and record.state.free == 0:
            record.state.free = 1
        return original(self, job_id, item_id, worker_id, lease, reclaim_from, now)

    monkeypatch.setattr(FakeItems, "try_lease", careless)
    # WHEN the tiny schedule runs on it (its containers' stale pools try full items)
    out = simulate(Settings(**{**TINY.__dict__, "max_hours": 0.2}))
    # THEN the bench sees slots leased beyond the items' redundancy
    assert out.double_leases > 0
    assert out.over_redundancy_items > 0
