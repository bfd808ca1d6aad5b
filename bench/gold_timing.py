"""Gold timing: can a worker tell gold tasks apart by how long the API takes?

Starts the local stack, posts a label job where a share of the items is gold and gold is served
on that share of tasks, and lets a few workers answer it one task at a time over HTTP, timing
every lease and submit. The bench knows which items are gold (it made them); the workers do
not. It prints, for leases and submits, the median latency of gold and regular tasks, how often
a gold task was slower than the same worker's neighbouring regular tasks, and the area under the
ROC curve of "latency says gold" (0.5: no better than a coin; 1.0: always tells).

Run: .venv/bin/python -m bench.gold_timing [--items 400] [--gold-share 0.25] [--workers 4]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/gold_timing.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crowd_client import Client  # noqa: E402
from examples.demo import call  # noqa: E402


def auc(positives: list[float], negatives: list[float]) -> float:
    """P(a random positive scores above a random negative), ties counted half (Mann-Whitney)."""
    if not positives or not negatives:
        return float("nan")
    above = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return above / (len(positives) * len(negatives))


def slower_than_neighbours(series: list[tuple[bool, float]]) -> float:
    """Share of gold tasks slower than the mean of the same worker's nearest regular tasks
    before and after them."""
    wins = total = 0
    for index, (gold, took) in enumerate(series):
        if not gold:
            continue
        before = next((t for g, t in reversed(series[:index]) if not g), None)
        after = next((t for g, t in series[index + 1:] if not g), None)
        pair = [t for t in (before, after) if t is not None]
        if pair:
            total += 1
            wins += took > sum(pair) / len(pair)
    return wins / total if total else float("nan")


def run(base_url: str, client_key: str, items: int, gold_share: float, workers: int
        ) -> dict[str, dict[str, list]]:
    """Answer the job; return per kind ("lease", "submit") each worker's (gold, seconds) series."""
    client = Client(base_url, client_key)
    gold_items = {n for n in range(items) if n % round(1 / gold_share) == 0}
    quote = client.quote(task_type="categorical", items=items, redundancy=3, gold_rate=gold_share)
    job = client.create_job(
        quote["quote_id"],
        [{"data": {"text": f"item {n}"}, **({"gold": {"label": "a"}} if n in gold_items else {})}
         for n in range(items)],
        instructions="Pick one.", answer_schema={"labels": ["a", "b", "c"]},
        pilot={"items": 0}, quality={"gold_rate": gold_share, "block_after": 0})
    job_id = job["job_id"]
    client.wait(job_id, until=("active",), every=0.2, timeout=120)
    time.sleep(2.5)  # API containers see a new active job within 2 s
    gold_texts = {f"item {n}" for n in gold_items}
    series: dict[str, dict[str, list]] = {"lease": {}, "submit": {}}
    for w in range(workers):
        token = call(base_url, "POST", "/workers", {"name": f"timing-{w}", "skills": ["en"]})[1]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        leases, submits = series["lease"].setdefault(w, []), series["submit"].setdefault(w, [])
        while True:
            began = time.perf_counter()
            status, task = call(base_url, "GET", f"/tasks/next?job_id={job_id}", headers=auth)
            took = time.perf_counter() - began
            if status == 204:
                break
            gold = task["item"]["data"]["text"] in gold_texts
            began = time.perf_counter()
            call(base_url, "POST", f"/assignments/{task['assignment_id']}/submit",
                 {"label": "b"}, headers=auth)
            submits.append((gold, time.perf_counter() - began))
            leases.append((gold, took))
    return series


def report(series: dict[str, dict[str, list]]) -> str:
    """The figures as a Markdown table."""
    rows = ["| call | gold tasks | regular tasks | median gold (ms) | median regular (ms) "
            "| gold slower than neighbours | AUC |", "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, per_worker in series.items():
        gold = [t for s in per_worker.values() for g, t in s if g]
        regular = [t for s in per_worker.values() for g, t in s if not g]
        shares = [slower_than_neighbours(s) for s in per_worker.values()]
        shares = [x for x in shares if x == x]
        rows.append(f"| {kind} | {len(gold)} | {len(regular)} | "
                    f"{1000 * statistics.median(gold):.1f} | {1000 * statistics.median(regular):.1f} | "
                    f"{statistics.mean(shares):.0%} | {auc(gold, regular):.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--gold-share", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    from infra.local_stack import local_stack

    with local_stack(port=0, pump_interval=0.5, finalize_interval=1.0) as stack:
        series = run(stack.base_url, stack.client_key, args.items, args.gold_share, args.workers)
    print(report(series))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
