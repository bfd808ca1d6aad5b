"""Cold-start import cost: `import app` against `import boto3` alone, in fresh interpreters.

Each figure is the median of several runs of a new interpreter that imports the module
and reports the time the import took (interpreter start-up excluded).
Run: .venv/bin/python -m bench.import_time [--runs 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
# What the first request adds: wiring the Platform imports boto3 and pynamodb (no calls made).
FIRST_USE = ("import time; t = time.perf_counter(); import app; from chalicelib import deps; "
             "deps.platform(); print(time.perf_counter() - t)")
FAKE_ENV = {name: "x" for name in (
    "ACCOUNTS_TABLE", "CREDENTIALS_TABLE", "QUOTES_TABLE", "JOBS_TABLE", "ITEMS_TABLE",
    "RESULTS_TABLE", "WORKER_STATS_TABLE", "LEDGER_TABLE", "CATALOG_TABLE", "IDEMPOTENCY_TABLE", "INGEST_QUEUE_NAME",
    "RESULTS_QUEUE_NAME", "RESULTS_BUCKET", "WEBHOOKS_TABLE", "WEBHOOK_QUEUE_NAME",
    "WEBHOOK_DEAD_LETTER_QUEUE_NAME", "EVENT_BUS_NAME",
    "AGGREGATION_STATE_MACHINE_ARN")} | {"AWS_DEFAULT_REGION": "us-east-1"}


def import_seconds(module: str, runs: int, probe: str = PROBE) -> float:
    """Median wall time of the probe (by default `import module`) in a fresh interpreter."""
    env = {**os.environ, **FAKE_ENV}
    times = []
    for _ in range(runs + 1):  # the first run warms the bytecode cache and is dropped
        out = subprocess.run([sys.executable, "-c", probe.format(module=module)], cwd=ROOT,
                             env=env, check=True, capture_output=True, text=True).stdout
        times.append(float(out.strip()))
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    """Print the table and the ratio against the 1.5x target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    boto3_s = import_seconds("boto3", args.runs)
    app_s = import_seconds("app", args.runs)
    first_s = import_seconds("app", args.runs, FIRST_USE)
    print(f"| import | median ms ({args.runs} fresh interpreters) |")
    print("|---|---:|")
    print(f"| boto3 | {boto3_s * 1000:.0f} |")
    print(f"| app | {app_s * 1000:.0f} |")
    print(f"| app + wiring on first request (boto3, pynamodb, clients) | {first_s * 1000:.0f} |")
    print(f"\napp / boto3 = {app_s / boto3_s:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
