"""Peak memory and CPU share of each Lambda function on a representative input, and the memory
size each should have: the smallest (in steps of 64 MB) that holds its peak twice over and at
which its worst call is projected to take at most half its timeout.

Runs on the in-process stack (moto, the Chalice app, the SQS consumers as an event source calls
them, the state machine calling the stage functions): a client posts a job of --items items
inline, each item's text 2 KB (at 2,000 items, about the most a POST /jobs body holds), workers
lease, answer and release, the consumers ingest and count, the sweeper runs, and the job is
aggregated and its results read. Every call of a function is measured:

- peak: tracemalloc's peak over the call, plus the resident set of a fresh interpreter that
  imported the app (and numpy, for the aggregation stages), as a warm Lambda holds them. The
  traced peak includes what moto allocates to answer the calls, so it is on the high side.
- CPU share on AWS: the app's own CPU time (the thread's CPU time less the time spent inside
  AWS calls, which here is moto's work) over that plus REQUEST_MS per AWS request (what a call
  to DynamoDB, SQS or S3 takes from Lambda, an assumption). Over one half, the function is
  CPU-bound: more memory (hence more CPU) makes it faster at about the same cost; under, it is
  I/O-bound: more memory mostly adds cost.
- worst call at a size: its CPU time stretched by the share of a vCPU the size gets (a whole one
  at 1,769 MB) plus REQUEST_MS per request; the API's timeout is API Gateway's 29 s.

The aggregation stages' and ingest's peaks and worst calls grow with the job: their size also
holds the largest jobs measured (LARGEST_JOB_PEAK_MIB, LARGEST_JOB_WORST).
deliver_webhooks (no receiver here) and mark_failed (nothing fails) are not run: they are sized
as count_answers (an SQS consumer, a network call per message) and mark_done (a job record
update).
Run: .venv/bin/python -m bench.lambda_memory [--items 2000]
"""
from __future__ import annotations

import argparse
import functools
import io
import json
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
REQUEST_MS = 10.0
HEADROOM = 2.0
STEP_MB = 64  # sizes are rounded up to a multiple of this
MIN_MB = 128
FULL_CPU_MB = 1769  # Lambda gives a function one whole vCPU at this size, a share below it
# The largest jobs measured (bench/README.md): bench.scale_job's 1,000,000 items at redundancy 3
# through every stage on the fakes, and for FitModel (one call for the whole job) bench.fit_scale's
# 10,000,000 answers (1,000,000 items at the most answers an item takes, 10). Per function: the
# Lambda estimate (the worst traced call plus a fresh interpreter holding the stage code and
# numpy), MiB, and the worst call (CPU seconds; AWS requests in it).
LARGEST_JOB_PEAK_MIB = {"ingest_items": 69, "load_answers": 86, "fit_model": 766,
                        "aggregate_shard": 69, "publish_results": 82, "mark_done": 65}
LARGEST_JOB_WORST = {"ingest_items": (3.479, 50), "load_answers": (8.148, 1618),
                     "fit_model": (56.4, 4001), "aggregate_shard": (5.852, 7),
                     "publish_results": (9.164, 6146), "mark_done": (0.001, 3)}
API_GATEWAY_SECONDS = 29
STAGES = ("load_answers", "fit_model", "aggregate_shard", "publish_results", "mark_done")
CONSUMERS = ("ingest_items", "count_answers", "deliver_webhooks")
FUNCTIONS = ("api_handler", *CONSUMERS, "finalize_due_jobs", *STAGES, "mark_failed")
# Functions that import numpy (the counting consumer for an adaptive job's model).
NUMPY = (*STAGES, "count_answers")
# Functions the scenario does not run, sized as one that does the same kind of work.
STAND_INS = {"deliver_webhooks": "count_answers", "mark_failed": "mark_done"}


@dataclass
class Calls:
    """What the calls of one function (or API route) took at worst and in all."""

    calls: int = 0
    peak: int = 0  # bytes, tracemalloc
    wall: float = 0.0
    cpu: float = 0.0  # the app's own: thread CPU less the time inside AWS calls
    requests: int = 0
    worst: tuple[float, int] = (0.0, 0)  # the call with the most CPU: (seconds, requests)

    def cpu_share(self) -> float:
        """The app's CPU time over its projected time on AWS."""
        projected = self.cpu + self.requests * REQUEST_MS / 1000
        return self.cpu / projected if projected else 0.0


class _AwsCalls(threading.local):
    requests = 0
    seconds = 0.0


