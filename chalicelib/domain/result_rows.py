"""Where a job's result rows live and how a page walks them.

A job's result rows are spread over partitions of consecutive item numbers: item number n
(item ids are numbers with leading zeros, chalicelib.domain.ids.item_id) lives in bucket
n // width, under the partition key `<job_id>#<bucket, 5 digits>`, sorted by item id within
it. The numbers are drawn from the job's id space (Job.id_space: its item count for items
posted inline, its file's size for an uploaded file, whose item ids are its lines' byte
offsets), and the width is BUCKET_ITEMS numbers, or more so that a job has at most
MAX_BUCKETS partitions. A job of a million items has a thousand partitions, and the shards an
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
MAX_BUCKETS = 1000
PARTS_PER_PAGE = 16
LEGACY = -1


@dataclass(frozen=True)
class Position:
    """Where the next page starts: in bucket `bucket`, after item id `after` (None: from the
    bucket's first row)."""

    bucket: int
    after: str | None = None


def bucket_width(id_space: int) -> int:
    """How many item numbers one bucket of a job with that id space covers."""
    return max(BUCKET_ITEMS, -(-id_space // MAX_BUCKETS))


def bucket_of(item_id: str, id_space: int = 0) -> int:
    """The bucket of an item id (a number of the job's id space; a space of at most a million
    numbers has buckets of BUCKET_ITEMS, as does 0)."""
    return int(item_id) // bucket_width(id_space)


def bucket_count(id_space: int) -> int:
    """How many buckets a job with that id space spreads its rows over."""
    return max(1, -(-id_space // bucket_width(id_space)))


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
