"""Ingest fan-out, counting and the aggregation trigger are idempotent on business keys."""
import json

import pytest

from chalicelib import deps
from infra.local_aws import lambda_context
from tests.functional.marketplace import Api


def _receive_all(stack, queue_name):
    url = stack.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    messages = []
    while True:
        batch = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          AttributeNames=["All"]).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def _event(messages):
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                         "body": m["Body"], "attributes": {}, "messageAttributes": {},
                         "eventSource": "aws:sqs",
                         "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                         "awsRegion": "us-east-1"} for m in messages]}


def _answered_job_with_queued_results(stack, items):
    """A job of items x 1 answers, all submitted, whose result messages are still queued."""
    api = Api(stack)
    job = api.job(items=items, redundancy=1)
    token = api.worker()
    for _ in range(items):
        _, task = api.lease(token)
        api.submit(token, task["assignment_id"], {"label": "pos"})
    return api, job, _receive_all(stack, "crowd-dev-results")


def _sweep(stack):
    event = stack.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    stack.client.lambda_.invoke("finalize_due_jobs", event)


def _items(job_id):
    return list(deps.platform().items.iter_items(job_id))


def test_posting_fans_items_out_in_chunks_and_a_repeated_chunk_creates_nothing_twice(stack):
    # GIVEN a posted job of 60 items whose ingest messages are still queued
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 60,
                                                 "redundancy": 2})
    _, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Label it.",
        "answer_schema": {"labels": ["a", "b"]},
        "items": [{"data": {"n": n}} for n in range(60)]})
    assert job["state"] == "ingesting"
    messages = _receive_all(stack, "crowd-dev-ingest")
    assert len(messages) == 3  # 25 + 25 + 10 items
    # WHEN every message is delivered twice
    context = lambda_context("crowd-dev-ingest_items")
    stack.app.ingest_items(_event(messages), context)
    stack.app.ingest_items(_event(messages), context)
    # THEN there are 60 items, once each, and the job is active
    items = _items(job["job_id"])
    assert sorted(i.item_id for i in items) == [f"{n:06d}" for n in range(60)]
    _, state = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert state["state"] == "active" and state["counts"]["items"] == 60
    # AND a chunk redelivered after work began leaves the work in place
    token = api.worker()
    _, task = api.lease(token, job["job_id"])
    stack.app.ingest_items(_event(messages[:1]), context)
    leased = [i for i in _items(job["job_id"]) if i.leases]
    assert len(leased) == 1 and task["assignment_id"] in [
        lease.assignment_id for lease in leased[0].leases.values()]


def test_counting_is_idempotent_and_aggregation_starts_once_per_round(stack):
    # GIVEN a 2-item job fully answered, with its result messages still queued
    api, job, messages = _answered_job_with_queued_results(stack, 2)
    assert len(messages) == 2
    # WHEN the consumer sees every message three times
    context = lambda_context("crowd-dev-count_answers")
    for _ in range(3):
        stack.app.count_answers(_event(messages), context)
    # THEN answers are counted once and one execution exists, named for the job's round
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 2 and final["counts"]["done"] == 2
    arn = stack.outputs["AggregationStateMachineArn"] if "AggregationStateMachineArn" in \
        stack.outputs else next(v for k, v in stack.outputs.items() if ":stateMachine:" in v)
    executions = stack.sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["name"] for e in executions] == [f"{job['job_id']}-r1"]


def test_aggregation_publishes_jsonl_with_lineage(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=2)
    tokens = [api.worker("a"), api.worker("b")]
    for token in tokens:
        for _ in range(2):
            _, task = api.lease(token)
            api.submit(token, task["assignment_id"], {"label": "neutral"})
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["result_count"] == 2
    body = deps.platform().blobs.get_text(f"jobs/{job['job_id']}/results.jsonl")
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["item_id"] for line in lines] == ["000000", "000001"]
    assert all(line["answer"] == {"label": "neutral"} and len(line["answers"]) == 2
               for line in lines)


