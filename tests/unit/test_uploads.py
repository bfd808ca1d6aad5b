"""Uploaded item files: byte ranges and the lines starting in them (chalicelib.domain.uploads),
and the upload, posting and ranged ingest handlers (chalicelib.handlers.uploads) on the fakes."""
from __future__ import annotations

import json
import random

import pytest

from chalicelib.domain import uploads as u
from chalicelib.domain.keys import upload_key
from chalicelib.domain.model import (
    ACTIVE, CALIBRATION, CLIENT, FAILED, INGESTING, PAUSED, PILOT, PRODUCTION,
)
from chalicelib.errors import InvalidRequest, NotFound, PayloadTooLarge
from chalicelib.handlers import accounts, jobs, rounds, uploads
from tests.fakes import FakeClock, ingest_all, make_platform


def _ranges_read(body: bytes) -> list[u.Line]:
    """Every line of body as the ranges read it, range after range."""
    size = len(body)
    found = []
    for index in range(u.range_count(size)):
        start, end = u.byte_range(index, size)
        first, last = u.read_span(start, end, size)
        found += u.lines_starting_in(body[first:last], first, start, end, size)
    return found


def _expected(body: bytes) -> list[tuple[int, bytes]]:
    """(offset, text) of each line of body, read whole."""
    lines, offset = [], 0
    for text in body.split(b"\n"):
        if offset < len(body):
            lines.append((offset, text.removesuffix(b"\r")))
        offset += len(text) + 1
    return lines


@pytest.mark.parametrize("seed", range(30))
def test_every_line_is_read_once_by_the_range_it_starts_in(monkeypatch, seed):
    # GIVEN ranges of 16 bytes and a file of lines of 0 to 40 bytes (many cross a range's
    # end, some end exactly on it, some are CRLF, the last may lack its newline)
    monkeypatch.setattr(u, "RANGE_BYTES", 16)
    rng = random.Random(seed)
    lines = [bytes(rng.choice(b"abc{}\"") for _ in range(rng.randrange(41)))
             + (b"\r" if rng.random() < 0.2 else b"") for _ in range(rng.randrange(1, 30))]
    body = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
    if not body:
        body = b"x"
    # WHEN every range reads its lines
    read = _ranges_read(body)
    # THEN each line of the file is read exactly once, whole, at its offset, in order
    assert [(line.offset, line.text) for line in read] == _expected(body)
    # AND each range numbers its own lines from 0
    for index in range(u.range_count(len(body))):
        start, end = u.byte_range(index, len(body))
        mine = [line.index for line in read if start <= line.offset < end]
        assert mine == list(range(len(mine)))


def test_a_line_starting_on_a_range_boundary_belongs_to_that_range(monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 4)
    body = b"abc\ndefgh\ni\n"
    # range 1 is [4, 8): "defgh" starts at 4 and runs past 8, read whole by range 1
    start, end = u.byte_range(1, len(body))
    first, last = u.read_span(start, end, len(body))
    assert [(line.offset, line.text) for line in
            u.lines_starting_in(body[first:last], first, start, end, len(body))] == \
        [(4, b"defgh")]
    # range 2 is [8, 12): it starts inside "defgh" and reads only "i"
    start, end = u.byte_range(2, len(body))
    first, last = u.read_span(start, end, len(body))
    assert [(line.offset, line.text) for line in
            u.lines_starting_in(body[first:last], first, start, end, len(body))] == [(10, b"i")]


def test_a_line_past_the_first_reads_slack_is_read_again_whole(p, monkeypatch):
    # GIVEN ranges of 24 bytes read 4 bytes past their end at first, and a 30-byte line
    # crossing the first range's end
    monkeypatch.setattr(u, "RANGE_BYTES", 24)
    monkeypatch.setattr(u, "READ_SLACK", 4)
    client = _client(p)
    long = json.dumps({"data": {"t": "x" * 10}})
    body = f'{{"data": {{"a": 1}}}}\n{long}\n'.encode()
    assert body.index(b"\n") < 24 < 28 < len(body) - 1
    job = _post(p, client, _upload(p, client, body), 2, pilot={"items": 0})
    reads = []
    get_range = p.blobs.get_range
    monkeypatch.setattr(p.blobs, "get_range",
                        lambda *args: reads.append(args[1:3]) or get_range(*args))
    ingest_all(p)
    # THEN the first range read its slack, then again far enough for the whole line
    assert reads[:2] == [(0, 28), (0, len(body))]
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    assert [i.data for i in p.items.iter_items(job.job_id)] == [{"a": 1}, {"t": "x" * 10}]


