"""AWS dollars per million judgments, per service, from what a realistic job mix measures on the
local stack and one dated price table.

On the in-process local stack (bench/scenario.py, as bench.capacity runs it) a client posts
categorical jobs of --items items and --gold gold items, redundancy 3, gold on 10% of leases;
12 simulated workers (registered once, before the jobs, not counted) answer one job in suites
of --suite tasks (`GET /tasks/next?count=N`, then `POST /assignments/submit` with "next") and
one a task a request; the counting consumer drains, the round is aggregated by the state
machine, the client downloads the results file, rejects 2% of the answers one by one and
approves the job in bulk, and the sweeper settles the workers' pay. A judgment is an accepted
answer, gold included. Each job is measured on its own, one after the other.

What is measured, per job:

- API Gateway (REST): every request the workers and the client make (the harness's own waits
  on the job's state are marked and left out, with everything they cost).
- Lambda: an invocation per API request, per consumer batch, per sweeper run and per state
  machine task; its duration is wall-clock time in this process less the time the DynamoDB
  recording itself takes, billed per started millisecond at the function's memory in
  .chalice/config.json's prod stage. The API, the consumers and moto share this process and
  its two cores, so durations are at the high end of what AWS would bill.
- DynamoDB: write and read units from the real items (bench.capacity's recorder, bench/billing.py).
- SQS: every request the app makes, plus, per consumer batch, the event source mapping's
  ReceiveMessage and DeleteMessageBatch. The mapping's empty long polls are a fixed cost per
  queue (about 650,000 requests a month each, $0.26), not a cost per judgment.
- Step Functions (standard): the state transitions in the executions' histories (a state
  entered is one transition).
- CloudWatch Logs: the bytes the app prints during its invocations (its log lines and the
  metrics' EMF lines), at the prod stage's log level, plus LAMBDA_LOG_BYTES for the lines
  Lambda writes itself (START, END and REPORT) per invocation.
- S3: the app's requests (PUT, COPY, POST and LIST in one class, GET and the rest in the
  other) and the client's one download of the results file (a GET).

Not counted: the free tiers, data transfer, the sweeper's idle runs every minute (43,200 a
month), Lambda's init time, storage.

Run: .venv/bin/python -m bench.cost [--items 300] [--gold 20] [--suite 5] [--workers 12]
[--reject-share 0.02] [--write-docs]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import sys
import textwrap
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from pathlib import Path
from types import FrameType
from typing import Any

from bench.log_bytes import PLATFORM_BYTES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCS = PROJECT_ROOT / "docs" / "operations.md"

# us-east-1 on-demand list prices, in dollars per unit, as of PRICES_DATE.
PRICES_DATE = "2026-12-06"
LAMBDA_LOG_BYTES = PLATFORM_BYTES  # Lambda's own START, END and REPORT lines, per invocation
GIB = 2 ** 30


@dataclass(frozen=True)
class Service:
    """One priced line of the AWS bill: what it counts and what one unit costs."""

    key: str
    name: str
    unit: str
    dollars: float  # per unit
    price: str  # the list price as AWS states it


SERVICES = (
    Service("api_requests", "API Gateway (REST)", "requests", 3.50 / 1e6, "$3.50 / M"),
    Service("lambda_requests", "Lambda requests", "invocations", 0.20 / 1e6, "$0.20 / M"),
    Service("lambda_gb_seconds", "Lambda duration", "GB-s", 0.0000166667, "$0.0000166667"),
    Service("write_units", "DynamoDB writes", "WRU", 0.625 / 1e6, "$0.625 / M"),
    Service("read_units", "DynamoDB reads", "RRU", 0.125 / 1e6, "$0.125 / M"),
    Service("sqs_requests", "SQS", "requests", 0.40 / 1e6, "$0.40 / M"),
    Service("transitions", "Step Functions (standard)", "transitions", 25.0 / 1e6, "$25 / M"),
    Service("log_bytes", "CloudWatch Logs ingested", "bytes", 0.50 / GIB, "$0.50 / GB"),
    Service("s3_puts", "S3 PUT, COPY, POST, LIST", "requests", 0.005 / 1000, "$0.005 / 1,000"),
    Service("s3_gets", "S3 GET and others", "requests", 0.0004 / 1000, "$0.0004 / 1,000"),
)
S3_PUT_CLASS = ("Put", "Copy", "Post", "List", "Create", "Upload", "Complete")
SQS_HANDLERS = ("ingest_items", "count_answers", "deliver_webhooks")
UNTRACKED_HEADER = "x-bench-untracked"
README = PROJECT_ROOT / "README.md"
# The README's cost figures, one phrase between these markers (the README is kept short).
README_START, README_END = "<!--cost-->", "<!--/cost-->"
MARK_START = "<!-- cost-bench:start -->"
MARK_END = "<!-- cost-bench:end -->"
DATA_PREFIX = "<!-- cost-bench-data: "
DOCS_WIDTH = 96


class SuitesUnavailable(RuntimeError):
    """The app has no task-suite API (GET /tasks/next?count=N, POST /assignments/submit)."""


# --- the arithmetic -----------------------------------------------------------------------------

@dataclass(frozen=True)
class JobUsage:
    """What one job of the mix used, in all (units by Service.key), and its judgments."""

    name: str
    suite_size: int
    judgments: int
    units: Mapping[str, float]

    def per_judgment(self, key: str) -> float:
        """Units of one service per judgment."""
        return self.units.get(key, 0.0) / self.judgments

    def per_million(self, service: Service) -> float:
        """Dollars of one service per million judgments."""
        return self.per_judgment(service.key) * service.dollars * 1e6

    def total_per_million(self) -> float:
        """Dollars of every service per million judgments."""
        return sum(self.per_million(service) for service in SERVICES)

    def as_dict(self) -> dict[str, Any]:
        """The usage as JSON data (what the docs keep to be rendered again)."""
        return {"name": self.name, "suite_size": self.suite_size, "judgments": self.judgments,
                "units": {k: float(self.units[k]) for k in sorted(self.units)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobUsage":
        """From as_dict()'s data."""
        return cls(data["name"], int(data["suite_size"]), int(data["judgments"]),
                   {k: float(v) for k, v in data["units"].items()})


