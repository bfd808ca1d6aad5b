"""Logs are JSON with the job and assignment ids; counts go out as EMF metrics; the hot paths
log per request only at DEBUG."""
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chalicelib.observability import logger
from tests.functional.marketplace import Api


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def logs():
    """What the app logs, as JSON text (the handler's own stream was bound at import)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


@pytest.fixture
def level():
    """Set the app logger's level for the test, as a stage's POWERTOOLS_LOG_LEVEL does."""
    before = logger.log_level
    yield logger.setLevel
    logger.setLevel(before)


def _lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_a_submit_logs_its_ids_and_publishes_metrics(stack, capsys, logs, level):
    # GIVEN a leased task, and the log level at DEBUG
    level("DEBUG")
    api = Api(stack)
    job = api.job(items=1, redundancy=1)
    token = api.worker()
    capsys.readouterr()
    logs.truncate(0)
    _, task = api.lease(token)
    # WHEN it is submitted, and submitted again after it is done
    api.submit(token, task["assignment_id"], {"label": "pos"})
    api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
    lines = _lines(logs.getvalue()) + _lines(capsys.readouterr().out)
    # THEN the logs carry the correlation keys
    accepted = [l for l in lines if l.get("message") == "answer accepted"]
    assert accepted and accepted[0]["assignment_id"] == task["assignment_id"]
    leased = [l for l in lines if l.get("message") == "task leased"]
    assert leased and leased[0]["job_id"] == job["job_id"]
    refused = [l for l in lines if l.get("message") == "request refused"]
    assert refused and refused[0]["error_code"] == "already_submitted"
    # AND the counts are EMF metrics in the Crowd namespace
    emf = [l for l in lines if "_aws" in l]
    names = {m["Name"] for l in emf for d in l["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Leases", "Submissions", "Rejections"} <= names
    assert all(d["Namespace"] == "Crowd" for l in emf for d in l["_aws"]["CloudWatchMetrics"])
    # AND a finished round reports its run and duration
    stack.wait_for_state(job["job_id"], api.key, ("done",))
    # (MarkDone runs in the state machine's thread and flushes its metrics just after the job
    # turns done, so they may land a moment after the state is visible)
    wanted, names, deadline = {"AnswersCounted", "AggregationRuns", "AggregationSeconds"}, set(), time.monotonic() + 5
    while not wanted <= names and time.monotonic() < deadline:
        names |= {m["Name"] for l in _lines(capsys.readouterr().out) if "_aws" in l
                  for d in l["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        time.sleep(0.05)
    assert wanted <= names


def test_at_info_a_lease_a_submit_and_a_refusal_log_no_line_but_their_metrics(
        stack, capsys, logs, level):
    # GIVEN a job with a task, and the log level at INFO
    level("INFO")
    api = Api(stack)
    api.job(items=1, redundancy=1)
    token = api.worker()
    stack.drain()
    capsys.readouterr()
    logs.truncate(0)
    # WHEN a worker leases it, submits it, is refused a release of it, and counting runs
    _, task = api.lease(token)
    api.submit(token, task["assignment_id"], {"label": "pos"})
    status, _ = api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
    assert status == 409
    stack.drain()
    out = capsys.readouterr().out
    # THEN the app wrote no log line, only one EMF blob per invocation
    assert [l for l in _lines(logs.getvalue()) if "_aws" not in l] == []
    emf = [l for l in _lines(out) if "_aws" in l]
    assert [l for l in _lines(out) if "_aws" not in l and "level" in l] == []
    names = [sorted(m["Name"] for d in l["_aws"]["CloudWatchMetrics"] for m in d["Metrics"])
             for l in emf]
    assert ["Leases"] in names and ["Submissions"] in names and ["Rejections"] in names
    assert ["AnswersCounted"] in names


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_logger_runs_at_the_level_a_stage_sets(stage):
    # GIVEN the stage's environment as config.json gives its functions
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = {**os.environ, **config.get("environment_variables", {}),
           **config["stages"][stage]["environment_variables"]}
    env.pop("AWS_LAMBDA_LOG_LEVEL", None)  # Lambda's own control would override it
    # WHEN the app's logger is made in a process with it
    code = "from chalicelib.observability import logger; print(logger.log_level)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    # THEN it logs at the stage's level
    wanted = config["stages"][stage]["environment_variables"]["POWERTOOLS_LOG_LEVEL"]
    assert int(out) == logging.getLevelName(wanted)
