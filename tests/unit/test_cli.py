"""The `crowd` command (crowd_client.cli.main) against the stub HTTP server of test_client."""
from __future__ import annotations

import io
import json

import pytest

from crowd_client import cli
from tests.unit.test_client import Stub, server  # noqa: F401 (server is a fixture)

JOB = {"job_id": "job_1", "title": "t", "state": "active", "task_type": "categorical",
       "phase": "production",
       "round": 1, "counts": {"items": 2, "done": 0}, "budget_cents": 100, "spent_cents": 0}
LINE = {"item_id": "000000", "external_id": "r-0", "answer": {"label": "pos"}, "confidence": 0.9,
        "n_answers": 1, "not_applicable": False, "method": "DawidSkene", "answers": []}


def _run(argv, tmp_path, capsys, environ=None):
    """main(argv) with no configuration but what argv and environ give; (code, out, err)."""
    out = io.StringIO()
    code = cli.main(argv, {"CROWD_CONFIG": str(tmp_path / "none.json"), **(environ or {})}, out)
    return code, out.getvalue(), capsys.readouterr().err


def test_global_options_are_accepted_after_the_command_too(server, tmp_path, capsys):
    Stub.script["/jobs"] = [(200, {"jobs": [JOB], "next_cursor": None})]
    # WHEN the URL and key follow the command (and the sub-command)
    code, out, err = _run(["jobs", "list", "--api-url", server, "--api-key", "ck_after"],
                          tmp_path, capsys)
    # THEN they are used
    assert code == 0, err
    assert "job_1" in out and Stub.seen[-1][2]["key"] == "ck_after"
    # AND values given before the command are not reset by the command's own options
    code, _, err = _run(["--api-url", server, "--api-key", "ck_before", "jobs", "list"],
                        tmp_path, capsys)
    assert code == 0, err
    assert Stub.seen[-1][2]["key"] == "ck_before"
    # AND --config works after the command as well
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"api_url": server, "api_key": "ck_file"}))
    Stub.script["/quotes"] = [(201, {"quote_id": "q_1"})]
    code, out, err = _run(["quote", "items=1", "--config", str(config)], tmp_path, capsys)
    assert code == 0, err
    assert Stub.seen[-1][2]["key"] == "ck_file"


def test_the_local_stacks_state_file_is_a_config(server, tmp_path, capsys):
    from infra.local_stack import LocalStack

    # GIVEN the file `make run` writes (.local-stack.json), for a stack at the stub's URL
    stack = LocalStack(base_url=server, moto_endpoint="http://127.0.0.1:1", client_key="ck_stack",
                       worker_token="wt_x", operator_key="ok_x", environment={},
                       stack_outputs={}, app=None)
    state = tmp_path / ".local-stack.json"
    info = stack.info()
    assert (info["api_url"], info["api_key"]) == (server, "ck_stack")  # the CLI's own names
    state.write_text(json.dumps(info))
    Stub.script["/jobs"] = [(200, {"jobs": [JOB], "next_cursor": None})]
    # WHEN the CLI is given it as its config
    code, out, err = _run(["--config", str(state), "jobs", "list"], tmp_path, capsys)
    # THEN it talks to that stack with its client key
    assert code == 0, err
    assert "job_1" in out and Stub.seen[-1][2]["key"] == "ck_stack"
    # AND a file with only the older names (base_url, client_key) works too
    state.write_text(json.dumps({"base_url": server, "client_key": "ck_old"}))
    code, _, err = _run(["jobs", "list", "--config", str(state)], tmp_path, capsys)
    assert code == 0, err
    assert Stub.seen[-1][2]["key"] == "ck_old"


