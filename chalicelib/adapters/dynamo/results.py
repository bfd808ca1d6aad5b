"""Aggregated result lines, one item per line."""
from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.writes import raise_transient
from chalicelib.adapters.models import ResultModel
from chalicelib.domain.ports import Page


def pack(line: dict[str, Any]) -> bytes:
    """A result line as stored: its compact JSON, compressed."""
    return zlib.compress(json.dumps(line, separators=(",", ":")).encode("utf-8"), 6)


def unpack(record: ResultModel) -> dict[str, Any]:
    """A stored result line (a row written before lines were compressed holds it in body)."""
    if record.packed is not None:
        line: dict[str, Any] = json.loads(zlib.decompress(record.packed))
        return line
    return dict(record.body or {})


class DynamoResults:
    """Aggregated results."""

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]]) -> None:
        """Batch-write result lines (deterministic, so a repeat writes the same)."""
        try:
            with ResultModel.batch_write() as batch:
                for line in results:
                    batch.save(ResultModel(job_id, line["item_id"], packed=pack(line)))
        except PynamoDBException as error:
            raise_transient(error)
            raise

    def page(self, job_id: str, limit: int, cursor: str | None) -> Page:
        """A page of result lines in item order."""
        start = decode_cursor(cursor, {"job_id": "S", "item_id": "S"}, {"job_id": job_id})
        result = ResultModel.query(job_id, limit=limit, last_evaluated_key=start)
        entries = [unpack(record) for record in result]
        return Page(entries, encode_cursor(result.last_evaluated_key))
