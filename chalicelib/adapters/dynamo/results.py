"""Aggregated result lines, one item per row, spread over a job's partitions
(chalicelib.domain.result_rows: the layout and how a page walks it).

Rows are written with BatchWriteItem, 25 at a time. Throttling of a call is retried by
botocore (standard mode, exponential back-off with jitter, ResultModel.Meta.max_retry_attempts
retries); items DynamoDB leaves unprocessed, which neither botocore nor pynamodb backs off
for, are sent again here with capped exponential back-off and full jitter. What is still
throttled or unprocessed after that is a TransientError: the stage's Retry
(infra/aggregation.asl.json) runs it again. Every write is a whole row derived from the
line, so a repeat writes the same rows.
"""
from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.cursors import decode_position, encode_position
from chalicelib.adapters.dynamo.writes import raise_transient
from chalicelib.adapters.models import ResultModel
from chalicelib.domain.ports import Page
from chalicelib.domain.result_rows import bucket_count, bucket_of, partition_key, walk
from chalicelib.errors import TransientError

BATCH_ROWS = 25            # BatchWriteItem's limit
UNPROCESSED_ROUNDS = 8     # sends of a batch's unprocessed rows before giving up
BACKOFF_SECONDS = 0.05     # the first wait before re-sending unprocessed rows, doubled each time
BACKOFF_CAP_SECONDS = 5.0


def pack(line: dict[str, Any]) -> bytes:
    """A result line as stored: its compact JSON, compressed."""
    return zlib.compress(json.dumps(line, separators=(",", ":")).encode("utf-8"), 6)


def unpack(record: ResultModel) -> dict[str, Any]:
    """A stored result line (a row written before lines were compressed holds it in body)."""
    if record.packed is not None:
        line: dict[str, Any] = json.loads(zlib.decompress(record.packed))
        return line
    return dict(record.body or {})


def row(job_id: str, line: dict[str, Any], id_space: int = 0) -> ResultModel:
    """The stored row of a result line, in its bucket's partition."""
    item_id = line["item_id"]
    return ResultModel(partition_key(job_id, bucket_of(item_id, id_space)), item_id,
                       packed=pack(line))


def batches(job_id: str, results: Iterable[dict[str, Any]], id_space: int = 0
            ) -> Iterator[list[dict[str, Any]]]:
    """Serialized rows, BATCH_ROWS at a time; an item given twice is written once (its last
    line), as a batch may not name one key twice."""
    pending: dict[str, dict[str, Any]] = {}
    for line in results:
        pending.pop(line["item_id"], None)
        pending[line["item_id"]] = row(job_id, line, id_space).serialize()
        if len(pending) == BATCH_ROWS:
            yield list(pending.values())
            pending = {}
    if pending:
        yield list(pending.values())


class DynamoResults:
    """Aggregated results."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self._sleep = sleep
        self._jitter = jitter

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]],
                    id_space: int = 0) -> None:
        """Write result lines in batches (deterministic, so a repeat writes the same);
        TransientError if DynamoDB stays busy."""
        for batch in batches(job_id, results, id_space):
            self._write(batch)

    def _write(self, items: list[dict[str, Any]]) -> None:
        connection = ResultModel._get_connection()
        table = ResultModel.Meta.table_name
        for attempt in range(UNPROCESSED_ROUNDS):
            if attempt:
                self._sleep(self._jitter() * min(BACKOFF_CAP_SECONDS,
                                                 BACKOFF_SECONDS * 2 ** (attempt - 1)))
            try:
                data = connection.batch_write_item(put_items=items) or {}
            except PynamoDBException as error:
                raise_transient(error)
                raise
            left = data.get("UnprocessedItems", {}).get(table, [])
            items = [request["PutRequest"]["Item"] for request in left]
            if not items:
                return
        raise TransientError(f"the database left {len(items)} result rows unprocessed; "
                             "try again")

    def page(self, job_id: str, limit: int, cursor: str | None, id_space: int) -> Page:
        """A page of result lines in item order (chalicelib.domain.result_rows.walk): it may
        be short, or empty, and still have a cursor; the last page has none."""
        buckets = bucket_count(id_space)
        start = decode_position(cursor, job_id, buckets)

        def query(partition: str, size: int, after: str | None
                  ) -> tuple[list[dict[str, Any]], str | None]:
            begin = None if after is None else {"job_id": {"S": partition},
                                                "item_id": {"S": after}}
            result = ResultModel.query(partition, limit=size, last_evaluated_key=begin)
            lines = [unpack(record) for record in result]
            last = result.last_evaluated_key
            return lines, None if not last else last["item_id"]["S"]

        lines, position = walk(job_id, buckets, limit, start, query)
        return Page(lines, encode_position(job_id, position))
