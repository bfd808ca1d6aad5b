"""Crash after every write of AggregateShard (its result rows, its part, its CSV part, its
report sums) and run the shard again, as the state machine retries a task whose Lambda died;
then every shard once more: Publish's results, CSV and report are those of the fault-free run.

A 7-item round in three shards (3, 3 and 1 items) with a gold item, an N/A answer and a tagged
attribute is written to S3 as LoadAnswers leaves it; the shards are aggregated with the crash
armed, then Publish runs on the moto stack's S3 and DynamoDB.
"""
from __future__ import annotations

import json
from typing import Any

from chalicelib.deps import platform
from chalicelib.domain import keys
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import accounts, jobs
from chalicelib.workflows import aggregation as stages
from tests.functional.faults import Crash, Plan, crash_after_writes

ITEMS = 7
SHARDS = [range(0, 3), range(3, 6), range(6, 7)]
LABELS = ["pos", "neg"]
SHARD_SITES = ("aggregation.aggregate_shard > results.put_results",
               "aggregation.aggregate_shard > storage.put_text",
               "downloads.write_csv_part > storage.put_text")


def _answer(n: int, worker: int) -> dict[str, Any]:
    if (n, worker) == (4, 1):
        return {"not_applicable": "Not English"}
    return {"label": LABELS[(n + (worker == 2)) % 2]}


def _post_round(name: str) -> str:
    """A job tagged by source, and its round 1's answer shards written as LoadAnswers does."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": ITEMS,
                                          "redundancy": 3})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Sentiment?", "pilot": {"items": 0},
        "answer_schema": {"labels": LABELS}, "report": {"attributes": ["source"]},
        "items": [{"data": {"source": "web" if n % 3 else "app"}} for n in range(ITEMS)]})
    for shard, members in enumerate(SHARDS):
        items = []
        for n in members:
            entry: dict[str, Any] = {
                "item_id": f"{n:06d}", "external_id": None, "attributes": {
                    "source": "web" if n % 3 else "app"},
                "answers": [{"worker_id": f"w{w}", "assignment_id": f"asg_{n}_{w}",
                             "answer": _answer(n, w), "leased_at": 1_780_000_000 + n,
                             "submitted_at": 1_780_000_010 + n + w, "instruction_version": 1}
                            for w in range(3)]}
            if n == 2:
                entry["gold"] = {"label": "pos"}
            items.append(entry)
        p.blobs.put_text(keys.answers_key(job.job_id, 1, shard), json.dumps(
            {"job_id": job.job_id, "round": 1, "task_type": "categorical",
             "answer_schema": {"labels": LABELS}, "shard": shard, "items": items}),
            "application/json")
    return job.job_id


def _shard_event(job_id: str, shard: int) -> dict[str, Any]:
    return {"job_id": job_id, "round": 1, "shard": shard,
            "key": keys.answers_key(job_id, 1, shard), "posteriors_key": None}


def _run(plan: Plan, name: str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Aggregate the round's shards with the plan armed (a shard that died runs again), then
    every shard once more, then publish; the results lines, report and CSV, job id left out."""
    job_id = _post_round(name)
    p = platform()
    with crash_after_writes(plan):
        plan.armed = True
        for shard in range(len(SHARDS)):
            try:
                stages.aggregate_shard(p, _shard_event(job_id, shard))
            except Crash:
                stages.aggregate_shard(p, _shard_event(job_id, shard))
        plan.armed = False
    for shard in range(len(SHARDS)):
        stages.aggregate_shard(p, _shard_event(job_id, shard))
    out = stages.publish_results(p, {"job_id": job_id, "round": 1, "shard_count": len(SHARDS)})
    assert out["count"] == ITEMS
    lines = [json.loads(line) for line in p.blobs.get_text(keys.results_key(job_id)).splitlines()]
    report = json.loads(p.blobs.get_text(keys.report_key(job_id, 1)))
    csv = p.blobs.get_text(keys.results_csv_key(job_id))
    return lines, {**report, "job_id": None}, csv


def test_a_crash_after_any_write_of_a_shard_publishes_the_fault_free_report(stack):
    clean = Plan()
    expected = _run(clean, "Report client")
    # each shard writes its rows, its part, its CSV part and its report sums
    assert clean.writes == [("BatchWriteItem", SHARD_SITES[0]), ("PutObject", SHARD_SITES[1]),
                            ("PutObject", SHARD_SITES[2]),
                            ("PutObject", SHARD_SITES[1])] * len(SHARDS)
    lines, report, csv = expected
    assert len(csv.splitlines()) == ITEMS + 1  # the header and a row per item
    assert report["items"] == ITEMS and report["gold"]["items"] == 1
    assert report["not_applicable"]["reasons"] == [{"reason": "not english", "count": 1}]
    assert set(report["by_attribute"]["source"]["values"]) == {"web", "app"}
    crashed = []
    for site in SHARD_SITES:
        for nth in range(1, sum(1 for _, at in clean.writes if at == site) + 1):
            plan = Plan(crash_site=site, nth=nth)
            assert _run(plan, f"Report client {len(crashed)}") == expected, (site, nth)
            assert plan.crashed is not None, (site, nth)
            crashed.append(plan.crashed)
    assert len(crashed) == len(clean.writes) == 12
