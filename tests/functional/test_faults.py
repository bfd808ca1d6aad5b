"""Crash after every kind of AWS write and recover the way AWS would: the final state
equals the fault-free run's.

One scenario — a client posts a 4-item job (redundancy 2), three workers answer it, the
counting consumer closes it, the state machine aggregates and publishes, the client approves
every answer, then the job in bulk (the sweeper settles each worker's pay window), and pays a
bonus, a webhook endpoint is told — runs once without faults, recording
each write the app makes and where from (its *site*). Then it runs again once per site, with a
crash right after that site's first write: the HTTP caller retries (same body, same
Idempotency-Key), SQS redelivers the batch, Step Functions retries the task, a lease orphaned
by a crash expires. Every run's final state (answers per item, counts, results, money, budget,
webhook events delivered) must be the fault-free one, and the covered sites are listed so the
list of crash points in docs/architecture.md stays true. Then every queue message is delivered twice more, and
nothing changes.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.deps import platform
from chalicelib.domain.keys import results_csv_key
from tests.functional.faults import Crash, Plan, crash_after_writes, messages_sent, redeliver
from tests.functional.marketplace import Api
from tests.functional.receiver import Receiver

LABELS = {"item 0": "pos", "item 1": "neg", "item 2": "pos", "item 3": "neutral"}
RETRIES = 6


class Driver:
    """Calls the API like a careful client: 5xx is retried with the same key and body."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def call(self, headers: dict, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if method == "POST":
            headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(RETRIES):
            status, payload = self.api.call(method, path, body, headers)
            if status < 500:
                return status, payload
        raise AssertionError(f"{method} {path} kept failing: {payload}")

    def client(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.call({"X-Api-Key": self.api.key}, method, path, body)

    def worker(self, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.call({"Authorization": f"Bearer {token}"}, method, path, body)


def _sweep() -> None:
    """What the one-minute schedule does."""
    from chalicelib.domain import webhooks
    from chalicelib.handlers import payments, rounds

    p = platform()
    try:
        rounds.finalize_due_jobs(p)
        webhooks.publish_due_job_events(p)
        payments.auto_approve_due(p)
    except Crash:
        pass  # the scheduled function died; it runs again next minute


def approve_everything(drive: Driver, job_id: str, receipts: list[str]) -> None:
    """The client approves every answer one by one, then the job in bulk; the minute sweeper
    settles each worker's pay window, once, whatever crashed on the way."""
    for assignment_id in sorted(set(receipts)):
        status, review = drive.client("POST", f"/assignments/{assignment_id}/approve")
        assert status == 200 and review["status"] == "approved", review
    status, asked = drive.client("POST", f"/jobs/{job_id}/approve")
    assert status == 202, asked
    for _ in range(20):
        _sweep()
        status, view = drive.client("GET", f"/jobs/{job_id}")
        if view["reviews"]["approved"] >= len(set(receipts)):
            return


def _pump(stack) -> None:
    """Deliver queued messages; a crashed batch is redelivered on the next round."""
    for _ in range(50):
        if stack.pump.drain() == 0:
            return


def start_scenario(stack, workers: list[str]) -> tuple[Api, list[str], Driver, dict[str, float]]:
    """The API, the workers' tokens and a driver for a scenario, with the platform's clock
    moved by the returned clock's "offset" and its caches off."""
    api = Api(stack)
    tokens = [api.worker(name) for name in workers]
    clock = {"offset": 0.0}
    p = platform()
    p.clock = lambda: time.time() + clock["offset"]
    p.cache_seconds = 0
    return api, tokens, Driver(api), clock


def until_done(stack, drive: Driver, job_id: str, clock: dict[str, float],
               step: Callable[[dict[str, Any]], bool], seconds: float = 90.0) -> dict[str, Any]:
    """Pump the queues, read the job and take a step of the scenario (step(view): whether it
    did anything) until the job is done or seconds pass; when a step did nothing, time passes
    (a lease orphaned by a crash runs out) and the minute sweeper runs (it starts again a
    round whose start was lost). The job's last view."""
    deadline = time.monotonic() + seconds
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _pump(stack)
        _, view = drive.client("GET", f"/jobs/{job_id}")
        if view["state"] == "done":
            break
        if not step(view):
            clock["offset"] += 61
            _sweep()
            time.sleep(0.05)
    return view


def post_job(drive: Driver, items: list[dict[str, Any]], redundancy: int, labels: list[str],
             quote: dict[str, Any] | None = None, **job: Any) -> str:
    """Quote and post a categorical job of these items ("Sentiment?", leases of 30 s) with the
    quote's and the job's extra fields; its id."""
    status, quoted = drive.client("POST", "/quotes", {"task_type": "categorical",
                                                      "items": len(items),
                                                      "redundancy": redundancy, **(quote or {})})
    assert status == 201, quoted
    status, posted = drive.client("POST", "/jobs", {
        "quote_id": quoted["quote_id"], "instructions": "Sentiment?", "lease_seconds": 30,
        "answer_schema": {"labels": labels}, "items": items, **job})
    assert status == 202, posted
    return posted["job_id"]


def scenario(stack, plan: Plan, receiver: Receiver, run: dict | None = None) -> dict[str, Any]:
    """Run the scenario (armed: writes are counted and one may crash); its final state.
    run, if given, gets what the run used (api, drive, tokens, job_id)."""
    api, tokens, drive, clock = start_scenario(stack, [f"w{n}" for n in range(3)])
    status, _ = drive.client("POST", "/webhooks/endpoints",
                             {"url": receiver.url, "events": ["job.completed",
                                                              "job.report_ready"]})
    assert status == 201
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}, "external_id": f"e{n}"}
                              for n in range(4)], 2, ["pos", "neg", "neutral"])
    receipts: list[str] = []

    def answer_all(view: dict[str, Any]) -> bool:
        worked = False
        for token in tokens:
            status, task = drive.worker(token, "GET", f"/tasks/next?job_id={job_id}")
            if status != 200:
                continue
            answer = {"label": LABELS[task["item"]["data"]["text"]]}
            status, receipt = drive.worker(
                token, "POST", f"/assignments/{task['assignment_id']}/submit", answer)
            assert status == 200, receipt
            receipts.append(receipt["assignment_id"])
            worked = True
        return worked

    view = until_done(stack, drive, job_id, clock, answer_all, seconds=60)
    assert view["state"] == "done", view
    approve_everything(drive, job_id, receipts)
    status, me = drive.worker(tokens[0], "GET", "/workers/me")
    status, bonus = drive.client("POST", f"/jobs/{job_id}/bonuses", {
        "worker_id": me["worker_id"], "amount_cents": 2, "reason": "thanks", "bonus_id": "b1"})
    assert status in (200, 201), bonus
    _settle_webhooks(stack, receiver, job_id)
    plan.armed = False
    if run is not None:
        run.update(api=api, drive=drive, tokens=tokens, job_id=job_id)
    return final_state(api, drive, tokens, job_id, receiver)