def _units(value: float) -> str:
    """Units per judgment, to three significant digits (at least two decimals)."""
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{max(2, 2 - math.floor(math.log10(abs(value))))}f}"


def render_table(jobs: Sequence[JobUsage]) -> str:
    """The Markdown table: per service, each job's units per judgment and dollars per million
    judgments, then the totals."""
    head = "| service | price | unit |" + "".join(
        f" {job.name}: per judgment | $ / 1M |" for job in jobs)
    lines = [head, "|---|---:|---|" + "---:|---:|" * len(jobs)]
    for service in SERVICES:
        lines.append(f"| {service.name} | {service.price} | {service.unit} |" + "".join(
            f" {_units(job.per_judgment(service.key))} | {job.per_million(service):.2f} |"
            for job in jobs))
    lines.append("| **total** | | |" + "".join(
        f" | **{job.total_per_million():.2f}** |" for job in jobs))
    return "\n".join(lines)


def infrastructure_figure(jobs: Sequence[JobUsage]) -> Decimal:
    """The dollars per judgment a quote estimates: the dearest job of the mix (a quote does not
    know how its workers will take the tasks), rounded up to a hundredth of a micro-dollar."""
    dearest = max(job.total_per_million() for job in jobs) / 1e6
    return Decimal(repr(dearest)).quantize(Decimal("0.00000001"), rounding=ROUND_UP)


def pricing_line(jobs: Sequence[JobUsage]) -> str:
    """The constant to keep in chalicelib/domain/pricing.py."""
    return f'INFRASTRUCTURE_DOLLARS_PER_JUDGMENT = Decimal("{infrastructure_figure(jobs)}")'