def test_a_text_job_publishes_the_medoid_answer(stack):
    api = Api(stack)
    job = api.job(items=1, redundancy=3, task_type="translation")
    answers = ["the red house", "the red house.", "a house that is red"]
    for n, text in enumerate(answers):
        token = api.worker(f"t{n}")
        _, task = api.lease(token)
        assert task["answer_schema"] == {"min_length": 1, "max_length": 200}
        assert api.submit(token, task["assignment_id"], {"text": text})[0] == 200
    stack.wait_for_state(job["job_id"], api.key, ("done",))
    _, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    result = page["results"][0]
    assert result["answer"] == {"text": "the red house"} and 0 < result["confidence"] < 1


def test_not_applicable_answers_are_kept_with_their_reasons(stack):
    api = Api(stack)
    job = api.job(items=1, redundancy=2, not_applicable="allowed_with_reason")
    for n in range(2):
        token = api.worker(f"n{n}")
        _, task = api.lease(token)
        assert task["not_applicable"] == "allowed_with_reason"
        status, _ = api.submit(token, task["assignment_id"], {"not_applicable": "not English"})
        assert status == 200
    stack.wait_for_state(job["job_id"], api.key, ("done",))
    _, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    result = page["results"][0]
    assert result["not_applicable"] and result["na_reasons"] == ["not English", "not English"]


def test_cancel_stops_new_leases_but_leased_work_may_still_be_submitted(stack):
    # GIVEN a job with one task leased
    api = Api(stack)
    job = api.job(items=3, redundancy=1)
    w1, w2 = api.worker("w1"), api.worker("w2")
    _, task = api.lease(w1)
    # WHEN the client cancels
    status, cancelled = api.as_client("POST", f"/jobs/{job['job_id']}/cancel")
    assert status == 200 and cancelled["state"] == "cancelled"
    # THEN nobody gets a new lease, the leased task is accepted, and a second cancel is 409
    assert api.lease(w2)[0] == 204
    assert api.submit(w1, task["assignment_id"], {"label": "pos"})[0] == 200
    assert api.as_client("POST", f"/jobs/{job['job_id']}/cancel")[0] == 409
    # AND once the leases have run out the sweeper aggregates what was answered
    p = deps.platform()
    real = p.clock
    p.clock = lambda: real() + job["lease_seconds"] + p.cache_seconds + 1
    _sweep(stack)
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 1 and final["result_count"] == 3


def test_a_cancel_with_nothing_leased_aggregates_at_once(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=1)
    token = api.worker()
    _, task = api.lease(token)
    api.submit(token, task["assignment_id"], {"label": "neg"})
    stack.drain()
    _, cancelled = api.as_client("POST", f"/jobs/{job['job_id']}/cancel")
    assert cancelled["state"] in ("aggregating", "done")
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["result_count"] == 2


def test_a_job_past_its_deadline_is_aggregated_by_the_sweeper(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=2)
    token = api.worker()
    _, task = api.lease(token)
    api.submit(token, task["assignment_id"], {"label": "pos"})
    stack.drain()
    p = deps.platform()
    real = p.clock
    p.clock = lambda: real() + 8 * 24 * 3600  # past the default 7-day deadline
    assert api.lease(api.worker("late"))[0] == 204
    _sweep(stack)
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["state"] == "done" and final["counts"]["answered"] == 1


def test_an_unreadable_message_does_not_stop_the_rest_of_its_batch(stack):
    # GIVEN a batch with one message that is not JSON among real result messages
    api, job, messages = _answered_job_with_queued_results(stack, 2)
    poison = dict(messages[0], Body="{not json", MessageId="poison")
    # WHEN the consumer gets the batch THEN it fails the batch (so SQS redelivers it) ...
    with pytest.raises(RuntimeError):
        stack.app.count_answers(_event([poison] + messages), lambda_context("crowd-dev-count_answers"))
    # ... but every readable answer was counted and the job finishes
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 2
