"""Where a job's result rows live and how a page walks them.

A job's result rows are spread over partitions of BUCKET_ITEMS items each: item number n
(item ids are the job's numbers with leading zeros, chalicelib.domain.ids.item_id) lives in
bucket n // BUCKET_ITEMS, under the partition key `<job_id>#<bucket, 5 digits>`, sorted by item
id within it. A job of a million items has a thousand partitions, and the shards an
aggregation runs side by side (each a run of consecutive items) write to partitions of their
own, so no partition takes more than a few writers at once.

A page walks the partitions in bucket order and each one in item order; since the buckets
are ranges of item numbers and every id of a job has one width, pages come in item order
across the whole job. Rows written before the buckets (the whole job under the bare job id)
are walked first, as bucket LEGACY; a job published since has none there.

A page stops early (with a cursor) after querying PARTS_PER_PAGE partitions, so a request
costs a bounded number of queries however sparse the rows are (a pilot round fills a few
rows of each bucket): a page may be shorter than asked for, or empty, and still have a next
cursor; only a page without one is the last.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUCKET_ITEMS = 1000
PARTS_PER_PAGE = 16
LEGACY = -1


@dataclass(frozen=True)
class Position:
    """Where the next page starts: in bucket `bucket`, after item id `after` (None: from the
    bucket's first row)."""

    bucket: int
    after: str | None = None


def bucket_of(item_id: str) -> int:
    """The bucket of an item id (a job's item number)."""
    return int(item_id) // BUCKET_ITEMS


def bucket_count(item_count: int) -> int:
    """How many buckets a job of item_count items spreads its rows over."""
    return max(1, -(-item_count // BUCKET_ITEMS))


def partition_key(job_id: str, bucket: int) -> str:
    """The partition key of one bucket of a job's rows (the bare job id for LEGACY)."""
    return job_id if bucket == LEGACY else f"{job_id}#{bucket:05d}"


# query(partition key, limit, after) -> (rows, last item id if the partition may hold more)
Query = Callable[[str, int, "str | None"], "tuple[list[Any], str | None]"]


def walk(job_id: str, buckets: int, limit: int, start: Position | None, query: Query
         ) -> tuple[list[Any], Position | None]:
    """One page of rows from start (None: the job's first row) and where the next starts
    (None after the last bucket)."""
    position = start or Position(LEGACY)
    rows: list[Any] = []
    for _ in range(PARTS_PER_PAGE):
        if position.bucket >= buckets or len(rows) == limit:
            break
        found, last = query(partition_key(job_id, position.bucket), limit - len(rows),
                            position.after)
        rows += found
        if last is not None:
            return rows, Position(position.bucket, last)
        position = Position(position.bucket + 1)
    return rows, position if position.bucket < buckets else None
