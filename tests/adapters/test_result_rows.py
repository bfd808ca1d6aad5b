"""A result row is stored compressed: a categorical item's line with three answers and their
lineage takes one write unit, not two, and reads back as it was written; rows written before
(the line in body, under the bare job id) still read. Rows are written in batches that ride
out throttling and unprocessed items, and stay busy only as a TransientError the aggregation
stage's Retry runs again."""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse

from bench.billing import item_size
from chalicelib import deps
from chalicelib.adapters.dynamo.results import (
    BACKOFF_CAP_SECONDS, BACKOFF_SECONDS, UNPROCESSED_ROUNDS, DynamoResults,
)
from chalicelib.adapters.models import ResultModel
from chalicelib.domain.aggregation import Posterior, aggregate_item
from chalicelib.domain.ids import new_assignment_id, new_id
from chalicelib.errors import TransientError
from chalicelib.workflows.aggregation import result_line

ROOT = Path(__file__).resolve().parents[2]


LABELS = ["positive", "negative", "neutral"]


@pytest.fixture
def p(module_stack: Any) -> Any:
    return deps.platform()


def _line(job_id: str, item_id: str) -> dict[str, Any]:
    """The line aggregation makes for an item of a three-label job answered three times, with
    the fitted model's probabilities."""
    now = time.time()
    answers = [{"worker_id": new_id("acct"), "answer": {"label": label},
                "assignment_id": new_assignment_id(job_id, item_id, now + n, 1),
                "leased_at": now + n, "submitted_at": now + n + 12.5, "instruction_version": 1}
               for n, label in enumerate(("positive", "positive", "neutral"))]
    return result_line(aggregate_item(item_id, "categorical",
                                      {"labels": LABELS}, answers,
                                      f"review-{item_id}",
                                      Posterior("dawid_skene", LABELS, [0.91234, 0.01766, 0.07])))


def test_a_result_row_is_one_write_unit_and_reads_back_as_written(p):
    # GIVEN a line over 1 KB as JSON (two write units stored as it is)
    job_id = new_id("job")
    lines = [_line(job_id, f"{n:06d}") for n in range(3)]
    assert all(len(ResultModel(job_id, line["item_id"], body=line).serialize()["body"]["S"])
               > 1024 for line in lines)
    # WHEN the rows are written
    p.results.put_results(job_id, lines)
    # THEN each row as stored is under 1 KB, as DynamoDB sizes it
    for line in lines:
        raw = ResultModel._get_connection().get_item(f"{job_id}#00000", line["item_id"],
                                                     consistent_read=True)["Item"]
        assert item_size(raw) <= 1024
    # AND a page reads the lines back as they were made
    assert p.results.page(job_id, 10, None, 3).entries == lines


def test_a_row_written_before_rows_were_compressed_still_reads(p):
    # GIVEN a row holding its line in body, under the bare job id (before the buckets)
    job_id = new_id("job")
    line = _line(job_id, "000001")
    ResultModel(job_id, line["item_id"], body=line).save()
    # WHEN the job's results are read THEN the line is there as it was
    assert p.results.page(job_id, 10, None, 2).entries == [line]


# --- batched writes: throttling and unprocessed items ---------------------------------------

def _results_client() -> Any:
    return ResultModel._get_connection().connection.client


def _read_all(p: Any, job_id: str, item_count: int) -> list[dict[str, Any]]:
    return p.results.page(job_id, 1000, None, item_count).entries


def _leaving_unprocessed(real: Any, keep: list[int | None]) -> tuple[Any, list[int]]:
    """A BatchWriteItem that writes only the first keep[n] rows of its n-th call (all of them
    once keep runs out, or None: none) and hands back the rest as UnprocessedItems."""
    sizes: list[int] = []

    def call(name: str, params: dict) -> dict:
        if name != "BatchWriteItem":
            return real(name, params)
        (table, requests), = params["RequestItems"].items()
        sizes.append(len(requests))
        kept = keep[len(sizes) - 1] if len(sizes) <= len(keep) else len(requests)
        kept = 0 if kept is None else kept
        if kept:
            real(name, {**params, "RequestItems": {table: requests[:kept]}})
        left = requests[kept:]
        return {"UnprocessedItems": {table: left} if left else {}}
    return call, sizes


