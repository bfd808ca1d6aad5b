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
MIB = 1024 * 1024
GIB = 1024 * MIB
# The ceiling of an item file: a job's 1,000,000 items at their largest (8 KiB of data each,
# with their external ids) fit in it; and of one presigned PUT (larger files go in parts).
MAX_UPLOAD_BYTES = 10 * GIB
MAX_SINGLE_PUT_BYTES = GIB
UPLOAD_LINK_SECONDS = 3600
# Above this a file goes as a multipart upload unless the client asks for one PUT.
MULTIPART_ABOVE_BYTES = 64 * MIB
# S3's bounds on a part (all but the last at least MIN_PART_BYTES) and on a part count.
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * GIB
MAX_PARTS = 10_000
PART_BYTES = 16 * MIB
# Presigned part URLs in one answer: a 10 GiB file is 640 parts, asked for in batches.
PART_URLS_PER_REQUEST = 100
# A range is what one ingest message reads and writes: ~160 items of 200 bytes (a conditional
# PutItem each), so ten of them (the consumer's batch) stay well within its 60 s.
RANGE_BYTES = 32 * 1024
# At most this many ranges a file: the last range's step reads every range's summary (a
# BatchGetItem per 100), so a file above 128 MiB is read in larger ranges; a job's million
# items then come about 250 to a range.
MAX_RANGES = 4096
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


@dataclass(frozen=True)
class UploadRequest:
    """A requested upload: its format and declared size, and for a multipart upload its
    part size (None for one presigned PUT)."""

    format: str
    bytes: int
    part_bytes: int | None

    @property
    def parts(self) -> int:
        """How many parts a multipart upload is sent in (0 for one PUT)."""
        return part_count(self.bytes, self.part_bytes) if self.part_bytes else 0


def parse_upload_request(body: Any) -> UploadRequest:
    """The format, declared size and way of a requested upload: in parts above
    MULTIPART_ABOVE_BYTES or when asked ("multipart": true), one PUT otherwise (at most
    MAX_SINGLE_PUT_BYTES); a part size the client names must keep within S3's bounds."""
    body = v.require_object(body)
    v.reject_unknown(body, ("format", "bytes", "multipart", "part_bytes"))
    fmt = v.choice(body, "format", FORMATS)
    size = body.get("bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"an upload is at most {MAX_UPLOAD_BYTES} bytes (10 GiB)",
                              field="bytes")
    size = v.integer(body, "bytes", low=1, high=MAX_UPLOAD_BYTES)
    multipart = body.get("multipart")
    if multipart is not None and not isinstance(multipart, bool):
        raise InvalidRequest("'multipart' must be true or false", field="multipart")
    if multipart is None:
        multipart = size > MULTIPART_ABOVE_BYTES or "part_bytes" in body
    if not multipart:
        if "part_bytes" in body:
            raise InvalidRequest("'part_bytes' is for a multipart upload", field="part_bytes")
        if size > MAX_SINGLE_PUT_BYTES:
            raise PayloadTooLarge(f"one PUT is at most {MAX_SINGLE_PUT_BYTES} bytes; a bigger "
                                  "file goes in parts (\"multipart\": true)", field="bytes")
        return UploadRequest(fmt, size, None)
    if "part_bytes" not in body:
        return UploadRequest(fmt, size, default_part_bytes(size))
    part = v.integer(body, "part_bytes", low=MIN_PART_BYTES, high=MAX_PART_BYTES)
    if part_count(size, part) > MAX_PARTS:
        raise InvalidRequest(f"a file of {size} bytes in parts of {part} is more than "
                             f"{MAX_PARTS} parts; ask for parts of at least "
                             f"{math.ceil(size / MAX_PARTS)} bytes", field="part_bytes")
    return UploadRequest(fmt, size, part)


def default_part_bytes(size: int) -> int:
    """PART_BYTES, or a whole number of MiB large enough for MAX_PARTS parts to hold size."""
    return max(PART_BYTES, math.ceil(size / MAX_PARTS / MIB) * MIB)


def part_count(size: int, part_bytes: int) -> int:
    """How many parts a file of size bytes is sent in (the last may be short)."""
    return max(1, math.ceil(size / part_bytes))


def parse_part_numbers(body: Any, parts: int) -> list[int]:
    """The part numbers a client asks URLs for ({"parts": [1, 2, ...]}): each from 1 to
    parts, at most PART_URLS_PER_REQUEST of them, in the order asked, each once."""
    body = v.require_object(body)
    v.reject_unknown(body, ("parts",))
    numbers = body.get("parts")
    if not isinstance(numbers, list) or not numbers:
        raise InvalidRequest("'parts' must be a list of part numbers", field="parts")
    if len(numbers) > PART_URLS_PER_REQUEST:
        raise InvalidRequest(f"at most {PART_URLS_PER_REQUEST} parts a request", field="parts")
    for number in numbers:
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= parts:
            raise InvalidRequest(f"a part number is a whole number from 1 to {parts}",
                                 field="parts")
    if len(set(numbers)) != len(numbers):
        raise InvalidRequest("each part number once", field="parts")
    return list(numbers)


def parse_completion(body: Any, parts: int) -> dict[int, str]:
    """The ETags a client names for its parts ({"parts": [{"part_number", "etag"}]}), or
    none (an empty body: the parts S3 holds are used)."""
    if body is None:
        return {}
    body = v.require_object(body)
    v.reject_unknown(body, ("parts",))
    entries = body.get("parts", [])
    if not isinstance(entries, list) or len(entries) > parts:
        raise InvalidRequest(f"'parts' must be a list of at most {parts} "
                             "{\"part_number\", \"etag\"}", field="parts")
    named: dict[int, str] = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InvalidRequest("each part is {\"part_number\", \"etag\"}",
                                 field=f"parts[{k}]")
        v.reject_unknown(entry, ("part_number", "etag"), f"parts[{k}].")
        number = v.integer(entry, "part_number", low=1, high=parts, prefix=f"parts[{k}].")
        etag = v.text(entry, "etag", max_length=128, prefix=f"parts[{k}].")
        if number in named:
            raise InvalidRequest("each part number once", field=f"parts[{k}].part_number")
        named[number] = etag
    return named


def missing_parts(held: Mapping[int, Any], parts: int) -> list[int]:
    """The part numbers from 1 to parts that are not held."""
    return [number for number in range(1, parts + 1) if number not in held]


def range_bytes(size: int) -> int:
    """The bytes of each range of an object of `size` bytes: RANGE_BYTES, or more when that
    would make over MAX_RANGES ranges."""
    return max(RANGE_BYTES, math.ceil(size / MAX_RANGES))


def range_count(size: int) -> int:
    """How many ranges an object of `size` bytes is read in (at most MAX_RANGES)."""
    return max(1, math.ceil(size / range_bytes(size)))


def byte_range(index: int, size: int) -> tuple[int, int]:
    """The bytes [start, end) whose lines range `index` reads."""
    step = range_bytes(size)
    start = index * step
    return start, min(size, start + step)


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
