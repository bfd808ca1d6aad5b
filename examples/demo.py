"""End-to-end demo over HTTP: a client posts a labeling job, simulated workers answer it.

`make demo` uses a running `make run` stack (found through .local-stack.json) or starts
its own in this process. The workers have different accuracies; the demo prints a few
aggregated results with their confidence and the accuracy against the known answers.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).with_name("sentiment_reviews.jsonl")
LABELS = ["positive", "negative", "neutral"]
CONFIDENCE_BINS = [(0.0, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 0.97), (0.97, 1.01)]


class ApiError(Exception):
    """A non-2xx answer from the API."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def call(base_url: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body) and raises ApiError on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        raise ApiError(error.code, json.loads(raw) if raw else None) from None


@dataclass
class SimulatedWorker:
    """A worker who answers correctly with probability accuracy."""

    name: str
    accuracy: float
    token: str = ""
    answered: int = 0
    correct: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def answer(self, truth: str) -> str:
        """The label this worker gives for an item whose true label is truth."""
        if self.rng.random() < self.accuracy:
            return truth
        return self.rng.choice([label for label in LABELS if label != truth])


def majority_vote_hit(result: dict[str, Any], known: str) -> float:
    """Chance that a majority vote over the result's answers is right, ties broken at random."""
    votes = Counter(a["answer"].get("label") for a in result["answers"])
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = [label for label, n in votes.items() if n == top]
    return winners.count(known) / len(winners)


