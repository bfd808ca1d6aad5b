"""Time and peak memory of the FitModel stage's work at scale: parse vote columns, fit, serialise.

Builds the round's vote columns as FitModel reads them from S3 (one JSON object of
items/workers/labels per 500-item shard; S3 itself is not involved), then times parsing them,
fitting the default categorical model and writing the model JSON, and reports the process's
peak resident set. Labels are uniform at random over 5 classes (the slow case for EM, which
then runs to its iteration cap); 10 answers per item from 20,000 workers.

    python -m bench.fit_stage --items 100000      # 1 M answers
    python -m bench.fit_stage --items 300000      # 3 M answers
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from chalicelib.domain.aggregation.fitted import CategoricalModel

PER_ITEM = 10
SHARD_ITEMS = 500


def vote_shards(n_items: int, seed: int) -> list[str]:
    """The votes/NNNNN.json bodies of a round of n_items items."""
    rng = np.random.default_rng(seed)
    shards = []
    for start in range(0, n_items, SHARD_ITEMS):
        items = [f"{i:06d}" for i in range(start, min(start + SHARD_ITEMS, n_items))
                 for _ in range(PER_ITEM)]
        workers = [f"wrk_{w:016x}" for w in rng.integers(0, 20_000, len(items))]
        labels = [f"label{k}" for k in rng.integers(0, 5, len(items))]
        shards.append(json.dumps({"items": items, "workers": workers, "labels": labels}))
    return shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    shards = vote_shards(args.items, args.seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    items: list[str] = []
    workers: list[str] = []
    labels: list[str] = []
    for body in shards:
        votes = json.loads(body)
        items += votes["items"]
        workers += votes["workers"]
        labels += votes["labels"]
    del shards
    parsed = time.perf_counter()
    model = CategoricalModel.fit(items, workers, labels, [f"label{k}" for k in range(5)])
    fitted = time.perf_counter()
    body = json.dumps(model.to_json())
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| answers | parse (s) | fit (s) | model JSON (s) | total (s) | peak RSS (MiB) | RSS before (MiB) | model JSON (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(items):,} | {parsed - started:.1f} | {fitted - parsed:.1f} | {done - fitted:.1f} "
          f"| {done - started:.1f} | {peak:.0f} | {before:.0f} | {len(body) / 1e6:.1f} |")


if __name__ == "__main__":
    main()
