"""bench/fit_scale.py at a tiny size: the round it writes is what LoadAnswers would write, the
stage runs on it, and the row's shares are of FitModel's configured memory and timeout."""
from __future__ import annotations

import json
import math
from argparse import Namespace

from bench import fit_scale
from chalicelib.domain.aggregation.columns import read_shard
from chalicelib.domain.keys import votes_key
from infra.stage_settings import MEMORY_MB


def test_the_bench_writes_distinct_workers_per_item_and_the_asked_gold_share():
    blobs = fit_scale.MemoryBlobs()
    shards, answers = fit_scale.write_votes(blobs, "job", 1200, 4, 50, 0.5, seed=2)
    assert (shards, answers) == (3, 4800)
    gold = 0
    for shard in range(shards):
        votes = read_shard(json.loads(blobs.get_text(votes_key("job", 1, shard))))
        pairs = set(zip(votes.item_codes.tolist(), votes.worker_codes.tolist()))
        assert len(pairs) == len(votes.item_codes)  # no worker twice on an item
        gold += len(votes.gold)
    assert 500 < gold < 700


def test_a_tiny_run_fits_every_shard_and_measures_against_the_configured_function():
    args = Namespace(items=1000, redundancy=5, workers=40, gold=0.1, seed=1, s3_ms=0.0,
                     no_tracemalloc=False)
    row = fit_scale.measure(args)
    assert (row["answers"], row["shards"]) == (5000, 2)
    memory = MEMORY_MB["fit_model"]
    assert (row["memory_mb"], row["timeout_s"]) == fit_scale.fit_limits() == (memory, 300)
    # (no share when the fit stays under the process's earlier peak, as after other tests)
    share = row["estimate_mib"] / memory
    assert math.isnan(row["memory_share"]) if math.isnan(share) else row["memory_share"] == share
    assert row["time_share"] == row["fit_s"] / 300
    assert row["traced_mib"] > 0 and row["written_mb"] > 0
    assert "| 5,000 | 2 |" in fit_scale.table([row])
