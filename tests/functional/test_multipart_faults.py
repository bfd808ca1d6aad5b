"""Crash after every write of an upload in parts and repeat the request, as the client's
retry does: the upload still completes whole, once, and a job can name it.

The writes: CreateMultipartUpload and the upload's terms object (POST /uploads), and
CompleteMultipartUpload (POST /uploads/{id}/complete). A crash after the first two leaves
at most a multipart upload without parts (the bucket's rule drops it within a day) and the
retry starts another; a crash after the completion leaves the object whole, and the retry
answers it complete.
"""
from __future__ import annotations

import pytest
import requests

from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT, INGESTING
from chalicelib.errors import NotFound
from chalicelib.handlers import accounts, jobs, uploads
from tests.functional.faults import Crash, Plan, crash_after_writes

PART = 5 * 1024 * 1024
BODY = b"".join(b'{"data": {"n": %d}}\n' % n for n in range(3)) + b" " * PART + b"\n"


def _repeat(plan: Plan, step):
    """Run a request; if it crashed, once more (the client's retry), unarmed."""
    try:
        return step()
    except Crash:
        plan.armed = False
        return step()


def _flow(plan: Plan, name: str) -> tuple[str, dict]:
    """A client uploads BODY in two parts, completes it and posts a job naming it."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    plan.armed = True
    target = _repeat(plan, lambda: uploads.create_upload(
        p, client, {"format": "jsonl", "bytes": len(BODY), "part_bytes": PART}))
    for entry in target["part_urls"]:
        start = (entry["part_number"] - 1) * PART
        response = requests.put(entry["url"], data=BODY[start:start + PART], timeout=60)
        assert response.status_code == 200, response.text
    done = _repeat(plan, lambda: uploads.complete_upload(p, client, target["upload_id"], None))
    plan.armed = False
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 3,
                                          "redundancy": 1})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "n?", "pilot": {"items": 0},
        "answer_schema": {"labels": ["a", "b"]},
        "items_from": {"upload_id": target["upload_id"]}})
    assert job.state == INGESTING and job.upload["bytes"] == len(BODY)
    return target["upload_id"], done


def test_a_crash_after_any_write_of_an_upload_in_parts_is_repaired_by_the_retry(stack):
    # GIVEN the writes of an upload in parts, recorded without faults
    with crash_after_writes(Plan()) as clean:
        _flow(clean, "clean")
    sites = list(dict.fromkeys(site for _, site in clean.writes))
    assert sites == ["uploads.create_upload > storage.start_multipart",
                     "uploads.create_upload > storage.put_text",
                     "uploads.complete_upload > storage.complete_multipart"], clean.writes
    # WHEN each crashes right after it, in turn, and the request is sent again
    for n, site in enumerate(sites):
        with crash_after_writes(Plan(crash_site=site)) as plan:
            upload_id, done = _flow(plan, f"crash {n}")
        # THEN it crashed there, and the upload is whole: the file a job can name
        assert plan.crashed is not None and plan.crashed[1] == site
        assert (done["state"], done["bytes"], done["upload_id"]) == \
            ("complete", len(BODY), upload_id)
        assert done["etag"].endswith('-2"')


@pytest.mark.parametrize("crash_in", ["abort_multipart", "put_text"])
def test_a_crash_while_aborting_leaves_the_upload_gone_after_the_retry(stack, monkeypatch,
                                                                       crash_in):
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, f"abort {crash_in}")
    target = uploads.create_upload(p, client, {"format": "csv", "bytes": 8, "multipart": True})
    requests.put(target["part_urls"][0]["url"], data=b"a,b\n1,2\n", timeout=60)
    original = getattr(p.blobs, crash_in)

    def crash(*args):
        original(*args)
        monkeypatch.setattr(p.blobs, crash_in, original)
        raise Crash(f"crashed after {crash_in}")

    monkeypatch.setattr(p.blobs, crash_in, crash)
    with pytest.raises(Crash):
        uploads.abort_upload(p, client, target["upload_id"])
    # WHEN the client sends the DELETE again, THEN it is aborted (or was already)
    try:
        assert uploads.abort_upload(p, client, target["upload_id"])["state"] == "aborted"
    except NotFound as error:
        assert crash_in == "put_text" and error.code == "upload_not_found"
    # AND the upload is gone, its parts with it
    with pytest.raises(NotFound) as raised:
        uploads.upload_status(p, client, target["upload_id"])
    assert raised.value.code == "upload_not_found"
    listed = p.blobs._s3.list_multipart_uploads(Bucket=p.blobs._bucket,
                                                Prefix=f"uploads/{client.account_id}/")
    assert not listed.get("Uploads")
