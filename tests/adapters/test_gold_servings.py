"""A gold item served to thousands of workers: no record grows with them (on moto, sized as
DynamoDB bills them)."""
from __future__ import annotations

import os
import time

from unittest import mock

import boto3
import botocore.client
import pytest

from bench.billing import item_size
from chalicelib import deps
from chalicelib.adapters.models import ItemModel, JobModel
from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import CountedAnswer, Lease, LedgerEntry, StoredAnswer
from tests.adapters.posting import active_job

WORKERS = int(os.environ.get("GOLD_WORKERS", 5000))
RECORD_LIMIT = 16 * 1024


@pytest.fixture
def p(module_stack):
    return deps.platform()


def _gold_job(p, slots):
    return active_job(p, "Gold client", [{"data": {"text": "a sentence to judge"}}],
                      gold={"label": "yes"}, slots=slots, pool_cents=0)


def _sizes(job_id, item_id):
    """DynamoDB's size of every record a gold item's serving writes: the item, each serving
    of it, and the job."""
    dynamo = boto3.client("dynamodb")
    items, jobs_table = ItemModel.Meta.table_name, JobModel.Meta.table_name
    sizes = {"item": item_size(dynamo.get_item(TableName=items, ConsistentRead=True, Key={
        "job_id": {"S": job_id}, "item_id": {"S": item_id}})["Item"]),
        "job": item_size(dynamo.get_item(TableName=jobs_table, ConsistentRead=True,
                                         Key={"job_id": {"S": job_id}})["Item"])}
    servings = []
    for page in dynamo.get_paginator("query").paginate(
            TableName=items, ConsistentRead=True, KeyConditionExpression="job_id = :k",
            ExpressionAttributeValues={":k": {"S": f"{job_id}#{item_id}"}}):
        servings += [item_size(record) for record in page["Items"]]
    return sizes, servings


def test_one_gold_item_served_to_5000_workers_keeps_every_record_small(p):
    # GIVEN a gold item with more slots than workers
    job = _gold_job(p, slots=100_000)
    item_id = "000000"
    now = time.time()
    served: dict[str, str] = {}  # worker -> their assignment
    # WHEN 5,000 workers each lease it and answer, and their answers are counted
    calls: list[str] = []
    base = botocore.client.BaseClient._make_api_call

    def count(self, name, params):  # noqa: ANN001 (botocore's signature)
        calls.append(name)
        return base(self, name, params)

    requests = []  # DynamoDB requests of each lease and submit, after a container's first
    for n in range(WORKERS):
        worker = f"wrk_gold{n:05d}"
        lease = Lease(new_assignment_id(job.job_id, item_id, now), now + 600, now)
        answer = StoredAnswer(lease.assignment_id, {"label": "yes"}, now + 1, now)
        with mock.patch.object(botocore.client.BaseClient, "_make_api_call", count):
            calls.clear()
            taken = p.items.try_lease(job.job_id, item_id, worker, lease, None, now)
            leased = list(calls)
            calls.clear()
            submitted = p.items.try_submit(job.job_id, item_id, worker, answer, now + 1)
            requests.append((leased, list(calls)))
        assert taken.ok and submitted.ok, n
        served[worker] = lease.assignment_id
        if n % 10 == 9:
            batch = sorted(served)[-10:]
            assert p.jobs.record_counted(job.job_id, [
                CountedAnswer(job.job_id, item_id, w, served[w], False, gold=True)
                for w in batch]) == 10
    # THEN a gold lease and a gold submit are each one request, as a regular one is
    assert all(pair == (["TransactWriteItems"], ["TransactWriteItems"])
               for pair in requests[1:]), requests[:3]
    # AND the gold item, each serving and the job stay under 16 KB
    sizes, servings = _sizes(job.job_id, item_id)
    assert len(servings) == WORKERS
    assert sizes["item"] < RECORD_LIMIT and sizes["job"] < RECORD_LIMIT, sizes
    assert max(servings) < RECORD_LIMIT, max(servings)
    # AND no worker got it twice: each is refused a second lease, and it has one answer each
    for worker in sorted(served)[:: max(1, WORKERS // 250)]:
        again = Lease(new_assignment_id(job.job_id, item_id, now + 2), now + 600, now + 2)
        assert not p.items.try_lease(job.job_id, item_id, worker, again, None, now + 2).ok
    item = p.items.get_item(job.job_id, item_id)
    assert set(item.answers) == set(served) and item.seen == set(served)
    assert item.answer_count == WORKERS and item.free == 100_000 - WORKERS
    assert p.jobs.get_job(job.job_id).answered == WORKERS


def test_a_gold_item_written_before_servings_keeps_its_workers_and_answers(p):
    # GIVEN a gold item as it was stored before servings were records of their own: w1's
    # answer and w2's lease on the item itself, both in its seen
    job = _gold_job(p, slots=5)
    item_id = "000000"
    now = time.time()
    answered = Lease(new_assignment_id(job.job_id, item_id, now), now + 600, now)
    record = ItemModel.get(job.job_id, item_id, consistent_read=True)
    record.update(actions=[
        ItemModel.out.remove(), ItemModel.free.add(-2), ItemModel.answer_count.add(1),
        ItemModel.seen.add({"w1", "w2"}),
        ItemModel.leases["w2"].set({"aid": "asg_old", "exp": now + 600, "at": now}),
        ItemModel.answers["w1"].set({"aid": answered.assignment_id, "ans": '{"label": "yes"}',
                                     "at": now, "lat": now, "iv": 1})])
    # WHEN workers lease it now THEN a new worker gets it, w1 and w2 do not get it again
    lease = Lease(new_assignment_id(job.job_id, item_id, now), now + 600, now)
    assert p.items.try_lease(job.job_id, item_id, "w3", lease, None, now).ok
    for worker in ("w1", "w2"):
        again = Lease(new_assignment_id(job.job_id, item_id, now), now + 600, now)
        assert not p.items.try_lease(job.job_id, item_id, worker, again, None, now).ok
    # AND the item shows the old answer with the new lease, and w1's answer is reviewed once
    item = p.items.get_item(job.job_id, item_id)
    assert set(item.answers) == {"w1"} and set(item.leases) == {"w2", "w3"}
    assert item.seen == {"w1", "w2", "w3"}
    entry = LedgerEntry("w1", f"review#{answered.assignment_id}", "approval", 5, now, job.job_id,
                        answered.assignment_id, None, "c")
    review = {"status": "approved", "reason": None, "at": now, "by": "c"}
    assert p.items.review(job.job_id, item_id, "w1", answered.assignment_id, review, entry)
    assert not p.items.review(job.job_id, item_id, "w1", answered.assignment_id, review,
                                  entry)
    assert p.items.get_item(job.job_id, item_id).answers["w1"].review["status"] == "approved"
