"""Aggregated result lines, one item per line."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.writes import raise_transient
from chalicelib.adapters.models import ResultModel
from chalicelib.domain.ports import Page


class DynamoResults:
    """Aggregated results."""

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]]) -> None:
        """Batch-write result lines (deterministic, so a repeat writes the same)."""
        try:
            with ResultModel.batch_write() as batch:
                for line in results:
                    batch.save(ResultModel(job_id, line["item_id"], body=line))
        except PynamoDBException as error:
            raise_transient(error)
            raise

    def page(self, job_id: str, limit: int, cursor: str | None) -> Page:
        """A page of result lines in item order."""
        start = decode_cursor(cursor, {"job_id": "S", "item_id": "S"}, {"job_id": job_id})
        result = ResultModel.query(job_id, limit=limit, last_evaluated_key=start)
        entries = [record.body for record in result]
        return Page(entries, encode_cursor(result.last_evaluated_key))
