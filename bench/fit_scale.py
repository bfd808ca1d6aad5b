"""Wall time and peak memory of the FitModel stage up to 10 million answers, on its own code.

For each size, writes a round's vote shards as LoadAnswers leaves them (500 items a shard,
columns.shard_columns: integer columns and per-shard tables) into an in-memory object store,
then runs `chalicelib.workflows.aggregation.fit_model` on them: read and merge the columns,
fit the default categorical model, write each shard's posteriors and workers.json. The store
keeps only the size of what the stage writes (S3 takes it away in a Lambda) and makes every
request the stage sends wait `--s3-ms` (S3's latency for small objects is tens of ms; the
stage keeps several requests in flight). Items get `--redundancy` answers from distinct workers among `--workers`; labels
are uniform at random over 5 classes (EM's slow case: it runs to its iteration cap) and a
`--gold` share of the items has a gold label, clamped in the fit.

Memory: "stage RSS" is the process's peak resident set during the fit minus its resident set
just before (which holds the interpreter, numpy and the vote shards); "Lambda estimate" adds
the resident set of a fresh interpreter that imported the stage's code and made an S3
client, as a Lambda holds them, and is compared with FitModel's configured memory. tracemalloc's peak comes from a
second, untimed run of the same fit (tracing slows it). Wall time is compared with the
function's configured timeout; CPU time (all the process's threads) is what the fit costs
when it has a core to itself, as a Lambda of 1,769 MB or more (a whole vCPU) gives it. Each size runs in a fresh interpreter (one at a time).

    python -m bench.fit_scale                          # 100k, 1M, 3M, 10M answers
    python -m bench.fit_scale --items 1000000          # one size: 10M answers
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from chalicelib.domain.aggregation.columns import shard_columns
from chalicelib.domain.keys import votes_key
from chalicelib.workflows import aggregation as stages

LABELS = [f"label{k}" for k in range(5)]
SIZES = (10_000, 100_000, 300_000, 1_000_000)
CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
MIB = 1024 * 1024


class MemoryBlobs:
    """The BlobStore calls fit_model makes: votes kept in a dict, what the stage writes sized."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.objects: dict[str, str] = {}
        self.written: dict[str, int] = {}
        self.frozen = False  # set once the round's votes are written: the stage runs
        self.latency_s = latency_s

    def put_text(self, key: str, body: str, content_type: str) -> None:
        if self.frozen:
            time.sleep(self.latency_s)
            self.written[key] = len(body.encode("utf-8"))
        else:
            self.objects[key] = body

    def get_text(self, key: str) -> str:
        time.sleep(self.latency_s)
        return self.objects[key]


def rss_mib() -> float:
    """The process's resident set now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / MIB


def peak_rss_mib() -> float:
    """The process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_limits() -> tuple[int, int]:
    """FitModel's configured (memory MB, timeout s), from the prod stage of .chalice/config.json."""
    function = json.loads(CONFIG.read_text())["stages"]["prod"]["lambda_functions"]["fit_model"]
    return int(function["lambda_memory_size"]), int(function["lambda_timeout"])


