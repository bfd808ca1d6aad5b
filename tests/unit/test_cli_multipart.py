"""`crowd jobs create` with a file big enough to go in parts, against the stub server of
test_client: the parts streamed to their URLs, an interrupted upload resumed by sending only
the parts the API lacks, a changed file (or --restart) starting over."""
from __future__ import annotations

import hashlib
import json

import pytest

from crowd_client import cli
from crowd_client.client import Client
from tests.unit.test_cli import JOB, _run
from tests.unit.test_client import Stub, server  # noqa: F401 (server is a fixture)

PART = 30


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def _target(server: str, upload_id: str, size: int) -> dict:
    parts = -(-size // PART)
    return {"upload_id": upload_id, "multipart": True, "part_bytes": PART, "parts": parts,
            "part_urls": [{"part_number": n, "url": f"{server}/bucket/{upload_id}/{n}"}
                          for n in range(1, parts + 1)]}


def _script(server: str, size: int, failing_part: int | None = None) -> None:
    """The API's answers for a job from a file of `size` bytes in parts of PART bytes,
    upload up_1 then up_2; part `failing_part` of up_1 refused the first time."""
    Stub.script["/quotes"] = [(201, {"quote_id": "q_1", "total_cents": 100,
                                     "expires_at": "2030-01-01T00:00:00Z"})]
    Stub.script["/uploads"] = [(201, _target(server, "up_1", size)),
                               (201, _target(server, "up_2", size))]
    for upload_id in ("up_1", "up_2"):
        for n in range(1, -(-size // PART) + 1):
            Stub.script[f"/bucket/{upload_id}/{n}"] = [(200, None)]
        Stub.script[f"/uploads/{upload_id}/complete"] = [(200, {"upload_id": upload_id,
                                                                "state": "complete"})]
        Stub.script[f"/uploads/{upload_id}"] = [(200, {"upload_id": upload_id,
                                                       "state": "aborted"})]
    if failing_part is not None:
        Stub.script[f"/bucket/up_1/{failing_part}"] = [(400, None), (200, None)]
    Stub.script["/jobs"] = [(202, {**JOB, "state": "active", "ingest": {"chunks": 1,
                                                                        "written": 1}})]
    Stub.script["/jobs/job_1/ingest"] = [(200, {"lines": 1, "items": 1, "bad_lines": 0,
                                                "listed": [], "truncated": False})]


def _create(items, tmp_path, capsys, server, *extra):
    return _run(["jobs", "create", "--items", str(items), "--labels", "pos,neg",
                 "--instructions", "x", "--api-url", server, "--api-key", "ck", *extra],
                tmp_path, capsys)


def _puts() -> dict[str, bytes]:
    return {path: details["raw"] for method, path, details in Stub.seen if method == "PUT"}


@pytest.fixture
def items(tmp_path, monkeypatch):
    """A CSV file of 130 bytes (5 parts of 30), big enough to go in parts."""
    monkeypatch.setattr(cli, "UPLOAD_ABOVE_BYTES", 10)
    monkeypatch.setattr(cli, "MULTIPART_ABOVE_BYTES", 10)
    file = tmp_path / "items.csv"
    file.write_text("text\n" + "".join(f"item number {n:04d}\n" for n in range(7))
                    + "x" * 5 + "\n")
    assert len(file.read_bytes()) == 130
    return file


def _interrupted(items, tmp_path, capsys, server) -> bytes:
    """A first run whose third part is refused: parts 1 and 2 are there."""
    body = items.read_bytes()
    _script(server, len(body), failing_part=3)
    code, _, err = _create(items, tmp_path, capsys, server)
    assert code == 1 and "upload_failed" in err, err
    assert sorted(_puts()) == ["/bucket/up_1/1", "/bucket/up_1/2", "/bucket/up_1/3"]
    assert list((tmp_path / "uploads").iterdir())  # the upload is remembered
    return body


def test_a_rerun_after_an_interruption_sends_only_the_missing_parts(server, tmp_path, capsys,
                                                                    items):
    body = _interrupted(items, tmp_path, capsys, server)
    # GIVEN the API holds parts 1 and 2 of up_1
    Stub.seen.clear()
    Stub.script["/uploads/up_1"] = [(200, {
        "upload_id": "up_1", "state": "uploading", "multipart": True, "part_bytes": PART,
        "parts": 5, "missing": [3, 4, 5],
        "uploaded": [{"part_number": n, "etag": _etag(body[(n - 1) * PART:n * PART]),
                      "bytes": PART} for n in (1, 2)]})]
    Stub.script["/uploads/up_1/parts"] = [(200, {"upload_id": "up_1", "part_urls": [
        {"part_number": n, "url": f"{server}/bucket/up_1/{n}"} for n in (3, 4, 5)]})]
    # WHEN the same command runs again
    code, out, err = _create(items, tmp_path, capsys, server)
    # THEN it asks where the upload stands, sends parts 3 to 5 only (their bytes of the
    # file), completes it with every part's ETag and posts the job naming it
    assert code == 0, err
    assert "resuming the upload of" in err and "uploading [" in err
    assert _puts() == {f"/bucket/up_1/{n}": body[(n - 1) * PART:n * PART] for n in (3, 4, 5)}
    sent = {path: details.get("body") for method, path, details in Stub.seen if method != "PUT"}
    assert "/uploads" not in sent
    assert sent["/uploads/up_1/parts"] == {"parts": [3, 4, 5]}
    assert sent["/uploads/up_1/complete"] == {"parts": [
        {"part_number": n, "etag": _etag(body[(n - 1) * PART:n * PART])} for n in range(1, 6)]}
    assert sent["/jobs"]["items_from"] == {"upload_id": "up_1"}
    assert json.loads(out)["state"] == "active"
    assert not list((tmp_path / "uploads").iterdir())  # done: nothing left to resume


def test_a_changed_file_starts_over(server, tmp_path, capsys, items):
    _interrupted(items, tmp_path, capsys, server)
    Stub.seen.clear()
    # GIVEN the file changed since (one more line)
    items.write_text(items.read_text() + "item number 9999\n")
    body = items.read_bytes()
    # WHEN the command runs again
    code, _, err = _create(items, tmp_path, capsys, server)
    # THEN the earlier upload is aborted and the whole file goes to a new one
    assert code == 0, err
    assert "resuming" not in err
    assert ("DELETE", "/uploads/up_1") in [(method, path) for method, path, _ in Stub.seen]
    assert not [path for method, path, _ in Stub.seen if method == "GET"
                and path.startswith("/uploads")]
    posted = [details["body"] for method, path, details in Stub.seen
              if (method, path) == ("POST", "/uploads")]
    assert posted == [{"format": "csv", "bytes": len(body), "multipart": True}]
    parts = -(-len(body) // PART)
    assert _puts() == {f"/bucket/up_2/{n}": body[(n - 1) * PART:n * PART]
                       for n in range(1, parts + 1)}


def test_restart_starts_the_same_file_over(server, tmp_path, capsys, items):
    _interrupted(items, tmp_path, capsys, server)
    Stub.seen.clear()
    code, _, err = _create(items, tmp_path, capsys, server, "--restart")
    assert code == 0, err
    assert "resuming" not in err
    assert ("DELETE", "/uploads/up_1") in [(method, path) for method, path, _ in Stub.seen]
    assert sorted(_puts()) == [f"/bucket/up_2/{n}" for n in range(1, 6)]


def test_an_upload_the_api_no_longer_has_starts_over(server, tmp_path, capsys, items):
    _interrupted(items, tmp_path, capsys, server)
    Stub.seen.clear()
    # GIVEN the API dropped the earlier upload (its parts expired)
    Stub.script["/uploads/up_1"] = [(404, {"error": "upload_not_found", "message": "gone"})]
    code, _, err = _create(items, tmp_path, capsys, server)
    assert code == 0, err
    assert sorted(_puts()) == [f"/bucket/up_2/{n}" for n in range(1, 6)]


def test_parts_stream_from_disk_in_url_batches(server, tmp_path, monkeypatch):
    # GIVEN a client asking URLs two parts at a time, and a file of 5 parts whose upload
    # came with no URLs
    monkeypatch.setattr("crowd_client.client.PART_URL_BATCH", 2)
    file = tmp_path / "items.jsonl"
    file.write_bytes(b"".join(b'{"data": {"n": %d}}\n' % n for n in range(7)))
    size = len(file.read_bytes())
    Stub.script["/uploads"] = [(201, {**_target(server, "up_1", size), "part_urls": []})]
    Stub.script["/uploads/up_1/parts"] = [
        (200, {"part_urls": [{"part_number": n, "url": f"{server}/bucket/up_1/{n}"}
                             for n in numbers]}) for numbers in ((1, 2), (3, 4), (5,))]
    for n in range(1, 6):
        Stub.script[f"/bucket/up_1/{n}"] = [(200, None)]
    Stub.script["/uploads/up_1/complete"] = [(200, {"state": "complete"})]
    seen: list[int] = []
    # WHEN it uploads the file
    upload_id = Client(server, "ck").upload(file, "jsonl", lambda sent, total: seen.append(sent),
                                            multipart_above=10)
    # THEN the URLs were asked for in batches, every part sent once, and progress rose to
    # the file's size
    assert upload_id == "up_1"
    assert [details["body"] for method, path, details in Stub.seen
            if path == "/uploads/up_1/parts"] == [{"parts": [1, 2]}, {"parts": [3, 4]},
                                                  {"parts": [5]}]
    assert b"".join(_puts()[f"/bucket/up_1/{n}"] for n in range(1, 6)) == file.read_bytes()
    assert seen == sorted(seen) and seen[-1] == size
