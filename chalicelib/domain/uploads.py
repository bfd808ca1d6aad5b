"""Item files uploaded to the bucket: the terms of an upload, cutting an object into byte
ranges, the lines that start in a range, and each line read as an item by the rules of
inline items (chalicelib.domain.jobs.parse_item).

A range's lines are those that start in it: a line crossing the range's end is read whole
by the range it starts in (the read goes MAX_LINE_BYTES past the end), and the next range
skips the part it holds of it. A line is numbered from 1 in the file; a range knows only its
own lines, so a file's line numbers are its ranges' line counts summed (at the end of the
ingest). An item's id is the byte offset its line starts at, so a range read again makes the
same ids, and a file of any size numbers its items without a ceiling.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.errors import InvalidRequest, PayloadTooLarge

FORMATS = ("jsonl", "csv")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
UPLOAD_LINK_SECONDS = 3600
# A range is what one ingest message reads and writes: ~160 items of 200 bytes (a conditional
# PutItem each), so ten of them (the consumer's batch) stay well within its 60 s.
RANGE_BYTES = 32 * 1024
# How far past its end a range reads at first for the line crossing it; a longer one is read
# again up to MAX_LINE_BYTES past the end.
READ_SLACK = 4 * 1024
# A line longer than this is a bad line (an item's data is at most 8 KiB as JSON; a line may
# escape it, and carries its external id).
MAX_LINE_BYTES = 64 * 1024
# Bad lines listed in the report (every bad line is counted); also what a range keeps.
BAD_LINES_LISTED = 100
# Range messages the planner sends per call; past that it queues itself to send the rest.
PLAN_BATCH = 1000
EXTERNAL_ID = "external_id"


@dataclass(frozen=True)
class Line:
    """A line that starts in a range: its byte offset, its number among the range's lines
    (from 0) and its text (None when it is longer than MAX_LINE_BYTES)."""

    offset: int
    index: int
    text: bytes | None


@dataclass(frozen=True)
class BadLine:
    """A line that is not an item: where it is and what is wrong, naming the field."""

    offset: int
    index: int
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Stored form (index is within its range until the report numbers it)."""
        return {"offset": self.offset, "index": self.index, "message": self.message,
                "field": self.field}


def parse_upload_request(body: Any) -> tuple[str, int]:
    """The format and declared size of a requested upload."""
    body = v.require_object(body)
    v.reject_unknown(body, ("format", "bytes"))
    fmt = v.choice(body, "format", FORMATS)
    size = body.get("bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"an upload is at most {MAX_UPLOAD_BYTES} bytes", field="bytes")
    return fmt, v.integer(body, "bytes", low=1, high=MAX_UPLOAD_BYTES)


def range_count(size: int) -> int:
    """How many ranges an object of `size` bytes is read in."""
    return max(1, math.ceil(size / RANGE_BYTES))


def byte_range(index: int, size: int) -> tuple[int, int]:
    """The bytes [start, end) whose lines range `index` reads."""
    start = index * RANGE_BYTES
    return start, min(size, start + RANGE_BYTES)


def read_span(start: int, end: int, size: int, reach: int | None = None) -> tuple[int, int]:
    """The bytes [first, last) to fetch for the lines starting in [start, end): the byte
    before start (is a line starting there?) and `reach` bytes past end for the last line
    (MAX_LINE_BYTES + 1, enough for any line that may be read, unless given)."""
    reach = MAX_LINE_BYTES + 1 if reach is None else reach
    return max(0, start - 1), min(size, end + reach)


def lines_starting_in(data: bytes, base: int, start: int, end: int, size: int) -> list[Line]:
    """The lines that start in [start, end) of an object of `size` bytes, from `data`, its
    bytes from offset `base` on (read_span's). A line ends at "\\n" (a "\\r" before it is
    dropped) or at the end of the object."""
    stop = base + len(data)
    pos = start
    if start > 0 and data[start - 1 - base:start - base] != b"\n":
        newline = data.find(b"\n", start - base)
        if newline < 0:
            return []  # the line running through the range started before it
        pos = base + newline + 1
    lines: list[Line] = []
    while pos < end and pos < size:
        newline = data.find(b"\n", pos - base)
        if newline < 0 and stop < size:
            lines.append(Line(pos, len(lines), None))  # runs past what a line may hold
            break
        line_end = size if newline < 0 else base + newline
        text = data[pos - base:line_end - base]
        if text.endswith(b"\r"):
            text = text[:-1]
        lines.append(Line(pos, len(lines), text if len(text) <= MAX_LINE_BYTES else None))
        pos = line_end + 1
    return lines


def csv_header(data: bytes) -> list[str]:
    """A CSV file's column names from its first bytes (its first line)."""
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    row = next(csv.reader([first]), [])
    if not row or any(not name.strip() for name in row) or len(set(row)) != len(row):
        raise InvalidRequest("the CSV file's first line must name its columns, each once",
                             field="items_from")
    return row


def entry_of(fmt: str, text: bytes, header: list[str] | None) -> Mapping[str, Any]:
    """The item entry a line holds, as an inline item would be posted: a JSON object per
    JSON Lines line; a CSV row's columns as the item's data (text values), a column named
    external_id as its external id. InvalidRequest when the line is not one."""
    try:
        decoded = text.decode("utf-8").removeprefix("\ufeff")  # a byte order mark
    except UnicodeDecodeError:
        raise InvalidRequest("the line is not UTF-8") from None
    if fmt == "jsonl":
        try:
            parsed = json.loads(decoded)
        except ValueError:
            raise InvalidRequest("the line is not JSON") from None
        if not isinstance(parsed, Mapping):
            raise InvalidRequest("the line must be a JSON object")
        return parsed
    assert header is not None
    row = next(csv.reader([decoded]), [])
    if len(row) != len(header):
        raise InvalidRequest(f"the row has {len(row)} columns; the header names {len(header)}")
    data = {name: value for name, value in zip(header, row) if name != EXTERNAL_ID}
    entry: dict[str, Any] = {"data": data}
    if EXTERNAL_ID in header and row[header.index(EXTERNAL_ID)]:
        entry[EXTERNAL_ID] = row[header.index(EXTERNAL_ID)]
    return entry


def pilot_share(pilot: int, ranges: int, index: int) -> int:
    """How many pilot items range `index` of `ranges` picks, so the ranges together pick
    `pilot`, spread over the file."""
    return (index + 1) * pilot // ranges - index * pilot // ranges
