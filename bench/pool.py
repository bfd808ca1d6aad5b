"""Many workers on one job: simulated workers lease, answer, release and abandon tasks of one
big job at once, over the command handlers on the in-memory fakes, and the bench measures what
the task pool does for them.

Set-up: a client posts one categorical job (`--items`, `--redundancy`; no gold, no pilot, leases of 60 s)
through jobs.create_quote and jobs.post_job, and its ingest messages are delivered. The quote's
item cap (pricing.MAX_ITEMS) is lifted for this process only, so a job bigger than the cap can
be priced. `--workers` worker accounts are spread round-robin over `--containers` API
containers: Platform objects on the same fake stores, each with caches and an rng of its own
(tests.fakes.another_container), as Lambda containers share DynamoDB but not their memory.

Schedule: a virtual clock (tests.fakes.FakeClock) moves one second per tick, in one thread, so
a run is deterministic for a seed. In each tick: first the workers whose think time is over act
on the task they hold (submit it, or release it with probability `release`, or drop it
silently with probability `abandon`, leaving the lease to expire); then the counting consumer
takes every queued result message, in batches of 10 as SQS hands them to Lambda
(rounds.count_answers); then every worker without a task asks tasks.lease_next_task for one,
in a random order; a worker who got one holds it for a think time drawn from `--think`
(seconds), one who got nothing asks again `--poll` seconds later. The run ends when the job
stops taking leases (every item counted complete: its aggregation starts) or after
`--max-hours` of virtual time.

Fast-forward (unless `--no-fast-forward`): simulating every tick of a big job takes hours, so
the schedule runs over [0, 1%), [49, 51%) and [98, 100%] of the answers, and in between free
slots of the open items are answered in item order by random workers who have not seen them
(item store and tasks.submit_answer, then counted), taking no virtual time and not measured.

What it measures:

- refused while free: lease_next_task returned None while the item store held an open item
  with a free slot (free > 0) the worker had not seen. Checked at the moment of the refusal
  on the fakes' state (a set of such items, kept up to date after every write to an item).
  Slots held by expired leases are not counted as free here, so this is a lower bound.
- double leases: a lease granted on an item the worker had leased before, or after which the
  item holds more leases and answers than its redundancy; over-redundancy: items with more
  accepted answers than their redundancy, and a worker with two accepted answers on one item.
  All counted: every accepted answer is counted once on its item and in the job's total.
- lease cost: store calls per lease request, by method, in three windows of progress (the
  share of the job's answers accepted so far): [0, 1%), [50, 51%) and [99, 100%]. DynamoDB
  requests count an open_items call as the pages of 200 index entries its filtered query reads
  (the adapter's page size), since the filter runs after the read.
- writes by key: every write, conditional ones that failed included (they cost a write unit
  too), grouped by the key it touches: (table, partition key) and the record (table, partition
  key, sort key); a counting transaction writes each of its items and the job's counters
  record (`<job_id>#counts`), reopening an item writes it and the counters record. Only
  writes after the job is active count. Peak: the most writes to that key in one virtual second.
"""
from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from unittest import mock

from chalicelib.domain import leasing, pricing
from chalicelib.domain.model import ACTIVE, CLIENT, WORKER, Assignment, Job, Principal
from chalicelib.handlers import accounts, jobs, rounds, tasks
from chalicelib.handlers.platform import Platform
from tests.fakes import (
    FakeClock, FakeItems, FakeQueue, another_container, ingest_all, make_platform,
)

