"""Cold-start import cost: `import app` against `import boto3` alone, in fresh interpreters.

Each figure is the median of several runs of a new interpreter that imports the module
and reports the time the import took (interpreter start-up excluded). The probes take turns
(boto3, app, app + wiring, then again), so a busy machine slows them alike and the ratio
holds up better than the milliseconds do.
Run: .venv/bin/python -m bench.import_time [--runs 10]
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


TARGET_RATIO = 1.0  # import app at most as slow as import boto3 alone


def probe_seconds(module: str, probe: str = PROBE) -> float:
    """Wall time of the probe (by default `import module`) in one fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", probe.format(module=module)], cwd=ROOT,
                         env={**os.environ, **FAKE_ENV}, check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip())


def medians(probes: dict[str, tuple[str, str]], runs: int) -> dict[str, float]:
    """Median seconds of each named (module, probe), the probes taking turns run by run."""
    times: dict[str, list[float]] = {name: [] for name in probes}
    for run in range(runs + 1):  # the first round warms the bytecode cache and is dropped
        for name, (module, probe) in probes.items():
            seconds = probe_seconds(module, probe)
            if run:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the table and the ratio against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    got = medians({"boto3": ("boto3", PROBE), "app": ("app", PROBE),
                   "first": ("app", FIRST_USE)}, args.runs)
    print(f"| import | median ms ({args.runs} fresh interpreters) |")
    print("|---|---:|")
    print(f"| boto3 | {got['boto3'] * 1000:.0f} |")
    print(f"| app | {got['app'] * 1000:.0f} |")
    print(f"| app + wiring on first request (boto3, pynamodb, clients) | {got['first'] * 1000:.0f} |")
    print(f"\napp / boto3 = {got['app'] / got['boto3']:.2f} (target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
