"""Peak memory and time of the Publish stage at scale, running the stages' own code.

Writes a round's answer shards as LoadAnswers leaves them in S3 (500 items each: four labels,
`--redundancy` answers per item from `--workers` workers, 3% of answers N/A with a reason,
5% gold items, one tagged attribute of 20 values) and each shard's posteriors as FitModel
does, and runs `chalicelib.workflows.aggregation.aggregate_shard` on every shard (the part
and whatever else the shard writes go to an in-memory object store; its result rows are
counted and dropped, Publish does not read them). Then it measures `publish_results` alone:
its wall time, then (a second run) its peak traced memory (tracemalloc, above what was
allocated before it started). The results object goes through a store that holds what
S3Blobs holds (the chunks of one multipart part, up to PART_BYTES, then drops them), so the
figure is Publish's own memory, not the in-memory S3's; S3's transfer time is not counted.

    python -m bench.publish_stage --items 10000 100000
"""
from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

from chalicelib.adapters.storage import PART_BYTES
from chalicelib.domain.keys import answers_key, posteriors_key
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import accounts, jobs
from chalicelib.handlers.platform import Platform
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeBlobs, FakeClock, ingest_all, make_platform

LABELS = ["pos", "neg", "neutral", "mixed"]
REASONS = ["Not English", "empty text", "spam"]
LAMBDA_MB = 512  # publish_results in .chalice/config.json (Lambda's MB are MiB)
LAMBDA_SECONDS = 300


class PartBlobs(FakeBlobs):
    """FakeBlobs whose put_stream keeps no more than S3Blobs does: a part's chunks at most."""

    def __init__(self) -> None:
        super().__init__()
        self.streamed = 0

    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        buffer: list[bytes] = []
        size = 0
        for chunk in chunks:
            data = chunk.encode("utf-8")
            buffer.append(data)
            size += len(data)
            if size >= PART_BYTES:
                self.streamed += len(b"".join(buffer))
                buffer, size = [], 0
        self.streamed += len(b"".join(buffer))
        self.objects[key] = ("", content_type)


class DroppedRows:
    """A results table that counts the rows written and keeps none (Publish reads none)."""

    def __init__(self) -> None:
        self.rows = 0

    def put_results(self, job_id: str, lines: list[dict[str, Any]], id_space: int = 0) -> None:
        self.rows += len(lines)


def make_round(items: int, redundancy: int = 3, workers: int = 2000, seed: int = 1,
               blobs: FakeBlobs | None = None) -> tuple[Platform, dict[str, Any]]:
    """A platform whose job's round 1 is aggregated up to Publish; returns it and Publish's input."""
    p = make_platform(FakeClock(), blobs=blobs if blobs is not None else PartBlobs(),
                      results=DroppedRows())
    client = accounts.create_account(p, CLIENT, "Bench")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1, "redundancy": 1})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
        "answer_schema": {"labels": LABELS}, "items": [{"data": {"source": "s0"}}],
        "report": {"attributes": ["source"]}})
    ingest_all(p)
    rng = random.Random(seed)
    crowd = [f"wrk_{n:016x}" for n in range(workers)]
    header = {"job_id": job.job_id, "round": 1, "task_type": "categorical",
              "answer_schema": {"labels": LABELS}}
    shard_count = 0
    for start in range(0, items, stages.SHARD_ITEMS):
        entries, posteriors = [], {}
        for n in range(start, min(start + stages.SHARD_ITEMS, items)):
            item_id = f"{n:07d}"
            truth = rng.choice(LABELS)
            answers = []
            for worker in rng.sample(crowd, redundancy):
                leased = 1_780_000_000 + rng.randrange(0, 86_400)
                answer = ({"not_applicable": rng.choice(REASONS)} if rng.random() < 0.03 else
                          {"label": truth if rng.random() < 0.75 else rng.choice(LABELS)})
                answers.append({"worker_id": worker, "assignment_id": f"asg_{n:07d}{worker[-4:]}",
                                "answer": answer, "submitted_at": leased + rng.randrange(2, 120),
                                "leased_at": leased, "instruction_version": 1})
            entry: dict[str, Any] = {"item_id": item_id, "external_id": f"ext-{n}",
                                     "answers": answers,
                                     "attributes": {"source": f"s{rng.randrange(20)}"}}
            if rng.random() < 0.05:
                entry["gold"] = {"label": truth}
            entries.append(entry)
            weights = [rng.random() + (3 if label == truth else 0) for label in LABELS] + [0.01]
            posteriors[item_id] = [round(w / sum(weights), 6) for w in weights]
        p.blobs.put_text(answers_key(job.job_id, 1, shard_count), json.dumps(
            {**header, "shard": shard_count, "items": entries}), "application/json")
        p.blobs.put_text(posteriors_key(job.job_id, 1, shard_count), json.dumps(
            {"method": "DawidSkene", "classes": [*LABELS, "\x00not_applicable"],
             "posteriors": posteriors}), "application/json")
        shard_count += 1
    for shard in range(shard_count):
        stages.aggregate_shard(p, {"job_id": job.job_id, "round": 1, "shard": shard,
                                   "key": answers_key(job.job_id, 1, shard),
                                   "posteriors_key": posteriors_key(job.job_id, 1, shard)})
    return p, {"job_id": job.job_id, "round": 1, "shard_count": shard_count}


def measure_publish(p: Platform, event: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """(peak MiB traced while publish_results ran, above its start; seconds; its output).

    The stage runs twice (it is idempotent): timed without tracing (tracemalloc slows
    allocation-heavy code several times over), then traced for the peak."""
    started = time.perf_counter()
    stages.publish_results(p, event)
    took = time.perf_counter() - started
    peak, out = _traced(lambda: stages.publish_results(p, event))
    return peak, took, out


def measure_merge(p: Platform, event: dict[str, Any]) -> float | None:
    """Peak MiB traced while the report's sums are merged and the report made, alone (None
    where Publish has no such step: it kept the lines)."""
    round_stats = getattr(stages, "round_stats", None)
    if round_stats is None:
        return None
    job = p.jobs.get_job(event["job_id"])
    assert job is not None
    return _traced(lambda: round_stats(p, job, 1, event["shard_count"]).report(
        job.job_id, 1, None, job.report_settings))[0]


def _traced(run: Any) -> tuple[float, Any]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    start_bytes = tracemalloc.get_traced_memory()[0]
    out = run()
    peak = tracemalloc.get_traced_memory()[1] - start_bytes
    tracemalloc.stop()
    return peak / 2**20, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2000)
    args = parser.parse_args()
    print("| items | answers | workers | shards | results object (MB) | Publish peak traced (MiB) "
          f"| of {LAMBDA_MB} MiB | merging the sums alone, peak (MiB) | Publish (s) "
          f"| of {LAMBDA_SECONDS} s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for items in args.items:
        p, event = make_round(items, args.redundancy, args.workers)
        peak, took, out = measure_publish(p, event)
        assert out["count"] == items
        merge = measure_merge(p, event)
        streamed = p.blobs.streamed // 2 if isinstance(p.blobs, PartBlobs) else 0
        print(f"| {items:,} | {items * args.redundancy:,} | {args.workers:,} "
              f"| {event['shard_count']:,} | {streamed / 1e6:.1f} | {peak:.1f} "
              f"| {peak / LAMBDA_MB:.0%} | {'—' if merge is None else f'{merge:.1f}'} "
              f"| {took:.1f} | {took / LAMBDA_SECONDS:.1%} |", flush=True)


if __name__ == "__main__":
    main()