def test_a_line_longer_than_a_line_may_be_is_bad_whichever_range_reads_it(monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 8)
    monkeypatch.setattr(u, "MAX_LINE_BYTES", 12)
    body = b"ok\n" + b"x" * 30 + b"\nfine\n" + b"y" * 13
    read = _ranges_read(body)
    assert [(line.offset, line.text) for line in read] == \
        [(0, b"ok"), (3, None), (34, b"fine"), (39, None)]


# --- handlers on the fakes -------------------------------------------------------------------

@pytest.fixture
def p():
    return make_platform(FakeClock())


def _client(p, name="Acme"):
    return accounts.create_account(p, CLIENT, name)[0]


def _upload(p, client, body: bytes, fmt="jsonl") -> str:
    """An upload target asked for and the file PUT to it (the fakes' bucket)."""
    target = uploads.create_upload(p, client, {"format": fmt, "bytes": len(body)})
    p.blobs.put_bytes(upload_key(client.account_id, target["upload_id"], fmt), body)
    return target["upload_id"]


def _post(p, client, upload_id, items, **body):
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                          "redundancy": 2})
    return jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Sentiment?",
        "answer_schema": {"labels": ["pos", "neg"]}, "items_from": {"upload_id": upload_id},
        **body})


def _jsonl(count: int, bad: dict[int, str] | None = None) -> bytes:
    """count lines of items, line n (from 1) replaced by bad[n] where given."""
    bad = bad or {}
    return b"".join((bad.get(n) or json.dumps({"data": {"text": f"item {n}"},
                                               "external_id": f"e{n}"})).encode() + b"\n"
                    for n in range(1, count + 1))


def test_an_upload_target_is_a_presigned_put_under_the_clients_account(p):
    client = _client(p)
    target = uploads.create_upload(p, client, {"format": "csv", "bytes": 1234})
    assert target["method"] == "PUT" and target["headers"] == {"Content-Type": "text/csv"}
    assert f"uploads/{client.account_id}/{target['upload_id']}.csv" in target["url"]
    assert target["max_bytes"] == u.MAX_UPLOAD_BYTES and target["expires_in_seconds"] > 0


@pytest.mark.parametrize("body,field,error", [
    ({"format": "parquet", "bytes": 10}, "format", InvalidRequest),
    ({"format": "jsonl"}, "bytes", InvalidRequest),
    ({"format": "jsonl", "bytes": 0}, "bytes", InvalidRequest),
    ({"format": "jsonl", "bytes": "10"}, "bytes", InvalidRequest),
    ({"format": "jsonl", "bytes": u.MAX_UPLOAD_BYTES + 1}, "bytes", PayloadTooLarge),
    ({"format": "jsonl", "bytes": 10, "name": "x"}, "name", InvalidRequest),
])
def test_a_bad_upload_request_names_its_field(p, body, field, error):
    with pytest.raises(error) as raised:
        uploads.create_upload(p, _client(p), body)
    assert raised.value.field == field


