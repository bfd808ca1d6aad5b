"""The job a client posts, answers and approves on the in-process local stack, in steps the
benchmarks that measure it share (bench.capacity, bench.cost).

A client posts a categorical job (items with gold items spread among them) through
crowd_client, simulated workers register and answer it over HTTP until every slot is filled,
the counting consumer drains and the round is aggregated; the client rejects a share of the
accepted answers and approves a share one by one, then approves the whole job in bulk, and the
one-minute sweeper runs until every worker's pay window is settled. How a worker answers (one
task a request, or a suite) and how the harness looks at the job while it waits are the
caller's.
"""
from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# What the benches ask of the local stack: the counting queue pumped one batch at a time (with
# a dozen workers the deployed app's five counting consumers would each take two or three
# answers, where at scale every batch is full), Step Functions without waits, and the sweeper
# run when the scenario calls it, not on a timer.
STACK_OPTIONS: Mapping[str, Any] = {"port": 0, "pump_interval": 0.2, "consumers": 1,
                                    "finalize_interval": 10 ** 6, "instant_step_functions": True}

Poll = Callable[[str], dict[str, Any]]  # the job's view, by id
Work = Callable[[Any, str, Mapping[str, str], list[str]], None]


def progress(message: str) -> None:
    """A progress line on the terminal (the run's own output is captured)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.__stderr__, flush=True)


def make_items(count: int, gold: int, rows: list[dict[str, str]]
               ) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
    """count regular and gold items from the demo's reviews (a repeated text numbered), the
    gold ones spread evenly among the others, and each item text's true label."""
    items: list[Mapping[str, Any]] = []
    truth: dict[str, str] = {}
    spread = {int((k + 0.5) * (count + gold) / gold) for k in range(gold)} if gold else set()
    for n in range(count + gold):
        row = rows[n % len(rows)]
        text = row["text"] if row["text"] not in truth else f"{row['text']} (#{n})"
        truth[text] = row["label"]
        item: dict[str, Any] = {"external_id": f"r-{n}", "data": {"text": text}}
        if n in spread:
            item["gold"] = {"label": row["label"]}
        items.append(item)
    return items, truth


def answer_one_by_one(base_url: str, worker: Any, job_id: str, truth: Mapping[str, str],
                      accepted: list[str]) -> None:
    """Lease and answer one task a request until the job has nothing left for this worker;
    keep the ids of the accepted answers."""
    from examples.demo import call

    auth = {"Authorization": f"Bearer {worker.token}"}
    while True:
        status, task = call(base_url, "GET", f"/tasks/next?job_id={job_id}", headers=auth)
        if status == 204:
            return
        label = worker.answer(truth[task["item"]["data"]["text"]])
        _, receipt = call(base_url, "POST", f"/assignments/{task['assignment_id']}/submit",
                          {"label": label}, headers=auth)
        accepted.append(receipt["assignment_id"])


def sweep(stack: Any) -> None:
    """One run of the one-minute schedule, as EventBridge would call it."""
    from infra.local_aws import lambda_context
    from infra.local_stack import REGION, scheduled_event

    name = "crowd-dev-finalize_due_jobs"
    account = stack.stack_outputs["IngestQueueArn"].split(":")[4]
    stack.app.finalize_due_jobs(scheduled_event(name, account),
                                lambda_context(name, REGION, account_id=account))


@dataclass
class Posted:
    """A job on the stack, and what its items' texts truly are."""

    job_id: str
    truth: dict[str, str]
    client: Any
    state: str = "active"
    accepted: list[str] = field(default_factory=list)


def post_job(stack: Any, items: int, gold: int, redundancy: int, poll: Poll,
             **settings: Any) -> Posted:
    """Quote and post a categorical job of items regular and gold items (settings added to the
    job's body) and wait until its items are in."""
    from crowd_client import Client
    from examples.demo import LABELS, load_sample

    client = Client(stack.base_url, stack.client_key)
    posts, truth = make_items(items, gold, load_sample(10_000))
    quote = client.quote(task_type="categorical", items=items + gold, redundancy=redundancy,
                         reward_cents=4)
    job = client.create_job(quote["quote_id"], posts, title="Review sentiment",
                            instructions="Is the review positive, negative or neutral?",
                            answer_schema={"labels": LABELS}, pilot={"items": 0},
                            auto_approve_seconds=0, quality={"block_after": 0}, **settings)
    while job["state"] == "ingesting":
        time.sleep(0.2)
        job = poll(job["job_id"])
    return Posted(job["job_id"], truth, client, job["state"])


