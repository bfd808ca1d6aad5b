"""The local API server (`make run`'s, in a process of its own) answers routes it does not have
in the error shape, as the deployed stage's gateway responses do."""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.gateway_responses import NOT_FOUND_BODY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_url():
    """infra.api_server with the app; these requests end before anything reaches AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen([sys.executable, "-m", "infra.api_server", "--port", "0"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("LISTENING "), line
        yield line.split(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _call(url: str, method: str = "GET") -> tuple[int, dict, str]:
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": "Bearer wt_x"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


@pytest.mark.parametrize("path", ["/nope", "/jobs/job_x/nothing", "/"])
def test_an_unknown_route_is_404_in_the_error_shape(base_url, path):
    status, body, content_type = _call(base_url + path)
    assert (status, body) == (404, NOT_FOUND_BODY)
    assert content_type == "application/json"


def test_a_known_route_with_another_method_is_405_in_the_error_shape(base_url):
    status, body, _ = _call(base_url + "/quotes", "DELETE")
    assert status == 405 and body == {"error": "method_not_allowed",
                                      "message": "Unsupported method: DELETE"}