def load_sample(limit: int) -> list[dict[str, str]]:
    """The first limit reviews of the shipped sample."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    return rows[:limit]


def work(base_url: str, worker: SimulatedWorker, job_id: str, truth: dict[str, str]) -> None:
    """Lease and answer until the job has nothing left for this worker."""
    auth = {"Authorization": f"Bearer {worker.token}"}
    while True:
        status, task = call(base_url, "GET", f"/tasks/next?job_id={job_id}", headers=auth)
        if status == 204:
            return
        expected = truth[task["item"]["data"]["text"]]
        label = worker.answer(expected)
        call(base_url, "POST", f"/assignments/{task['assignment_id']}/submit",
             {"label": label}, headers=auth)
        worker.answered += 1
        worker.correct += label == expected


def _answer_with(base_url: str, crowd: list, job_id: str, truth: dict[str, str]) -> None:
    """Every simulated worker answers what it is offered, in parallel, until none is left."""
    threads = [threading.Thread(target=work, args=(base_url, w, job_id, truth)) for w in crowd]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _wait_for(base_url: str, client: dict, job_id: str, states: tuple[str, ...],
              timeout: float = 60.0) -> dict[str, Any]:
    """Poll the job until it reaches one of states (or the timeout passes)."""
    since = time.monotonic()
    while True:
        # Production items open through the ingest queue: the first polls may find none yet.
        _, job = call(base_url, "GET", f"/jobs/{job_id}", headers=client)
        if job["state"] in states or time.monotonic() - since > timeout:
            return job
        time.sleep(0.5)


def run_demo(base_url: str, client_key: str, items: int = 200, redundancy: int = 3,
             workers: int = 12, seed: int = 1, out=sys.stdout,
             report_out: str | None = None) -> dict[str, Any]:
    """Run the whole flow against base_url; return a summary (accuracy, timings, counts)."""
    started = time.monotonic()
    client = {"X-Api-Key": client_key}
    rows = load_sample(items)
    truth = {row["text"]: row["label"] for row in rows}
    by_external = {row["external_id"]: row["label"] for row in rows}
    _, quote = call(base_url, "POST", "/quotes", {"task_type": "categorical",
                                                  "items": len(rows), "redundancy": redundancy,
                                                  "reward_cents": 4, "gold_rate": 0}, client)
    print(f"quote {quote['quote_id']}: {len(rows)} items x {redundancy} answers, "
          f"total ${quote['total_cents'] / 100:.2f}", file=out)
    _, job = call(base_url, "POST", "/jobs", {
        "quote_id": quote["quote_id"], "title": "Review sentiment",
        "instructions": "Is the review positive, negative or neutral about the product?",
        "answer_schema": {"labels": LABELS}, "lease_seconds": 120,
        "pilot": {"items": max(1, len(rows) // 10)},
        "items": [{"external_id": row["external_id"], "data": {"text": row["text"]}}
                  for row in rows]}, client)
    job_id = job["job_id"]
    while job["state"] == "ingesting":
        time.sleep(0.2)
        _, job = call(base_url, "GET", f"/jobs/{job_id}", headers=client)
    print(f"job {job_id} is {job['state']}", file=out)
    posted_at = time.monotonic()
    rng = random.Random(seed)
    crowd = [SimulatedWorker(f"worker-{n:02d}", 0.55 + 0.4 * n / max(workers - 1, 1),
                             rng=random.Random(rng.random())) for n in range(workers)]
    for worker in crowd:
        _, registered = call(base_url, "POST", "/workers", {"name": worker.name, "skills": ["en"]})
        worker.token = registered["token"]
    print(f"pilot: {job['pilot_items']} items", file=out)
    _answer_with(base_url, crowd, job_id, truth)
    job = _wait_for(base_url, client, job_id, ("paused", "done", "failed"))
    if job["state"] != "paused":
        raise RuntimeError(f"the pilot ended in state {job['state']}: {job.get('error')}")
    _, pilot = call(base_url, "GET", f"/jobs/{job_id}/report", headers=client)
    print(f"calibration report of the pilot: {pilot['items']} items, Krippendorff's alpha "
          f"{pilot['agreement']['krippendorff_alpha']}, mean confidence "
          f"{pilot['mean_confidence']}", file=out)
    _, job = call(base_url, "POST", f"/jobs/{job_id}/promote",
                  {"reason": "pilot agreement looks fine"}, client)
    print(f"promoted to {job['phase']}", file=out)
    while job["state"] == "active":
        # The held items open through the ingest queue within moments; until every item has
        # its answers, a worker told "nothing now" asks again.
        _answer_with(base_url, crowd, job_id, truth)
        _, job = call(base_url, "GET", f"/jobs/{job_id}", headers=client)
        if job["state"] == "active":
            time.sleep(1.0)
    answered_at = time.monotonic()
    job = _wait_for(base_url, client, job_id, ("done", "failed"))
    if job["state"] != "done":
        raise RuntimeError(f"job ended in state {job['state']}: {job.get('error')}")
    results, cursor = [], None
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        _, page = call(base_url, "GET", f"/jobs/{job_id}/results{query}", headers=client)
        results.extend(page["results"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    correct = sum(1 for r in results if r["answer"] and
                  r["answer"]["label"] == by_external[r["external_id"]])
    accuracy = correct / len(results)
    worker_accuracy = sum(w.correct for w in crowd) / max(sum(w.answered for w in crowd), 1)
    majority = sum(majority_vote_hit(r, by_external[r["external_id"]]) for r in results) / len(results)
    print("\nsome results:", file=out)
    print(f"  {'item':<12} {'answer':<9} {'confidence':>10} {'answers':>7}  known", file=out)
    for r in results[:6]:
        label = r["answer"]["label"] if r["answer"] else "n/a"
        print(f"  {r['external_id']:<12} {label:<9} {r['confidence']:>10.2f} {r['n_answers']:>7}"
              f"  {by_external[r['external_id']]}", file=out)
    print(f"\nanswers: {job['counts']['answered']}  spent ${job['spent_cents'] / 100:.2f} of "
          f"${job['budget_cents'] / 100:.2f}", file=out)
    methods = Counter(r["method"] for r in results)
    print("aggregated by: " + ", ".join(f"{name} ({n} items)" for name, n in methods.items()),
          file=out)
    print("calibration (is the confidence the share that is right?):", file=out)
    for low, high in CONFIDENCE_BINS:
        chosen = [r for r in results if low <= r["confidence"] < high]
        if chosen:
            right = sum(1 for r in chosen if r["answer"] and
                        r["answer"]["label"] == by_external[r["external_id"]])
            mean = sum(r["confidence"] for r in chosen) / len(chosen)
            print(f"  confidence {low:.2f}-{min(high, 1.0):.2f}: {len(chosen):>3} items, "
                  f"mean confidence {mean:.2f}, right {right / len(chosen):.2f}", file=out)
    _, report = call(base_url, "GET", f"/jobs/{job_id}/report", headers=client)
    agreement = report["agreement"]
    print(f"report: Krippendorff's alpha {agreement['krippendorff_alpha']:.3f}, Fleiss' kappa "
          f"{agreement['fleiss_kappa']:.3f}, median {report['median_seconds_per_task']:.2f} s "
          f"per task, mean confidence {report['mean_confidence']:.2f}", file=out)
    if report_out:
        Path(report_out).write_text(json.dumps(report, indent=1))
    print(f"accuracy of aggregated results: {accuracy:.1%} "
          f"(single answers: {worker_accuracy:.1%}; majority vote on the same answers, ties "
          f"split evenly: {majority:.1%}; {len(crowd)} workers)", file=out)
    elapsed = time.monotonic() - started
    print(f"finished in {elapsed:.1f} s (posting {posted_at - started:.1f} s, answering "
          f"{answered_at - posted_at:.1f} s, aggregation {elapsed - (answered_at - started):.1f} s)",
          file=out)
    return {"job_id": job_id, "accuracy": accuracy, "worker_accuracy": worker_accuracy,
            "majority_vote_accuracy": majority,
            "results": len(results), "answered": job["counts"]["answered"],
            "spent_cents": job["spent_cents"], "budget_cents": job["budget_cents"],
            "seconds": elapsed, "workers": {w.name: w.answered for w in crowd}}


def _running_stack() -> dict[str, Any] | None:
    state = ROOT / ".local-stack.json"
    if not state.exists():
        return None
    info = json.loads(state.read_text())
    try:
        call(info["base_url"], "GET", "/jobs", headers={"X-Api-Key": info["client_key"]})
    except (OSError, ApiError):
        return None
    return info


def main(argv: list[str] | None = None) -> int:
    """Run the demo against a running stack, or start one for the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--report-out", help="also write the job's quality report (JSON) here")
    args = parser.parse_args(argv)
    info = _running_stack()
    if info:
        print(f"using the running stack at {info['base_url']}")
        run_demo(info["base_url"], info["client_key"], args.items, workers=args.workers,
                 report_out=args.report_out)
        return 0
    from infra.local_stack import local_stack

    print("no running stack found; starting one in this process")
    with local_stack(port=0, pump_interval=0.5, finalize_interval=1.0, api_process=True) as stack:
        run_demo(stack.base_url, stack.client_key, args.items, workers=args.workers,
                 report_out=args.report_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
