"""The CSV download, made beside the JSON Lines one: AggregateShard writes its shard's rows as
a CSV part next to its JSON Lines part, and Publish streams the parts, in shard order and
under one header, into the job's results CSV (multipart for big rounds, as the JSON Lines).
Neither holds more than a shard in memory; both write objects under keys derived from the
job, the round and the shard, so a repeated stage writes the same objects again."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.domain import result_csv
from chalicelib.domain.keys import csv_part_key, results_csv_key
from chalicelib.handlers.platform import Platform

CSV_TYPE = "text/csv; charset=utf-8"


def write_csv_part(p: Platform, job_id: str, round_no: int, shard: int,
                   lines: list[dict[str, Any]]) -> None:
    """A shard's result lines as CSV rows (no header)."""
    p.blobs.put_text(csv_part_key(job_id, round_no, shard), result_csv.rows(lines), CSV_TYPE)


def publish_csv(p: Platform, job_id: str, round_no: int, shard_count: int) -> str:
    """Stream the header and the round's CSV parts into the job's results CSV; its key."""
    def parts() -> Iterator[str]:
        yield result_csv.header()
        for shard in range(shard_count):
            yield p.blobs.get_text(csv_part_key(job_id, round_no, shard))

    key = results_csv_key(job_id)
    p.blobs.put_stream(key, parts(), CSV_TYPE)
    return key