def test_results_before_any_are_published_are_refused_not_written_empty(server, tmp_path, capsys):
    # GIVEN an active job with no published round (its results page is empty)
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "active", "result_count": None})]
    Stub.script["/jobs/job_1/results"] = [(200, {"job_id": "job_1", "state": "active",
                                                 "results": [], "next_cursor": None})]
    target = tmp_path / "r.csv"
    # WHEN the client downloads its results
    code, out, err = _run(["jobs", "results", "job_1", "-o", str(target), "--api-url", server,
                           "--api-key", "ck"], tmp_path, capsys)
    # THEN the command says they are not ready, exits 1 and writes no file
    assert code == 1 and "results are not ready" in err and "[results_not_ready]" in err
    assert "--wait" in err and not target.exists() and out == ""


def test_results_wait_polls_until_the_job_is_done(server, tmp_path, capsys):
    # GIVEN a job that is still aggregating on the first two polls, then done
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "active", "result_count": None}),
                                  (200, {**JOB, "state": "aggregating", "result_count": None}),
                                  (200, {**JOB, "state": "done", "result_count": 1})]
    _downloadable(server, (json.dumps(LINE) + "\n").encode())
    target = tmp_path / "r.jsonl"
    # WHEN the client downloads with --wait
    code, out, err = _run(["jobs", "results", "job_1", "-o", str(target), "--wait",
                           "--every", "0.01", "--timeout", "30", "--api-url", server,
                           "--api-key", "ck"], tmp_path, capsys)
    # THEN it polled the job three times, then wrote the results
    assert code == 0, err
    assert [path for _, path, _ in Stub.seen].count("/jobs/job_1") == 3
    assert json.loads(target.read_text())["item_id"] == "000000"
    assert "wrote 1 results" in out


def _downloadable(server: str, body: bytes, fmt: str = "jsonl", count: int = 1) -> str:
    """The API hands out a link to a storage object holding body; the object's path."""
    path = f"/storage/results.{fmt}"
    Stub.script["/jobs/job_1/results/download"] = [(200, {
        "job_id": "job_1", "format": fmt, "url": f"{server}{path}?X-Amz-Signature=abc",
        "expires_in_seconds": 900, "result_count": count})]
    Stub.script[path] = [(200, body)]
    return path


@pytest.mark.parametrize("suffix, fmt", [(".jsonl", "jsonl"), (".ndjson", "jsonl"),
                                         (".CSV", "csv")])
def test_results_stream_from_the_download_link_into_the_file_with_progress(
        server, tmp_path, capsys, suffix, fmt):
    # GIVEN a done job whose download (in the format the file's suffix names) is 3,000 rows,
    # about 1.2 MB: more than a few of the client's chunks
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "done", "result_count": 3000})]
    header = b"item_id,external_id,answer\r\n" if fmt == "csv" else b""
    body = header + b"".join(json.dumps({**LINE, "item_id": f"{n:06d}", "pad": "x" * 300},
                                        separators=(",", ":")).encode() + b"\n"
                             for n in range(3000))
    storage = _downloadable(server, body, fmt, 3000)
    target = tmp_path / f"results{suffix}"
    # WHEN the client downloads its results
    code, out, err = _run(["jobs", "results", "job_1", "-o", str(target), "--api-url", server,
                           "--api-key", "ck"], tmp_path, capsys)
    # THEN the file holds the object byte for byte, and nothing is left beside it
    assert code == 0, err
    assert target.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "none.json") == [target.name]
    # AND the link was asked for in that format, and fetched without the API key
    asked = [path for _, path, _ in Stub.seen if path.startswith("/jobs/job_1/results/download")]
    assert asked == [f"/jobs/job_1/results/download?format={fmt}"]
    fetched = [seen for _, path, seen in Stub.seen if path.startswith(storage)]
    assert len(fetched) == 1 and fetched[0]["key"] is None
    # AND stderr showed the bytes and rows as they came, ending with the whole file
    assert "downloading [" in err and f"{len(body) / 1e6:.1f} MB" in err
    assert err.rstrip().endswith("(100%), 3000 rows")
    assert "wrote 3000 results" in out


