"""The SQS, Step Functions and S3 adapters on the stack's real queues, bucket and moto's ASL runner.

The module's tests share one stack: each sends messages marked with its uid, and names its
state machines, queues and keys with it."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from chalicelib import deps
from chalicelib.adapters.messaging import SqsQueue, StepFunctionsWorkflow
from chalicelib.errors import NotFound, TransientError

ROLE = "arn:aws:iam::123456789012:role/local-step-functions"


def _drain(stack: Any, queue_name: str) -> list[dict]:
    """Every message body on a queue, deleting them as they are read."""
    url = stack.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    bodies = []
    while True:
        batch = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _state_machine(stack: Any, name: str, definition: dict) -> str:
    return stack.sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                          roleArn=ROLE)["stateMachineArn"]


def _wait_closed(stack: Any, execution_arn: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = stack.sfn.describe_execution(executionArn=execution_arn)["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


# --- SQS ----------------------------------------------------------------------------------

def test_a_queue_delivers_every_message_sent_one_by_one_or_in_batches(module_stack, uid):
    # GIVEN the platform's results queue
    p = deps.platform()
    queue_name = module_stack.outputs["ResultsQueueName"]
    # WHEN one message is sent alone and 23 more in one call (three batches)
    p.results_queue.send({"n": -1, "test": uid})
    p.results_queue.send_many([{"n": n, "test": uid} for n in range(23)])
    # THEN all 24 arrive, each once, as the JSON that was sent
    bodies = [body for body in _drain(module_stack, queue_name) if body.get("test") == uid]
    assert sorted(body["n"] for body in bodies) == list(range(-1, 23))


class _RefusingSqs:
    """An SQS client that accepts a batch but refuses its last entry (as SQS may)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def get_queue_url(self, QueueName: str) -> dict:
        return {"QueueUrl": f"https://sqs.local/{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.batches.append(len(Entries))
        return {"Successful": [{"Id": e["Id"]} for e in Entries[:-1]],
                "Failed": [{"Id": Entries[-1]["Id"], "SenderFault": False,
                            "Code": "InternalError"}]}


def test_a_batch_with_refused_entries_is_a_transient_error():
    # GIVEN a queue whose service refuses one entry of each batch
    sqs = _RefusingSqs()
    queue = SqsQueue(sqs, "q")
    # WHEN messages are sent in batches THEN the caller is told to try again, at the first batch
    with pytest.raises(TransientError):
        queue.send_many([{"n": n} for n in range(15)])
    assert sqs.batches == [10]


def test_a_batch_of_large_messages_is_split_to_fit_the_sqs_batch_limit(module_stack, uid):
    # GIVEN six messages of ~200 KiB each, as six full ingest chunks would be
    p = deps.platform()
    messages = [{"chunk": n, "test": uid, "pad": "x" * 200_000} for n in range(6)]
    # WHEN they are sent in one call
    p.ingest_queue.send_many(messages)
    # THEN every one arrives
    bodies = [body for body in _drain(module_stack, module_stack.outputs["IngestQueueName"])
              if body.get("test") == uid]
    assert sorted(body["chunk"] for body in bodies) == list(range(6))


# --- Step Functions -------------------------------------------------------------------------

def test_a_workflow_run_starts_once_per_name(module_stack, uid):
    # GIVEN a state machine that finishes at once
    arn = _state_machine(module_stack, f"adapter-pass-{uid}", {
        "StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    workflow = StepFunctionsWorkflow(module_stack.sfn, arn)
    # WHEN a run is started by name
    assert workflow.start("job_a-r1", {"job_id": "job_a", "round": 1})
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:job_a-r1"
    assert _wait_closed(module_stack, execution) == "SUCCEEDED"
    # THEN starting that name again is refused as a repeat, with the same or another input,
    # while another name starts
    assert workflow.start("job_a-r1", {"job_id": "job_a", "round": 1}) is False
    assert workflow.start("job_a-r1", {"job_id": "job_a", "round": 2}) is False
    assert workflow.start("job_a-r2", {"job_id": "job_a", "round": 2})
    names = [e["name"] for e in module_stack.sfn.list_executions(stateMachineArn=arn)["executions"]]
    assert sorted(names) == ["job_a-r1", "job_a-r2"]


def test_a_repeated_start_of_a_running_run_with_the_same_input_is_accepted_without_a_second_run(
        module_stack, uid):
    # GIVEN a run that waits on a task token (so it is still running)
    queue_url = module_stack.sqs.create_queue(QueueName=f"adapter-tokens-{uid}")["QueueUrl"]
    arn = _state_machine(module_stack, f"adapter-waiting-{uid}", {
        "StartAt": "Hold", "States": {"Hold": {
            "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
            "End": True}}})
    workflow = StepFunctionsWorkflow(module_stack.sfn, arn)
    payload = {"job_id": "job_a", "round": 1}
    assert workflow.start("job_a-r1", payload)
    # WHEN the same name and input are started again while it runs
    repeat = workflow.start("job_a-r1", payload)
    # THEN Step Functions (AWS and moto alike) treats it as idempotent: the call succeeds,
    # so start() says True, yet there is still only one run
    assert repeat is True
    assert len(module_stack.sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    # AND with another input it is refused
    assert workflow.start("job_a-r1", {"job_id": "job_a", "round": 2}) is False
    deadline = time.monotonic() + 10
    token = None
    while token is None and time.monotonic() < deadline:
        messages = module_stack.sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        token = json.loads(messages[0]["Body"])["token"] if messages else None
    module_stack.sfn.send_task_success(taskToken=token, output="{}")
    execution = f"{arn.replace(':stateMachine:', ':execution:')}:job_a-r1"
    assert _wait_closed(module_stack, execution) == "SUCCEEDED"


# --- S3 -------------------------------------------------------------------------------------

def test_a_blob_is_read_back_as_written_and_downloadable_through_its_link(module_stack, uid):
    # GIVEN a results file written to the bucket
    p = deps.platform()
    body = '{"item_id": "000000", "answer": {"label": "café"}}\n'
    key = f"results/job_{uid}/r1.jsonl"
    p.blobs.put_text(key, body, "application/x-ndjson")
    # WHEN it is read back and linked for 900 s
    text = p.blobs.get_text(key)
    url = p.blobs.download_url(key, 900)
    # THEN the text is as written, and the link serves it with its type until it expires
    assert text == body
    query = parse_qs(urlparse(url).query)
    lifetime = (int(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query
                else int(query["Expires"][0]) - time.time())
    assert 840 < lifetime <= 900
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content.decode("utf-8") == body
    assert response.headers["content-type"] == "application/x-ndjson"
    # AND a key that was never written is NotFound, and is not there as far as exists() says
    with pytest.raises(NotFound):
        p.blobs.get_text(f"results/job_{uid}/missing.jsonl")
    assert p.blobs.exists(key) and not p.blobs.exists(f"results/job_{uid}/missing.jsonl")


@pytest.fixture
def s3_calls(module_stack: Any) -> Iterator[list[str]]:
    """The names of the S3 operations the platform's client sends during the test (the
    client is the module's: the recorder is taken off it after the test)."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = deps.platform().blobs._s3.meta.events
    events.register("before-call.s3.*", record)
    yield calls
    events.unregister("before-call.s3.*", record)


def test_a_streamed_blob_over_one_part_is_uploaded_in_parts_and_reads_back_whole(
        module_stack, monkeypatch, s3_calls, uid):
    # GIVEN parts of 256 bytes (S3 and moto require 5 MiB; moto lowered to match here) and
    # 40 chunks of ~100 bytes
    import moto.s3.models

    from chalicelib.adapters import storage

    monkeypatch.setattr(storage, "PART_BYTES", 256)
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 256)
    p = deps.platform()
    chunks = [json.dumps({"item_id": f"{n:06d}", "text": "é" * 40}) + "\n" for n in range(40)]
    calls = s3_calls
    # WHEN they are streamed to one key
    p.blobs.put_stream(f"jobs/job_{uid}/results.jsonl", iter(chunks), "application/x-ndjson")
    # THEN it went up as a multipart upload and reads back as the chunks joined
    assert calls.count("UploadPart") > 1 and "CompleteMultipartUpload" in calls
    assert p.blobs.get_text(f"jobs/job_{uid}/results.jsonl") == "".join(chunks)
    # AND a small stream is one plain PutObject
    calls.clear()
    p.blobs.put_stream(f"jobs/job_{uid}/small.jsonl", iter(["{}\n"] * 3), "application/x-ndjson")
    assert calls == ["PutObject"]


def test_a_stream_that_breaks_half_way_aborts_its_upload_and_leaves_no_object(
        module_stack, monkeypatch, uid):
    from chalicelib.adapters import storage

    monkeypatch.setattr(storage, "PART_BYTES", 256)
    p = deps.platform()

    def chunks():
        for n in range(10):
            yield "x" * 100
        raise TransientError("S3 read failed")

    # WHEN the chunks stop with an error after some parts went up
    with pytest.raises(TransientError):
        p.blobs.put_stream(f"jobs/job_{uid}/broken.jsonl", chunks(), "application/x-ndjson")
    # THEN no object and no pending upload is left behind
    with pytest.raises(NotFound):
        p.blobs.get_text(f"jobs/job_{uid}/broken.jsonl")
    uploads = p.blobs._s3.list_multipart_uploads(Bucket=module_stack.outputs["ResultsBucketName"])
    assert uploads.get("Uploads", []) == []
