"""The `crowd` command (installed into the venv) against `make run`'s stack, end to end."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crowd_client import Client
from examples.demo import call
from tests.e2e.stack_process import local_stack_process

CROWD = str(Path(sys.executable).with_name("crowd"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack_process(tmp_path_factory.mktemp("stack")) as running:
        yield running.info


def crowd(stack, *args, env=None, cwd=None):
    """Run the installed `crowd` with the stack's URL and key in the environment."""
    environment = {**os.environ, "CROWD_API_URL": stack["base_url"],
                   "CROWD_API_KEY": stack["client_key"], **(env or {})}
    return subprocess.run([CROWD, *args], capture_output=True, text=True, env=environment,
                          cwd=cwd, timeout=120)


def _answer_everything(stack, job_id, workers=2, label="pos"):
    for n in range(workers):
        _, worker = call(stack["base_url"], "POST", "/workers", {"name": f"cli-{job_id}-{n}",
                                                                  "skills": ["en"]})
        auth = {"Authorization": f"Bearer {worker['token']}"}
        while True:
            status, task = call(stack["base_url"], "GET", f"/tasks/next?job_id={job_id}",
                                headers=auth)
            if status == 204:
                break
            call(stack["base_url"], "POST", f"/assignments/{task['assignment_id']}/submit",
                 {"label": label}, headers=auth)


def test_a_client_runs_a_job_from_a_csv_file_to_downloaded_results(stack, tmp_path):
    # GIVEN items in a CSV file, one of them gold
    items = tmp_path / "items.csv"
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "text", "gold_label"])
        for n in range(6):
            writer.writerow([f"r-{n}", f"review {n}", "pos" if n == 0 else ""])
    # WHEN the client quotes, creates the job (which quotes for the file), and watches it
    quote = crowd(stack, "quote", "task_type=categorical", "items=6", "redundancy=2")
    assert quote.returncode == 0, quote.stderr
    assert json.loads(quote.stdout)["items"] == 6
    created = crowd(stack, "jobs", "create", "--items", str(items), "--labels", "pos,neg",
                    "--instructions", "Is the review positive?", "--redundancy", "2",
                    "--pilot", "0", "--gold-rate", "0.2")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["state"] == "active" and job["gold_items"] == 1 and job["ingest"]["written"] == 1
    assert "writing items [" in created.stderr and "(100%)" in created.stderr
    _answer_everything(stack, job["job_id"], workers=3)
    watched = crowd(stack, "jobs", "watch", job["job_id"], "--every", "0.5", "--timeout", "90")
    assert watched.returncode == 0, watched.stderr
    assert f"{job['job_id']} done" in watched.stdout
    # THEN the report reads as tables, and as an HTML page with charts
    report = crowd(stack, "jobs", "report", job["job_id"])
    assert report.returncode == 0 and "Krippendorff's alpha" in report.stdout
    assert "gold accuracy" in report.stdout and "workers" in report.stdout
    page = tmp_path / "report.html"
    assert crowd(stack, "jobs", "report", job["job_id"], "--html", str(page)).returncode == 0
    assert "<svg" in page.read_text()
    # AND results download as CSV and JSON Lines, and raw answers in crowd-kit's long form
    assert crowd(stack, "jobs", "results", job["job_id"], "-o", str(tmp_path / "r.csv")).returncode == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [row["external_id"] for row in rows] == [f"r-{n}" for n in range(6)]
    assert {row["answer"] for row in rows[1:]} == {"pos"}
    # r-0 is gold: served at the gold rate, never as a worker's only task, so whether any of
    # the three workers met it is chance; unanswered, its result has no answer
    assert rows[0]["answer"] in ("pos", "")
    assert crowd(stack, "jobs", "results", job["job_id"], "-o", str(tmp_path / "r.jsonl")).returncode == 0
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 6
    answers = crowd(stack, "jobs", "results", job["job_id"], "--answers", "-o",
                    str(tmp_path / "answers.csv"))
    assert answers.returncode == 0
    long_form = list(csv.DictReader((tmp_path / "answers.csv").open()))
    assert set(long_form[0]) == {"task", "worker", "label"} and len(long_form) >= 10
    # AND the Python client gives the same as DataFrames
    client = Client(stack["base_url"], stack["client_key"])
    frame = client.results_frame(job["job_id"])
    assert list(frame["external_id"]) == [f"r-{n}" for n in range(6)]
    assert "confidence_raw" in frame.columns
    assert list(client.answers_frame(job["job_id"]).columns) == ["task", "worker", "label"]


