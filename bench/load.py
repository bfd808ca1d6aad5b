"""Load: many concurrent workers over HTTP against the local stack, then the invariants.

`make run`'s stack (`python -m infra.local_stack`) is started as a separate process, and
`--jobs` jobs of `--items` items (redundancy `--redundancy`) run on it one after the other.
For each, `--workers` workers (threads, each its own HTTP connection) lease and submit until
every slot has its answer; then the results are checked: no slot held twice (each item has
exactly `redundancy` accepted answers, from distinct workers), no answer lost (every accepted
receipt is in the published lineage), the budget held. Reported per job:

- judgments per second, and p50/p99/max latency of leases and submits;
- "nothing left" answers (204 from `GET /tasks/next`), and how many came while more than 10%
  of the job's slots were neither answered nor leased (a worker told so waits 0.2 s and asks
  again; once 10% or less are open it asks again up to 5 times in a row, 1 s apart, as a
  worker's page polls, then stops, and it stops at once when every slot is answered);
- the counting lag: answers acknowledged to workers minus the answers the job's progress
  (`counts.answered`) has counted, sampled every second (max and p99);
- the resident memory (RSS) of the stack's processes after each job, the CPU time each spent
  per judgment (what bounds the rate on an idle machine: each process runs Python on one core
  at a time), and the machine's load average (others may share the machine).

Quotes over the API stop at its per-quote item ceiling; a bigger job's quote is priced by the
platform's own pricing and written straight into the stack's store, then posted over HTTP.

Run: .venv/bin/python -m bench.load [--items 1000] [--workers 64] [--redundancy 3] [--jobs 1] [--think 0]
     [--stack-log FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/load.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crowd_client import Client  # noqa: E402
from examples.demo import ApiError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A worker told "nothing left" while more than this share of the slots is open asks again.
OPEN_SHARE = 0.10
RETRY_SECONDS = 0.2
# Once that share or less is open, it asks again this many times in a row, this far apart, as
# a worker's page polls (a slot can come free, or be missed by one answer), then stops; it
# stops at once when every slot is answered.
LAST_POLLS = 5
LAST_POLL_SECONDS = 1.0
LAG_SAMPLE_SECONDS = 1.0
# Long enough that a slow answer is measured rather than abandoned (an abandoned lease would
# hold its slot until the lease expires).
REQUEST_TIMEOUT = 300.0


def call(base_url: str, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, object]:
    """One JSON request; (status, parsed body); ApiError on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        raise ApiError(error.code, json.loads(raw) if raw else None) from None
    except OSError as error:  # a timeout or a refused connection
        raise ApiError(0, {"error": type(error).__name__}) from None


@dataclass
class LoadResult:
    """What a load run did and found."""

    items: int
    workers: int
    redundancy: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    accepted: list[tuple[str, str, str]] = field(default_factory=list)  # item, worker, assignment
    errors: Counter = field(default_factory=Counter)
    double_leases: int = 0
    over_redundancy: int = 0
    lost_answers: int = 0
    spent_cents: int = 0
    budget_cents: int = 0
    nothing_left: int = 0
    nothing_left_while_open: int = 0
    lags: list[int] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # used by the job, per process
    load_average: str = ""
    think: float = 0.0

    @property
    def judgments(self) -> int:
        return len(self.accepted)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    """The direct children of a process."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stack_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by the stack process and by its API process."""
    return {"stack": _cpu_seconds(pid), "api": sum(_cpu_seconds(c) for c in _children(pid))}


def stack_rss(pid: int) -> dict[str, float]:
    """RSS of the stack process (moto, queues, schedule) and of its API process, in MB."""
    children = _children(pid)
    return {"stack": _rss_mb(pid), "api": sum(_rss_mb(child) for child in children)}