def render_docs_section(jobs: Sequence[JobUsage], command: str, run_date: str,
                        scenario: str) -> str:
    """The generated part of docs/operations.md's cost section, between its markers; it keeps
    the measurement it was rendered from, so it can be rendered again and compared."""
    data = {"command": command, "run_date": run_date, "scenario": scenario,
            "jobs": [job.as_dict() for job in jobs]}
    totals = ", ".join(f"**${job.total_per_million():.2f} per million judgments with "
                       f"{job.name}**" for job in jobs)
    intro = (f"Measured by `{command}` on {run_date} ({scenario}), priced at us-east-1 "
             f"on-demand list prices of {PRICES_DATE} (`bench/cost.py`): {totals}.")
    if not any(job.suite_size > 1 for job in jobs):
        intro += (" The job answered in suites needs the task-suite API; this run measured "
                  "single tasks only.")
    quote = ("A quote shows the platform's own estimate of this cost beside the worker rewards "
             f"(`infrastructure_cents`: ${infrastructure_figure(jobs)} a judgment, the dearest "
             "job measured, kept as `INFRASTRUCTURE_DOLLARS_PER_JUDGMENT` in "
             "`chalicelib/domain/pricing.py`).")
    return "\n".join([
        MARK_START,
        f"{DATA_PREFIX}{json.dumps(data, sort_keys=True)} -->",
        textwrap.fill(intro, DOCS_WIDTH, break_on_hyphens=False),
        "",
        render_table(jobs),
        "",
        textwrap.fill(quote, DOCS_WIDTH, break_on_hyphens=False),
        MARK_END,
    ])


def section_data(text: str) -> dict[str, Any]:
    """The measurement kept in a document's generated section."""
    start = text.index(DATA_PREFIX) + len(DATA_PREFIX)
    return dict(json.loads(text[start:text.index(" -->", start)]))


def render_from_data(data: Mapping[str, Any]) -> str:
    """The generated section again, from the measurement it keeps."""
    return render_docs_section([JobUsage.from_dict(job) for job in data["jobs"]],
                               data["command"], data["run_date"], data["scenario"])


def render_readme_figures(jobs: Sequence[JobUsage]) -> str:
    """The README's phrase: each job's dollars per million judgments and the prices' date."""
    def how(job: JobUsage) -> str:
        return f"in suites of {job.suite_size}" if job.suite_size > 1 else "a task a request"

    figures = ", ".join(f"${job.total_per_million():.2f}" + " per million judgments" * (n == 0)
                        + f" {how(job)}" for n, job in enumerate(jobs))
    return f"{README_START}{figures}; {PRICES_DATE} prices{README_END}"


def replace_readme_figures(text: str, figures: str) -> str:
    """The README with its cost phrase (between README_START and README_END) replaced."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {README_START} ... {README_END} phrase")
    return text[:start] + figures + text[end + len(README_END):]


def replace_section(text: str, section: str) -> str:
    """text with what lies between the markers (the markers included) replaced by section."""
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {MARK_START} ... {MARK_END} section")
    return text[:start] + section + text[end + len(MARK_END):]


# --- the measurement ----------------------------------------------------------------------------

@dataclass
class Invocation:
    """One Lambda invocation under way: its function, whether it counts, what it printed."""

    function: str
    tracked: bool
    log_bytes: int = 0
    nested_seconds: float = 0.0


@dataclass
class FunctionUse:
    """A function's invocations, billed milliseconds and memory over a job."""

    memory_mb: int
    invocations: int = 0
    billed_ms: int = 0

    @property
    def gb_seconds(self) -> float:
        """Billed GB-seconds."""
        return self.memory_mb / 1024 * self.billed_ms / 1000