def test_a_job_from_an_upload_ingests_in_ranges_and_starts(p, monkeypatch):
    # GIVEN ranges of 256 bytes and a 300-line file (about 46 bytes a line)
    monkeypatch.setattr(u, "RANGE_BYTES", 256)
    monkeypatch.setattr(u, "PLAN_BATCH", 7)
    client = _client(p)
    body = _jsonl(300)
    upload_id = _upload(p, client, body)
    # WHEN a job names it and the ingest consumer runs
    job = _post(p, client, upload_id, 300, pilot={"items": 0})
    assert job.state == INGESTING and job.chunk_count == u.range_count(len(body)) > 40
    assert p.ingest_queue.sent == [{"job_id": job.job_id, "plan": 0}]
    ingest_all(p)
    # THEN every line is an item, its id the line's byte offset, and the job is active
    job = p.jobs.get_job(job.job_id)
    assert job.state == ACTIVE and job.item_count == 300
    items = {item.external_id: item for item in p.items.iter_items(job.job_id)}
    assert len(items) == 300
    width = max(6, len(str(len(body) - 1)))
    assert items["e1"].item_id == "0" * width
    second = body.index(b"\n") + 1
    assert items["e2"].item_id == f"{second:0{width}d}"
    assert items["e300"].data == {"text": "item 300"}
    report = uploads.ingest_report(p, client, job.job_id)
    assert (report["lines"], report["items"], report["bad_lines"], report["error"]) == \
        (300, 300, 0, None)


def test_a_range_delivered_again_after_it_was_counted_reads_and_writes_nothing(p, monkeypatch):
    # GIVEN a job of three ranges whose first range was counted
    monkeypatch.setattr(u, "RANGE_BYTES", 256)
    client = _client(p)
    job = _post(p, client, _upload(p, client, _jsonl(15)), 15, pilot={"items": 0})
    jobs.ingest_chunk(p, {"job_id": job.job_id, "range": 0})
    assert p.jobs.get_job(job.job_id).chunks_written == 1
    # WHEN it comes again (a batch redelivered after running out of time)
    calls = []
    monkeypatch.setattr(p.blobs, "get_range", lambda *args: calls.append("read"))
    monkeypatch.setattr(p.items, "put_range", lambda *args: calls.append("write"))
    jobs.ingest_chunk(p, {"job_id": job.job_id, "range": 0})
    # THEN the file is not read and no item is written again
    assert calls == [] and p.jobs.get_job(job.job_id).chunks_written == 1


def test_bad_lines_fail_the_job_and_are_listed_by_line_number(p, monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 200)
    client = _client(p)
    bad = {7: "not json", 90: '{"data": {}}', 91: '[1, 2]', 150: '{"data": {"t": 1}, "x": 1}',
           151: '{"data": {"t": 1}, "gold": {"label": "pos"}}'}
    upload_id = _upload(p, client, _jsonl(200, bad))
    job = _post(p, client, upload_id, 195)
    ingest_all(p)
    job = p.jobs.get_job(job.job_id)
    assert job.state == FAILED and "5 bad line(s), the first at line 7" in job.error
    report = uploads.ingest_report(p, client, job.job_id)
    assert [(line["line"], line["field"]) for line in report["listed"]] == \
        [(7, None), (90, "data"), (91, None), (150, "x"), (151, "gold")]
    assert report["listed"][0]["message"] == "the line is not JSON"
    assert (report["lines"], report["items"], report["bad_lines"]) == (200, 195, 5)
    # AND no item of a range with a bad line was written (the job never starts anyway)
    assert len(list(p.items.iter_items(job.job_id))) < 195


def test_skip_bad_lines_starts_the_job_with_the_good_lines(p, monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 200)
    client = _client(p)
    upload_id = _upload(p, client, _jsonl(100, {3: "{", 60: '{"data": 5}'}))
    job = _post(p, client, upload_id, 98, skip_bad_lines=True, pilot={"items": 10})
    ingest_all(p)
    job = p.jobs.get_job(job.job_id)
    assert job.state == ACTIVE and job.phase == PILOT and job.pilot_items == 10
    items = list(p.items.iter_items(job.job_id))
    assert len(items) == 98 and sum(1 for item in items if not item.held) == 10
    assert {"e3", "e60"}.isdisjoint(item.external_id for item in items)
    report = uploads.ingest_report(p, client, job.job_id)
    assert [line["line"] for line in report["listed"]] == [3, 60] and report["error"] is None


def test_a_file_with_other_than_the_quoted_items_fails_the_job(p):
    client = _client(p)
    job = _post(p, client, _upload(p, client, _jsonl(30)), 31)
    ingest_all(p)
    job = p.jobs.get_job(job.job_id)
    assert job.state == FAILED and job.error == "the file holds 30 items; the quote covers 31"


