"""The job's records stay small however large the job and its crowd: a job of a million items,
a hundred workers blocked from it, every text field at its longest; and counting a batch of
answers writes the items and the job's small counters record, never the job record. The
job's money is a small record of its own whatever the job's size. The instructions are a
record of their own, bounded by validation (MAX_INSTRUCTIONS characters of at most 4 bytes
each in UTF-8), far under DynamoDB's 400 KB.

Sizes are the items' sizes as DynamoDB bills them (bench.billing), read back from the stack."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import botocore.client
import pytest

from bench.billing import item_size
from chalicelib import deps
from chalicelib.adapters.models import (
    JobCountsModel, JobInstructionsModel, JobModel, JobMoneyModel, WorkerStatsModel, counts_key,
    instructions_key, money_key,
)
from chalicelib.domain import phases
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.jobs import (
    CHUNK_ITEMS, MAX_INSTRUCTIONS, MAX_LABELS, MAX_REPORT_ATTRIBUTES, build_job,
)
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLIENT, CLOSING, DONE, INGESTING, PAUSED, CountedAnswer,
)
from chalicelib.handlers import accounts, jobs
from tests.adapters.posting import active_job

LIMIT = 16 * 1024
# The instructions record at its largest: MAX_INSTRUCTIONS characters of 4 bytes each (UTF-8's
# longest), its key and two attribute names and a version (80,060 bytes measured).
INSTRUCTIONS_LIMIT = 4 * MAX_INSTRUCTIONS + 100
WIDEST = "\U0001f600"  # four bytes in UTF-8, one character for validation
ITEMS = 1_000_000
BLOCKED = 100
REASON = 500  # the longest reason a client gives (a block, closing a pilot, promoting)
RULE_REASON = 340  # every promotion threshold's verdict, joined
SYSTEM_REASON = 60  # the longest reason the platform writes itself


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _raw(model: type, hash_key: str, range_key: str | None = None) -> dict[str, Any]:
    """An item as DynamoDB holds it (typed attribute values), read strongly consistent."""
    response = model._get_connection().get_item(hash_key, range_key, consistent_read=True)
    return response["Item"]


def _longest_job(p: Any, client: Any) -> Any:
    """A job whose every text and list is as long as validation allows (instructions in
    four-byte characters), with the item counts of a million-item ingest."""
    labels = [f"{n:02d}" + "l" * 62 for n in range(MAX_LABELS)]
    skills = [f"{n}" + "s" * 63 for n in range(10)]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2,
                                          "redundancy": 3})
    job, _ = build_job(quote, client.account_id, {
        "title": "t" * 200, "instructions": WIDEST * MAX_INSTRUCTIONS,
        "answer_schema": {"labels": labels}, "required_skills": skills,
        "min_skill_scores": {skill: 0.875 for skill in skills},
        "report": {"attributes": [f"{n}" + "a" * 63 for n in range(MAX_REPORT_ATTRIBUTES)],
                   "expected_distribution": {label: 1 + n for n, label in enumerate(labels)}},
        "promotion": {"gold_accuracy": 0.85, "alpha": 0.6, "kappa": 0.6,
                      "mean_confidence": 0.9, "max_na_rate": 0.1},
        "items": [{"data": {"text": "one"}}, {"data": {"text": "two"}}],
    }, p.now())
    chunks = -(-ITEMS // CHUNK_ITEMS)
    return replace(job, item_count=ITEMS, chunk_count=chunks, pilot_items=ITEMS // 10,
                   gold_items=ITEMS // 100, gold_slots=3 * ITEMS // 100,
                   pool_cents=123_456_789_012, budget_cents=987_654_321_098)


# Every change of state a job can make, in its longest order (the pilot closed early by its
# client, stopped while closing, paused with the thresholds' verdicts, promoted with a
# reason and revised instructions (at their longest), stopped again), with the longest reason
# each can carry.
# Each appends one entry to the history, and only the pilot's pause leads back to active, once.
LONGEST_PATH = ((INGESTING, ACTIVE, SYSTEM_REASON), (ACTIVE, CLOSING, REASON),
                (CLOSING, CANCELLED, SYSTEM_REASON), (CANCELLED, AGGREGATING, SYSTEM_REASON),
                (AGGREGATING, PAUSED, RULE_REASON), (PAUSED, ACTIVE, REASON + 40),
                (ACTIVE, CLOSING, SYSTEM_REASON), (CLOSING, CANCELLED, SYSTEM_REASON),
                (CANCELLED, AGGREGATING, SYSTEM_REASON), (AGGREGATING, DONE, SYSTEM_REASON))


def test_a_million_item_job_with_a_hundred_blocked_workers_keeps_every_record_small(p):
    client, _ = accounts.create_account(p, CLIENT, "c" * 200)
    job = _longest_job(p, client)
    p.jobs.create_job(job)
    job_id = job.job_id
    now = time.time()
    revised = "\U0001f601" * MAX_INSTRUCTIONS
    for n, (before, after, length) in enumerate(LONGEST_PATH):
        reason = f"{n:03d}" + "r" * (length - 3)
        revision = {"instructions": revised, "instruction_version": 2} if before == PAUSED else {}
        assert p.jobs.transition(job_id, (before,), after, finalize_at=now + 86400 * 90,
                                 aggregating_at=now, cancelled_at=now, round=2,
                                 **revision, results_key=f"results/{job_id}/x.jsonl",
                                 result_count=ITEMS, held_cents=10**12, paid_cents=10**12,
                                 record=phases.record(now + n, before, "production", after,
                                                      "production", client.account_id, reason,
                                                      round_no=2))
    # every chunk of its ingest counted, and every answer: three per item, all items done
    JobCountsModel(counts_key(job_id)).update(actions=[
        JobCountsModel.chunks_written.set(job.chunk_count),
        JobCountsModel.answered.set(3 * ITEMS), JobCountsModel.items_done.set(ITEMS)])
    # and every answer reviewed, paid and its bonuses taken, at figures beyond any budget
    JobMoneyModel(money_key(job_id)).update(actions=[
        JobMoneyModel.approved_answers.set(3 * ITEMS), JobMoneyModel.rejected_answers.set(ITEMS),
        JobMoneyModel.bonus_cents.set(10**12)])
    # a hundred workers blocked with the longest reason, each with gold answers scored
    workers = [f"wrk_{n:04d}" + "x" * 20 for n in range(BLOCKED)]
    for n, worker in enumerate(workers):
        p.stats.record_gold(worker, job_id, new_assignment_id(job_id, f"{n:06d}", now), False)
        p.stats.mark_blocked(worker, job_id, "b" * REASON + f" (by {client.account_id})", now,
                             now + 60 if n % 2 else None)
    # THEN the job reads back whole, its counters, money and blocks included
    read = p.jobs.get_job(job_id)
    assert (read.answered, read.items_done, read.item_count) == (3 * ITEMS, ITEMS, ITEMS)
    assert read.chunks_written == read.chunk_count == ITEMS // CHUNK_ITEMS
    assert (read.pool_cents, read.held_cents, read.paid_cents, read.bonus_cents,
            read.approved_answers, read.rejected_answers) == (
        job.pool_cents, 10**12, 10**12, 10**12, 3 * ITEMS, ITEMS)
    assert len(read.transitions) == 1 + len(LONGEST_PATH)
    assert (read.instructions, read.instruction_version) == (revised, 2)
    assert len(p.stats.blocks_in_job(job_id)) == BLOCKED
    # AND no record of the job is near DynamoDB's limit or grows with the crowd or the job:
    # the job record holds no counters, no money, no blocked workers and no instructions, and
    # is under 16 KB whole; the instructions record holds the longest instructions validation
    # allows
    record = _raw(JobModel, job_id)
    assert not {"answered", "items_done", "chunks_written", "blocked_workers", "block_starts",
                "instructions", "pool_cents", "held_cents", "paid_cents", "bonus_cents",
                "approved_answers", "rejected_answers"} & set(record)
    instructions = _raw(JobInstructionsModel, instructions_key(job_id))
    assert len(instructions["instructions"]["S"].encode()) == 4 * MAX_INSTRUCTIONS
    sizes = {"job": item_size(record),
             "counters": item_size(_raw(JobCountsModel, counts_key(job_id))),
             "money": item_size(_raw(JobMoneyModel, money_key(job_id)))}
    sizes.update({f"stats {worker}": item_size(_raw(WorkerStatsModel, worker, job_id))
                  for worker in workers})
    sizes.update({f"stats {worker} *": item_size(_raw(WorkerStatsModel, worker, "*"))
                  for worker in workers})
    print(f"job record {sizes['job']} B, instructions record {item_size(instructions)} B, "
          f"counters record {sizes['counters']} B, money record {sizes['money']} B, "
          f"largest worker-stats record "
          f"{max(v for k, v in sizes.items() if k.startswith('stats'))} B")
    assert sizes["counters"] < 200  # one write unit, even inside a transaction's two
    assert sizes["money"] < 256  # as small, whatever the job's size and figures
    assert all(size < LIMIT for size in sizes.values()), sizes
    assert item_size(instructions) < INSTRUCTIONS_LIMIT


def test_counting_writes_the_items_and_the_counters_record_not_the_job(p, monkeypatch):
    job = active_job(p, "Counting client", [{"data": {"text": f"item {n}"}} for n in range(10)])
    written: list[dict[str, Any]] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, name: str, params: dict[str, Any]) -> Any:
        if name == "TransactWriteItems":
            written.extend(next(iter(entry.values())) for entry in params["TransactItems"])
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    # WHEN a batch of ten answers is counted, each completing its item
    batch = [CountedAnswer(job.job_id, f"{n:06d}", f"w{n}", f"asg-{n}", True) for n in range(10)]
    assert p.jobs.record_counted(job.job_id, batch) == 10
    # THEN one transaction wrote the ten items and the counters record, nothing else
    keys = sorted(entry["Key"].get("item_id", entry["Key"]["job_id"])["S"] for entry in written)
    assert keys == sorted([f"{n:06d}" for n in range(10)] + [counts_key(job.job_id)])
    counted = p.jobs.get_job(job.job_id)
    assert (counted.answered, counted.items_done) == (10, 10)


def test_an_ingest_chunk_writes_its_items_and_the_counters_record_not_the_job(p, monkeypatch):
    # GIVEN an ingesting job of one full chunk
    client, _ = accounts.create_account(p, CLIENT, "Ingest client")
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": CHUNK_ITEMS,
                                          "redundancy": 3})
    job, chunks = build_job(quote, client.account_id, {
        "instructions": "Pick one.", "answer_schema": {"labels": ["yes", "no"]},
        "items": [{"data": {"text": f"item {n}"}} for n in range(CHUNK_ITEMS)]}, p.now())
    p.jobs.create_job(job)
    writes: list[tuple[str, list[str]]] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, name: str, params: dict[str, Any]) -> Any:
        if name in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"):
            entries = [next(iter(entry.values())) for entry in params.get("TransactItems", ())]
            keys = [entry.get("Key") or entry["Item"] for entry in entries or [params]]
            writes.append((name, [key.get("item_id", key["job_id"])["S"] for key in keys]))
        return original(self, name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    # WHEN its chunk is written
    assert p.items.put_chunk(job.job_id, job.redundancy, chunks[0])
    # THEN each item but the last was one PutItem, and the last item and the counters record
    # one transaction; the job record was not written
    ids = [f"{n:06d}" for n in range(CHUNK_ITEMS)]
    assert writes == [("PutItem", [item_id]) for item_id in ids[:-1]] + [
        ("TransactWriteItems", [ids[-1], counts_key(job.job_id)])]
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    assert "chunks_written" not in _raw(JobModel, job.job_id)
