"""Upload, then post, on the moto stack: a client asks for an upload target, PUTs its file to
the presigned URL, posts a job naming the upload, and the ingest consumer reads the object in
byte ranges (S3 GetObject with a Range) and writes the items; bad lines are reported by line
number, and they fail the job or, with skip_bad_lines, are left out."""
from __future__ import annotations

import json
import time

import requests

from chalicelib.deps import platform
from chalicelib.domain import uploads as u
from tests.functional.marketplace import Api

LINES = 3000
BAD = {17: "{not json", 1234: '{"data": {}}', 2999: '{"data": {"t": 1}, "colour": "red"}'}


def _file() -> bytes:
    """LINES lines of items, the lines in BAD (numbered from 1) broken."""
    return b"".join((BAD.get(n) or json.dumps({"data": {"text": f"review {n}", "stars": n % 5},
                                               "external_id": f"r{n}"})).encode() + b"\n"
                    for n in range(1, LINES + 1))


def _upload(api: Api, body: bytes) -> str:
    """Ask for an upload target and PUT the file to its presigned URL."""
    status, target = api.as_client("POST", "/uploads", {"format": "jsonl", "bytes": len(body)})
    assert status == 201, target
    assert target["method"] == "PUT" and target["max_bytes"] == u.MAX_UPLOAD_BYTES
    response = requests.put(target["url"], data=body, headers=target["headers"], timeout=30)
    assert response.status_code == 200, response.text
    return target["upload_id"]


def _post(api: Api, upload_id: str, items: int, **extra) -> dict:
    status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical",
                                                      "items": items, "redundancy": 3})
    assert status == 201, quote
    status, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "Is the review positive?",
        "answer_schema": {"labels": ["pos", "neg"]}, "items_from": {"upload_id": upload_id},
        **extra})
    assert status == 202, job
    assert job["state"] == "ingesting"
    return job


def test_an_uploaded_file_with_bad_lines_fails_its_job_with_the_lines_numbered(stack):
    api = Api(stack)
    upload_id = _upload(api, _file())
    job = _post(api, upload_id, LINES - len(BAD))
    stack.pump.drain()
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert status == 200 and view["state"] == "failed", view
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/ingest")
    assert status == 200
    assert (report["lines"], report["items"], report["bad_lines"]) == (LINES, LINES - 3, 3)
    assert [(line["line"], line["field"]) for line in report["listed"]] == \
        [(17, None), (1234, "data"), (2999, "colour")]
    assert "3 bad line(s), the first at line 17" in report["error"]


def test_an_uploaded_file_with_skip_bad_lines_starts_with_its_good_lines(stack, monkeypatch):
    # GIVEN ranges of 16 KiB, so the ~170 KB file is read in a dozen ranges
    monkeypatch.setattr(u, "RANGE_BYTES", 16 * 1024)
    api = Api(stack)
    body = _file()
    upload_id = _upload(api, body)
    started = time.perf_counter()
    job = _post(api, upload_id, LINES - len(BAD), skip_bad_lines=True)
    stack.pump.drain()
    seconds = time.perf_counter() - started
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert status == 200 and view["state"] == "active", view
    assert view["phase"] == "pilot" and view["pilot_items"] == 100
    ranges = u.range_count(len(body))
    assert view["ingest"] == {"chunks": ranges, "written": ranges, "source": "upload",
                              "format": "jsonl", "bytes": len(body), "skip_bad_lines": True}
    items = list(platform().items.iter_items(job["job_id"]))
    assert len(items) == LINES - 3 and len({item.item_id for item in items}) == LINES - 3
    assert {item.external_id for item in items}.isdisjoint({"r17", "r1234", "r2999"})
    assert sum(1 for item in items if not item.held) == 100
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/ingest")
    assert status == 200 and report["error"] is None
    assert [line["line"] for line in report["listed"]] == [17, 1234, 2999]
    print(f"ingested {LINES} lines ({len(body)} bytes, {u.range_count(len(body))} ranges) "
          f"in {seconds:.1f} s")


def test_a_file_replaced_after_posting_fails_its_job(stack):
    # GIVEN a job posted from an upload, and the file PUT again with other lines before the
    # ingest reads it
    api = Api(stack)
    upload_id = _upload(api, b'{"data": {"t": 1}}\n')
    job = _post(api, upload_id, 1)
    p = platform()
    key = p.jobs.get_job(job["job_id"]).upload["key"]
    p.blobs._s3.put_object(Bucket=p.blobs._bucket, Key=key, Body=b'{"data": {"t": 2}}\n')
    # WHEN the ingest runs THEN the ranges' reads (If-Match the posted ETag) refuse it
    stack.pump.drain()
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert view["state"] == "failed" and "replaced or deleted" in view["error"], view


def test_an_upload_is_only_its_clients(stack):
    owner, other = Api(stack), Api(stack)
    upload_id = _upload(owner, b'{"data": {"t": 1}}\n')
    status, quote = other.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    status, error = other.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "x", "answer_schema": {"labels": ["a", "b"]},
        "items_from": {"upload_id": upload_id}})
    assert status == 404 and error["field"] == "items_from.upload_id", error
    status, error = owner.as_client("POST", "/uploads", {"format": "xml", "bytes": 3})
    assert status == 400 and error["field"] == "format", error
