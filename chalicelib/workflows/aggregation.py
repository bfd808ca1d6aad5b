"""Stage handlers of the aggregation state machine: load → aggregate (Map) → publish → done.

Each stage is idempotent: it writes objects and rows under keys derived from the job,
the round and the shard, so a retried or repeated stage writes the same thing again.
"""
from __future__ import annotations

import json
from typing import Any

from chalicelib.domain.aggregation import aggregate_item
from chalicelib.domain.jobs import iso
from chalicelib.domain.model import AGGREGATING, DONE, FAILED, ItemResult
from chalicelib.domain.services import Platform
from chalicelib.errors import NotFound
from chalicelib.observability import count, seconds

SHARD_ITEMS = 500


def _round_prefix(job_id: str, round_no: int) -> str:
    return f"jobs/{job_id}/rounds/{round_no}"


def results_key(job_id: str) -> str:
    """The S3 key of a job's published JSON Lines results."""
    return f"jobs/{job_id}/results.jsonl"


def load_answers(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Write the job's answers as shards of SHARD_ITEMS items to S3; return the shard list."""
    job = p.jobs.get_job(event["job_id"])
    if job is None:
        raise NotFound(f"no job {event['job_id']}")
    round_no = int(event.get("round", job.round))
    header = {"job_id": job.job_id, "round": round_no, "kind": job.kind,
              "labels": job.answer_schema.get("labels", [])}
    shards: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        key = f"{_round_prefix(job.job_id, round_no)}/answers/{len(shards):05d}.json"
        p.blobs.put_text(key, json.dumps({**header, "items": batch}), "application/json")
        shards.append({"job_id": job.job_id, "round": round_no, "shard": len(shards), "key": key})

    for item in p.items.iter_items(job.job_id):
        answers = sorted(item.answers.items(), key=lambda entry: entry[1].submitted_at)
        batch.append({"item_id": item.item_id, "external_id": item.external_id, "answers": [
            {"worker_id": worker, "assignment_id": a.assignment_id, "answer": a.answer,
             "submitted_at": a.submitted_at, "leased_at": a.leased_at}
            for worker, a in answers]})
        if len(batch) == SHARD_ITEMS:
            flush()
            batch = []
    if batch or not shards:
        flush()
    return {"job_id": job.job_id, "round": round_no, "shards": shards}


def result_line(result: ItemResult) -> dict[str, Any]:
    """The JSON line a client downloads for one item."""
    return {
        "item_id": result.item_id, "external_id": result.external_id, "answer": result.answer,
        "confidence": result.confidence, "n_answers": result.n_answers,
        "not_applicable": result.not_applicable, "na_reasons": list(result.na_reasons),
        "answers": [{**entry, "submitted_at": iso(entry["submitted_at"])}
                    for entry in result.lineage],
    }


def aggregate_shard(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Aggregate one shard: results rows in DynamoDB and a JSON Lines part in S3."""
    shard = json.loads(p.blobs.get_text(event["key"]))
    lines = [result_line(aggregate_item(entry["item_id"], shard["kind"], shard["labels"],
                                        entry["answers"], entry.get("external_id")))
             for entry in shard["items"]]
    p.results.put_results(shard["job_id"], lines)
    key = f"{_round_prefix(shard['job_id'], shard['round'])}/results/{event['shard']:05d}.jsonl"
    p.blobs.put_text(key, "".join(json.dumps(line) + "\n" for line in lines),
                     "application/x-ndjson")
    return {"shard": event["shard"], "results_key": key, "count": len(lines)}


def publish_results(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Join the shard parts, in shard order, into the job's results object."""
    parts = sorted(event.get("aggregated", []), key=lambda part: part["shard"])
    body = "".join(p.blobs.get_text(part["results_key"]) for part in parts)
    key = results_key(event["job_id"])
    p.blobs.put_text(key, body, "application/x-ndjson")
    return {"job_id": event["job_id"], "round": event["round"], "results_key": key,
            "count": sum(part["count"] for part in parts)}


def mark_done(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Mark the job done with where its results are; a repeat leaves it as it was.

    Returns how long the round took, from the job leaving the answering states.
    """
    job = p.jobs.get_job(event["job_id"])
    if job is None:
        raise NotFound(f"no job {event['job_id']}")
    now = p.now()
    changed = p.jobs.transition(job.job_id, (AGGREGATING,), DONE,
                                results_key=event["results_key"], result_count=event["count"],
                                done_at=now)
    done_at = now if changed else (job.done_at or now)
    took = round(done_at - (job.aggregating_at or done_at), 3)
    if changed:
        count("AggregationRuns")
        seconds("AggregationSeconds", took)
    return {"job_id": job.job_id, "state": DONE, "aggregation_seconds": took}


def mark_failed(p: Platform, event: dict[str, Any]) -> dict[str, Any]:
    """Record that aggregation failed, with the error, so the client and operators see it.

    The state machine passes the caught error's name and cause as strings.
    """
    message = f"{event.get('error') or 'Error'}: {event.get('cause') or ''}"[:1000]
    p.jobs.transition(event["job_id"], (AGGREGATING,), FAILED, error=message)
    return {"job_id": event["job_id"], "state": FAILED}