def test_unprocessed_rows_are_sent_again_after_growing_waits_until_written(p, monkeypatch):
    # GIVEN 30 lines (two batches) and DynamoDB leaving rows of the first batch unprocessed
    # twice (20 of 25 written, then 3 of the 5 left), then taking everything
    job_id = new_id("job")
    lines = [{"item_id": f"{n:06d}", "answer": {"label": "yes"}} for n in range(30)]
    client = _results_client()
    call, sizes = _leaving_unprocessed(client._make_api_call, [20, 3])
    monkeypatch.setattr(client, "_make_api_call", call)
    waits: list[float] = []
    results = DynamoResults(sleep=waits.append, jitter=lambda: 1.0)
    # WHEN the lines are written
    results.put_results(job_id, lines)
    # THEN the unprocessed rows were sent again, after a wait that doubled, and every row is in
    assert sizes == [25, 5, 2, 5]
    assert waits == [BACKOFF_SECONDS, 2 * BACKOFF_SECONDS]
    assert _read_all(p, job_id, 30) == lines
    # AND a repeat of the whole write (the stage run again) leaves the same rows
    results.put_results(job_id, lines)
    assert _read_all(p, job_id, 30) == lines


def test_rows_left_unprocessed_every_time_are_a_transient_error(p, monkeypatch):
    # GIVEN DynamoDB leaving every row unprocessed, every time
    job_id = new_id("job")
    client = _results_client()
    call, sizes = _leaving_unprocessed(client._make_api_call, [None] * 100)
    monkeypatch.setattr(client, "_make_api_call", call)
    waits: list[float] = []
    # WHEN a shard's lines are written THEN after UNPROCESSED_ROUNDS sends with capped, growing
    # waits it is a TransientError (which the aggregation stage's Retry runs again)
    with pytest.raises(TransientError):
        DynamoResults(sleep=waits.append, jitter=lambda: 1.0).put_results(
            job_id, [{"item_id": "000000", "answer": None}])
    assert len(sizes) == UNPROCESSED_ROUNDS
    assert waits == sorted(waits) and len(waits) == UNPROCESSED_ROUNDS - 1
    assert waits[0] == BACKOFF_SECONDS and max(waits) <= BACKOFF_CAP_SECONDS
    _assert_shard_stage_retries(TransientError.__name__)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@contextlib.contextmanager
def _throttled(times: int) -> Iterator[list[str]]:
    """DynamoDB answers the first `times` BatchWriteItem requests with HTTP 400 throttling, as
    botocore sees it on the wire (so its own retries run); the list records every send."""
    sends: list[str] = []
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#"
                                 "ProvisionedThroughputExceededException",
                       "message": "The level of configured provisioned throughput was exceeded"})

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        sends.append(request.url)
        if len(sends) > times:
            return None
        return AWSResponse(request.url, 400, {"x-amzn-RequestId": "throttled",
                                              "Content-Type": "application/x-amz-json-1.0"},
                           _Body(body.encode()))

    events = _results_client().meta.events
    events.register_first("before-send.dynamodb.BatchWriteItem", before_send,
                          unique_id="throttled-results")
    try:
        yield sends
    finally:
        events.unregister("before-send.dynamodb.BatchWriteItem", unique_id="throttled-results")


def test_a_throttled_batch_is_retried_by_botocore_and_completes(p, monkeypatch):
    # GIVEN DynamoDB throttling the first two sends of a batch (botocore's waits recorded)
    job_id = new_id("job")
    lines = [{"item_id": f"{n:06d}", "answer": {"label": "no"}} for n in range(3)]
    waits: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", waits.append)
    # WHEN the lines are written
    with _throttled(2) as sends:
        p.results.put_results(job_id, lines)
    # THEN botocore sent the batch again after each throttle, and every row is in
    assert len(sends) == 3 and len(waits) == 2
    assert _read_all(p, job_id, 3) == lines


def test_a_batch_throttled_past_botocores_retries_is_a_transient_error(p, monkeypatch):
    # GIVEN DynamoDB throttling every send
    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda seconds: None)
    # WHEN a batch is written THEN botocore tried it 1 + max_retry_attempts times, and the
    # stage sees a TransientError (its Retry runs the stage again)
    with _throttled(10_000) as sends, pytest.raises(TransientError):
        p.results.put_results(new_id("job"), [{"item_id": "000000", "answer": None}])
    assert len(sends) == 1 + ResultModel.Meta.max_retry_attempts
    _assert_shard_stage_retries(TransientError.__name__)


def _assert_shard_stage_retries(error: str) -> None:
    """Every AggregateShard state of the state machine (inline and distributed Map) retries
    the error with back-off."""
    definition = json.loads((ROOT / "infra" / "aggregation.asl.json").read_text())
    found = []

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            if name == "AggregateShard":
                found.append(state)
            if "ItemProcessor" in state:
                visit(state["ItemProcessor"]["States"])
    visit(definition["States"])
    assert len(found) == 2
    for state in found:
        retries = [rule for rule in state["Retry"] if error in rule["ErrorEquals"]]
        assert retries and retries[0]["MaxAttempts"] >= 2 and retries[0]["BackoffRate"] > 1
