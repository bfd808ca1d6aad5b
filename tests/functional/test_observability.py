"""Logs are JSON with the job and assignment ids; counts go out as EMF metrics."""
import io
import json
import logging
import time

import pytest

from chalicelib.observability import logger
from tests.functional.marketplace import Api


@pytest.fixture
def logs():
    """What the app logs, as JSON text (the handler's own stream was bound at import)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def _lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_a_submit_logs_its_ids_and_publishes_metrics(stack, capsys, logs):
    # GIVEN a leased task
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
