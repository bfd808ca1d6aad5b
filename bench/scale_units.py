"""Billed DynamoDB units and AWS requests of a whole uploaded job, stage by stage, on the moto
stack: tests/functional/test_big_job.py's run (upload, ingest, answers, counting, the round
closing by itself, the state machine over a Distributed Map, both downloads, the paged
results API, the report) with every DynamoDB call billed as bench.capacity bills it
(bench/billing.py, from the items before and after each write) and every other AWS request
counted, split by the run's phases.

The answers: 60 go through the API (lease and submit); the rest are written by the run itself
the way submit writes them, a page of items per BatchWriteItem, and those writes are the
harness's, shown apart and not billed to the job (a lease and a submit through the API cost
what `bench.capacity` measures: 2.30 and 1.91 write units per judgment). Their counting is
the app's own consumer and is billed.

Per phase: DynamoDB calls, write and read units, units per item (and what that makes for a
1,000,000-item job at the same redundancy, every phase being paged per item or per range), and
the requests to SQS, S3 and Step Functions.

Run: .venv/bin/python -m bench.scale_units [--items 1000]
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from typing import Any

import botocore.client

from bench.billing import total
from bench.capacity import CapacityRecorder

MILLION = 1_000_000
# Phases whose work grows with the job's items (the others are a fixed handful of calls: the
# quote, registering the workers, the 60 answers through the API, the report).
PER_ITEM = ("ingest", "answers written", "round closes", "download", "walk")


class _App(dict):
    """A purposes map naming every call made from the app's own code 'app' (a call with no
    frame of chalicelib is the harness's: bench.requests_per_judgment.purpose_of)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "app"


class Phases:
    """The run's phases as ranges of recorded DynamoDB calls and counted other requests, with
    their wall seconds: a drop-in for test_big_job's Clock."""

    def __init__(self, recorder: CapacityRecorder, requests: list[tuple[str, str]]) -> None:
        self.recorder, self.requests = recorder, requests
        self.phases: list[tuple[str, int, int, int, int, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        calls, requests, started = len(self.recorder.calls), len(self.requests), time.perf_counter()
        yield
        self.phases.append((name, calls, len(self.recorder.calls), requests, len(self.requests),
                            time.perf_counter() - started))

    def table(self) -> str:
        return ""  # the run prints its table; this bench prints its own


@contextmanager
def counting_other_requests(into: list[tuple[str, str]]) -> Iterator[None]:
    """Append (service, operation) of every non-DynamoDB request made through botocore."""
    inner = botocore.client.BaseClient._make_api_call
    lock = threading.Lock()

    def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        if service != "dynamodb":
            with lock:
                into.append((service, operation))
        return inner(client, operation, params)

    botocore.client.BaseClient._make_api_call = call
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = inner


def report(phases: Phases, items: int, redundancy: int) -> str:
    """The Markdown table of the phases."""
    recorder = phases.recorder
    scale = MILLION / items
    lines = ["| phase | wall s | DynamoDB calls | WRU | RRU | WRU / item | RRU / item "
             "| WRU at 1M items | other requests |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    harness_w = harness_calls = 0.0
    for name, first, last, r_first, r_last, wall in phases.phases:
        calls = recorder.calls[first:last]
        app = [c for c in calls if c.purpose == "app"]
        harness = [c for c in calls if c.purpose != "app"]
        totals = total(app, recorder.tables)
        if harness:
            harness_w += total(harness, recorder.tables).write_units
            harness_calls += len(harness)
        others = Counter(service for service, _ in phases.requests[r_first:r_last])
        other = ", ".join(f"{service} {n:,}" for service, n in sorted(others.items()))
        wru, rru = totals.write_units, totals.read_units
        at_scale = f"{wru * scale:,.0f}" if any(w in name for w in PER_ITEM) else "fixed"
        lines.append(f"| {name} | {wall:.1f} | {len(app):,} | {wru:,.0f} | {rru:,.1f} "
                     f"| {wru / items:.2f} | {rru / items:.2f} | {at_scale} | {other} |")
    app_calls = [c for c in recorder.calls if c.purpose == "app"]
    everything = total(app_calls, recorder.tables)
    judgments = items * redundancy
    lines.append(f"| **all the app's calls** | | {len(app_calls):,} "
                 f"| {everything.write_units:,.0f} | {everything.read_units:,.1f} "
                 f"| {everything.write_units / items:.2f} | {everything.read_units / items:.2f} "
                 "| | |")
    lines.append("")
    lines.append(f"{judgments:,} judgments: {everything.write_units / judgments:.2f} WRU and "
                 f"{everything.read_units / judgments:.2f} RRU per judgment without the leases "
                 f"and submits the harness wrote for {judgments - 60:,} of them "
                 f"({harness_calls:,.0f} BatchWriteItem calls, {harness_w:,.0f} WRU, not "
                 "billed above)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args(argv)
    os.environ["BIG_JOB_ITEMS"] = str(args.items)  # read when the run's module is imported
    import pytest

    from chalicelib.workflows import aggregation as stages
    from tests.conftest import deployed_stack
    from tests.functional import test_big_job as big

    logging.disable(logging.WARNING)
    recorder = CapacityRecorder(_App())
    requests: list[tuple[str, str]] = []
    phases = Phases(recorder, requests)
    chatter = io.StringIO()
    started = time.monotonic()
    try:
        with redirect_stdout(chatter), redirect_stderr(chatter), \
                pytest.MonkeyPatch.context() as env, ExitStack() as undo:
            env.setattr(stages, "SHARD_ITEMS", big.SHARD_ITEMS)
            stack = undo.enter_context(deployed_stack(env))
            undo.enter_context(recorder.recording())
            undo.enter_context(counting_other_requests(requests))
            for seen in big._run(stack, phases, random.Random(16)):  # type: ignore[arg-type]
                final = seen["final"]
    except BaseException:
        sys.stderr.write(chatter.getvalue()[-20_000:])
        raise
    print(f"{big.ITEMS:,}-item uploaded job at redundancy {big.REDUNDANCY} on the moto stack, "
          f"ended {final['state']}; {time.monotonic() - started:.0f} s with recording\n")
    print(report(phases, big.ITEMS, big.REDUNDANCY))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
