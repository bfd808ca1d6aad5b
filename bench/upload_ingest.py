"""An uploaded item file ingested by the real handlers (chalicelib.handlers.uploads) on the
in-memory fakes: POST /jobs naming the upload, the planner, every byte range, the finish.

Protocol: a JSON Lines file of --lines lines, each {"data": {"text": "review <n> ...",
"stars": n % 5}, "external_id": "r<n>"} (about 90 bytes), every --bad-every-th line broken
(not JSON), is put in the fakes' bucket; a job is posted naming it with skip_bad_lines and a
pilot of 100 items, and the ingest messages are delivered until none is left, as the ingest
consumer would. The items store keeps the ranges' summaries and counts but not the items
(FakeItems.put_range is called with none of them), so the process measures the stage's own
work (S3 range reads, line splitting, validation, building the items, the summaries) and not
the fakes' storage; the items written are counted instead. DynamoDB's and S3's latency is not
in the times: a range's cost on AWS adds one conditional PutItem per item (at ~5 ms each,
160 items of 200 bytes ~0.8 s) and one or two GetObject calls.

Figures: per stage (the planner's calls, one range, the finish): calls, worst wall time,
worst tracemalloc peak (every range is traced), and the ratio of the worst to the ingest
consumer's configured 60 s and memory (infra/stage_settings.py; a consumer call takes up to 10 messages, so ten
ranges must fit: the ratio is given for ten). The process's peak RSS is printed too (it
holds the whole file, as the bucket does).

Run: .venv/bin/python -m bench.upload_ingest [--lines 1000000] [--bad-every 10000]
"""
from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from typing import Any

from chalicelib.domain import uploads as u
from chalicelib.domain.keys import upload_key
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import accounts, jobs, uploads
from infra.stage_settings import MEMORY_MB as MEMORY_SIZES
from tests.fakes import FakeClock, FakeQueue, make_platform

TIMEOUT_SECONDS, BATCH = 60, 10
MEMORY_MB = MEMORY_SIZES["ingest_items"]


def _file(lines: int, bad_every: int) -> tuple[bytes, int]:
    """The file's bytes and how many of its lines are bad."""
    parts, bad = [], 0
    for n in range(1, lines + 1):
        if bad_every and n % bad_every == 0:
            parts.append(b"{not json")
            bad += 1
        else:
            parts.append(json.dumps({"data": {"text": f"review {n} of a kettle", "stars": n % 5},
                                     "external_id": f"r{n}"}).encode())
    return b"\n".join(parts) + b"\n", bad


def run(lines: int, bad_every: int) -> dict[str, Any]:
    """Post and ingest the file; per stage its calls, worst wall time and worst peak."""
    p = make_platform(FakeClock())
    body, bad = _file(lines, bad_every)
    client = accounts.create_account(p, CLIENT, "Bench")[0]
    target = uploads.create_upload(p, client, {"format": "jsonl", "bytes": len(body)})
    p.blobs.put_bytes(upload_key(client.account_id, target["upload_id"], "jsonl"), body)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": lines - bad,
                                          "redundancy": 3})
    written = [0]
    put_range = p.items.put_range

    def counted(job_id: str, redundancy: int, items: Any, index: int, summary: Any) -> bool:
        written[0] += len(items)
        return put_range(job_id, redundancy, [], index, summary)

    p.items.put_range = counted  # type: ignore[method-assign]
    stages: dict[str, list[tuple[float, int]]] = {"post": [], "plan": [], "range": [],
                                                   "range + finish": []}
    started = time.perf_counter()
    job = _measure(stages["post"], lambda: jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Is the review positive?",
        "answer_schema": {"labels": ["pos", "neg"]}, "pilot": {"items": 100},
        "skip_bad_lines": True, "items_from": {"upload_id": target["upload_id"]}}))
    assert isinstance(p.ingest_queue, FakeQueue)
    while messages := p.ingest_queue.take():
        for message in messages:
            stage = "plan" if "plan" in message else "range"
            if stage == "range" and p.jobs.get_job(job.job_id).chunks_written == \
                    job.chunk_count - 1:
                stage = "range + finish"
            _measure(stages[stage], lambda: jobs.ingest_chunk(p, message))
    wall = time.perf_counter() - started
    final = p.jobs.get_job(job.job_id)
    report = uploads.ingest_report(p, client, job.job_id)
    return {"lines": lines, "bytes": len(body), "ranges": job.chunk_count, "state": final.state,
            "items": report["items"], "written": written[0], "bad": report["bad_lines"],
            "pilot": final.pilot_items, "wall": wall, "stages": stages,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure(into: list[tuple[float, int]], call: Any) -> Any:
    tracemalloc.start()
    began = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    into.append((seconds, peak))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--bad-every", type=int, default=10_000)
    args = parser.parse_args()
    result = run(args.lines, args.bad_every)
    print(f"{result['lines']:,} lines, {result['bytes'] / 2**20:.1f} MiB, "
          f"{result['ranges']:,} ranges of {u.RANGE_BYTES // 1024} KiB: job {result['state']}, "
          f"{result['items']:,} items ({result['written']:,} written), {result['bad']} bad "
          f"lines, pilot {result['pilot']}; {result['wall']:.1f} s in all; "
          f"peak RSS {result['rss_mb']:.0f} MiB")
    print()
    print("| stage | calls | worst wall (s) | worst tracemalloc peak (MiB) "
          f"| x{BATCH} / {TIMEOUT_SECONDS} s | x{BATCH} / {MEMORY_MB} MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in result["stages"].items():
        if not runs:
            continue
        wall = max(seconds for seconds, _ in runs)
        peak = max(peak for _, peak in runs) / 2**20
        print(f"| {name} | {len(runs):,} | {wall:.3f} | {peak:.2f} "
              f"| {BATCH * wall / TIMEOUT_SECONDS:.1%} | {BATCH * peak / MEMORY_MB:.1%} |")


if __name__ == "__main__":
    main()