def _settle_webhooks(stack, receiver: Receiver, job_id: str) -> None:
    for _ in range(100):
        _pump(stack)
        _sweep()  # the outbox sweep
        time.sleep(0.1)  # an attempt whose process died holds its delivery for 2 s
        got = {e["type"] for e in receiver.events() if e["job_id"] == job_id}
        if got >= {"job.completed", "job.report_ready"}:
            return
    raise AssertionError(f"webhooks never arrived: {got}")


def final_state(api: Api, drive: Driver, tokens: list[str], job_id: str,
                receiver: Receiver) -> dict[str, Any]:
    """What must not depend on crashes: answers, counts, results, money, budget, events."""
    p = platform()
    items = {i.item_id: sorted(a.answer["label"] for a in i.answers.values())
             for i in p.items.iter_items(job_id)}
    status, view = drive.client("GET", f"/jobs/{job_id}")
    status, page = drive.client("GET", f"/jobs/{job_id}/results")
    results = sorted((r["external_id"], r["answer"], r["n_answers"]) for r in page["results"])
    table = list(csv.reader(io.StringIO(p.blobs.get_text(results_csv_key(job_id)))))
    csv_results = (table[0], sorted((r[1], r[2], r[4]) for r in table[1:]))
    balances = []
    entries = []
    settled = {"cents": 0, "answers": 0}
    for token in tokens:
        status, earned = drive.worker(token, "GET", "/workers/me/earnings")
        balances.append(earned["balance_cents"])
        for e in earned["entries"]:
            if e["kind"] == "settlement":
                # How answers split into settlements follows the hour their tasks were
                # leased in (a run may cross one): what was paid, and for how many, may not.
                settled["cents"] += e["amount_cents"]
                settled["answers"] += e["answers"]
            else:
                entries.append((e["kind"], e["amount_cents"]))
    events = sorted(e["type"] for e in receiver.events() if e["job_id"] == job_id)
    return {
        "answers": items, "state": view["state"], "counts": view["counts"],
        "results": results, "csv": csv_results, "budget_cents": view["budget_cents"],
        "spent_cents": view["spent_cents"], "paid_cents": view["paid_cents"],
        "bonus_cents": view["bonus_cents"], "pool_cents": view["pool_cents"],
        "reviews": view["reviews"], "balance_total": sum(balances),
        "ledger": sorted(entries), "settled": settled, "events_delivered": events,
    }