def test_bad_lines_are_listed_up_to_the_cap_and_all_counted(p, monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 300)
    monkeypatch.setattr(u, "BAD_LINES_LISTED", 4)
    client = _client(p)
    upload_id = _upload(p, client, _jsonl(60, {n: "x" for n in range(5, 60, 5)}))
    job = _post(p, client, upload_id, 49)
    ingest_all(p)
    report = uploads.ingest_report(p, client, job.job_id)
    assert [line["line"] for line in report["listed"]] == [5, 10, 15, 20]
    assert report["bad_lines"] == 11 and report["truncated"] is True


def test_a_file_starting_with_a_byte_order_mark_reads_its_first_line(p):
    client = _client(p)
    body = "\ufeff".encode() + _jsonl(3) + b"\xff\xfe\n"
    job = _post(p, client, _upload(p, client, body), 3, skip_bad_lines=True)
    ingest_all(p)
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    report = uploads.ingest_report(p, client, job.job_id)
    assert [(line["line"], line["message"]) for line in report["listed"]] == \
        [(4, "the line is not UTF-8")]


def test_a_csv_file_takes_its_header_as_the_item_fields(p, monkeypatch):
    monkeypatch.setattr(u, "RANGE_BYTES", 64)
    client = _client(p)
    rows = ["external_id,text,lang"] + [f'r{n},"hello, {n}",en' for n in range(40)]
    rows[12] = "r11,only two"
    upload_id = _upload(p, client, ("\r\n".join(rows) + "\r\n").encode(), "csv")
    job = _post(p, client, upload_id, 39, skip_bad_lines=True, pilot={"items": 0})
    ingest_all(p)
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    items = {item.external_id: item for item in p.items.iter_items(job.job_id)}
    assert items["r39"].data == {"text": "hello, 39", "lang": "en"} and "r11" not in items
    report = uploads.ingest_report(p, client, job.job_id)
    assert [(line["line"], line["message"]) for line in report["listed"]] == \
        [(13, "the row has 2 columns; the header names 3")]


def test_only_the_uploading_client_may_post_its_upload(p):
    owner, other = _client(p, "A"), _client(p, "B")
    upload_id = _upload(p, owner, _jsonl(3))
    with pytest.raises(NotFound) as raised:
        _post(p, other, upload_id, 3)
    assert raised.value.field == "items_from.upload_id"
    with pytest.raises(NotFound):
        _post(p, owner, "up_0000000000000000", 3)
    with pytest.raises(NotFound):
        _post(p, owner, "../other/x", 3)


@pytest.mark.parametrize("extra,field", [
    ({"items": [{"data": {"t": 1}}], "items_from": {"upload_id": "up_0000000000000000"}},
     "items_from"),
    ({"items_from": "up_1"}, "items_from"),
    ({"items_from": {"upload_id": "x", "more": 1}}, "items_from.more"),
])
def test_items_from_is_checked(p, extra, field):
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1})
    body = {"quote_id": quote.quote_id, "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]}, **extra}
    with pytest.raises(InvalidRequest) as raised:
        jobs.post_job(p, client, body)
    assert raised.value.field == field


def test_skip_bad_lines_goes_with_an_upload_only(p):
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1})
    with pytest.raises(InvalidRequest) as raised:
        jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "x",
                                  "answer_schema": {"labels": ["a", "b"]}, "skip_bad_lines": True,
                                  "items": [{"data": {"t": 1}}]})
    assert raised.value.field == "skip_bad_lines"


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_file_changed_after_posting_fails_the_job(p, change):
    # GIVEN a job posted from an upload
    client = _client(p)
    upload_id = _upload(p, client, _jsonl(20))
    job = _post(p, client, upload_id, 20)
    # WHEN the file is replaced (another PUT to its URL) or deleted before it is read
    key = upload_key(client.account_id, upload_id, "jsonl")
    if change == "replaced":
        p.blobs.put_bytes(key, _jsonl(20).replace(b"item", b"ITEM"))
    else:
        del p.blobs.raw[key]
    ingest_all(p)
    # THEN the job fails saying so, and no item of the other file went in
    job = p.jobs.get_job(job.job_id)
    assert job.state == FAILED and "replaced or deleted after the job was posted" in job.error
    assert not list(p.items.iter_items(job.job_id))