def register_workers(base_url: str, workers: int, rng: random.Random) -> list[Any]:
    """workers simulated workers (accuracy from 0.7 to 0.95), each registered over HTTP."""
    from examples.demo import SimulatedWorker, call

    crowd = [SimulatedWorker(f"worker-{n:02d}", 0.7 + 0.25 * n / max(workers - 1, 1),
                             rng=random.Random(rng.random())) for n in range(workers)]
    for worker in crowd:
        _, registered = call(base_url, "POST", "/workers", {"name": worker.name, "skills": ["en"]})
        worker.token = registered["token"]
    return crowd


def answer_until_filled(job: Posted, crowd: list[Any], poll: Poll, work: Work) -> None:
    """Every worker works (each on a thread) until the job has nothing for them, and again
    whenever it may have more, until the job leaves `active`; an error a worker meets is
    raised here."""
    idle = 0
    while job.state == "active":
        if idle == 60:
            raise RuntimeError("the job stays active but no worker is offered a task")
        before = len(job.accepted)
        errors: list[BaseException] = []

        def run(worker: Any) -> None:
            try:
                work(worker, job.job_id, job.truth, job.accepted)
            except BaseException as error:  # noqa: BLE001 - raised again below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(w,)) for w in crowd]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        idle = idle + 1 if len(job.accepted) == before else 0
        job.state = until_more_work(job, poll)
        if idle and job.state == "active":
            time.sleep(0.5)


def until_more_work(job: Posted, poll: Poll, timeout: float = 300) -> str:
    """Once every worker has been told the job has nothing for them: wait (reading the job's
    view every half second) until it leaves `active`, or until its counting has caught up
    with every accepted answer and some item is still not done; the job's state then.

    The workers come back only when the job may hold work: sending them while the job's last
    answers are counted would add a lease request per worker each time that none of them
    could be served, requests no judgment needs."""
    deadline = time.monotonic() + timeout
    while True:
        view = poll(job.job_id)
        counts = view.get("counts") or {}
        caught_up = counts.get("answered", 0) >= len(job.accepted)
        if view["state"] != "active" or \
                (caught_up and counts.get("done", 0) < counts.get("items", 0)):
            return str(view["state"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job stays active for {timeout:.0f} s with nothing left "
                               "for its workers")
        time.sleep(0.5)


def wait_until_done(job: Posted, poll: Poll, timeout: float = 300) -> dict[str, Any]:
    """Wait for counting and aggregation to end the job; its view."""
    deadline = time.monotonic() + timeout
    view = poll(job.job_id)
    while view["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        view = poll(job.job_id)
    if view["state"] != "done":
        raise RuntimeError(f"the job ended {view['state']}: {view.get('error')}")
    time.sleep(1.0)  # the round's last stage may still be writing after the state moved
    job.state = view["state"]
    return view


def review_and_settle(stack: Any, job: Posted, poll: Poll, rng: random.Random, rejected: float,
                      one_by_one: float) -> dict[str, Any]:
    """The client rejects a share of the accepted answers and approves a share one by one, then
    approves the job in bulk; the sweeper runs until every answer is approved or rejected.
    What happened, in counts."""
    order = sorted(job.accepted)
    rng.shuffle(order)
    rejects = order[:round(len(order) * rejected)]
    by_client = order[len(rejects):len(rejects) + round(len(order) * one_by_one)]
    progress(f"the client rejects {len(rejects)} answers and approves {len(by_client)} "
             "one by one")
    for assignment_id in rejects:
        job.client.request("POST", f"/assignments/{assignment_id}/reject",
                           {"reason": "did not follow the instructions"})
    for assignment_id in by_client:
        job.client.request("POST", f"/assignments/{assignment_id}/approve")
    progress("the client approves the job in bulk; the sweeper settles the pay windows")
    job.client.request("POST", f"/jobs/{job.job_id}/approve")
    view: dict[str, Any] = {}
    for _ in range(20):
        sweep(stack)
        view = poll(job.job_id)
        if view["reviews"]["approved"] + view["reviews"]["rejected"] >= len(job.accepted):
            break
    return {"approved_by_client": len(by_client), "rejected_by_client": len(rejects),
            "approved_automatically": view["reviews"]["approved"] - len(by_client),
            "settled": view["reviews"]["approved"], "reviews": view["reviews"],
            "results": view["result_count"]}
