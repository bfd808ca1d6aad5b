"""A whole job of --items items (default 1,000,000) at --redundancy (3) through every stage in
order, on the in-memory fakes (tests/fakes.py) with the stages' own code, measured stage by
stage against the Lambda each stage runs in (.chalice/config.json).

Stages, in order, and what runs:

- upload: `uploads.create_upload` (POST /uploads), then the client's JSON Lines file (one line
  per item: {"data": {"text": ..., "n": n}, "external_id": "r<n>"}) put in the fake bucket as
  the presigned PUT leaves it.
- post: `jobs.create_quote` and `jobs.post_job` naming the upload (no gold, no pilot).
- ingest: the ingest consumer (`jobs.ingest_chunk` on each message, ten messages a call): the
  planner, every byte range, the finish.
- answers: for each item, `--redundancy` workers out of `--workers` (distinct per item) each take
  a slot through the item store (`items.try_lease` with `leasing.new_lease`, what a granted
  lease writes) and answer through `tasks.submit_answer` itself (the submit handler: the
  conditional write and the counting message). One call is one submit.
- counting: `rounds.count_answers` on the counting messages in SQS batches of 10. Answers and
  counting alternate every 1,000 items, so the queue never holds the whole job.
- round close: one worker who answered nothing is blocked from the job before the answers
  start, so the round closes through the paged pass (`rounds.left_out_page` through the ingest
  consumer, LEFT_OUT_PAGE items a message); it reopens nothing and starts aggregation.
- LoadAnswers (looping while `more`), FitModel, AggregateShard (every shard), Publish, MarkDone:
  `chalicelib.workflows.aggregation`'s stage functions called in the state machine's order
  with the events it passes.
- download: `jobs.result_download` (GET /jobs/{id}/results/download), then the results object
  read back 1 MiB at a time as a client streams it, every line counted.

What the fakes change: the items store's `iter_items` pages 100 items at a time through
`item_page` (the DynamoDB adapter's query pages; the fake's own snapshots the rest of the job
at once); result rows are counted, not kept (Publish and the download read S3, not the rows);
the object store keeps a streamed object as its chunks (the parts it was made of) and, while
streaming it, buffers what S3Blobs does (one PART_BYTES part). No DynamoDB or S3 latency is in
the times: each row gives the requests of its worst call, which on AWS add some milliseconds
each.

Figures per stage: calls, wall time, worst untraced call (seconds, and its share of the
Lambda's timeout), tracemalloc peak (the worst traced call: every --trace-every-th call of a
repeated stage is traced and left out of the times; a one-call stage runs traced a second
time where it is idempotent), the Lambda memory estimate (that peak plus the resident set of a
fresh interpreter holding the stage code, numpy and boto3, as a Lambda does) and its share of
the configured memory, the process's RSS growth over the stage (mostly what the fake stores
keep), and store calls by method (DynamoDB and SQS requests; S3 requests and bytes).

    python -m bench.scale_job                      # 1,000,000 items, redundancy 3
    python -m bench.scale_job --quick              # 20,000 items
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chalicelib.adapters.storage import PART_BYTES
from chalicelib.domain import leasing
from chalicelib.domain.keys import upload_key
from chalicelib.domain.model import CLIENT, WORKER, ItemState
from chalicelib.handlers import accounts, jobs, quality, rounds, tasks, uploads
from chalicelib.handlers.platform import Platform
from bench.fit_scale import rss_mib
from bench.pool import Counted
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeBlobs, FakeClock, FakeQueue, make_platform

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
MIB = 1024 * 1024
LABELS = ["pos", "neg", "neutral", "mixed"]
SQS_BATCH = 10
ANSWER_BLOCK = 1000  # items answered before their counting messages are consumed
ITEM_PAGE = 100  # items a LoadAnswers query page returns here
DOWNLOAD_CHUNK = MIB
# The stores whose calls are counted, and what they stand for.
STORES = {"accounts": "DynamoDB", "quotes": "DynamoDB", "jobs": "DynamoDB",
          "items": "DynamoDB", "results": "DynamoDB", "stats": "DynamoDB",
          "ledger": "DynamoDB", "blobs": "S3", "ingest_queue": "SQS", "results_queue": "SQS"}
# Which Lambda function each stage's calls run in (a key of .chalice/config.json's
# lambda_functions; "api" is the REST API's, `api_handler`, held to API Gateway's 29 s too);
# None: no Lambda (the client's own work).
FUNCTIONS = {"upload": "api", "post": "api", "ingest": "ingest_items", "answers": "api",
             "counting": "count_answers", "round close": "ingest_items",
             "LoadAnswers": "load_answers", "FitModel": "fit_model",
             "AggregateShard": "aggregate_shard", "Publish": "publish_results",
             "MarkDone": "mark_done", "download": "api"}
API_GATEWAY_SECONDS = 29


def limits(function: str) -> tuple[int, int]:
    """A function's configured (memory MB, timeout s): the prod stage's own settings over the
    app's defaults; the API's timeout is API Gateway's 29 s where that is lower."""
    config = json.loads(CONFIG.read_text())
    name = "api_handler" if function == "api" else function
    own = config["stages"]["prod"].get("lambda_functions", {}).get(name, {})
    memory = int(own.get("lambda_memory_size", config["lambda_memory_size"]))
    timeout = int(own.get("lambda_timeout", config["lambda_timeout"]))
    if function == "api":
        timeout = min(timeout, API_GATEWAY_SECONDS)
    return memory, timeout