# The stores backed by DynamoDB tables, whose calls are counted.
STORES = ("accounts", "quotes", "jobs", "items", "results", "stats", "ledger")
# The adapter's page size for the open_items query.
INDEX_PAGE = 200
# SQS batch size of the counting consumer.
COUNT_BATCH = 10
WINDOWS = (("0%", 0.0, 0.01), ("50%", 0.50, 0.51), ("99%", 0.99, 1.0001))
# Write methods per store; every other method reads.
WRITES = {
    "accounts": {"create_account", "rotate", "revoke", "grant_skill"},
    "quotes": {"put_quote"},
    "jobs": {"create_job", "abandon_job", "mark_chunk_ingested", "transition", "mark_events_sent",
             "claim_budget_alert", "mark_budget_alerted", "record_counted", "claim_refit",
             "request_approval", "advance_approval", "reserve", "refund", "release_held"},
    "items": {"put_items", "review", "approve", "release_gold_slots", "extend", "add_slots",
              "open_held",
              "try_lease", "try_submit", "try_release"},
    "results": {"put_results"},
    "stats": {"record_gold", "mark_blocked", "unblock", "publish_shown", "start_attempt",
              "finish_attempt"},
    "ledger": {"bonus", "settle"},
}

Key = tuple[str, str, str | None]  # (table, partition key, sort key)


@dataclass(frozen=True)
class Settings:
    """One run's sizes and behaviour."""

    workers: int = 1000
    items: int = 100_000
    redundancy: int = 3
    containers: int = 10
    think: tuple[float, float] = (5.0, 25.0)
    release: float = 0.02
    abandon: float = 0.01
    lease_seconds: int = 60
    poll: float = 5.0
    fast_forward: bool = True
    max_hours: float = 24.0
    seed: int = 20261206


def counts_key(job_id: str) -> str:
    """The key of the job's counters record (chalicelib.adapters.models.counts_key)."""
    return f"{job_id}#counts"


def money_key(job_id: str) -> str:
    """The key of the job's money record (chalicelib.adapters.models.money_key)."""
    return f"{job_id}#money"


# The jobs store's writes that go to the money record, not the job record.
MONEY_WRITES = ("reserve", "refund", "release_held")


def _money_taken(args: tuple, kwargs: dict[str, Any], at: int) -> list[Key]:
    """The money record, if a slot's write takes money (its cents, the argument at `at`)."""
    cents = args[at] if len(args) > at else kwargs.get("cents")
    return [("jobs", money_key(args[0]), None)] if cents else []


def written_keys(store: str, method: str, args: tuple, kwargs: dict[str, Any]) -> list[Key]:
    """The records a write touches, as (table, partition key, sort key)."""
    if store == "items" and method in ("put_items",):
        return [("items", args[0], item.item_id) for item in args[2]]
    if store == "items" and method == "open_held":
        return [("items", args[0], item_id) for item_id in args[1]]
    if store == "items" and method in ("review", "release_gold_slots"):
        return [("items", args[0], args[1]), ("jobs", money_key(args[0]), None)]
    if store == "items" and method == "add_slots":
        return [("items", args[0], args[1]), ("jobs", counts_key(args[0]), None)] \
            + _money_taken(args, kwargs, 4)
    if store == "items" and method == "extend":
        return [("items", args[0], args[1])] + _money_taken(args, kwargs, 3)
    if store == "items":
        return [("items", args[0], args[1])]
    if store == "jobs" and method == "record_counted":
        answers = args[1] if len(args) > 1 else kwargs["answers"]
        return [("items", args[0], item_id) for item_id in sorted({a.item_id for a in answers})] \
            + [("jobs", counts_key(args[0]), None)]
    if store == "jobs" and method in MONEY_WRITES:
        return [("jobs", money_key(args[0]), None)]
    if store == "jobs":
        return [("jobs", args[0], None)]
    if store == "stats" and method == "record_gold":
        return [("worker_stats", args[0], args[1]), ("worker_stats", args[0], "*")]
    return [(store, str(args[0]) if args else "", None)]