def test_an_empty_upload_is_refused_at_posting(p):
    client = _client(p)
    target = uploads.create_upload(p, client, {"format": "jsonl", "bytes": 1})
    p.blobs.put_bytes(upload_key(client.account_id, target["upload_id"], "jsonl"), b"")
    with pytest.raises(InvalidRequest) as raised:
        _post(p, client, target["upload_id"], 1)
    assert raised.value.field == "items_from.upload_id"


def test_quotes_price_up_to_a_million_items_but_inline_posts_stay_small(p):
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1_000_000,
                                          "redundancy": 3, "reward_cents": 5})
    assert quote.items == 1_000_000
    assert {line.name: line.amount_cents for line in quote.line_items}["worker_rewards"] == \
        15_000_000
    with pytest.raises(InvalidRequest):
        jobs.create_quote(p, client, {"task_type": "categorical", "items": 1_000_001})
    big = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2001})
    with pytest.raises(PayloadTooLarge) as raised:
        jobs.post_job(p, client, {"quote_id": big.quote_id, "instructions": "x",
                                  "answer_schema": {"labels": ["a", "b"]},
                                  "items": [{"data": {"n": n}} for n in range(2001)]})
    assert raised.value.field == "items" and "POST /uploads" in raised.value.message


def test_an_inline_job_reports_its_chunks(p):
    client = _client(p)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2})
    job = jobs.post_job(p, client, {"quote_id": quote.quote_id, "instructions": "x",
                                    "answer_schema": {"labels": ["a", "b"]},
                                    "items": [{"data": {"n": 1}}, {"data": {"n": 2}}]})
    ingest_all(p)
    report = uploads.ingest_report(p, client, job.job_id)
    assert report == {"job_id": job.job_id, "state": ACTIVE, "chunks": 1, "chunks_written": 1,
                      "source": "inline"}
    assert p.jobs.get_job(job.job_id).phase == PRODUCTION


@pytest.mark.parametrize("size", [1, u.RANGE_BYTES, u.RANGE_BYTES * u.MAX_RANGES,
                                  u.RANGE_BYTES * u.MAX_RANGES + 1, 3 * u.GIB + 7,
                                  u.MAX_UPLOAD_BYTES])
def test_a_file_is_read_in_at_most_max_ranges_that_cover_it_end_to_end(size):
    # GIVEN a file of any size the API takes
    # WHEN it is split into ranges
    count = u.range_count(size)
    spans = [u.byte_range(index, size) for index in range(count)]
    # THEN the ranges are at most MAX_RANGES (the last range reads every range's summary),
    # 32 KiB each up to 128 MiB, and cover every byte once, in order
    assert 1 <= count <= u.MAX_RANGES
    if size <= u.RANGE_BYTES * u.MAX_RANGES:
        assert count == -(-size // u.RANGE_BYTES)
    assert spans[0][0] == 0 and spans[-1][1] == size
    assert all(end == next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert all(start < end for start, end in spans)


def test_promoting_an_uploaded_jobs_pilot_opens_every_held_item(p, monkeypatch):
    # GIVEN an uploaded job with a pilot, paused in calibration: its item ids are byte
    # offsets, most of them past its item count
    monkeypatch.setattr(u, "RANGE_BYTES", 400)
    client = _client(p)
    job = _post(p, client, _upload(p, client, _jsonl(60)), 60, pilot={"items": 6})
    ingest_all(p)
    job = p.jobs.get_job(job.job_id)
    assert job.state == ACTIVE and job.pilot_items == 6
    assert max(int(item.item_id) for item in p.items.iter_items(job.job_id)) > job.item_count
    assert p.jobs.transition(job.job_id, (ACTIVE,), PAUSED, phase=CALIBRATION)
    # WHEN the client promotes it and the ingest queue opens the held items
    assert rounds.to_production(p, p.jobs.get_job(job.job_id), "client", "go")
    ingest_all(p)
    # THEN no item is held any more
    items = list(p.items.iter_items(job.job_id))
    assert len(items) == 60 and not [item.item_id for item in items if item.held]