def test_the_pilot_is_promoted_and_a_job_stopped_from_the_command_line(stack, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"text": f"t{n}"}) + "\n" for n in range(25)))
    created = crowd(stack, "jobs", "create", "--items", str(items), "--labels", "pos,neg",
                    "--instructions", "Pick one.", "--redundancy", "1", "--pilot", "2",
                    "--gold-rate", "0")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    early = crowd(stack, "jobs", "results", job["job_id"], "-o", str(tmp_path / "early.csv"))
    assert early.returncode == 1 and "[results_not_ready]" in early.stderr, early.stderr
    assert not (tmp_path / "early.csv").exists()
    _answer_everything(stack, job["job_id"], workers=1)
    watched = crowd(stack, "jobs", "watch", job["job_id"], "--every", "0.5", "--timeout", "90")
    assert f"{job['job_id']} paused (calibration" in watched.stdout, watched.stdout
    promoted = crowd(stack, "jobs", "promote", job["job_id"], "--instructions", "Pick one. New.")
    assert promoted.returncode == 0 and "active (production, round 2)" in promoted.stdout
    stopped = crowd(stack, "jobs", "stop", job["job_id"])
    assert stopped.returncode == 0 and "aggregating" in stopped.stdout
    again = crowd(stack, "jobs", "promote", job["job_id"])
    assert again.returncode == 1 and "[409 job_not_promotable]" in again.stderr
    listed = crowd(stack, "jobs", "list")
    assert job["job_id"] in listed.stdout


def test_configuration_and_errors_give_clear_messages_and_exit_codes(stack, tmp_path):
    # the stack's ready file holds what `make run` writes to .local-stack.json
    config = tmp_path / ".local-stack.json"
    config.write_text(json.dumps(stack))
    bare = {"CROWD_API_URL": "", "CROWD_API_KEY": "", "CROWD_CONFIG": str(tmp_path / "none.json")}
    ok = crowd(stack, "quote", '{"task_type": "numeric", "items": 1}', "--config", str(config),
               env=bare)
    assert ok.returncode == 0 and json.loads(ok.stdout)["task_type"] == "numeric", ok.stderr
    missing = crowd(stack, "quote", "items=1", env=bare)
    assert missing.returncode == 2 and "set the API URL and key" in missing.stderr
    refused = crowd(stack, "quote", "task_type=painting", "items=1")
    assert refused.returncode == 1 and "(field: task_type)" in refused.stderr
    wrong_key = crowd(stack, "--api-key", "ck_nope", "jobs", "list")
    assert wrong_key.returncode == 1 and "401 invalid_credentials" in wrong_key.stderr
    unreachable = crowd(stack, "--api-url", "http://127.0.0.1:9", "jobs", "list")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    bad_file = tmp_path / "items.txt"
    bad_file.write_text("x")
    wrong = crowd(stack, "jobs", "create", "--items", str(bad_file), "--instructions", "x")
    assert wrong.returncode == 2 and ".jsonl or .csv" in wrong.stderr
    assert "Traceback" not in wrong.stderr + refused.stderr + unreachable.stderr


def test_a_big_file_is_uploaded_and_its_bad_lines_shown_by_number(stack, tmp_path):
    # GIVEN a JSON Lines file over the upload size (1 MiB): 6,000 items, line 4,321 not JSON
    items = tmp_path / "big.jsonl"
    lines = [json.dumps({"text": f"review {n} " + "x" * 160}) for n in range(1, 6001)]
    lines[4320] = "{not json"
    items.write_text("\n".join(lines) + "\n")
    assert items.stat().st_size > 1024 * 1024
    # WHEN the job is created from it without skipping bad lines
    failed = crowd(stack, "jobs", "create", "--items", str(items), "--labels", "pos,neg",
                   "--instructions", "x", "--redundancy", "1")
    # THEN the file went to the bucket through the upload URL, the job failed, and the bad
    # line is shown by its number: exit 1
    assert failed.returncode == 1, failed.stderr
    assert "uploading [" in failed.stderr and "reading the file [" in failed.stderr
    assert f"{items}:4321: the line is not JSON" in failed.stderr
    assert json.loads(failed.stdout)["state"] == "failed"
    # AND with --skip-bad-lines the job starts with the other 5,999 (quoted for 6,000 lines:
    # the count must match, so the quote is for the items it will hold)
    quote = crowd(stack, "quote", "task_type=categorical", "items=5999", "redundancy=1")
    created = crowd(stack, "jobs", "create", "--items", str(items), "--labels", "pos,neg",
                    "--instructions", "x", "--skip-bad-lines", "--quote",
                    json.loads(quote.stdout)["quote_id"])
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["state"] == "active" and job["pilot_items"] == 100
    assert "6000 lines, 5999 items, 1 bad lines" in created.stderr