@dataclass
class Meter:
    """Counts invocations, durations, log bytes and SQS and S3 requests while a job is measured
    (between begin() and end()); overhead() is the time the DynamoDB recording adds to the
    calling thread, taken out of durations."""

    memory_of: Callable[[str], int]
    overhead: Callable[[], float] = lambda: 0.0
    active: bool = False
    units: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    functions: dict[str, FunctionUse] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.units, self.functions, self.active = defaultdict(float), {}, True

    def end(self) -> tuple[dict[str, float], dict[str, FunctionUse]]:
        """Stop counting; what was counted."""
        with self._lock:
            self.active = False
            return dict(self.units), dict(self.functions)

    def current(self) -> Invocation | None:
        """The invocation this thread is running, if any."""
        return getattr(self._local, "invocation", None)

    def counting(self) -> bool:
        """Whether a request made now on this thread counts: a job is measured and the thread
        runs no untracked invocation (a thread of the app's own pool runs none)."""
        invocation = self.current()
        return self.active and (invocation is None or invocation.tracked)

    def add(self, key: str, amount: float = 1) -> None:
        """Add to one service's units."""
        with self._lock:
            self.units[key] += amount

    @contextmanager
    def invocation(self, function: str, event: Any) -> Iterator[None]:
        """Time one invocation of function (an API request marked untracked counts nothing)."""
        outer = self.current()
        headers = (event.get("headers") if isinstance(event, dict) else None) or {}
        untracked = UNTRACKED_HEADER in {k.lower() for k in headers}
        invocation = Invocation(function, self.active and not untracked and
                                (outer is None or outer.tracked))
        self._local.invocation = invocation
        overhead, started = self.overhead(), time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            seconds = elapsed - (self.overhead() - overhead) - invocation.nested_seconds
            self._local.invocation = outer
            if outer is not None:
                outer.nested_seconds += elapsed
            if invocation.tracked:
                self._record(invocation, seconds, event)

    def _record(self, invocation: Invocation, seconds: float, event: Any) -> None:
        billed_ms = max(1, math.ceil(round(seconds * 1000, 6)))  # per started ms
        with self._lock:
            use = self.functions.setdefault(invocation.function,
                                            FunctionUse(self.memory_of(invocation.function)))
            use.invocations += 1
            use.billed_ms += billed_ms
            self.units["lambda_requests"] += 1
            self.units["lambda_gb_seconds"] += use.memory_mb / 1024 * billed_ms / 1000
            self.units["log_bytes"] += invocation.log_bytes + LAMBDA_LOG_BYTES
            if invocation.function == "api_handler":
                self.units["api_requests"] += 1
            if invocation.function in SQS_HANDLERS:
                self.units["sqs_requests"] += 2  # the mapping's ReceiveMessage, DeleteMessageBatch

    def printed(self, text: str) -> None:
        """Bytes printed on this thread: the invocation's log output, if it counts."""
        invocation = self.current()
        if invocation is not None and invocation.tracked:
            invocation.log_bytes += len(text.encode("utf-8", "replace"))

    def aws_call(self, service: str, operation: str, frame: FrameType | None) -> None:
        """A request to AWS: an SQS or S3 request of the app counts."""
        if service not in ("sqs", "s3") or not self.counting() or not _from_app(frame):
            return
        if service == "sqs":
            self.add("sqs_requests")
        else:
            self.add("s3_puts" if operation.startswith(S3_PUT_CLASS) else "s3_gets")


def _from_app(frame: FrameType | None) -> bool:
    """Whether the app's own code (chalicelib) is on the stack."""
    while frame is not None:
        if "chalicelib" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class CountingStream(io.TextIOBase):
    """A text stream that passes everything on to target and tells meter what each thread
    printed."""

    def __init__(self, target: Any, meter: Meter) -> None:
        self._target, self._meter = target, meter

    def write(self, text: str) -> int:
        """Write text on, counting it for the thread's invocation."""
        self._meter.printed(text)
        return int(self._target.write(text))

    def flush(self) -> None:
        """Flush the target."""
        self._target.flush()

    def writable(self) -> bool:
        """A stream for writing."""
        return True


@contextmanager
def metered(meter: Meter) -> Iterator[None]:
    """Route the app's Lambda entry points (the API, and the event handlers: queues, schedule
    and the state machine's functions) and its botocore requests through meter for the
    with-block."""
    import botocore.client
    from chalice.app import Chalice, EventSourceHandler

    originals: dict[type, Callable[..., Any]] = {
        Chalice: Chalice.__call__, EventSourceHandler: EventSourceHandler.__call__}
    names: dict[type, Callable[[Any], str]] = {
        Chalice: lambda handler: "api_handler", EventSourceHandler: _event_function}

    def entry(kind: type) -> Callable[..., Any]:
        original = originals[kind]

        def call(handler: Any, event: Any, context: Any) -> Any:
            with meter.invocation(names[kind](handler), event):
                return original(handler, event, context)
        return call

    make_api_call = botocore.client.BaseClient._make_api_call

    def api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        meter.aws_call(client.meta.service_model.service_name, operation, sys._getframe(1))
        return make_api_call(client, operation, params)

    for kind in originals:
        setattr(kind, "__call__", entry(kind))
    botocore.client.BaseClient._make_api_call = api_call
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = make_api_call
        for kind, original in originals.items():
            setattr(kind, "__call__", original)


