"""`make run`'s stack as a separate process, and the demo against it over HTTP."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from examples.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


def test_the_local_stack_serves_the_demo_over_http_and_stops_cleanly(tmp_path):
    # GIVEN the local stack started as `make run` starts it
    ready, state = tmp_path / "ready.json", tmp_path / "state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = (tmp_path / "stack.log").open("w")  # a file, not a pipe: a full pipe would block it
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local_stack", "--port", "0", "--ready-file", str(ready),
         "--state-file", str(state)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), (tmp_path / "stack.log").read_text()
        info = json.loads(ready.read_text())
        assert info["base_url"].startswith("http://127.0.0.1:") and info["worker_token"]
        assert json.loads(state.read_text())["client_key"] == info["client_key"]
        # WHEN the demo runs against it: a 200-item job, 10 workers of different accuracy
        summary = run_demo(info["base_url"], info["client_key"], items=200, workers=10,
                           out=open(os.devnull, "w"))
        # THEN every item has its answers, spending stays in budget, and the aggregated
        # answers are more accurate than single answers
        assert summary["results"] == 200 and summary["answered"] == 600
        assert summary["spent_cents"] <= summary["budget_cents"]
        assert summary["accuracy"] > summary["worker_accuracy"]
        assert summary["accuracy"] >= 0.75
        assert len(summary["workers"]) == 10
    finally:
        # AND SIGTERM (as Ctrl-C) stops everything it started and removes its state files
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    output = (tmp_path / "stack.log").read_text()
    assert process.returncode == 0, output
    assert not state.exists() and not ready.exists()
    assert "READY http://127.0.0.1:" in output