def test_a_crash_after_any_write_ends_in_the_fault_free_state(stack):
    hooks = platform().webhooks
    hooks.config = replace(hooks.config, retry_base_seconds=0, timeout_seconds=1)
    with Receiver() as receiver:
        clean = Plan()
        with crash_after_writes(clean):
            expected = scenario(stack, clean, receiver)
        # every answer was paid once, by the settlements of its pay window
        assert expected["settled"]["answers"] == expected["reviews"]["approved"] == 8
        assert expected["settled"]["cents"] == expected["paid_cents"] == 8 * 5
        sites = sorted({site for _, site in clean.writes})
        # the paths the issue names all have writes to crash after
        for path in ("jobs.ingest_chunk", "tasks._lease_in_job",
                     "tasks.submit_answer", "rounds.count_answers",
                     "aggregation.publish_results", "rounds.end_round", "payments.settle >",
                     "aggregation.aggregate_shard > results.put_results", "downloads.write_csv_part",
                     "downloads.publish_csv",
                     "payments.approve_job", "payments.settle_accrual",
                     "payments._continue_approval", "webhooks.delivery.deliver"):
            assert any(path in site for site in sites), (path, "\n".join(sites))
        crashed = []
        only = os.environ.get("CRASH_SITE")  # to look at one crash point
        for site in [site for site in sites if not only or only in site]:
            plan = Plan(crash_site=site)
            with crash_after_writes(plan):
                try:
                    state = scenario(stack, plan, receiver)
                except AssertionError as error:
                    raise AssertionError(f"after a crash at {plan.crashed}: {error}") from error
            assert plan.crashed is not None, site
            assert state == expected, (site, plan.crashed)
            crashed.append(plan.crashed)
            print(f"crash point passed: {plan.crashed}", flush=True)
        print("\n".join(f"crash point: {op} in {site}" for op, site in crashed))
        assert len(crashed) >= 15


def test_every_message_delivered_twice_or_three_times_changes_nothing(stack):
    # GIVEN a job run to the end, with every SQS message kept aside as it was sent
    hooks = platform().webhooks
    hooks.config = replace(hooks.config, retry_base_seconds=0, timeout_seconds=1)
    with Receiver() as receiver:
        run: dict[str, Any] = {}
        with messages_sent() as sent:
            before = scenario(stack, Plan(), receiver, run)
        assert len(sent) > 10
        # WHEN every message is delivered twice, then three times, more
        for copies in (2, 3):
            redeliver(sent, copies)
            _pump(stack)
            _sweep()
            # THEN answers, counts, results, money, budget and events are as they were
            after = final_state(run["api"], run["drive"], run["tokens"], run["job_id"], receiver)
            assert after == before, copies