def big_quote(info: dict, items: int, redundancy: int) -> str:
    """A quote for more items than the API's per-quote ceiling: priced by the platform's own
    pricing (ceiling lifted in this process only) and written into the stack's store."""
    for name, value in {**info["environment"], "AWS_ENDPOINT_URL": info["moto_endpoint"],
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        os.environ[name] = value
    from chalicelib.deps import platform
    from chalicelib.domain import pricing

    client = Client(info["base_url"], info["client_key"])
    small = client.quote(task_type="categorical", items=1, redundancy=redundancy, gold_rate=0)
    p = platform()
    client_id = p.quotes.get_quote(small["quote_id"]).client_id
    ceiling, pricing.MAX_ITEMS = pricing.MAX_ITEMS, max(items, pricing.MAX_ITEMS)
    try:
        quote = pricing.price_quote(client_id, {"task_type": "categorical", "items": items,
                                                "redundancy": redundancy, "gold_rate": 0}, p.now())
    finally:
        pricing.MAX_ITEMS = ceiling
    p.quotes.put_quote(quote)
    return quote.quote_id


class _Slots:
    """The bench's own count of a job's slots: answered (acknowledged) and leased now."""

    def __init__(self, total: int) -> None:
        self.total, self.acked, self.leased = total, 0, 0
        self.lock = threading.Lock()

    def open_share(self) -> float:
        """Share of the slots neither answered nor leased."""
        return (self.total - self.acked - self.leased) / self.total

    def wait_after_nothing_left(self, misses: int) -> float | None:
        """Seconds a worker told "nothing left" waits before asking again, None to stop.
        misses counts the "nothing left" answers it got in a row with OPEN_SHARE or less of
        the slots open."""
        if self.open_share() > OPEN_SHARE:
            return RETRY_SECONDS
        if self.acked >= self.total or misses > LAST_POLLS:
            return None
        return LAST_POLL_SECONDS


def _sample_lag(client: Client, job_id: str, slots: _Slots, lags: list[int],
                stop: threading.Event) -> None:
    """Every second: answers acknowledged before the read minus answers the job has counted."""
    while not stop.wait(LAG_SAMPLE_SECONDS):
        acked = slots.acked
        try:
            counted = client.job(job_id)["counts"]["answered"]
        except Exception:  # noqa: BLE001 - a failed sample is skipped, the run goes on
            continue
        lags.append(acked - counted)


def run_load(base_url: str, client_key: str, items: int = 1000, workers: int = 64,
             redundancy: int = 3, timeout: float = 900.0,
             quote: Callable[[], str] | None = None, think: float = 0.0) -> LoadResult:
    """Post a job, let `workers` threads answer it, wait for the results, check them.
    quote, if given, returns the id of a quote to post the job on (else one is asked for);
    think: the mean seconds a worker spends on a task between its lease and its submit
    (uniform from half to one and a half times it; 0: none)."""
    client = Client(base_url, client_key)
    quote_id = quote() if quote is not None else client.quote(
        task_type="categorical", items=items, redundancy=redundancy, gold_rate=0)["quote_id"]
    job = client.create_job(quote_id, [{"data": {"text": f"item {n}"},
                                        "external_id": f"e{n}"} for n in range(items)],
                            instructions="Pick one.", answer_schema={"labels": ["a", "b", "c"]},
                            pilot={"items": 0}, lease_seconds=600)
    job_id = job["job_id"]
    client.wait(job_id, until=("active",), every=0.2, timeout=timeout)
    time.sleep(2.5)  # API containers see a new active job within 2 s
    result = LoadResult(items, workers, redundancy, 0.0,
                        latencies={"lease": [], "submit": []}, think=think)
    slots = _Slots(items * redundancy)
    lock = slots.lock
    tokens = [call(base_url, "POST", "/workers", {"name": f"load-{n}", "skills": ["en"]})[1]["token"]
              for n in range(workers)]
    start = threading.Barrier(workers + 1)

    def work(token: str, n: int) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        misses = 0
        pace = random.Random(n)
        start.wait()
        while True:
            began = time.perf_counter()
            try:
                status, task = call(base_url, "GET", f"/tasks/next?job_id={job_id}", headers=auth)
            except ApiError as error:
                with lock:
                    result.errors[f"lease {error.status}"] += 1
                continue
            took = time.perf_counter() - began
            with lock:
                result.latencies["lease"].append(took)
                if status == 204:
                    result.nothing_left += 1
                    still_open = slots.open_share() > OPEN_SHARE
                    result.nothing_left_while_open += still_open
                    misses = 0 if still_open else misses + 1
                    wait = slots.wait_after_nothing_left(misses)
                else:
                    slots.leased += 1
                    misses = 0
            if status == 204:
                if wait is None:
                    return
                time.sleep(wait)
                continue
            if think:
                time.sleep(think * pace.uniform(0.5, 1.5))
            began = time.perf_counter()
            try:
                call(base_url, "POST", f"/assignments/{task['assignment_id']}/submit",
                     {"label": "abc"[n % 3]}, headers=auth)
            except ApiError as error:
                with lock:
                    slots.leased -= 1
                    result.errors[f"submit {error.status}"] += 1
                continue
            with lock:
                slots.leased -= 1
                slots.acked += 1
                result.latencies["submit"].append(time.perf_counter() - began)
                result.accepted.append((task["item"]["item_id"], token, task["assignment_id"]))

    threads = [threading.Thread(target=work, args=(t, n), daemon=True) for n, t in enumerate(tokens)]
    stop_sampling = threading.Event()
    sampler = threading.Thread(target=_sample_lag, args=(client, job_id, slots, result.lags,
                                                         stop_sampling), daemon=True)
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    start.wait()
    sampler.start()
    for thread in threads:
        thread.join(timeout)
    result.seconds = time.perf_counter() - started
    final = client.wait(job_id, every=0.5, timeout=timeout)
    stop_sampling.set()
    sampler.join()
    # The invariants, from what the platform published.
    lines = client.results(job_id)
    published = {a["assignment_id"] for line in lines for a in line["answers"]}
    per_item: dict[str, list[str]] = defaultdict(list)
    for item, worker, _ in result.accepted:
        per_item[item].append(worker)
    result.double_leases = sum(len(ws) - len(set(ws)) for ws in per_item.values())
    result.over_redundancy = sum(max(0, len(line["answers"]) - redundancy) for line in lines) + \
        sum(max(0, len(ws) - redundancy) for ws in per_item.values())
    result.lost_answers = sum(1 for _, _, assignment in result.accepted if assignment not in published)
    result.spent_cents, result.budget_cents = final["spent_cents"], final["budget_cents"]
    if final["state"] != "done" or len(lines) != items:
        result.errors[f"job ended {final['state']} with {len(lines)} results"] += 1
    result.load_average = load_average()
    return result


def report(result: LoadResult) -> str:
    """One run as Markdown tables."""
    rows = [f"{result.items} items x {result.redundancy} answers, {result.workers} concurrent "
            f"workers ({result.think:g} s on a task): {result.judgments} judgments in {result.seconds:.1f} s = "
            f"{result.judgments / result.seconds:.1f} judgments/s (load average "
            f"{result.load_average or load_average()})", "",
            "| endpoint | calls | p50 (ms) | p99 (ms) | max (ms) |", "|---|---:|---:|---:|---:|"]
    for name, values in result.latencies.items():
        if values:
            rows.append(f"| {name} | {len(values)} | {1000 * statistics.median(values):.0f} | "
                        f"{1000 * _percentile(values, 0.99):.0f} | {1000 * max(values):.0f} |")
    lag = (f"max {max(result.lags)}, p99 {_percentile(result.lags, 0.99):.0f} "
           f"({len(result.lags)} samples)") if result.lags else "not sampled"
    rows += ["", "| check | found |", "|---|---:|",
             f"| \"nothing left\" answers (while > 10% of slots open) | {result.nothing_left} "
             f"({result.nothing_left_while_open}) |",
             f"| counting lag (acknowledged - counted answers) | {lag} |",
             f"| double leases (a worker twice on an item) | {result.double_leases} |",
             f"| answers over redundancy | {result.over_redundancy} |",
             f"| accepted answers missing from the results | {result.lost_answers} |",
             f"| spent / budget (cents) | {result.spent_cents} / {result.budget_cents} |",
             f"| errors | {dict(result.errors) or 0} |"]
    return "\n".join(rows)


def summary(results: list[LoadResult]) -> str:
    """The jobs of one stack side by side, with the stack's memory after each."""
    rows = ["| job | judgments/s | lease p50 / p99 (ms) | submit p50 / p99 (ms) | "
            "nothing left (while open) | lag max / p99 | stack + API RSS (MB) | "
            "stack + API CPU ms per judgment | load avg |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n, r in enumerate(results, 1):
        lease, submit = r.latencies["lease"], r.latencies["submit"]
        rows.append(
            f"| {n} | {r.judgments / r.seconds:.1f} | {1000 * statistics.median(lease):.0f} / "
            f"{1000 * _percentile(lease, 0.99):.0f} | {1000 * statistics.median(submit):.0f} / "
            f"{1000 * _percentile(submit, 0.99):.0f} | {r.nothing_left} "
            f"({r.nothing_left_while_open}) | {max(r.lags, default=0)} / "
            f"{_percentile(r.lags, 0.99):.0f} | {r.rss_mb.get('stack', 0):.0f} + "
            f"{r.rss_mb.get('api', 0):.0f} | {_per_judgment(r, 'stack'):.0f} + "
            f"{_per_judgment(r, 'api'):.0f} | {r.load_average} |")
    return "\n".join(rows)


def _per_judgment(result: LoadResult, process: str) -> float:
    """CPU milliseconds a process of the stack spent per judgment of a job, all in."""
    return 1000 * result.cpu_seconds.get(process, 0.0) / max(1, result.judgments)


@contextmanager
def stack_process(folder: Path, log_path: Path | None = None
                  ) -> Iterator[tuple[dict, subprocess.Popen]]:
    """`make run`'s stack as a child process (its output, the app's log lines included, to
    log_path, by default a file in folder); stopped with SIGTERM."""
    ready, log_path = folder / "ready.json", log_path or folder / "stack.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.local_stack", "--port", "0", "--ready-file", str(ready),
             "--state-file", str(folder / "state.json")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if not ready.exists():
                raise RuntimeError(f"the local stack did not start:\n{log_path.read_text()}")
            yield json.loads(ready.read_text()), process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ok(result: LoadResult) -> bool:
    """The final-state checks all hold."""
    return not (result.double_leases or result.over_redundancy or result.lost_answers
                or result.errors) and result.spent_cents <= result.budget_cents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="jobs run one after the other")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a worker spends on a task before submitting")
    parser.add_argument("--stack-log", type=Path, default=None,
                        help="keep the stack's output (the app's log lines) in this file")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    # Stopped with SIGTERM, unwind as on Ctrl-C so the stack process is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = []
    with tempfile.TemporaryDirectory() as folder, stack_process(Path(folder), args.stack_log) as (info, process):
        print(f"stack started; RSS {stack_rss(process.pid)} MB; load average {load_average()}",
              flush=True)
        for n in range(args.jobs):
            cpu = stack_cpu(process.pid)
            result = run_load(info["base_url"], info["client_key"], args.items, args.workers,
                              args.redundancy,
                              quote=lambda: big_quote(info, args.items, args.redundancy),
                              think=args.think)
            result.rss_mb = stack_rss(process.pid)
            result.cpu_seconds = {name: used - cpu[name]
                                  for name, used in stack_cpu(process.pid).items()}
            results.append(result)
            print(f"## job {n + 1}\n\n{report(result)}\n", flush=True)
        stopping = time.perf_counter()
    print(summary(results))
    print(f"\nstack stopped in {time.perf_counter() - stopping:.1f} s")
    return 0 if all(ok(r) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
