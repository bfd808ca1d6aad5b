"""A job's result rows over its partitions (chalicelib.domain.result_rows): a page queries a
bounded number of partitions, the cursor stays small, and following it walks a million-item
job's rows once each, in item order, whatever the page size."""
from __future__ import annotations

from bisect import bisect_right

from chalicelib.domain import result_rows
from chalicelib.domain.ids import item_id
from chalicelib.domain.result_rows import LEGACY, PARTS_PER_PAGE, Position, walk
from tests.fakes import make_platform

JOB = "job_0123456789abcdef"


class Table:
    """Rows by partition, queried as DynamoDB does (a page ends with its last key when the
    limit stopped it); counts the queries."""

    def __init__(self, items: list[str]) -> None:
        self.parts: dict[str, list[str]] = {}
        for item in items:
            key = result_rows.partition_key(JOB, result_rows.bucket_of(item))
            self.parts.setdefault(key, []).append(item)
        self.queries: list[str] = []

    def query(self, partition: str, limit: int, after: str | None):
        self.queries.append(partition)
        keys = self.parts.get(partition, [])
        start = 0 if after is None else bisect_right(keys, after)
        found = keys[start:start + limit]
        return found, found[-1] if len(found) == limit else None


def _walk_all(table: Table, buckets: int, limit: int) -> tuple[list[str], list[int]]:
    rows: list[str] = []
    queried: list[int] = []
    position = None
    while True:
        before = len(table.queries)
        page, position = walk(JOB, buckets, limit, position, table.query)
        assert len(page) <= limit
        queried.append(len(table.queries) - before)
        rows += page
        if position is None:
            return rows, queried


def test_a_million_item_job_is_walked_once_in_item_order_at_any_page_size():
    # GIVEN a 1,000,000-item job whose rows are every 37th item (27,028 rows, 1,000 partitions)
    items = [item_id(n, 1_000_000) for n in range(0, 1_000_000, 37)]
    table = Table(items)
    buckets = result_rows.bucket_count(1_000_000)
    assert buckets == 1000 and len(table.parts) == 1000
    for limit in (1, 100, 1000):
        # WHEN it is walked `limit` rows at a time
        rows, queried = _walk_all(table, buckets, limit)
        # THEN every row comes once, in item order, and no page queried more than 16 partitions
        assert rows == items, limit
        assert max(queried) <= PARTS_PER_PAGE
        table.queries.clear()


def test_the_page_after_the_last_row_of_a_partition_starts_the_next_one():
    # GIVEN a 2,000-item job with its 1,000 first rows and one more
    items = [item_id(n, 2000) for n in range(1001)]
    table = Table(items)
    # WHEN a page of 1,000 ends exactly at its partition's last row
    first, position = walk(JOB, 2, 1000, None, table.query)
    # THEN the next starts after that row, and holds the rest
    assert first == items[:1000] and position == Position(0, "000999")
    second, end = walk(JOB, 2, 1000, position, table.query)
    assert second == ["001000"] and end is None


def test_the_partitions_of_a_job():
    assert result_rows.partition_key(JOB, 7) == f"{JOB}#00007"
    assert result_rows.partition_key(JOB, LEGACY) == JOB
    assert [result_rows.bucket_of(i) for i in ("000000", "000999", "001000", "0999999")] \
        == [0, 0, 1, 999]
    assert [result_rows.bucket_count(n) for n in (0, 1, 1000, 1001, 1_000_000, 10_000_000)] \
        == [1, 1, 1, 2, 1000, 1000]


def test_an_uploaded_files_rows_are_walked_whole_over_at_most_max_buckets():
    # GIVEN the results of an uploaded job, whose item ids are its lines' byte offsets in a
    # 6 GB file (a million numbers or more apart from its item count)
    space = 6_000_000_000
    offsets = sorted({(n * 5_999_993) % space for n in range(2_000)} | {0, space - 1})
    lines = [{"item_id": item_id(offset, space), "answer": None} for offset in offsets]
    p = make_platform()
    p.results.put_results(JOB, list(reversed(lines)), space)
    # WHEN the results API walks them over the job's id space, 500 a page
    cursor, seen, pages = None, [], 0
    while True:
        page = p.results.page(JOB, 500, cursor, space)
        seen, cursor, pages = seen + page.entries, page.cursor, pages + 1
        if cursor is None:
            break
    # THEN every row comes back once, in file order, from at most MAX_BUCKETS partitions
    assert seen == lines
    assert result_rows.bucket_count(space) == result_rows.MAX_BUCKETS
    assert pages <= result_rows.MAX_BUCKETS // PARTS_PER_PAGE + 2


def test_a_results_cursor_stays_small_deep_into_a_big_job():
    # GIVEN the fakes' results of a 1,000,000-item job with rows near its end
    p = make_platform()
    lines = [{"item_id": item_id(n, 1_000_000), "answer": None} for n in range(999_990, 1_000_000)]
    p.results.put_results(JOB, lines)
    cursor, cursors, seen = None, [], []
    while True:
        page = p.results.page(JOB, 3, cursor, 1_000_000)
        seen += page.entries
        cursor = page.cursor
        if cursor is None:
            break
        cursors.append(cursor)
    # THEN every line came back, and every cursor (the last partition's included) is short
    assert seen == lines
    assert max(len(c) for c in cursors) < 200