def lambda_baseline_mib() -> float:
    """The resident set of a fresh interpreter that imported the app's stage code, numpy and
    an S3 client, as a warm Lambda holds them."""
    code = ("import resource, boto3, numpy, app, chalicelib.workflows.aggregation\n"
            "boto3.session.Session().client('s3', region_name='us-east-1')\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=CONFIG.parent.parent,
                         env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1",
                              "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    return float(out.stdout.split()[-1])


@dataclass
class Stage:
    """What one stage took: its calls' untraced times and requests, traced peaks, store calls."""

    name: str
    calls: int = 0
    wall: float = 0.0
    worst_seconds: float = 0.0
    worst_requests: int = 0
    worst_traced: float = 0.0  # bytes
    traced_calls: int = 0
    rss_growth: float = 0.0  # MiB
    store_calls: Counter[str] = field(default_factory=Counter)
    s3_bytes: int = 0
    note: str = ""


class Meter:
    """Counts store calls for the stage running now, and per call."""

    def __init__(self) -> None:
        self.stage: Stage | None = None
        self.in_call = 0

    def call(self, store: str, method: str, run: Callable[[], Any], args: tuple,
             kwargs: dict[str, Any]) -> Any:
        """Run one store call and record it (an S3 call with its bytes; a streamed put is
        recorded as its parts)."""
        result = run()
        size = 0
        if store == "blobs" and isinstance(result, (str, bytes)):
            size = len(result)
        elif store == "blobs" and method == "put_text":
            size = len(args[1])
        if not (store == "blobs" and method == "put_stream"):
            self.record(store, method, size)
        return result

    def record(self, store: str, method: str, size: int = 0) -> None:
        if self.stage is not None:
            self.stage.store_calls[f"{store}.{method}"] += 1
            self.stage.s3_bytes += size
        self.in_call += 1


class PagedItems:
    """The fake item store with iter_items paged as the DynamoDB adapter's query pages."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._store, attr)

    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item after `after`, ITEM_PAGE items a read."""
        while True:
            page, cursor = self._store.item_page(job_id, after, ITEM_PAGE)
            yield from page
            if cursor is None:
                return
            after = cursor


class CountedRows:
    """A results table that keeps only which items have a row (nothing here reads them)."""

    def __init__(self) -> None:
        self.item_ids: set[str] = set()

    @property
    def rows(self) -> int:
        return len(self.item_ids)

    def put_results(self, job_id: str, lines: list[dict[str, Any]], id_space: int = 0) -> None:
        self.item_ids.update(line["item_id"] for line in lines)


class StreamBlobs(FakeBlobs):
    """FakeBlobs keeping a streamed object as its chunks (the parts already stored), and while
    streaming it holding what S3Blobs holds: one part of up to PART_BYTES, then its upload."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.streams: dict[str, list[str]] = {}
        self.meter = meter

    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        kept: list[str] = []
        buffer: list[bytes] = []
        size = parts = 0
        for chunk in chunks:
            kept.append(chunk)
            data = chunk.encode("utf-8")
            buffer.append(data)
            size += len(data)
            if size >= PART_BYTES:
                b"".join(buffer)  # the part S3Blobs uploads
                self.meter.record("blobs", "upload_part", size)
                buffer, size, parts = [], 0, parts + 1
        b"".join(buffer)
        self.meter.record("blobs", "upload_part" if parts else "put_object", size)
        self.streams[key] = kept
        self.objects[key] = ("", content_type)

    def stream(self, key: str, chunk_bytes: int) -> Iterator[bytes]:
        """The object's bytes, chunk_bytes at a time (a streamed GetObject)."""
        pending = b""
        for chunk in self.streams[key]:
            pending += chunk.encode("utf-8")
            while len(pending) >= chunk_bytes:
                yield pending[:chunk_bytes]
                pending = pending[chunk_bytes:]
        if pending:
            yield pending


class Run:
    """One job taken through every stage, measured."""

    def __init__(self, items: int, redundancy: int, workers: int, trace_every: int,
                 seed: int = 1) -> None:
        self.n_items, self.redundancy, self.n_workers = items, redundancy, workers
        self.trace_every = max(1, trace_every)
        self.seed = seed
        self.meter = Meter()
        self.clock = FakeClock()
        self.blobs = StreamBlobs(self.meter)
        self.rows = CountedRows()
        raw = make_platform(self.clock, blobs=self.blobs, results=self.rows)
        self.raw = raw
        assert isinstance(raw.ingest_queue, FakeQueue) and isinstance(raw.results_queue, FakeQueue)
        self.ingest_queue, self.results_queue = raw.ingest_queue, raw.results_queue
        wrapped: dict[str, Any] = {name: Counted(name, getattr(raw, name), self.meter)
                                   for name in STORES}
        wrapped["items"] = PagedItems(wrapped["items"])
        self.p: Platform = replace(raw, **wrapped)
        self.stages: dict[str, Stage] = {}
        self.facts: dict[str, Any] = {"items": items, "redundancy": redundancy,
                                      "workers": workers}

    # --- measuring --------------------------------------------------------------------

    def stage(self, name: str) -> Stage:
        return self.stages.setdefault(name, Stage(name))

    def call(self, name: str, run: Callable[[], Any], traced: bool | None = None,
             idempotent: bool = False, rss: bool = True) -> Any:
        """One Lambda (or API) call of a stage, timed. Every trace_every-th call is traced
        too: an idempotent call runs a second time traced, any other call runs traced only
        (its time then left out). rss=False leaves the stage's RSS growth to the caller
        (reading it costs more than a small call)."""
        stage = self.stage(name)
        stage.calls += 1
        if traced is None:
            traced = stage.calls % self.trace_every == 0 or (idempotent and stage.calls == 1)
        if traced and not idempotent:
            return self._run(stage, run, True, rss)
        result = self._run(stage, run, False, rss)
        if traced:
            wall, growth, calls = stage.wall, stage.rss_growth, Counter(stage.store_calls)
            bytes_ = stage.s3_bytes
            self._run(stage, run, True, rss)
            stage.wall, stage.rss_growth, stage.store_calls = wall, growth, calls
            stage.s3_bytes = bytes_
        return result

    def _run(self, stage: Stage, run: Callable[[], Any], traced: bool, rss: bool) -> Any:
        self.meter.stage, self.meter.in_call = stage, 0
        before = rss_mib() if rss else 0.0
        began = time.perf_counter()
        if traced:
            tracemalloc.start()
            result = run()
            stage.worst_traced = max(stage.worst_traced, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            stage.traced_calls += 1
        else:
            result = run()
            seconds = time.perf_counter() - began
            if seconds > stage.worst_seconds:
                stage.worst_seconds, stage.worst_requests = seconds, self.meter.in_call
        stage.wall += time.perf_counter() - began
        if rss:
            stage.rss_growth += rss_mib() - before
        self.meter.stage = None
        return result

    def once(self, name: str, run: Callable[[], Any], idempotent: bool = True) -> Any:
        """A one-call stage: timed, then run again traced if it is idempotent (else traced
        only, its time then taken with tracing on)."""
        if idempotent:
            return self.call(name, run, traced=True, idempotent=True)
        stage = self.stage(name)
        stage.calls += 1
        result = self._run(stage, run, True, True)
        stage.worst_seconds, stage.worst_requests = stage.wall, self.meter.in_call
        stage.note = "timed traced"
        return result

    def consume(self, name: str, queue: FakeQueue, handle: Callable[[dict[str, Any]], Any]
                ) -> None:
        """Deliver the queue's messages, ten a call, until none is left (new ones included)."""
        while messages := queue.take():
            for start in range(0, len(messages), SQS_BATCH):
                batch = messages[start:start + SQS_BATCH]
                self.call(name, lambda: [handle(message) for message in batch])

    # --- the stages -------------------------------------------------------------------

    def file(self) -> bytes:
        return b"".join(json.dumps({"data": {"text": f"review {n} of a kettle", "n": n},
                                    "external_id": f"r{n}"}).encode() + b"\n"
                        for n in range(self.n_items))

    def upload_and_post(self) -> None:
        p = self.p
        self.client = accounts.create_account(p, CLIENT, "Bench client")[0]
        body = self.file()
        self.facts["file_mib"] = len(body) / MIB
        target = self.call("upload", lambda: uploads.create_upload(
            p, self.client, {"format": "jsonl", "bytes": len(body)}), traced=False)
        key = upload_key(self.client.account_id, target["upload_id"], "jsonl")
        bucket: Any = p.blobs  # the fake's put_bytes: what the client's PUT leaves
        self.call("upload", lambda: bucket.put_bytes(key, body), traced=False)
        self.stage("upload").note = "the target, then the client's PUT"
        del body
        quote = self.call("post", lambda: jobs.create_quote(p, self.client, {
            "task_type": "categorical", "items": self.n_items, "redundancy": self.redundancy,
            "gold_rate": 0}), traced=False)
        self.job = self.call("post", lambda: jobs.post_job(p, self.client, {
            "quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
            "answer_schema": {"labels": LABELS}, "pilot": {"items": 0},
            "items_from": {"upload_id": target["upload_id"]}}), traced=False)

    def ingest(self) -> None:
        self.consume("ingest", self.ingest_queue, lambda m: jobs.ingest_chunk(self.p, m))
        job = self.p.jobs.get_job(self.job.job_id)
        assert job is not None and job.state == "active", job and job.state
        self.job = job
        self.facts["ranges"] = job.chunk_count

    def answers_and_counting(self) -> None:
        p, job = self.p, self.job
        self.workers = [accounts.create_account(p, WORKER, f"w{n}")[0]
                        for n in range(self.n_workers + 1)]
        # One worker blocked from the job who answers nothing: the round closes by the pass.
        quality.block_in_job(p, job, self.workers.pop().account_id, "client", "bench")
        stride = max(self.n_workers // self.redundancy, 1)
        raw_items: Any = self.raw.items
        item_ids = raw_items._ids[job.job_id]  # the fake's item ids in order
        answers, counting = self.stage("answers"), self.stage("counting")
        for start in range(0, len(item_ids), ANSWER_BLOCK):
            before = rss_mib()
            for n in range(start, min(start + ANSWER_BLOCK, len(item_ids))):
                self.answer_item(job, item_ids[n], n, stride)
            middle = rss_mib()
            messages = self.results_queue.take()
            for at in range(0, len(messages), SQS_BATCH):
                batch = messages[at:at + SQS_BATCH]
                self.call("counting", lambda: rounds.count_answers(p, batch), rss=False)
            answers.rss_growth += middle - before
            counting.rss_growth += rss_mib() - middle
        self.stage("answers").note = "tasks.submit_answer"

    def answer_item(self, job: Any, item_id: str, n: int, stride: int) -> None:
        p, now = self.p, self.clock()
        leases = []
        for k in range(self.redundancy):
            worker = self.workers[(n + k * stride) % self.n_workers]
            lease = leasing.new_lease(job, item_id, now)
            assert self.raw.items.try_lease(job.job_id, item_id, worker.account_id, lease,
                                            None, now).ok
            leases.append((worker, lease))
        self.clock.advance(0.01)
        for k, (worker, lease) in enumerate(leases):
            label = LABELS[n % len(LABELS)] if (n + k) % 5 else LABELS[(n + 1) % len(LABELS)]
            self.call("answers", lambda: tasks.submit_answer(p, worker, lease.assignment_id,
                                                              {"label": label}), rss=False)

    def round_close(self) -> None:
        self.consume("round close", self.ingest_queue, lambda m: jobs.ingest_chunk(self.p, m))
        job = self.p.jobs.get_job(self.job.job_id)
        assert job is not None and job.state == "aggregating", job and job.state
        self.job = job

    def aggregate(self) -> None:
        p, job = self.p, self.job
        event: dict[str, Any] = {"job_id": job.job_id, "round": job.round}
        while True:
            event = self.call("LoadAnswers", lambda: stages.load_answers(p, dict(event)),
                              idempotent=True)
            if not event["more"]:
                break
        fitted = self.once("FitModel", lambda: stages.fit_model(p, dict(event)))
        shards = fitted["shards"] or json.loads(self.blobs.get_text(fitted["manifest_key"]))
        self.facts["shards"] = len(shards)
        for shard in shards:
            self.call("AggregateShard", lambda: stages.aggregate_shard(p, dict(shard)),
                      idempotent=True)
        published = self.once("Publish", lambda: stages.publish_results(p, {
            "job_id": job.job_id, "round": job.round, "shard_count": len(shards)}))
        self.facts["result_rows"] = self.rows.rows
        done = self.once("MarkDone", lambda: stages.mark_done(p, published), idempotent=False)
        assert done["state"] == "done" and published["count"] == self.n_items, (done, published)

    def download(self) -> None:
        _, _, link = self.call("download", lambda: jobs.result_download(
            self.p, self.client, self.job.job_id, {"format": "jsonl"}), traced=False)
        key = link.split("blobs.example.test/", 1)[1].split("?", 1)[0]
        counts: dict[str, int] = {}
        last = b""

        def read() -> None:
            nonlocal last
            counts.update(lines=0, bytes=0, chunks=0)
            for chunk in self.blobs.stream(key, DOWNLOAD_CHUNK):
                counts["lines"] += chunk.count(b"\n")
                counts["bytes"] += len(chunk)
                counts["chunks"] += 1
                last = chunk

        self.call("download", read, traced=True, idempotent=True)
        self.stage("download").note = "the link, then the object streamed"
        final = json.loads(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])
        assert counts["lines"] == self.n_items and final["n_answers"] == self.redundancy
        self.facts.update(download_mib=counts["bytes"] / MIB, download_lines=counts["lines"])

    def run(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        started = time.perf_counter()
        for step in (self.upload_and_post, self.ingest, self.answers_and_counting,
                     self.round_close, self.aggregate, self.download):
            step()
            progress(f"{step.__name__} done at {time.perf_counter() - started:.0f} s, "
                     f"RSS {rss_mib():.0f} MiB")
        self.facts["wall"] = time.perf_counter() - started
        self.facts["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        job = self.raw.jobs.get_job(self.job.job_id)
        assert job is not None
        self.facts.update(state=job.state, answered=job.answered, items_done=job.items_done)
        return self.facts


def requests(stage: Stage) -> str:
    """The stage's store calls by kind: DynamoDB, SQS, S3 (and S3 MB)."""
    kinds: Counter[str] = Counter()
    for method, calls in stage.store_calls.items():
        kinds[STORES[method.split(".")[0]]] += calls
    return (f"{kinds['DynamoDB']:,} / {kinds['SQS']:,} / {kinds['S3']:,} "
            f"({stage.s3_bytes / 1e6:,.0f} MB)")


def table(run: Run, baseline: float) -> str:
    """The stages' table and the store calls by method."""
    f = run.facts
    lines = [f"{f['items']:,} items, redundancy {f['redundancy']}, {f['workers']:,} workers; "
             f"file {f['file_mib']:.0f} MiB in {f['ranges']:,} ranges; {f['shards']:,} shards; "
             f"{f['answered']:,} answers counted, {f['items_done']:,} items done, job "
             f"{f['state']}; {f['result_rows']:,} result rows; download "
             f"{f['download_mib']:.0f} MiB, {f['download_lines']:,} lines. {f['wall']:.0f} s in "
             f"all, peak RSS {f['peak_rss_mib']:,.0f} MiB. Lambda baseline (interpreter, app, "
             f"numpy, boto3): {baseline:.0f} MiB.",
             "",
             "| stage | Lambda (MB / s) | calls | wall (s) | worst call (s) | of timeout "
             "| requests in worst call | tracemalloc peak (MiB) | Lambda estimate (MiB) "
             "| of memory | RSS growth (MiB) | DynamoDB / SQS / S3 requests (S3 MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in FUNCTIONS:
        stage = run.stages.get(name)
        if stage is None:
            continue
        function = FUNCTIONS[name]
        memory, timeout = limits(function)
        peak = stage.worst_traced / MIB
        estimate = baseline + peak
        label = f"{name} ({stage.note})" if stage.note else name
        lines.append(
            f"| {label} | {function} ({memory:,} / {timeout}) | {stage.calls:,} "
            f"| {stage.wall:,.1f} | {stage.worst_seconds:.3f} "
            f"| {stage.worst_seconds / timeout:.1%} | {stage.worst_requests:,} | {peak:,.1f} "
            f"| {estimate:,.0f} | {estimate / memory:.0%} | {stage.rss_growth:,.0f} "
            f"| {requests(stage)} |")
    lines += ["", "| stage | store calls by method |", "|---|---|"]
    for name, stage in run.stages.items():
        calls = ", ".join(f"{method} {n:,}" for method, n in stage.store_calls.most_common())
        lines.append(f"| {name} | {calls} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2000)
    parser.add_argument("--trace-every", type=int, default=50,
                        help="trace every n-th call of a repeated stage (left out of times)")
    parser.add_argument("--quick", action="store_true", help="20,000 items")
    args = parser.parse_args()
    items = 20_000 if args.quick else args.items
    baseline = lambda_baseline_mib()
    run = Run(items, args.redundancy, args.workers, args.trace_every)
    run.run(lambda line: print(line, file=sys.stderr, flush=True))
    print(table(run, baseline))


if __name__ == "__main__":
    main()