def test_results_to_a_file_of_another_kind_are_refused_before_any_request(server, tmp_path,
                                                                         capsys):
    code, _, err = _run(["jobs", "results", "job_1", "-o", str(tmp_path / "r.xlsx"),
                         "--api-url", server, "--api-key", "ck"], tmp_path, capsys)
    assert code == 2 and ".jsonl or .csv" in err and Stub.seen == []


def test_a_download_that_fails_leaves_no_file(server, tmp_path, capsys):
    # GIVEN a done job whose storage link answers 403 (it expired)
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "done", "result_count": 1})]
    storage = _downloadable(server, b"")
    Stub.script[storage] = [(403, {"error": "AccessDenied", "message": "Request has expired"})]
    target = tmp_path / "r.csv"
    # WHEN the client downloads its results THEN it exits 1 saying so, and writes no file
    code, out, err = _run(["jobs", "results", "job_1", "-o", str(target), "--api-url", server,
                           "--api-key", "ck"], tmp_path, capsys)
    assert code == 1 and "download_failed" in err and "fresh link" in err and out == ""
    assert not target.exists() and not (tmp_path / "r.csv.part").exists()


def test_raw_answers_are_written_as_their_pages_come(server, tmp_path, capsys):
    # GIVEN a done job with two result pages, the first item answered twice
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "done", "result_count": 2})]
    answered = {**LINE, "answers": [{"worker_id": "w1", "answer": {"label": "pos"}},
                                    {"worker_id": "w2", "answer": {"label": "neg"}}]}
    Stub.script["/jobs/job_1/results"] = [
        (200, {"results": [answered], "next_cursor": "c1"}),
        (200, {"results": [{**LINE, "item_id": "000001", "external_id": None,
                            "answers": [{"worker_id": "w1",
                                         "answer": {"not_applicable": True}}]}],
               "next_cursor": None})]
    target = tmp_path / "answers.csv"
    # WHEN the raw answers are asked for
    code, out, err = _run(["jobs", "results", "job_1", "-o", str(target), "--answers",
                           "--api-url", server, "--api-key", "ck"], tmp_path, capsys)
    # THEN every answer is a row of crowd-kit's long form, and the count is shown
    assert code == 0, err
    assert target.read_text().splitlines() == ["task,worker,label", "r-0,w1,pos", "r-0,w2,neg",
                                               "000001,w1,not_applicable"]
    assert "answers written: 3" in err and "wrote 3 answers" in out


def test_results_wait_for_a_failed_job_without_results_is_refused(server, tmp_path, capsys):
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "failed", "result_count": None})]
    code, _, err = _run(["jobs", "results", "job_1", "-o", str(tmp_path / "r.csv"), "--wait",
                         "--every", "0.01", "--api-url", server, "--api-key", "ck"],
                        tmp_path, capsys)
    assert code == 1 and "job_1 is failed" in err and not (tmp_path / "r.csv").exists()


