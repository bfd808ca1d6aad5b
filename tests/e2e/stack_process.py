"""`make run`'s local stack as a separate process, for tests that talk to it over HTTP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StackProcess:
    """A running stack: its ready info, the process and its files."""

    info: dict
    process: subprocess.Popen
    log: Path
    ready: Path
    state: Path


@contextmanager
def local_stack_process(folder: Path) -> Iterator[StackProcess]:
    """Start `python -m infra.local_stack` as `make run` does; stop it with SIGTERM (as
    Ctrl-C) on the way out. Its output goes to a file, not a pipe (a full pipe would block)."""
    ready, state, log_path = folder / "ready.json", folder / "state.json", folder / "stack.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local_stack", "--port", "0", "--ready-file", str(ready),
         "--state-file", str(state)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), log_path.read_text()
        yield StackProcess(json.loads(ready.read_text()), process, log_path, ready, state)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:  # the test fails on the timeout; nothing is left running
                process.kill()
                process.wait()
            log.close()
