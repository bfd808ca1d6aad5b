"""Multipart uploads of big item files (chalicelib.handlers.uploads) on the fakes: the terms
and part URLs, the parts held for a resume, completing, aborting, and a job naming one."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain import uploads as u
from chalicelib.domain.keys import upload_key
from chalicelib.domain.model import ACTIVE, CLIENT
from chalicelib.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from chalicelib.handlers import accounts, jobs, uploads
from tests.fakes import FakeClock, ingest_all, make_platform

PART = 64  # the fakes' bucket is told to take parts this small


@pytest.fixture
def p():
    platform = make_platform(FakeClock())
    platform.blobs.min_part_bytes = PART
    return platform


def _client(p, name="Acme"):
    return accounts.create_account(p, CLIENT, name)[0]


def _jsonl(count: int) -> bytes:
    return b"".join(json.dumps({"data": {"text": f"item {n}"}, "external_id": f"e{n}"}).encode()
                    + b"\n" for n in range(1, count + 1))


def _start(p, client, body: bytes, monkeypatch) -> dict:
    """A multipart upload of body in parts of PART bytes."""
    monkeypatch.setattr(u, "MIN_PART_BYTES", PART)
    return uploads.create_upload(p, client, {"format": "jsonl", "bytes": len(body),
                                             "part_bytes": PART})


def _send(p, client, target: dict, body: bytes, numbers) -> dict[int, str]:
    """PUT the named parts of body (what a client does with each part URL); their ETags."""
    key = upload_key(client.account_id, target["upload_id"], "jsonl")
    s3_upload = next(iter(upload for upload, (k, _) in p.blobs.multipart.items() if k == key))
    return {number: p.blobs.put_part(key, s3_upload, number,
                                     body[(number - 1) * PART:number * PART])
            for number in numbers}


def _post(p, client, upload_id, items):
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                          "redundancy": 2})
    return jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Sentiment?",
        "answer_schema": {"labels": ["pos", "neg"]}, "items_from": {"upload_id": upload_id},
        "pilot": {"items": 0}})


def test_a_file_above_the_threshold_gets_a_multipart_upload_with_its_first_part_urls(p):
    client = _client(p)
    target = uploads.create_upload(p, client, {"format": "jsonl",
                                               "bytes": 10 * u.GIB})
    assert target["multipart"] is True and target["part_bytes"] == u.PART_BYTES
    assert target["parts"] == 640 and "url" not in target
    assert [entry["part_number"] for entry in target["part_urls"]] == \
        list(range(1, u.PART_URLS_PER_REQUEST + 1))
    key = f"uploads/{client.account_id}/{target['upload_id']}.jsonl"
    assert all(key in entry["url"] for entry in target["part_urls"])
    # a small file goes as one PUT unless the client asks for parts
    single = uploads.create_upload(p, client, {"format": "csv", "bytes": u.MULTIPART_ABOVE_BYTES})
    assert single["multipart"] is False and "url" in single
    asked = uploads.create_upload(p, client, {"format": "csv", "bytes": 10, "multipart": True})
    assert asked["multipart"] is True and asked["parts"] == 1


def test_the_largest_file_fits_in_s3s_part_count():
    request = u.parse_upload_request({"format": "jsonl", "bytes": u.MAX_UPLOAD_BYTES})
    assert request.parts <= u.MAX_PARTS and request.part_bytes % u.MIB == 0
    assert (request.parts - 1) * request.part_bytes < u.MAX_UPLOAD_BYTES
    assert u.default_part_bytes(u.MAX_PARTS * u.PART_BYTES + 1) > u.PART_BYTES


@pytest.mark.parametrize("body,field,error", [
    ({"format": "jsonl", "bytes": 10, "multipart": "yes"}, "multipart", InvalidRequest),
    ({"format": "jsonl", "bytes": u.GIB + 1, "multipart": False}, "bytes", PayloadTooLarge),
    ({"format": "jsonl", "bytes": 10, "multipart": False, "part_bytes": u.MIN_PART_BYTES},
     "part_bytes", InvalidRequest),
    ({"format": "jsonl", "bytes": 10, "part_bytes": u.MIN_PART_BYTES - 1}, "part_bytes",
     InvalidRequest),
    ({"format": "jsonl", "bytes": 10, "part_bytes": u.MAX_PART_BYTES + 1}, "part_bytes",
     InvalidRequest),
    ({"format": "jsonl", "bytes": u.MAX_UPLOAD_BYTES + 1, "multipart": True}, "bytes",
     PayloadTooLarge),
])
def test_a_bad_multipart_request_names_its_field(p, body, field, error):
    with pytest.raises(error) as raised:
        uploads.create_upload(p, _client(p), body)
    assert raised.value.field == field


def test_an_interrupted_upload_lists_its_parts_and_resumes_with_the_missing_ones(
        p, monkeypatch):
    # GIVEN a file of 6 parts, of which parts 1, 2 and 4 were sent before an interruption
    client = _client(p)
    body = _jsonl(30)
    target = _start(p, client, body, monkeypatch)
    parts = target["parts"]
    assert parts == -(-len(body) // PART) >= 6
    sent = _send(p, client, target, body, [1, 2, 4])
    # WHEN the client asks where the upload stands
    status = uploads.upload_status(p, client, target["upload_id"])
    # THEN it hears the parts S3 holds (number, ETag, size) and the missing ones
    assert status["state"] == "uploading"
    assert status["uploaded"] == [{"part_number": n, "etag": sent[n], "bytes": PART}
                                  for n in (1, 2, 4)]
    assert status["missing"] == [3] + list(range(5, parts + 1))
    # AND completing now is refused, as is a job naming the upload
    with pytest.raises(Conflict) as raised:
        uploads.complete_upload(p, client, target["upload_id"], None)
    assert raised.value.code == "upload_incomplete" and "part 3" in raised.value.message
    with pytest.raises(Conflict) as raised:
        _post(p, client, target["upload_id"], 30)
    assert (raised.value.code, raised.value.field) == ("upload_incomplete",
                                                       "items_from.upload_id")
    # WHEN it gets URLs for the missing parts, sends them and completes with every ETag
    urls = uploads.part_urls(p, client, target["upload_id"], {"parts": status["missing"]})
    assert [entry["part_number"] for entry in urls["part_urls"]] == status["missing"]
    sent.update(_send(p, client, target, body, status["missing"]))
    done = uploads.complete_upload(p, client, target["upload_id"], {"parts": [
        {"part_number": n, "etag": etag} for n, etag in sorted(sent.items())]})
    # THEN the file is whole, a repeat answers the same, and a job from it ingests
    assert done["state"] == "complete" and done["bytes"] == len(body)
    assert p.blobs.raw[upload_key(client.account_id, target["upload_id"], "jsonl")] == body
    assert uploads.complete_upload(p, client, target["upload_id"], None) == done
    assert uploads.upload_status(p, client, target["upload_id"])["state"] == "complete"
    job = _post(p, client, target["upload_id"], 30)
    ingest_all(p)
    assert p.jobs.get_job(job.job_id).state == ACTIVE
    assert {item.external_id for item in p.items.iter_items(job.job_id)} == \
        {f"e{n}" for n in range(1, 31)}
    # AND a completed upload takes no more parts
    with pytest.raises(Conflict) as raised:
        uploads.part_urls(p, client, target["upload_id"], {"parts": [1]})
    assert raised.value.code == "upload_complete"


def test_completing_checks_the_etags_named_and_the_declared_size(p, monkeypatch):
    client = _client(p)
    body = _jsonl(10)
    target = _start(p, client, body, monkeypatch)
    sent = _send(p, client, target, body, range(1, target["parts"] + 1))
    with pytest.raises(Conflict) as raised:
        uploads.complete_upload(p, client, target["upload_id"],
                                {"parts": [{"part_number": 2, "etag": '"other"'}]})
    assert (raised.value.code, raised.value.field) == ("part_mismatch", "parts")
    # a last part shorter than the file's end: the parts do not add up to the declared size
    _send(p, client, target, body[:-5], [target["parts"]])
    with pytest.raises(Conflict) as raised:
        uploads.complete_upload(p, client, target["upload_id"], None)
    assert (raised.value.code, raised.value.field) == ("upload_size_mismatch", "bytes")
    # AND the other parts stay: sending the last one again whole completes the file
    sent.update(_send(p, client, target, body, [target["parts"]]))
    done = uploads.complete_upload(p, client, target["upload_id"], None)
    assert done["state"] == "complete" and done["bytes"] == len(body)


@pytest.mark.parametrize("body,field", [
    ({"parts": []}, "parts"),
    ({"parts": [0]}, "parts"),
    ({"parts": [99]}, "parts"),
    ({"parts": [1, 1]}, "parts"),
    ({"parts": [True]}, "parts"),
    ({"parts": "1"}, "parts"),
    ({"parts": [1], "more": 1}, "more"),
])
def test_bad_part_numbers_are_named(p, monkeypatch, body, field):
    client = _client(p)
    target = _start(p, client, _jsonl(10), monkeypatch)
    with pytest.raises(InvalidRequest) as raised:
        uploads.part_urls(p, client, target["upload_id"], body)
    assert raised.value.field == field


@pytest.mark.parametrize("body,field", [
    ({"parts": [{"part_number": 1}]}, "parts[0].etag"),
    ({"parts": [{"part_number": 0, "etag": "x"}]}, "parts[0].part_number"),
    ({"parts": [{"part_number": 1, "etag": "x"}, {"part_number": 1, "etag": "x"}]},
     "parts[1].part_number"),
    ({"parts": ["1"]}, "parts[0]"),
    ({"parts": {}}, "parts"),
])
def test_a_bad_completion_is_named(p, monkeypatch, body, field):
    client = _client(p)
    target = _start(p, client, _jsonl(10), monkeypatch)
    with pytest.raises(InvalidRequest) as raised:
        uploads.complete_upload(p, client, target["upload_id"], body)
    assert raised.value.field == field


def test_only_the_uploading_client_may_touch_its_upload(p, monkeypatch):
    owner, other = _client(p, "A"), _client(p, "B")
    target = _start(p, owner, _jsonl(10), monkeypatch)
    upload_id = target["upload_id"]
    for call in (lambda c, i: uploads.upload_status(p, c, i),
                 lambda c, i: uploads.part_urls(p, c, i, {"parts": [1]}),
                 lambda c, i: uploads.complete_upload(p, c, i, None),
                 lambda c, i: uploads.abort_upload(p, c, i)):
        for client, name in ((other, upload_id), (owner, "up_0000000000000000"),
                             (owner, "../x")):
            with pytest.raises(NotFound) as raised:
                call(client, name)
            assert raised.value.code == "upload_not_found"
    assert uploads.upload_status(p, owner, upload_id)["state"] == "uploading"


def test_an_aborted_upload_drops_its_parts_and_is_gone(p, monkeypatch):
    client = _client(p)
    body = _jsonl(10)
    target = _start(p, client, body, monkeypatch)
    _send(p, client, target, body, [1, 2])
    assert uploads.abort_upload(p, client, target["upload_id"])["state"] == "aborted"
    assert p.blobs.multipart == {}
    for call in (lambda: uploads.upload_status(p, client, target["upload_id"]),
                 lambda: uploads.abort_upload(p, client, target["upload_id"]),
                 lambda: _post(p, client, target["upload_id"], 10)):
        with pytest.raises(NotFound):
            call()


def test_a_complete_upload_cannot_be_aborted(p, monkeypatch):
    client = _client(p)
    body = _jsonl(3)
    target = _start(p, client, body, monkeypatch)
    _send(p, client, target, body, range(1, target["parts"] + 1))
    uploads.complete_upload(p, client, target["upload_id"], None)
    with pytest.raises(Conflict) as raised:
        uploads.abort_upload(p, client, target["upload_id"])
    assert raised.value.code == "upload_complete"


def test_an_upload_whose_parts_expired_is_not_found(p, monkeypatch):
    # GIVEN an upload S3 dropped (the bucket's rule aborts uploads left a day)
    client = _client(p)
    target = _start(p, client, _jsonl(10), monkeypatch)
    p.blobs.multipart.clear()
    # THEN the client hears it is gone, to start a new one
    with pytest.raises(NotFound) as raised:
        uploads.upload_status(p, client, target["upload_id"])
    assert "start a new upload" in raised.value.message


def test_a_single_put_upload_reports_complete_once_its_file_is_there(p):
    client = _client(p)
    target = uploads.create_upload(p, client, {"format": "csv", "bytes": 5})
    with pytest.raises(NotFound):
        uploads.upload_status(p, client, target["upload_id"])
    p.blobs.put_bytes(upload_key(client.account_id, target["upload_id"], "csv"), b"a,b\n")
    status = uploads.upload_status(p, client, target["upload_id"])
    assert (status["state"], status["multipart"], status["bytes"]) == ("complete", False, 4)


def test_the_largest_file_in_the_smallest_parts_stays_within_s3s_part_count():
    # the ceiling leaves no part size S3 allows that would need more than its 10,000 parts
    assert -(-u.MAX_UPLOAD_BYTES // u.MIN_PART_BYTES) <= u.MAX_PARTS