def write_votes(blobs: MemoryBlobs, job_id: str, n_items: int, redundancy: int, n_workers: int,
                gold_share: float, seed: int) -> tuple[int, int]:
    """The votes/NNNNN.json objects of a round; returns (shards, answers)."""
    rng = np.random.default_rng(seed)
    stride = max(n_workers // redundancy, 1)
    shard = answers = 0
    for start in range(0, n_items, stages.SHARD_ITEMS):
        ids = [f"{i:07d}" for i in range(start, min(start + stages.SHARD_ITEMS, n_items))]
        first = rng.integers(0, n_workers, len(ids))
        # Distinct workers per item: first, first + stride, first + 2 * stride, ...
        workers = ((first[:, None] + stride * np.arange(redundancy)) % n_workers).ravel()
        labels = rng.integers(0, len(LABELS), len(workers))
        gold = {item: LABELS[k] for item, k, g in zip(ids, rng.integers(0, len(LABELS), len(ids)),
                                                      rng.random(len(ids))) if g < gold_share}
        body = shard_columns([item for item in ids for _ in range(redundancy)],
                             [f"wrk_{w:016x}" for w in workers.tolist()],
                             [LABELS[k] for k in labels.tolist()], gold)
        blobs.put_text(votes_key(job_id, 1, shard), json.dumps(body), "application/json")
        shard += 1
        answers += len(workers)
    return shard, answers


def run_fit(blobs: MemoryBlobs, job_id: str, shards: int) -> dict[str, Any]:
    job = SimpleNamespace(answer_schema={"labels": LABELS})
    platform = SimpleNamespace(blobs=blobs, jobs=SimpleNamespace(get_job=lambda _: job))
    return stages.fit_model(platform, {"job_id": job_id, "round": 1, "kind": "categorical",
                                       "shard_count": shards})


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One size, in this interpreter: the row of the table as a dict."""
    import boto3  # what a Lambda holds besides the stage: boto3 and an S3 client

    boto3.session.Session().client("s3", region_name="us-east-1")
    baseline = rss_mib()  # interpreter, numpy, boto3 and the stage's code
    job_id = "job_bench"
    blobs = MemoryBlobs(args.s3_ms / 1000)
    started = time.perf_counter()
    shards, answers = write_votes(blobs, job_id, args.items, args.redundancy, args.workers,
                                  args.gold, args.seed)
    generated = time.perf_counter() - started
    votes_mib = sum(len(body) for body in blobs.objects.values()) / MIB
    blobs.frozen = True
    before, high_before = rss_mib(), peak_rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    run_fit(blobs, job_id, shards)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    high = peak_rss_mib()
    stage = max(high - before, 0.0) if high > high_before else float("nan")
    traced = float("nan")
    if not args.no_tracemalloc:
        tracemalloc.start()
        run_fit(blobs, job_id, shards)
        traced = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    memory, timeout = fit_limits()
    estimate = baseline + stage
    return {"items": args.items, "answers": answers, "shards": shards, "generated_s": generated,
            "votes_mib": votes_mib, "fit_s": took, "cpu_s": cpu, "baseline_mib": baseline, "stage_mib": stage,
            "traced_mib": traced, "estimate_mib": estimate,
            "memory_share": estimate / memory, "time_share": took / timeout,
            "memory_mb": memory, "timeout_s": timeout, "s3_ms": args.s3_ms,
            "written_mb": sum(blobs.written.values()) / 1e6}


def table(rows: list[dict[str, Any]]) -> str:
    memory, timeout = rows[0]["memory_mb"], rows[0]["timeout_s"]
    lines = [f"FitModel configured: {memory:,} MB, {timeout} s; S3 latency "
             f"{rows[0]['s3_ms']:g} ms per request",
             "",
             "| answers | shards | vote objects (MiB) | FitModel wall (s) | CPU (s) | stage RSS (MiB) "
             "| tracemalloc peak (MiB) | Lambda estimate (MiB) | of memory | of timeout "
             "| posteriors written (MB) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['answers']:,} | {row['shards']:,} | {row['votes_mib']:.0f} "
            f"| {row['fit_s']:.1f} | {row['cpu_s']:.1f} | {row['stage_mib']:.0f} | {row['traced_mib']:.0f} "
            f"| {row['estimate_mib']:.0f} | {100 * row['memory_share']:.0f}% "
            f"| {100 * row['time_share']:.0f}% | {row['written_mb']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, action="append",
                        help="items in the round (repeatable); default: " +
                             ", ".join(f"{n:,}" for n in SIZES))
    parser.add_argument("--redundancy", type=int, default=10)
    parser.add_argument("--workers", type=int, default=20_000)
    parser.add_argument("--gold", type=float, default=0.01, help="share of items with gold")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--s3-ms", type=float, default=20.0, help="latency of each S3 request")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--json", action="store_true", help="one size; print its row as JSON")
    args = parser.parse_args()
    if args.json:
        args.items = args.items[0]
        print(json.dumps(measure(args)))
        return
    rows = []
    for items in args.items or SIZES:
        command = [sys.executable, "-m", "bench.fit_scale", "--json", "--items", str(items),
                   "--redundancy", str(args.redundancy), "--workers", str(args.workers),
                   "--gold", str(args.gold), "--seed", str(args.seed),
                   "--s3-ms", str(args.s3_ms)]
        if args.no_tracemalloc:
            command.append("--no-tracemalloc")
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.splitlines()[-1]))
        print(f"{items:,} items done: fit {rows[-1]['fit_s']:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
