"""The MTurk-compatible API's own records (HIT types, HITs' settings, request tokens,
qualification types and grants, worker blocks, notification settings) in the catalog table.

Every record is `kind` (the partition: a record type and its owner, e.g. `mturk#qual#<client>`)
and `name` (its id within), with a JSON body and a version that each replacement raises, so
concurrent writers of one record cannot lose each other's change. A list is a query of one
partition, a page at a time; no list reads a table.
"""
from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from chalicelib.adapters.aws_errors import error_code
from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.models import MTurkModel
from chalicelib.domain.ports import MTurkRecord


def _record(r: MTurkModel) -> MTurkRecord:
    return MTurkRecord(r.kind, r.name, dict(r.body or {}), float(r.created_at),
                       int(r.version or 1))


def _failed_condition(error: Exception) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


class DynamoMTurkRecords:
    """MTurkRecords on DynamoDB."""

    def get(self, kind: str, name: str) -> MTurkRecord | None:
        """One record (a strongly consistent read), or None."""
        try:
            return _record(MTurkModel.get(kind, name, consistent_read=True))
        except MTurkModel.DoesNotExist:
            return None

    def put_new(self, kind: str, name: str, body: dict[str, Any], now: float) -> bool:
        """Create a record; False (nothing written) when one with its key exists."""
        try:
            MTurkModel(kind, name, body=body, created_at=now, version=1).save(
                condition=MTurkModel.name.does_not_exist())
        except PutError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def replace(self, record: MTurkRecord, body: dict[str, Any]) -> bool:
        """Replace a record's body if it is still at the version read; False otherwise."""
        try:
            MTurkModel(record.kind, record.name, body=body, created_at=record.created_at,
                  version=record.version + 1).save(condition=MTurkModel.version == record.version)
        except PutError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def delete(self, kind: str, name: str) -> bool:
        """Delete a record; False when there was none."""
        try:
            MTurkModel(kind, name).delete(condition=MTurkModel.name.exists())
        except DeleteError as error:
            if _failed_condition(error):
                return False
            raise
        return True

    def page(self, kind: str, limit: int, cursor: str | None
             ) -> tuple[list[MTurkRecord], str | None]:
        """A page of one partition's records in name order, and the cursor of the next page
        (None after the last)."""
        start = decode_cursor(cursor, {"kind": "S", "name": "S"}, {"kind": kind})
        result = MTurkModel.query(kind, limit=limit, last_evaluated_key=start)
        records = [_record(r) for r in result]
        return records, encode_cursor(result.last_evaluated_key)