def _event_function(handler: Any) -> str:
    """The function an event handler is deployed as: its Python function's name (a state
    machine's function is wrapped once more by Chalice)."""
    func = getattr(handler.func, "_original_func", handler.func)
    return str(getattr(func, "__name__", "event"))


def prod_memory(project_dir: Path = PROJECT_ROOT) -> Callable[[str], int]:
    """A function's memory (MB) in .chalice/config.json's prod stage."""
    from chalice.config import Config

    config = json.loads((project_dir / ".chalice" / "config.json").read_text(encoding="utf-8"))
    cache: dict[str, int] = {}

    def memory_of(function: str) -> int:
        if function not in cache:
            cache[function] = int(Config(chalice_stage="prod", function_name=function,
                                         config_from_disk=config).lambda_memory_size)
        return cache[function]
    return memory_of


def prod_log_level(project_dir: Path = PROJECT_ROOT) -> str | None:
    """The log level the prod stage sets, if it does: POWERTOOLS_LOG_LEVEL, which powertools'
    Logger reads first, else LOG_LEVEL."""
    from infra.local_stack import _chalice_stage_environment

    environment = _chalice_stage_environment(project_dir, "prod")
    return environment.get("POWERTOOLS_LOG_LEVEL") or environment.get("LOG_LEVEL")


def transitions(sfn: Any, seen: set[str]) -> int:
    """State transitions of the executions not in seen (added to it), once each has ended."""
    count = 0
    for machine in sfn.list_state_machines()["stateMachines"]:
        for execution in sfn.list_executions(
                stateMachineArn=machine["stateMachineArn"])["executions"]:
            arn = execution["executionArn"]
            if arn in seen:
                continue
            seen.add(arn)
            deadline = time.monotonic() + 30
            while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
            kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
            while True:
                page = sfn.get_execution_history(**kwargs)
                count += sum(1 for event in page["events"]
                             if event["type"].endswith("StateEntered"))
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
    return count


# --- the job mix --------------------------------------------------------------------------------

def answer_in_suites(base_url: str, worker: Any, job_id: str, truth: Mapping[str, str],
                     accepted: list[str], size: int) -> None:
    """Lease a suite of up to size tasks, answer them in one request that fetches the next
    suite, until the job has nothing left for this worker; keep the accepted answers' ids."""
    from examples.demo import ApiError, call

    auth = {"Authorization": f"Bearer {worker.token}"}
    status, body = call(base_url, "GET", f"/tasks/next?job_id={job_id}&count={size}",
                        headers=auth)
    if status == 204:
        return
    if "tasks" not in body:
        raise SuitesUnavailable("GET /tasks/next?count=N answered a single task, not a suite")
    tasks = body["tasks"]
    while tasks:
        answers = [{"assignment_id": task["assignment_id"],
                    "answer": {"label": worker.answer(truth[task["item"]["data"]["text"]])}}
                   for task in tasks]
        try:
            _, out = call(base_url, "POST", "/assignments/submit",
                          {"answers": answers, "next": {"count": size, "job_id": job_id}},
                          headers=auth)
        except ApiError as error:
            if error.status in (404, 405):
                raise SuitesUnavailable("the app has no POST /assignments/submit") from None
            raise
        accepted += [result["assignment_id"] for result in out["results"]
                     if result["status"] == "accepted"]
        tasks = (out.get("next") or {}).get("tasks") or []


def has_suites(app: Any) -> bool:
    """Whether the app routes the task-suite submit."""
    return "/assignments/submit" in app.routes