class Meter:
    """Counts store calls (per scope: what request, in which window), index entries read and
    writes per key per virtual second; keeps the set of open items with a free slot."""

    def __init__(self, raw_items: FakeItems, clock: FakeClock, job_id: str) -> None:
        self.raw_items = raw_items
        self.clock = clock
        self.job_id = job_id
        self.scope: tuple[str, str] = ("setup", "")
        self.calls: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.writes: Counter[Key] = Counter()
        self.per_second: dict[Key, Counter[int]] = defaultdict(Counter)
        self.recording = False
        self.free_items = {item_id for (job, item_id), record in raw_items.records.items()
                           if job == job_id and record.open_job is not None
                           and record.state.free > 0}

    def call(self, store: str, method: str, run: Callable[[], Any], args: tuple,
             kwargs: dict[str, Any]) -> Any:
        """Run one store call, counting it."""
        counts = self.calls[self.scope]
        counts[f"{store}.{method}"] += 1
        if store == "items" and method == "open_items":
            before = self.raw_items.index_reads
            result = run()
            read = self.raw_items.index_reads - before
            counts["index entries read"] += read
            counts["dynamodb requests"] += max(1, math.ceil(read / INDEX_PAGE))
            return result
        counts["dynamodb requests"] += 1
        result = run()
        if method in WRITES.get(store, ()):
            keys = written_keys(store, method, args, kwargs)
            if store == "items" and method == "try_lease" and not result.ok:
                counts["failed try_lease"] += 1
            if self.recording:
                second = int(self.clock())
                for key in keys:
                    self.writes[key] += 1
                    self.per_second[key][second] += 1
            self._refresh_free(key[2] for key in keys
                               if key[0] == "items" and key[1] == self.job_id and key[2])
        return result

    def _refresh_free(self, item_ids: Iterable[str]) -> None:
        for item_id in item_ids:
            record = self.raw_items.records.get((self.job_id, item_id))
            if record is not None and record.open_job is not None and record.state.free > 0:
                self.free_items.add(item_id)
            else:
                self.free_items.discard(item_id)

    def free_for(self, seen: set[str]) -> bool:
        """True if an open item with a free slot exists that a worker who has seen `seen` may take."""
        if len(self.free_items) > len(seen):
            return True
        return any(item_id not in seen for item_id in self.free_items)


class Metering(Protocol):
    """What counts a store's calls: runs each one (run) and records it."""

    def call(self, store: str, method: str, run: Callable[[], Any], args: tuple,
             kwargs: dict[str, Any]) -> Any: ...


class Counted:
    """A store whose public method calls go through a meter (bench.scale_job's too)."""

    def __init__(self, name: str, store: Any, meter: Metering) -> None:
        self._name, self._store, self._meter = name, store, meter

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._store, attr)
        if attr.startswith("_") or not callable(value):
            return value
        name, meter = self._name, self._meter

        def call(*args: Any, **kwargs: Any) -> Any:
            return meter.call(name, attr, lambda: value(*args, **kwargs), args, kwargs)

        setattr(self, attr, call)
        return call


@dataclass
class Outcome:
    """What a run saw."""

    settings: Settings
    job_id: str
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0
    setup_seconds: float = 0.0
    finished: bool = False
    requests: Counter[str] = field(default_factory=Counter)  # by window and overall
    granted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_while_free: Counter[str] = field(default_factory=Counter)
    ticks: Counter[str] = field(default_factory=Counter)  # virtual seconds by window
    answered: Counter[str] = field(default_factory=Counter)  # answers accepted by window
    double_leases: int = 0
    accepted: int = 0
    accepted_simulated: int = 0  # not counting the answers fast-forwarded
    released: int = 0
    abandoned: int = 0
    over_redundancy_items: int = 0
    double_answers: int = 0
    held_at_end: int = 0
    counted_answers: int = 0
    counted_marks: int = 0
    items_done: int = 0
    job_state: str = ""
    calls: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    writes: Counter[Key] = field(default_factory=Counter)
    per_second: dict[Key, Counter[int]] = field(default_factory=dict)

    @property
    def total_answers(self) -> int:
        return self.settings.items * self.settings.redundancy


def _post_job(p: Platform, client: Principal, s: Settings) -> Job:
    """Price and post the job, lifting the quote's item cap for this call only."""
    spec = {"task_type": "categorical", "items": s.items, "redundancy": s.redundancy,
            "gold_rate": 0}
    with mock.patch.object(pricing, "MAX_ITEMS", max(pricing.MAX_ITEMS, s.items)):
        quote = jobs.create_quote(p, client, spec)
    return jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
        "answer_schema": {"labels": ["pos", "neg"]}, "lease_seconds": s.lease_seconds,
        "pilot": {"items": 0},
        "items": [{"data": {"n": n}} for n in range(s.items)]})