def test_the_report_prints_non_ascii_labels_as_text(server, tmp_path, capsys):
    # GIVEN a report whose labels and answers are not ASCII
    report = {"job_id": "job_1", "round": 1, "phase": "pilot", "items": 1, "answered_items": 1,
              "answers": 2, "workers": 2, "agreement": {}, "gold": {"items": 1, "answers": 1},
              "not_applicable": {"rate": 0.5, "reasons": [{"reason": "pas en français",
                                                           "count": 1}]},
              "result_distribution": {"négatif": 1.0},
              "lowest_confidence": [{"item_id": "000000", "external_id": "é-1",
                                     "answer": {"label": "négatif"}, "confidence": 0.5}],
              "worker_summary": [
                  {"worker_id": "w1", "answers": 1, "agreement_with_results": 1.0, "too_fast": 1,
                   "gold_answers": 1, "gold_correct": 1, "gold_accuracy": 0.6667},
                  {"worker_id": "w2", "answers": 1, "agreement_with_results": 0.0, "too_fast": 0,
                   "gold_answers": 0, "gold_correct": 0, "gold_accuracy": None}],
              "calibration": {"kind": "temperature", "reason": "r", "params": {"t": 2.0},
                              "gold_items": 40, "before": {"ece": 0.21}, "after": {"ece": 0.04},
                              "gold_clamped": False}}
    Stub.script["/jobs/job_1/report"] = [(200, report)]
    # WHEN it is printed as tables, and as JSON
    code, tables, err = _run(["jobs", "report", "job_1", "--api-url", server, "--api-key", "ck"],
                             tmp_path, capsys)
    assert code == 0, err
    code, as_json, err = _run(["jobs", "report", "job_1", "--json", "--api-url", server,
                               "--api-key", "ck"], tmp_path, capsys)
    assert code == 0, err
    # THEN the labels read as text, never as \u escapes
    for text in (tables, as_json):
        assert "négatif" in text and "français" in text and "\\u" not in text
    assert "é-1" in tables
    # AND the calibration line names the map and its ECE before and after
    assert "temperature on 40 gold items, ECE 0.21 -> 0.04; model fitted with gold not " \
        "clamped" in tables
    # AND each worker's too-fast answers show, and a worker without gold answers says so
    workers = tables.split("\nworkers\n")[1].split("\n\n")[0].splitlines()
    assert workers[0].split() == ["worker", "answers", "agreement", "estimated", "gold", "too",
                                  "fast"]
    assert workers[2].split()[-2:] == ["0.6667", "1"]
    assert workers[3].split()[-3:] == ["none", "yet", "0"]


def test_a_job_line_marks_an_estimated_lease_count():
    # GIVEN a large job whose live leases the API estimated, and a small one's exact count
    estimated = {**JOB, "counts": {**JOB["counts"], "leased": 1200, "leased_estimated": True}}
    exact = {**JOB, "counts": {**JOB["counts"], "leased": 3, "leased_estimated": False}}
    # THEN the line shows the estimate as one, and the exact count as it is
    assert "~1200 leased" in cli.job_line(estimated)
    assert " 3 leased" in cli.job_line(exact) and "~" not in cli.job_line(exact)


def _upload_script(server, final):
    """The API's answers for a job created from an upload that ends in `final`."""
    Stub.script["/quotes"] = [(201, {"quote_id": "q_1", "total_cents": 100,
                                     "expires_at": "2030-01-01T00:00:00Z"})]
    Stub.script["/uploads"] = [(201, {"upload_id": "up_1", "url": f"{server}/bucket/up_1",
                                      "method": "PUT",
                                      "headers": {"Content-Type": "application/x-ndjson"}})]
    Stub.script["/bucket/up_1"] = [(200, None)]
    Stub.script["/jobs"] = [(202, {**JOB, "state": "ingesting",
                                   "ingest": {"chunks": 3, "written": 0}})]
    Stub.script["/jobs/job_1"] = [(200, {**JOB, "state": "ingesting",
                                         "ingest": {"chunks": 3, "written": 1}}),
                                  (200, {**JOB, **final, "ingest": {"chunks": 3, "written": 3}})]