def run_job(stack: Any, meter: Meter, recorder: Any, sfn: Any, seen: set[str], crowd: list[Any],
            suite: int, args: argparse.Namespace, seed: int) -> tuple[JobUsage, dict[str, Any]]:
    """Measure one job of the mix from its quote to its workers' pay."""
    import random

    from bench import scenario
    from bench.billing import total
    from examples.demo import call

    poll = _untracked_poll(stack)
    name = f"suites of {suite}" if suite > 1 else "single tasks"
    rng = random.Random(seed)
    first_call = len(recorder.calls)
    meter.begin()
    job = scenario.post_job(stack, args.items, args.gold, 3, poll,
                            **({"suite_size": suite} if suite > 1 else {}))
    if suite > 1 and poll(job.job_id).get("suite_size") != suite:
        raise SuitesUnavailable("the job was posted without its suite_size")
    scenario.progress(f"{name}: job {job.job_id} is {job.state}: {len(crowd)} workers answering")
    if suite > 1:
        def work(worker: Any, job_id: str, truth: Mapping[str, str], accepted: list[str]) -> None:
            answer_in_suites(stack.base_url, worker, job_id, truth, accepted, suite)
    else:
        def work(worker: Any, job_id: str, truth: Mapping[str, str], accepted: list[str]) -> None:
            scenario.answer_one_by_one(stack.base_url, worker, job_id, truth, accepted)
    scenario.answer_until_filled(job, crowd, poll, work)
    scenario.progress(f"{name}: {len(job.accepted)} answers accepted; counting and aggregation")
    scenario.wait_until_done(job, poll)
    _, link = call(stack.base_url, "GET", f"/jobs/{job.job_id}/results/download",
                   headers={"X-Api-Key": stack.client_key})
    with urllib.request.urlopen(link["url"], timeout=30) as response:
        response.read()
    meter.add("s3_gets")  # the client's download of the file
    reviewed = scenario.review_and_settle(stack, job, poll, rng, args.reject_share, 0.0)
    meter.add("transitions", transitions(sfn, seen))
    units, functions = meter.end()
    billed = total(recorder.calls[first_call:], recorder.tables)
    units["write_units"], units["read_units"] = billed.write_units, billed.read_units
    return (JobUsage(name, suite, len(job.accepted), units),
            {"job_id": job.job_id, "functions": functions, **reviewed})


def _untracked_poll(stack: Any) -> Callable[[str], dict[str, Any]]:
    """The job's view, read by the harness while it waits: marked so that nothing it costs is
    counted (a client would poll seldom, or take a webhook)."""
    from examples.demo import call

    headers = {"X-Api-Key": stack.client_key, "X-Bench-Untracked": "1"}

    def poll(job_id: str) -> dict[str, Any]:
        return dict(call(stack.base_url, "GET", f"/jobs/{job_id}", headers=headers)[1])
    return poll


def measure(args: argparse.Namespace) -> tuple[list[JobUsage], list[dict[str, Any]], str]:
    """Run the mix on a local stack; each job's usage and what happened, and the log level."""
    import random

    import boto3

    from bench import scenario
    from bench.capacity import CapacityRecorder
    from infra.local_stack import REGION, local_stack

    meter = Meter(prod_memory())
    recorder = CapacityRecorder(include=meter.counting)
    meter.overhead = recorder.overhead_seconds
    chatter = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = CountingStream(chatter, meter)
    try:
        with local_stack(**scenario.STACK_OPTIONS) as stack, recorder.recording(), \
                metered(meter):
            if args.suite > 1 and not has_suites(stack.app.app):
                raise SuitesUnavailable("the app has no POST /assignments/submit")
            level = _log_at_prod_level()
            sfn = boto3.client("stepfunctions", region_name=REGION,
                               endpoint_url=stack.moto_endpoint)
            seen: set[str] = set()
            crowd = scenario.register_workers(stack.base_url, args.workers, random.Random(1))
            jobs, details = [], []
            for n, suite in enumerate([args.suite, 1] if args.suite > 1 else [1]):
                usage, detail = run_job(stack, meter, recorder, sfn, seen, crowd, suite, args,
                                        seed=n + 1)
                jobs.append(usage)
                details.append(detail)
    except SuitesUnavailable:
        raise
    except BaseException:
        saved[1].write(chatter.getvalue()[-20_000:])
        raise
    finally:
        sys.stdout, sys.stderr = saved
    return jobs, details, level


