"""Generated requests against `make run`'s stack: schemathesis reads GET /openapi.json and
sends valid and invalid requests to every operation (at least 2,000 in all). No answer may be
a 5xx, and every documented error must have the JSON error shape."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.stack_process import local_stack_process

HERE = Path(__file__).resolve().parent
MIN_REQUESTS = 2000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack_process(tmp_path_factory.mktemp("schemathesis-stack")) as running:
        yield running


def test_generated_requests_get_no_5xx_and_every_error_has_the_json_shape(stack, tmp_path):
    # GIVEN the API's own OpenAPI document, a client key and a worker token on every request
    info = stack.info
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file",
        str(HERE / "schemathesis.toml"), "run", f"{info['base_url']}/openapi.json",
        "-H", f"X-Api-Key: {info['client_key']}",
        "-H", f"Authorization: Bearer {info['worker_token']}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing", "--mode", "all",
        "--max-examples", "60", "--seed", "7", "--request-timeout", "20",
        "--no-color", "--report", "json", "--report-json-path", str(report),
    ]
    # WHEN schemathesis runs against it
    # (from tmp_path: schemathesis keeps a cache in its working directory)
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    # THEN nothing failed, and enough requests were sent
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    cases = json.loads(report.read_text())["test_cases"]
    assert cases["generated"] >= MIN_REQUESTS, cases
    assert cases["with_failures"] == 0 and cases["errored"] == 0, cases