def _window(done: float) -> str | None:
    for name, low, high in WINDOWS:
        if low <= done < high:
            return name
    return None


@dataclass
class _Held:
    assignment: Assignment
    action: str  # submit, release or abandon


class _Run:
    """One run's platform, workers and bookkeeping; step() is one tick of the schedule."""

    def __init__(self, s: Settings, check_exhaustively: bool) -> None:
        self.s = s
        self.check_exhaustively = check_exhaustively
        self.rng = random.Random(s.seed)
        self.clock = FakeClock()
        base = make_platform(self.clock, rng=random.Random(s.seed + 1))
        client = accounts.create_account(base, CLIENT, "Bench client")[0]
        self.workers = [accounts.create_account(base, WORKER, f"worker {n}")[0]
                        for n in range(s.workers)]
        self.job = _post_job(base, client, s)
        ingest_all(base)
        assert isinstance(base.items, FakeItems)
        self.raw_items = base.items
        self.meter = Meter(self.raw_items, self.clock, self.job.job_id)
        wrapped: dict[str, Any] = {name: Counted(name, getattr(base, name), self.meter)
                                   for name in STORES}
        counted = replace(base, **wrapped)
        self.containers = [another_container(counted, s.seed + 100 + n)
                           for n in range(s.containers)]
        self.consumer = another_container(counted, s.seed + 99)
        self.out = Outcome(s, self.job.job_id)
        self.seen: list[set[str]] = [set() for _ in self.workers]
        self.accepted_by: Counter[tuple[int, str]] = Counter()
        self.accepted_on: Counter[str] = Counter()
        self.due: list[tuple[float, int, int]] = []  # (time, sequence, worker)
        self.held: dict[int, _Held] = {}
        self.idle = list(range(s.workers))
        self.sequence = 0
        self.start = self.clock()

    @property
    def done(self) -> float:
        """The share of the job's answers accepted so far."""
        return self.out.accepted / self.out.total_answers

    def job_active(self) -> bool:
        return self.raw_items.jobs_ref.jobs[self.job.job_id].state == ACTIVE

    def _later(self, n: int, seconds: float) -> None:
        self.sequence += 1
        heapq.heappush(self.due, (self.clock() + seconds, self.sequence, n))

    def _accept(self, n: int, item_id: str) -> None:
        self.out.accepted += 1
        self.accepted_by[(n, item_id)] += 1
        self.accepted_on[item_id] += 1

    def step(self) -> None:
        """One tick: tasks due are acted on, results are counted, idle workers ask for tasks."""
        now, s, out = self.clock(), self.s, self.out
        window = _window(self.done)
        if window:
            out.ticks[window] += 1
        ready = []
        while self.due and self.due[0][0] <= now:
            ready.append(heapq.heappop(self.due)[2])
        for n in ready:
            h = self.held.pop(n, None)
            if h is not None:
                self._finish_task(n, h, window)
            self.idle.append(n)
        self.count()
        if not self.job_active():
            return
        self.rng.shuffle(self.idle)
        for n in self.idle:
            p, worker = self.containers[n % s.containers], self.workers[n]
            self.meter.scope = ("lease", window or "")
            assignment = tasks.lease_next_task(p, worker)
            for name in ("all", window):
                if name:
                    out.requests[name] += 1
            if assignment is None:
                self._refused(n, window)
                self._later(n, s.poll)
                continue
            for name in ("all", window):
                if name:
                    out.granted[name] += 1
            item = assignment.item
            if item.item_id in self.seen[n] or item.free < 0 \
                    or len(item.leases) + item.answer_count > item.redundancy:
                out.double_leases += 1
            self.seen[n].add(item.item_id)
            draw = self.rng.random()
            action = "release" if draw < s.release else \
                "abandon" if draw < s.release + s.abandon else "submit"
            self.held[n] = _Held(assignment, action)
            self._later(n, math.ceil(self.rng.uniform(*s.think)))
        self.idle = []
        self.clock.advance(1)

    def _finish_task(self, n: int, h: _Held, window: str | None) -> None:
        p, worker = self.containers[n % self.s.containers], self.workers[n]
        if h.action == "submit":
            self.meter.scope = ("submit", "")
            receipt = tasks.submit_answer(p, worker, h.assignment.assignment_id,
                                          {"label": self.rng.choice(("pos", "neg"))})
            if not receipt.duplicate:
                self._accept(n, h.assignment.item.item_id)
                self.out.accepted_simulated += 1
                if window:
                    self.out.answered[window] += 1
        elif h.action == "release":
            self.meter.scope = ("release", "")
            tasks.release_assignment(p, worker, h.assignment.assignment_id)
            self.out.released += 1
        else:
            self.out.abandoned += 1

    def count(self, scope: tuple[str, str] = ("count", "")) -> None:
        """The counting consumer takes every queued result message, in SQS-sized batches."""
        self.meter.scope = scope
        queue = self.consumer.results_queue
        assert isinstance(queue, FakeQueue)
        messages = queue.take()
        for at in range(0, len(messages), COUNT_BATCH):
            rounds.count_answers(self.consumer, messages[at:at + COUNT_BATCH])

    def _refused(self, n: int, window: str | None) -> None:
        free = self.meter.free_for(self.seen[n])
        if self.check_exhaustively:
            worker_id = self.workers[n].account_id
            scanned = any(record.open_job is not None and record.state.free > 0
                          and worker_id not in record.state.seen
                          for (job, _), record in self.raw_items.records.items()
                          if job == self.job.job_id)
            if scanned != free:
                raise AssertionError(f"the free-slot check says {free}, a scan {scanned}")
        for name in ("all", window):
            if name:
                self.out.refused[name] += 1
                self.out.refused_while_free[name] += int(free)

    def run_until(self, share: float, progress: Callable[[str], None] | None) -> None:
        """Tick until `share` of the answers are accepted, the job stops taking leases or the
        time limit."""
        last = time.perf_counter()
        while self.job_active() and self.done < share \
                and self.clock() - self.start <= self.s.max_hours * 3600:
            self.meter.recording = True
            self.step()
            if progress is not None and time.perf_counter() - last > 10:
                last = time.perf_counter()
                out = self.out
                progress(f"t={self.clock() - self.start:.0f}s accepted {out.accepted:,}/"
                         f"{out.total_answers:,} requests {out.requests['all']:,} refused "
                         f"{out.refused['all']:,} while free {out.refused_while_free['all']:,}")
        self.meter.recording = False

    def fast_forward(self, share: float) -> None:
        """Answer free slots of the open items in item order, by workers drawn at random who
        have not seen them, until `share` of the answers are accepted, and count them: the
        store as it would stand had the job got there (today's pool finishes items roughly in
        item order). Takes no virtual time, and is neither metered nor checked for refusals;
        the containers' task pools start empty afterwards."""
        self.meter.scope = ("fast-forward", "")
        p = self.consumer
        target = math.ceil(share * self.out.total_answers)
        now = self.clock()
        for item in p.items.open_items(self.job.job_id, None, None):
            for _ in range(item.free):
                if self.out.accepted >= target:
                    break
                n = self.rng.randrange(self.s.workers)
                while item.item_id in self.seen[n]:
                    n = self.rng.randrange(self.s.workers)
                lease = leasing.new_lease(self.job, item.item_id, now)
                if p.items.try_lease(self.job.job_id, item.item_id, self.workers[n].account_id,
                                     lease, None, now).ok:
                    self.seen[n].add(item.item_id)
                    tasks.submit_answer(p, self.workers[n], lease.assignment_id, {"label": "pos"})
                    self._accept(n, item.item_id)
            if self.out.accepted >= target:
                break
        self.count(("fast-forward", ""))
        for container in self.containers:
            container.cache.pool(self.job.job_id).clear()
            container.cache.nothing_for.clear()

    def finish(self) -> Outcome:
        """The end-of-run checks on the stores."""
        out = self.out
        out.finished = not self.job_active()
        out.virtual_seconds = self.clock() - self.start
        for (job, item_id), record in self.raw_items.records.items():
            if job != self.job.job_id:
                continue
            if record.state.answer_count > record.state.redundancy \
                    or self.accepted_on[item_id] > record.state.redundancy:
                out.over_redundancy_items += 1
            out.counted_marks += len(record.counted)
        out.double_answers = sum(1 for times in self.accepted_by.values() if times > 1)
        out.held_at_end = len(self.held)
        job = self.raw_items.jobs_ref.jobs[self.job.job_id]
        out.counted_answers, out.items_done, out.job_state = job.answered, job.items_done, job.state
        out.calls, out.writes = dict(self.meter.calls), self.meter.writes
        out.per_second = dict(self.meter.per_second)
        return out


