"""Time and peak memory of the FitModel stage at scale, running the stage's own code.

Writes a round's vote columns as LoadAnswers leaves them in S3 (one JSON object of
items/workers/labels per 500-item shard) into an in-memory object store, then times
`chalicelib.workflows.aggregation.fit_model` on them: parsing, fitting the default
categorical model, writing each shard's posteriors and workers.json. S3 itself is not
involved (its transfer time is not counted). Labels are uniform at random over 5 classes
(the slow case for EM, which then runs long); 10 answers per item from 20,000 workers.

    python -m bench.fit_stage --items 100000      # 1 M answers
    python -m bench.fit_stage --items 300000      # 3 M answers
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from types import SimpleNamespace

import numpy as np

from chalicelib.domain.keys import votes_key
from chalicelib.workflows import aggregation as stages

PER_ITEM = 10
LABELS = [f"label{k}" for k in range(5)]


class MemoryBlobs:
    """The two BlobStore calls fit_model makes, in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, str] = {}

    def put_text(self, key: str, body: str, content_type: str) -> None:
        self.objects[key] = body

    def get_text(self, key: str) -> str:
        return self.objects[key]


def write_votes(blobs: MemoryBlobs, job_id: str, n_items: int, seed: int) -> int:
    """The votes/NNNNN.json objects of a round of n_items items; returns the shard count."""
    rng = np.random.default_rng(seed)
    shard = 0
    for start in range(0, n_items, stages.SHARD_ITEMS):
        items = [f"{i:06d}" for i in range(start, min(start + stages.SHARD_ITEMS, n_items))
                 for _ in range(PER_ITEM)]
        workers = [f"wrk_{w:016x}" for w in rng.integers(0, 20_000, len(items))]
        labels = [LABELS[k] for k in rng.integers(0, len(LABELS), len(items))]
        blobs.put_text(votes_key(job_id, 1, shard),
                       json.dumps({"items": items, "workers": workers, "labels": labels}), "")
        shard += 1
    return shard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    job_id = "job_bench"
    blobs = MemoryBlobs()
    shards = write_votes(blobs, job_id, args.items, args.seed)
    job = SimpleNamespace(answer_schema={"labels": LABELS})
    platform = SimpleNamespace(blobs=blobs, jobs=SimpleNamespace(get_job=lambda _: job))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    stages.fit_model(platform, {"job_id": job_id, "round": 1, "kind": "categorical",
                                "shard_count": shards})
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    written = sum(len(body) for key, body in blobs.objects.items() if "/posteriors/" in key)
    print("| answers | shards | FitModel (s) | peak RSS (MiB) | RSS before (MiB) | posteriors written (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.items * PER_ITEM:,} | {shards:,} | {took:.1f} | {peak:.0f} | {before:.0f} "
          f"| {written / 1e6:.1f} |")


if __name__ == "__main__":
    main()