class Meter:
    """Measures calls by name: traced peak, wall, the app's CPU and AWS requests."""

    def __init__(self) -> None:
        self.by_name: dict[str, Calls] = {}
        self._aws = _AwsCalls()
        self._lock = threading.Lock()

    def hook_aws(self) -> None:
        """Time every botocore call made in this process (moto answers them in the caller's
        thread, so their time is moto's work, not the app's)."""
        import botocore.client

        original = botocore.client.BaseClient._make_api_call
        aws = self._aws

        @functools.wraps(original)
        def timed(client: Any, operation: str, params: Any) -> Any:
            start = time.thread_time()
            try:
                return original(client, operation, params)
            finally:
                aws.requests += 1
                aws.seconds += time.thread_time() - start

        botocore.client.BaseClient._make_api_call = timed

    @contextmanager
    def call(self, name: str) -> Iterator[None]:
        """Measure one call of name (tracemalloc is process-wide: one call at a time)."""
        with self._lock:
            requests, aws_seconds = self._aws.requests, self._aws.seconds
            tracemalloc.start()
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                yield
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                record = self.by_name.setdefault(name, Calls())
                record.calls += 1
                record.peak = max(record.peak, peak)
                record.wall += wall
                requests = self._aws.requests - requests
                cpu = max(0.0, cpu - (self._aws.seconds - aws_seconds))
                record.requests += requests
                record.cpu += cpu
                record.worst = max(record.worst, (cpu, requests))

    def wrap(self, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """handler, measured as name on every call."""
        @functools.wraps(handler)
        def measured(*args: Any, **kwargs: Any) -> Any:
            with self.call(name):
                return handler(*args, **kwargs)
        return measured


def baseline_mib(numpy: bool) -> float:
    """The resident set of a fresh interpreter that imported the app and made its AWS clients
    (and imported numpy, as the aggregation stages do), as a warm Lambda holds them."""
    code = ("import resource, boto3, app\n" + ("import numpy\n" if numpy else "") +
            "for name in ('dynamodb', 'sqs', 's3'):\n"
            "    boto3.session.Session().client(name, region_name='us-east-1')\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1",
                              "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    return float(out.stdout.split()[-1])


def size_mb(peak_mib: float) -> int:
    """The smallest memory size (a multiple of STEP_MB, at least MIN_MB) holding peak_mib
    HEADROOM times over."""
    need = peak_mib * HEADROOM  # Lambda's "MB" of memory are MiB
    return max(MIN_MB, -(-int(need) // STEP_MB) * STEP_MB)


def seconds_at(size: int, cpu: float, requests: float) -> float:
    """A call's projected duration on AWS at size MB: its CPU time stretched by the share of a
    vCPU the size gets, plus REQUEST_MS per AWS request."""
    return cpu * max(1.0, FULL_CPU_MB / size) + requests * REQUEST_MS / 1000


def gb_seconds(calls: Calls, size: int) -> float:
    """GB-seconds a million of the average call take at size MB."""
    n = max(calls.calls, 1)
    return 1e6 * seconds_at(size, calls.cpu / n, calls.requests / n) * size / 1024


def sized(peak_mib: float, worst: tuple[float, int], timeout: float) -> int:
    """The smallest size holding the peak HEADROOM times over at which the worst call is
    projected to take at most half the timeout."""
    size = size_mb(peak_mib)
    while seconds_at(size, *worst) > timeout / 2 and size < FULL_CPU_MB:
        size += STEP_MB
    return size


def _route(method: str, path: str) -> str:
    """An API call's row name: the route with its ids left out."""
    words = ["{id}" if any(c.isdigit() for c in word) and "_" in word else word
             for word in path.split("?")[0].split("/")]
    return f"api_handler: {method} {'/'.join(words)}"


def run(items: int, meter: Meter) -> None:
    """The scenario: post, ingest, lease, answer, release, count, sweep, aggregate, read."""
    import pytest

    import app as app_module
    from infra.local_aws import lambda_context
    from infra.local_stack import scheduled_event
    from tests.conftest import deployed_stack
    from tests.functional.marketplace import Api

    for name in (*CONSUMERS, *STAGES, "mark_failed"):
        setattr(app_module, name, meter.wrap(name, getattr(app_module, name)))
    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as stack:
        api = Api(stack)
        measured_call = api.call

        def call(method: str, path: str, body: Any = None, headers: dict | None = None
                 ) -> tuple[int, Any]:
            with meter.call(_route(method, path)):
                return measured_call(method, path, body, headers)

        api.call = call  # type: ignore[method-assign]
        text = "x" * 2000  # 2,000 items of 2 KB: about the most a POST /jobs body holds
        status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical",
                                                         "items": items, "redundancy": 2})
        assert status == 201, quote
        body = {"quote_id": quote["quote_id"], "instructions": "Choose the sentiment.",
                "answer_schema": {"labels": ["pos", "neg", "neutral"]}, "pilot": {"items": 0},
                "items": [{"data": {"text": f"{n} {text}"}} for n in range(items)]}
        status, job = api.as_client("POST", "/jobs", body)
        assert status == 202, job
        stack.drain()
        tokens = [api.worker(f"w{n}") for n in range(4)]
        api.as_worker(tokens[0], "GET", "/workers/me/jobs")
        released = False
        for round_ in range(items * 2 + 40):
            token = tokens[round_ % len(tokens)]
            status, task = api.lease(token, job["job_id"])
            if status == 204:
                stack.drain()
                if api.as_client("GET", f"/jobs/{job['job_id']}")[1]["state"] != "active":
                    break
                continue
            if not released:
                api.as_worker(token, "POST", f"/assignments/{task['assignment_id']}/release")
                released = True
                continue
            api.submit(token, task["assignment_id"], {"label": "pos"})
            if round_ % 10 == 0:
                stack.drain()
        context = lambda_context("crowd-dev-finalize_due_jobs")
        with meter.call("finalize_due_jobs"):
            app_module.finalize_due_jobs(scheduled_event("sweep", "123456789012"), context)
        done = stack.wait_for_state(job["job_id"], api.key, ("done",), timeout=300)
        assert done["state"] == "done", done["state"]
        api.as_client("GET", f"/jobs/{job['job_id']}/results")
        api.as_client("GET", f"/jobs/{job['job_id']}/results/download")


def configured(function: str) -> tuple[int, int]:
    """A function's (memory MB, timeout s) in the prod stage of .chalice/config.json (the API's
    timeout: API Gateway's 29 s where that is lower)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    own = config["stages"]["prod"].get("lambda_functions", {}).get(function, {})
    timeout = int(own.get("lambda_timeout", config["lambda_timeout"]))
    if function == "api_handler":
        timeout = min(timeout, API_GATEWAY_SECONDS)
    return int(own.get("lambda_memory_size", config["lambda_memory_size"])), timeout


def report(meter: Meter, baselines: dict[bool, float]) -> tuple[list[str], dict[str, int]]:
    """The table's lines (a row per function, the API's routes under it) and each function's
    size."""
    rows = ["| function (route) | calls | traced peak (MiB) | + interpreter (MiB) "
            "| largest job (MiB) | app CPU per call (ms) | AWS requests per call "
            "| CPU share on AWS | bound | worst call at size (s) / timeout | configured (MB) "
            "| size (MB) | GB-s per 1M calls: configured → size |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    measured = _with_api_and_stand_ins(meter.by_name)
    sizes: dict[str, int] = {}
    for name in sorted(measured, key=lambda n: (FUNCTIONS.index(n.split(":")[0]), n)):
        calls, function = measured[name], name.split(":")[0]
        peak = baselines[function in NUMPY] + calls.peak / MIB
        memory, timeout = configured(function)
        worst = max(calls.worst, LARGEST_JOB_WORST.get(function, (0.0, 0)))
        share = calls.cpu_share()
        own = name == function
        size = sized(max(peak, LARGEST_JOB_PEAK_MIB.get(function, 0)), worst, timeout)
        if own:
            sizes[function] = size
        rows.append(
            f"| {name} | {calls.calls} | {calls.peak / MIB:.1f} | {peak:.0f} "
            f"| {LARGEST_JOB_PEAK_MIB.get(function, '')} "
            f"| {1000 * calls.cpu / max(calls.calls, 1):.1f} "
            f"| {calls.requests / max(calls.calls, 1):.1f} | {share:.0%} "
            f"| {'CPU' if share > 0.5 else 'I/O'} "
            + (f"| {seconds_at(size, *worst):.2f} / {timeout} | {memory} | {size} "
               f"| {gb_seconds(calls, memory):,.0f} → {gb_seconds(calls, size):,.0f} |" if own
               else "| | | | |"))
    return rows, sizes


def _with_api_and_stand_ins(by_name: dict[str, Calls]) -> dict[str, Calls]:
    """The measured calls, with the API function as the sum of its routes (worst of each)
    and the functions not run measured as their stand-ins."""
    measured = dict(by_name)
    api = Calls()
    for name, calls in by_name.items():
        if name.startswith("api_handler:"):
            api.calls += calls.calls
            api.peak = max(api.peak, calls.peak)
            api.wall += calls.wall
            api.cpu += calls.cpu
            api.requests += calls.requests
            api.worst = max(api.worst, calls.worst)
    measured["api_handler"] = api
    for function, stand_in in STAND_INS.items():
        if function not in measured and stand_in in measured:
            measured[function] = measured[stand_in]
    return measured


def main(argv: list[str] | None = None, print_line: Callable[[str], None] = print) -> int:
    """Run the scenario and print the table and the sizes it gives."""
    import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    baselines = {False: baseline_mib(numpy=False), True: baseline_mib(numpy=True)}
    meter = Meter()
    meter.hook_aws()
    with redirect_stdout(io.StringIO()):  # the app's EMF metric lines
        run(args.items, meter)
    rows, sizes = report(meter, baselines)
    print_line(f"interpreter with the app: {baselines[False]:.0f} MiB, with numpy too: "
               f"{baselines[True]:.0f} MiB; {REQUEST_MS:.0f} ms per AWS request on AWS\n")
    for row in rows:
        print_line(row)
    print_line("\nsizes (MB): " + json.dumps(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