def simulate(s: Settings, check_exhaustively: bool = False,
             progress: Callable[[str], None] | None = None) -> Outcome:
    """Run the schedule: straight through, or with s.fast_forward over [1%, 49%) and
    [51%, 98%) of the answers. With check_exhaustively each refusal's "free slot" verdict is
    also checked against a scan of every item (slow: for small runs)."""
    started = time.perf_counter()
    run = _Run(s, check_exhaustively)
    run.out.setup_seconds = time.perf_counter() - started
    if s.fast_forward:
        run.run_until(0.01, progress)
        run.fast_forward(0.49)
        run.run_until(0.51, progress)
        run.fast_forward(0.98)
    run.run_until(2.0, progress)
    out = run.finish()
    out.wall_seconds = time.perf_counter() - started
    return out


# --- report ------------------------------------------------------------------------------

def _per(part: float, whole: float) -> str:
    return f"{part / whole:.2f}" if whole else "n/a"


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


def _calls_in(out: Outcome, kind: str, window: str | None = None) -> Counter[str]:
    total: Counter[str] = Counter()
    for (scope_kind, scope_window), counts in out.calls.items():
        if scope_kind == kind and (window is None or scope_window == window):
            total.update(counts)
    return total


def report(out: Outcome) -> str:
    """The run's tables, in Markdown."""
    s = out.settings
    lines = [f"## Task pool: {s.workers:,} workers, one job of {s.items:,} items, redundancy "
             f"{s.redundancy}, {s.containers} API containers",
             "",
             f"Think time {s.think[0]:g}-{s.think[1]:g} s, {s.release:.0%} of tasks released, "
             f"{s.abandon:.0%} dropped (lease of {s.lease_seconds} s left to expire), a worker "
             f"given no task asks again after {s.poll:g} s, seed {s.seed}. "
             + ("Simulated over [0, 1%), [49, 51%) and [98, 100%] of the answers, fast-forwarded "
                "in between (figures below cover the simulated stretches). " if s.fast_forward
                else "Every tick simulated. ")
             + f"Virtual time {out.virtual_seconds:,.0f} s "
             f"({'job finished' if out.finished else 'stopped at the time limit'}); wall time "
             f"{out.wall_seconds:.1f} s ({out.setup_seconds:.1f} s of it posting and ingesting).",
             "",
             "| measure | value | target |",
             "|---|---:|---:|",
             f"| lease requests | {out.requests['all']:,} | |",
             f"| leases granted | {out.granted['all']:,} | |",
             f"| refused (no task returned) | {out.refused['all']:,} | |",
             f"| **refused while a free slot existed for the worker** | "
             f"**{out.refused_while_free['all']:,}** "
             f"({_share(out.refused_while_free['all'], out.requests['all'])} of requests) | 0 |",
             f"| double leases | {out.double_leases} | 0 |",
             f"| items over redundancy | {out.over_redundancy_items} | 0 |",
             f"| workers with two answers on an item | {out.double_answers} | 0 |",
             f"| answers accepted / counted / counting marks | {out.accepted:,} / "
             f"{out.counted_answers:,} / {out.counted_marks:,} | {out.total_answers:,} each |",
             f"| items counted complete | {out.items_done:,} | {s.items:,} |",
             f"| tasks released / dropped / held at the end | {out.released:,} / "
             f"{out.abandoned:,} / {out.held_at_end:,} | |",
             "",
             "### Lease cost by progress (share of the job's answers accepted)",
             "",
             f"Answers per second: the answers accepted in the stretch over its virtual seconds; "
             f"the workers could give {s.workers / (sum(s.think) / 2 + 0.5):,.1f} (workers over "
             f"their mean think time).",
             "",
             "| progress | answers / s | lease requests | granted | refused | refused while free | "
             "store calls / request | DynamoDB requests / request | DynamoDB requests / granted "
             "lease | try_lease / request | failed try_lease / request | open_items / request | "
             "index entries read / request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, _ in WINDOWS:
        calls = _calls_in(out, "lease", name)
        n = out.requests[name]
        store_calls = sum(v for k, v in calls.items() if "." in k)
        lines.append(
            f"| {name} | {_per(out.answered[name], out.ticks[name])} | {n:,} | {out.granted[name]:,} | {out.refused[name]:,} | "
            f"{out.refused_while_free[name]:,} | {_per(store_calls, n)} | "
            f"{_per(calls['dynamodb requests'], n)} | "
            f"{_per(calls['dynamodb requests'], out.granted[name])} | "
            f"{_per(calls['items.try_lease'], n)} | {_per(calls['failed try_lease'], n)} | "
            f"{_per(calls['items.open_items'], n)} | {_per(calls['index entries read'], n)} |")
    lines += ["", "### Store calls by request (per answer: per answer accepted in the simulated "
              "stretches)", "",
              "| request | store.method | calls | per answer |", "|---|---|---:|---:|"]
    for kind in ("lease", "submit", "release", "count"):
        calls = _calls_in(out, kind)
        for method, n in sorted(calls.items(), key=lambda entry: -entry[1]):
            if "." in method or method == "failed try_lease":
                lines.append(f"| {kind} | {method} | {n:,} | {_per(n, out.accepted_simulated)} |")
    total = sum(out.writes.values())
    by_partition: Counter[tuple[str, str]] = Counter()
    partition_seconds: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for key, n in out.writes.items():
        by_partition[key[:2]] += n
        partition_seconds[key[:2]].update(out.per_second[key])
    lines += ["", f"### Writes by key ({total:,} writes while serving, failed conditional "
              "writes included)", "", "| key | kind | writes | share of writes | peak writes "
              "in one second |", "|---|---|---:|---:|---:|"]
    for (table, partition), n in by_partition.most_common(3):
        peak = max(partition_seconds[(table, partition)].values())
        lines.append(f"| {table} / {_short(partition)} | partition key | {n:,} | "
                     f"{n / total:.1%} | {peak:,} |")
    for key, n in out.writes.most_common(3):
        peak = max(out.per_second[key].values())
        record = ("counters record" if key[1].endswith("#counts") else "money record"
                  if key[1].endswith("#money") else "job record") \
            if key[0] == "jobs" else f"item {key[2]}" if key[0] == "items" else "record"
        lines.append(f"| {key[0]} / {_short(key[1])}{'/' + key[2] if key[2] else ''} | {record} | "
                     f"{n:,} | {n / total:.1%} | {peak:,} |")
    return "\n".join(lines)


def _short(partition: str) -> str:
    return "job" if partition.startswith("job") else partition


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--poll", type=float, default=Settings.poll,
                        help="seconds a worker who got no task waits before asking again")
    parser.add_argument("--max-hours", type=float, default=Settings.max_hours,
                        help="stop after this much virtual time")
    parser.add_argument("--no-fast-forward", action="store_true",
                        help="simulate every tick from 0%% to 100%% (hours at full size)")
    parser.add_argument("--quick", action="store_true",
                        help="200 workers and 5,000 items (seconds)")
    args = parser.parse_args(argv)
    workers, items = (200, 5000) if args.quick else (args.workers, args.items)
    settings = Settings(workers=workers, items=items, redundancy=args.redundancy,
                        containers=args.containers, seed=args.seed, max_hours=args.max_hours,
                        poll=args.poll, fast_forward=not args.no_fast_forward)
    out = simulate(settings, progress=lambda text: print(text, file=sys.stderr, flush=True))
    print(report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