def test_jobs_create_uploads_a_big_file_and_shows_its_bad_lines(server, tmp_path, capsys,
                                                                monkeypatch):
    # GIVEN a file above the upload size: an item without "data", a bad line, a blank line
    monkeypatch.setattr(cli, "UPLOAD_ABOVE_BYTES", 10)
    items = tmp_path / "big.jsonl"
    items.write_text('{"text": "a"}\n{"data": {"text": "b"}, "external_id": "x"}\n{oops\n\n'
                     '{"text": "c"}\n')
    _upload_script(server, {"state": "failed", "error": "the file has 1 bad line(s)"})
    Stub.script["/jobs/job_1/ingest"] = [(200, {
        "lines": 5, "items": 3, "bad_lines": 1, "truncated": False,
        "listed": [{"line": 3, "message": "the line is not JSON", "field": None}]})]
    # WHEN it is posted
    code, out, err = _run(["jobs", "create", "--items", str(items), "--labels", "pos,neg",
                           "--instructions", "x", "--api-url", server, "--api-key", "ck"],
                          tmp_path, capsys)
    # THEN the quote is for its 4 items, the file goes to the upload URL (each line on its
    # line, an item without "data" wrapped), the job names the upload, and the bad line is
    # shown by its line number in the file; the job failed: exit 1
    assert code == 1, err
    sent = {path: details for method, path, details in Stub.seen if method != "GET"}
    assert sent["/quotes"]["body"]["items"] == 4
    assert sent["/uploads"]["body"]["format"] == "jsonl"
    assert sent["/bucket/up_1"]["type"] == "application/x-ndjson"
    assert sent["/bucket/up_1"]["raw"].decode().split("\n") == [
        '{"data": {"text": "a"}}', '{"data": {"text": "b"}, "external_id": "x"}', "{oops", "",
        '{"data": {"text": "c"}}', ""]
    assert sent["/uploads"]["body"]["bytes"] == len(sent["/bucket/up_1"]["raw"])
    assert sent["/jobs"]["body"]["items_from"] == {"upload_id": "up_1"}
    assert "items" not in sent["/jobs"]["body"] and "skip_bad_lines" not in sent["/jobs"]["body"]
    assert "uploading [" in err and "reading the file [" in err
    assert f"{items}:3: the line is not JSON" in err and "5 lines, 3 items, 1 bad lines" in err
    assert json.loads(out)["state"] == "failed"


def test_jobs_create_skips_bad_lines_when_asked(server, tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_text("external_id,text\nr1,hello\nr2,bye\n")
    _upload_script(server, {"state": "active"})
    Stub.script["/jobs/job_1/ingest"] = [(200, {"lines": 3, "items": 2, "bad_lines": 0,
                                                "listed": [], "truncated": False})]
    code, out, err = _run(["jobs", "create", "--items", str(items), "--upload", "always",
                           "--skip-bad-lines", "--labels", "pos,neg", "--instructions", "x",
                           "--api-url", server, "--api-key", "ck"], tmp_path, capsys)
    assert code == 0, err
    sent = {path: details for method, path, details in Stub.seen if method != "GET"}
    assert sent["/uploads"]["body"] == {"format": "csv", "bytes": items.stat().st_size}
    assert sent["/bucket/up_1"]["raw"] == items.read_bytes()
    assert sent["/jobs"]["body"]["skip_bad_lines"] is True
    assert sent["/quotes"]["body"]["items"] == 2


def test_a_small_file_still_goes_inline(server, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "a"}\n')
    _upload_script(server, {"state": "active"})
    code, _, err = _run(["jobs", "create", "--items", str(items), "--labels", "pos,neg",
                         "--instructions", "x", "--api-url", server, "--api-key", "ck"],
                        tmp_path, capsys)
    assert code == 0, err
    assert not [path for _, path, _ in Stub.seen if path in ("/uploads", "/bucket/up_1")]
    assert [body for method, path, body in Stub.seen if path == "/jobs"][0]["body"]["items"] == \
        [{"data": {"text": "a"}}]


def test_jobs_create_passes_the_suite_size(server, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "a"}\n')
    _upload_script(server, {"state": "active"})
    code, _, err = _run(["jobs", "create", "--items", str(items), "--labels", "pos,neg",
                         "--instructions", "x", "--suite-size", "5", "--api-url", server,
                         "--api-key", "ck"], tmp_path, capsys)
    assert code == 0, err
    assert [body for _, path, body in Stub.seen if path == "/jobs"][0]["body"]["suite_size"] == 5
