"""A big item file uploaded in parts on the moto stack: presigned UploadPart URLs, an
interruption, the parts S3 holds listed for the resume, the missing part sent, the upload
completed (S3's 5 MiB minimum part size applies on moto too) and a job posted naming it that
ingests; another client cannot see the upload, and an aborted one is gone."""
from __future__ import annotations

import json

import pytest
import requests

from chalicelib.adapters import storage
from chalicelib.deps import platform
from chalicelib.domain import uploads as u
from chalicelib.domain.model import CLIENT
from chalicelib.errors import NotFound
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api

ITEMS = 200
PART = 5 * 1024 * 1024


def _file() -> bytes:
    """About 11 MiB: ITEMS items, each followed by a blank line of spaces (left out, so the
    ingest writes few items for a file of three parts)."""
    pad = b" " * (u.MAX_LINE_BYTES - 1024) + b"\n"
    lines = [json.dumps({"data": {"text": f"review {n}"}, "external_id": f"r{n}"}).encode()
             + b"\n" + pad for n in range(1, ITEMS + 1)]
    body = b"".join(lines)
    assert 2 * PART < len(body) < 3 * PART
    return body


def _put(url: str, body: bytes) -> str:
    response = requests.put(url, data=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def test_a_big_file_uploads_in_parts_resumes_after_an_interruption_and_ingests(
        stack, monkeypatch):
    # GIVEN ranges of 1 MiB (the file is read in a dozen of them) and an 11 MiB file
    monkeypatch.setattr(u, "RANGE_BYTES", 1024 * 1024)
    api = Api(stack)
    body = _file()
    # WHEN the client starts a multipart upload in 5 MiB parts
    status, target = api.as_client("POST", "/uploads", {"format": "jsonl", "bytes": len(body),
                                                        "part_bytes": PART})
    assert status == 201, target
    assert (target["multipart"], target["parts"], target["part_bytes"]) == (True, 3, PART)
    upload_id = target["upload_id"]
    urls = {entry["part_number"]: entry["url"] for entry in target["part_urls"]}
    # AND sends parts 1 and 3 before it is interrupted
    etags = {n: _put(urls[n], body[(n - 1) * PART:n * PART]) for n in (1, 3)}
    # THEN the upload lists the parts S3 holds, and the missing one
    status, view = api.as_client("GET", f"/uploads/{upload_id}")
    assert status == 200 and view["state"] == "uploading", view
    assert view["uploaded"] == [{"part_number": 1, "etag": etags[1], "bytes": PART},
                                {"part_number": 3, "etag": etags[3],
                                 "bytes": len(body) - 2 * PART}]
    assert view["missing"] == [2]
    # AND a job naming it, or completing it, is refused until it is whole
    status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical",
                                                      "items": ITEMS, "redundancy": 1})
    job_body = {"quote_id": quote["quote_id"], "instructions": "Positive?",
                "answer_schema": {"labels": ["pos", "neg"]},
                "items_from": {"upload_id": upload_id}, "pilot": {"items": 0}}
    status, refused = api.as_client("POST", "/jobs", job_body)
    assert (status, refused["error"], refused["field"]) == (409, "upload_incomplete",
                                                            "items_from.upload_id")
    status, refused = api.as_client("POST", f"/uploads/{upload_id}/complete")
    assert (status, refused["error"]) == (409, "upload_incomplete")
    # AND another client does not find it
    _, other = create_account(platform(), CLIENT, "Other client")
    assert api.as_client("GET", f"/uploads/{upload_id}", key=other)[0] == 404
    assert api.as_client("POST", f"/uploads/{upload_id}/parts", {"parts": [2]},
                         key=other)[0] == 404
    # WHEN the client resumes: a URL for the missing part, the part, then complete
    status, missing = api.as_client("POST", f"/uploads/{upload_id}/parts", {"parts": [2]})
    assert status == 200, missing
    etags[2] = _put(missing["part_urls"][0]["url"], body[PART:2 * PART])
    status, done = api.as_client("POST", f"/uploads/{upload_id}/complete", {"parts": [
        {"part_number": n, "etag": etags[n]} for n in (1, 2, 3)]})
    assert status == 200, done
    assert (done["state"], done["bytes"]) == ("complete", len(body))
    assert done["etag"].endswith('-3"')
    # THEN the job posts naming the upload and ingests every item
    status, job = api.as_client("POST", "/jobs", job_body)
    assert status == 202, job
    stack.pump.drain()
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert status == 200 and view["state"] == "active", view
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/ingest")
    assert (report["lines"], report["items"], report["bad_lines"]) == (2 * ITEMS, ITEMS, 0)


def test_parts_smaller_than_s3s_minimum_are_refused_at_completion(stack):
    # GIVEN an upload of 5 MiB parts whose first part was sent short
    api = Api(stack)
    size = PART + 10
    _, target = api.as_client("POST", "/uploads", {"format": "jsonl", "bytes": size,
                                                   "part_bytes": PART})
    urls = {entry["part_number"]: entry["url"] for entry in target["part_urls"]}
    _put(urls[1], b"\n" * 20)
    _put(urls[2], b"\n" * (size - 20))
    # WHEN it is completed (the parts add up to the declared size), THEN S3 refuses it
    status, refused = api.as_client("POST", f"/uploads/{target['upload_id']}/complete")
    assert (status, refused["error"], refused["field"]) == (409, "part_mismatch", "parts")


def test_an_aborted_upload_is_gone(stack):
    api = Api(stack)
    _, target = api.as_client("POST", "/uploads", {"format": "csv", "bytes": 100,
                                                   "multipart": True})
    _put(target["part_urls"][0]["url"], b"a,b\n1,2\n")
    status, aborted = api.as_client("DELETE", f"/uploads/{target['upload_id']}")
    assert (status, aborted["state"]) == (200, "aborted")
    status, gone = api.as_client("GET", f"/uploads/{target['upload_id']}")
    assert (status, gone["error"]) == (404, "upload_not_found")
    status, refused = api.as_client("POST", "/uploads", {"format": "csv", "bytes": 100,
                                                         "part_bytes": 1024})
    assert (status, refused["field"]) == (400, "part_bytes")


def test_the_parts_of_an_upload_are_listed_across_pages(stack, monkeypatch):
    # GIVEN ListParts pages of 2 parts and an upload holding parts 1 to 5
    monkeypatch.setattr(storage, "LIST_PARTS_PAGE", 2)
    blobs = platform().blobs
    upload = blobs.start_multipart("uploads/paged.jsonl", "application/x-ndjson")
    for number in range(1, 6):
        _put(blobs.part_url("uploads/paged.jsonl", upload, number, 60), b"x" * number)
    # WHEN they are listed, THEN every part is there, once, in order
    assert [(number, size) for number, _, size in
            blobs.list_parts("uploads/paged.jsonl", upload)] == [(n, n) for n in range(1, 6)]
    # AND once aborted the upload is not found (and aborting again does nothing)
    blobs.abort_multipart("uploads/paged.jsonl", upload)
    blobs.abort_multipart("uploads/paged.jsonl", upload)
    with pytest.raises(NotFound):
        blobs.list_parts("uploads/paged.jsonl", upload)
