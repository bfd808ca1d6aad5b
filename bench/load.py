"""Load: many concurrent workers over HTTP against the local stack, then the invariants.

64 workers (threads, each its own HTTP connection) lease and submit until a 1,000-item job with
redundancy 3 has every answer; then the results are checked: no slot held twice (each item has
exactly `redundancy` accepted answers, from distinct workers), no answer lost (every accepted
receipt is in the published lineage), the budget held. Prints throughput and p50/p99 latency
per endpoint. The local stack runs moto in this process with its DynamoDB lock
(infra/moto_shims.py), so latencies measure the platform's code plus moto, not AWS.

Run: .venv/bin/python -m bench.load [--items 1000] [--workers 64] [--redundancy 3]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/load.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crowd_client import Client  # noqa: E402
from examples.demo import ApiError, call  # noqa: E402


@dataclass
class LoadResult:
    """What a load run did and found."""

    items: int
    workers: int
    redundancy: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    accepted: list[tuple[str, str, str]] = field(default_factory=list)  # item, worker, assignment
    errors: Counter = field(default_factory=Counter)
    double_leases: int = 0
    over_redundancy: int = 0
    lost_answers: int = 0
    spent_cents: int = 0
    budget_cents: int = 0

    @property
    def judgments(self) -> int:
        return len(self.accepted)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def run_load(base_url: str, client_key: str, items: int = 1000, workers: int = 64,
             redundancy: int = 3, timeout: float = 900.0) -> LoadResult:
    """Post a job, let `workers` threads answer it, wait for the results, check them."""
    client = Client(base_url, client_key)
    quote = client.quote(task_type="categorical", items=items, redundancy=redundancy, gold_rate=0)
    job = client.create_job(quote["quote_id"], [{"data": {"text": f"item {n}"},
                                                  "external_id": f"e{n}"} for n in range(items)],
                            instructions="Pick one.", answer_schema={"labels": ["a", "b", "c"]},
                            pilot={"items": 0}, lease_seconds=600)
    job_id = job["job_id"]
    client.wait(job_id, until=("active",), every=0.2, timeout=120)
    time.sleep(2.5)  # API containers see a new active job within 2 s
    result = LoadResult(items, workers, redundancy, 0.0,
                        latencies={"lease": [], "submit": []})
    lock = threading.Lock()
    tokens = [call(base_url, "POST", "/workers", {"name": f"load-{n}", "skills": ["en"]})[1]["token"]
              for n in range(workers)]
    start = threading.Barrier(workers + 1)

    def work(token: str, n: int) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        start.wait()
        while True:
            began = time.perf_counter()
            try:
                status, task = call(base_url, "GET", f"/tasks/next?job_id={job_id}", headers=auth)
            except ApiError as error:
                with lock:
                    result.errors[f"lease {error.status}"] += 1
                continue
            took = time.perf_counter() - began
            if status == 204:
                with lock:
                    result.latencies["lease"].append(took)
                return
            began = time.perf_counter()
            try:
                call(base_url, "POST", f"/assignments/{task['assignment_id']}/submit",
                     {"label": "abc"[n % 3]}, headers=auth)
            except ApiError as error:
                with lock:
                    result.errors[f"submit {error.status}"] += 1
                continue
            with lock:
                result.latencies["lease"].append(took)
                result.latencies["submit"].append(time.perf_counter() - began)
                result.accepted.append((task["item"]["item_id"], token, task["assignment_id"]))

    threads = [threading.Thread(target=work, args=(t, n)) for n, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(timeout)
    result.seconds = time.perf_counter() - started
    final = client.wait(job_id, every=0.5, timeout=timeout)
    # The invariants, from what the platform published.
    lines = client.results(job_id)
    published = {a["assignment_id"] for line in lines for a in line["answers"]}
    per_item: dict[str, list[str]] = defaultdict(list)
    for item, worker, _ in result.accepted:
        per_item[item].append(worker)
    result.double_leases = sum(len(ws) - len(set(ws)) for ws in per_item.values())
    result.over_redundancy = sum(max(0, len(line["answers"]) - redundancy) for line in lines) + \
        sum(max(0, len(ws) - redundancy) for ws in per_item.values())
    result.lost_answers = sum(1 for _, _, assignment in result.accepted if assignment not in published)
    result.spent_cents, result.budget_cents = final["spent_cents"], final["budget_cents"]
    if final["state"] != "done" or len(lines) != items:
        result.errors[f"job ended {final['state']} with {len(lines)} results"] += 1
    return result


def report(result: LoadResult) -> str:
    """The run as Markdown tables."""
    rows = [f"{result.items} items x {result.redundancy} answers, {result.workers} concurrent "
            f"workers: {result.judgments} judgments in {result.seconds:.1f} s = "
            f"{result.judgments / result.seconds:.1f} judgments/s", "",
            "| endpoint | calls | p50 (ms) | p99 (ms) | max (ms) |", "|---|---:|---:|---:|---:|"]
    for name, values in result.latencies.items():
        if values:
            rows.append(f"| {name} | {len(values)} | {1000 * statistics.median(values):.0f} | "
                        f"{1000 * _percentile(values, 0.99):.0f} | {1000 * max(values):.0f} |")
    rows += ["", "| check | found |", "|---|---:|",
             f"| double leases (a worker twice on an item) | {result.double_leases} |",
             f"| answers over redundancy | {result.over_redundancy} |",
             f"| accepted answers missing from the results | {result.lost_answers} |",
             f"| spent / budget (cents) | {result.spent_cents} / {result.budget_cents} |",
             f"| errors | {dict(result.errors) or 0} |"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--redundancy", type=int, default=3)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    from infra.local_stack import local_stack

    with local_stack(port=0, pump_interval=0.5, finalize_interval=1.0) as stack:
        result = run_load(stack.base_url, stack.client_key, args.items, args.workers,
                          args.redundancy)
    print(report(result))
    ok = not (result.double_leases or result.over_redundancy or result.lost_answers
              or result.errors) and result.spent_cents <= result.budget_cents
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