def _log_at_prod_level() -> str:
    """Set the app's logger to the prod stage's log level (the local stack runs the dev
    stage's) and print through sys.stdout as it stands (the counting stream); the level."""
    import logging

    from chalicelib.observability import logger

    level = prod_log_level() or logging.getLevelName(logger.log_level)
    logger.setLevel(level)
    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stdout)
    return str(level)


def render_functions(jobs: Sequence[JobUsage], details: Sequence[Mapping[str, Any]]) -> str:
    """Per job and Lambda function: invocations and billed time per judgment, memory, mean
    billed duration."""
    lines = ["| job | function | memory (MB) | invocations / judgment | mean billed ms "
             "| GB-s / judgment |", "|---|---|---:|---:|---:|---:|"]
    for job, detail in zip(jobs, details):
        uses: Mapping[str, FunctionUse] = detail["functions"]
        for function, use in sorted(uses.items(), key=lambda kv: -kv[1].gb_seconds):
            lines.append(f"| {job.name} | {function} | {use.memory_mb} | "
                         f"{use.invocations / job.judgments:.3f} | "
                         f"{use.billed_ms / use.invocations:,.0f} | "
                         f"{use.gb_seconds / job.judgments:.5f} |")
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """The command that measures this mix (without --write-docs)."""
    parts = [".venv/bin/python -m bench.cost"]
    for name, default in (("items", 300), ("gold", 20), ("suite", 5), ("workers", 12),
                          ("reject_share", 0.02)):
        value = getattr(args, name)
        if value != default:
            parts.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Measure the mix and print dollars per million judgments per service."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300, help="regular items per job")
    parser.add_argument("--gold", type=int, default=20, help="gold items per job")
    parser.add_argument("--suite", type=int, default=5,
                        help="tasks per suite of the suite job (1: the single-task job only)")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--reject-share", type=float, default=0.02,
                        help="share of the answers the client rejects one by one")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the generated part of docs/operations.md's cost section")
    args = parser.parse_args(argv)
    if not 1 <= args.suite <= 20:
        parser.error("--suite is 1 to 20")
    started = time.monotonic()
    try:
        jobs, details, level = measure(args)
    except SuitesUnavailable as error:
        print(f"bench.cost: this app has no task-suite API ({error}); suites of {args.suite} "
              "need GET /tasks/next?count=N and POST /assignments/submit. Run with --suite 1 "
              "to measure single tasks only.", file=sys.stderr)
        return 2
    scenario = (f"{args.items} items + {args.gold} gold x 3 answers per job, "
                f"{args.workers} workers, log level {level}")
    print(f"{scenario}; " + "; ".join(
        f"{job.name}: {job.judgments:,} judgments, {d['rejected_by_client']} rejected"
        for job, d in zip(jobs, details)) + f"; {time.monotonic() - started:.0f} s\n")
    print(f"Prices: us-east-1 on-demand, {PRICES_DATE}.\n")
    print(render_table(jobs))
    print()
    print(render_functions(jobs, details))
    print(f"\nFor chalicelib/domain/pricing.py ({PRICES_DATE} prices, `{command_line(args)}`):"
          f"\n{pricing_line(jobs)}")
    if args.write_docs:
        section = render_docs_section(jobs, command_line(args),
                                      dt.datetime.now(dt.timezone.utc).date().isoformat(),
                                      scenario)
        DOCS.write_text(replace_section(DOCS.read_text(encoding="utf-8"), section),
                        encoding="utf-8")
        README.write_text(replace_readme_figures(README.read_text(encoding="utf-8"),
                                                 render_readme_figures(jobs)), encoding="utf-8")
        print(f"\nrewrote the cost section of {DOCS.relative_to(PROJECT_ROOT)} and the README's "
              "cost figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
