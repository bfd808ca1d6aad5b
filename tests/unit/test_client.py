"""crowd_client.Client against a stub HTTP server: retries, errors, paging, long form."""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crowd_client import ApiError, Client, WorkerClient
from crowd_client.cli import read_items, spec_argument, UsageError


class Stub(BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, body) per path, the last one repeated (a
    body of bytes is sent as it is, as a storage link's object would be)."""

    script: dict[str, list[tuple[int, object]]] = {}
    seen: list[tuple[str, str, dict]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append((self.command, self.path, {"key": self.headers.get("X-Api-Key"),
                                                    "body": body,
                                                    "idem": self.headers.get("Idempotency-Key"),
                                                    "auth": self.headers.get("Authorization")}))
        queue = self.script[self.path.split("?")[0]]
        status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                         else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_DELETE = _answer

    def do_PUT(self) -> None:
        """An upload to a presigned URL: the raw body is kept, the answer is empty but for
        the body's ETag (an MD5, as S3's)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        self.seen.append((self.command, self.path, {"raw": raw,
                                                    "type": self.headers.get("Content-Type")}))
        queue = self.script[self.path]
        status, _ = queue.pop(0) if len(queue) > 1 else queue[0]
        self.send_response(status)
        self.send_header("ETag", f'"{hashlib.md5(raw).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    Stub.script, Stub.seen = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _client(url: str) -> tuple[Client, list[float]]:
    waits: list[float] = []
    return Client(url, "ck_test", retries=3, backoff=0.1, sleep=waits.append), waits


def test_429_and_5xx_are_retried_with_growing_backoff(server):
    Stub.script["/quotes"] = [(503, {"error": "unavailable", "message": "busy"}),
                              (429, {"error": "throttled", "message": "slow down"}),
                              (201, {"quote_id": "q_1"})]
    client, waits = _client(server)
    assert client.quote(task_type="categorical", items=1) == {"quote_id": "q_1"}
    assert len(waits) == 2 and waits[1] > waits[0] * 0.5
    seen = [entry[2] for entry in Stub.seen]
    assert seen[-1]["key"] == "ck_test"
    assert seen[-1]["body"] == {"task_type": "categorical", "items": 1}
    # the three attempts carried one Idempotency-Key, so the quote is made once
    assert len({entry["idem"] for entry in seen}) == 1 and seen[0]["idem"]


def test_a_4xx_is_raised_at_once_with_the_apis_code_and_field(server):
    Stub.script["/quotes"] = [(400, {"error": "invalid_request", "message": "'items' must be",
                                     "field": "items"})]
    client, waits = _client(server)
    with pytest.raises(ApiError) as caught:
        client.quote(items=0)
    assert (caught.value.status, caught.value.code, caught.value.field) == (400, "invalid_request", "items")
    assert waits == []


def test_retries_run_out_with_the_last_error(server):
    Stub.script["/jobs/job_1"] = [(502, {"error": "bad_gateway", "message": "down"})]
    client, waits = _client(server)
    with pytest.raises(ApiError) as caught:
        client.job("job_1")
    assert caught.value.status == 502 and len(waits) == 3


def test_an_unreachable_api_is_status_0(server):
    client, waits = _client("http://127.0.0.1:9")
    with pytest.raises(ApiError) as caught:
        client.job("job_1")
    assert caught.value.status == 0 and caught.value.code == "unreachable" and len(waits) == 3


def test_results_follow_pages_and_give_crowd_kits_long_form(server):
    line = {"item_id": "000000", "external_id": "r-0", "answer": {"label": "pos"},
            "confidence": 0.9, "n_answers": 2, "not_applicable": False, "method": "DawidSkene",
            "answers": [{"worker_id": "w1", "answer": {"label": "pos"}},
                        {"worker_id": "w2", "answer": {"not_applicable": "empty"}}]}
    Stub.script["/jobs/job_1/results"] = [
        (200, {"results": [line], "next_cursor": "abc"}),
        (200, {"results": [{**line, "item_id": "000001", "external_id": None}],
               "next_cursor": None})]
    client, _ = _client(server)
    assert client.answers("job_1") == [
        {"task": "r-0", "worker": "w1", "label": "pos"},
        {"task": "r-0", "worker": "w2", "label": "not_applicable"},
        {"task": "000001", "worker": "w1", "label": "pos"},
        {"task": "000001", "worker": "w2", "label": "not_applicable"}]
    assert [path for _, path, _ in Stub.seen][-1].endswith("cursor=abc")


def test_the_clis_inputs_are_checked(tmp_path):
    assert spec_argument(["items=3", "task_type=categorical", "gold_rate=0.2"]) == {
        "items": 3, "task_type": "categorical", "gold_rate": 0.2}
    with pytest.raises(UsageError):
        spec_argument(["items"])
    lines = tmp_path / "items.jsonl"
    lines.write_text('{"text": "a"}\n\n{"data": {"text": "b"}, "external_id": "x"}\n')
    assert read_items(str(lines)) == [{"data": {"text": "a"}},
                                      {"data": {"text": "b"}, "external_id": "x"}]
    lines.write_text("not json\n")
    with pytest.raises(UsageError) as caught:
        read_items(str(lines))
    assert ":1:" in str(caught.value)


def test_an_answer_of_other_fields_reads_as_text_not_escapes(server):
    line = {"item_id": "000000", "external_id": None, "answer": None, "confidence": 0.5,
            "n_answers": 1, "not_applicable": False,
            "answers": [{"worker_id": "w1", "answer": {"choix": "très bien"}}]}
    Stub.script["/jobs/job_1/results"] = [(200, {"results": [line], "next_cursor": None})]
    client, _ = _client(server)
    assert client.answers("job_1")[0]["label"] == '{"choix": "très bien"}'


def test_a_worker_leases_and_submits_a_suite_with_its_token(server):
    task = {"assignment_id": "asg_1", "item": {"item_id": "000000", "data": {}}}
    Stub.script["/tasks/next"] = [(200, {"tasks": [task], "suite_size": 5}), (204, b"")]
    Stub.script["/assignments/submit"] = [(200, {"results": [{"assignment_id": "asg_1",
                                                              "status": "accepted"}],
                                                 "next": None})]
    worker = WorkerClient(server, "wt_test", retries=0)
    suite = worker.lease_suite(5, job_id="job_1")
    assert suite == {"tasks": [task], "suite_size": 5}
    done = worker.submit_suite([{"assignment_id": "asg_1", "answer": {"label": "pos"}}],
                               next_count=5, job_id="job_1", idempotency_key="k1")
    assert done["results"][0]["status"] == "accepted"
    assert worker.lease_suite(5) is None  # 204: nothing for this worker
    (_, lease_path, lease), (_, _, submit), (_, bare_path, _) = Stub.seen
    assert lease_path == "/tasks/next?count=5&job_id=job_1" and bare_path == "/tasks/next?count=5"
    assert lease["auth"] == "Bearer wt_test" and lease["key"] is None
    assert submit["body"] == {"answers": [{"assignment_id": "asg_1", "answer": {"label": "pos"}}],
                              "next": {"count": 5, "job_id": "job_1"}}
    assert submit["idem"] == "k1" and submit["auth"] == "Bearer wt_test"
