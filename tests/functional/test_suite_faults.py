"""Crash inside a task suite's lease and submit, and deliver every message again: the final
state is the fault-free one.

Three workers work a job of six items (redundancy 2, suites of 3) only through suites: each
leases a suite (GET /tasks/next?count=3) and submits it asking for the next one in the same
request (POST /assignments/submit with "next"), until the job has nothing for them; the
counting consumer closes the job, the client approves every answer, then the job in bulk (the
sweeper settles the pay windows). The run is made once without faults, then once per crash
point: right after the k-th task's lease write of a suite (the first suite, leased by GET, and
the next one, leased by the submit), right after the k-th answer's write of a suite submit
(the last one is just before its batched send) and right after the batched send. The client
retries the 5xx with the same Idempotency-Key, or without one; a lease the crash left behind
ends at its expiry. Every run must end with every answer stored once, counted once and paid
once, no slot held or lost, and the job's counters and money as in the fault-free run; then
every queue message is delivered two and three more times, and nothing changes.
"""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.deps import platform
from tests.functional.faults import Plan, crash_after_writes, messages_sent, redeliver
from tests.functional.test_gold_faults import GOLD_TEXT, TRIES, _touches_servings
from tests.functional.test_gold_faults import ITEMS as GOLD_ITEMS
from tests.functional.test_gold_faults import final_state as gold_final_state
from tests.functional.test_faults import (
    RETRIES, Driver, _pump, _sweep, approve_everything, post_job, start_scenario, until_done,
)

ITEMS = 6
SUITE = 3
LABELS = ["pos", "neg", "neutral"]
LEASE = "tasks._lease_in_job > items.try_lease"
SUBMIT = "tasks._store_answer > items.try_submit"
SEND = "tasks.submit_suite > messaging.send_many"
# (site, nth write of that site in the run): the first suite's leases (GET /tasks/next), the
# first suite submit's answers (the third is the last write before its batched send), that
# batched send, and the leases of the next suite that submit asked for.
CRASH_POINTS = [(LEASE, k) for k in range(1, SUITE + 1)] \
    + [(SUBMIT, k) for k in range(1, SUITE + 1)] + [(SEND, 1)] \
    + [(LEASE, SUITE + k) for k in range(1, SUITE + 1)]


class SuiteDriver(Driver):
    """A careful client that retries a 5xx with the same body and, when keyed, the same
    Idempotency-Key (without one otherwise)."""

    def __init__(self, api: Any, keyed: bool) -> None:
        super().__init__(api)
        self.keyed = keyed

    def call(self, headers: dict, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if method == "POST" and self.keyed:
            return super().call(headers, method, path, body)
        for _ in range(RETRIES):
            status, payload = self.api.call(method, path, body, headers)
            if status < 500:
                return status, payload
        raise AssertionError(f"{method} {path} kept failing: {payload}")


def _label(task: dict[str, Any]) -> str:
    return LABELS[int(task["item"]["data"]["text"].split()[-1]) % len(LABELS)]


def scenario(stack, plan: Plan, keyed: bool = True, run: dict | None = None
             ) -> dict[str, Any]:
    """Run the suite scenario (armed: writes are recorded and one may crash); its final state.
    run, if given, gets what final_state needs to look again."""
    api, tokens, _, clock = start_scenario(stack, [f"s{n}" for n in range(3)])
    drive = SuiteDriver(api, keyed)
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}, "external_id": f"e{n}"}
                              for n in range(ITEMS)], 2, LABELS, suite_size=SUITE)
    receipts: list[str] = []

    def work(token: str) -> bool:
        status, suite = drive.worker(token, "GET", f"/tasks/next?job_id={job_id}&count={SUITE}")
        if status == 204:
            return False
        assert status == 200, suite
        while suite and suite["tasks"]:
            assert len(suite["tasks"]) <= SUITE, suite
            answers = [{"assignment_id": task["assignment_id"], "answer": {"label": _label(task)}}
                       for task in suite["tasks"]]
            status, done = drive.worker(token, "POST", "/assignments/submit", {
                "answers": answers, "next": {"count": SUITE, "job_id": job_id}})
            assert status == 200, done
            # the client's retry finds the answers stored before the crash as duplicates
            assert all(r["status"] in ("accepted", "duplicate") for r in done["results"]), done
            receipts.extend(r["assignment_id"] for r in done["results"])
            suite = done["next"]
        return True

    def step(view: dict[str, Any]) -> bool:
        return any([work(token) for token in tokens])

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done", view
    approve_everything(drive, job_id, receipts)
    _pump(stack)
    plan.armed = False
    if run is not None:
        run.update(drive=drive, tokens=tokens, job_id=job_id)
    return final_state(drive, tokens, job_id)


def final_state(drive: Driver, tokens: list[str], job_id: str) -> dict[str, Any]:
    """What must not depend on crashes, with what must hold on every item: its slots all
    answered, each by another worker, none held, each answer counted, approved and paid once."""
    p = platform()
    job = p.jobs.get_job(job_id)
    items = list(p.items.iter_items(job_id))
    for item in items:
        assert item.answer_count == len(item.answers) == item.redundancy == 2, item
        assert item.free == 0 and not item.leases, item
        assert all(a.review and a.review["status"] == "approved" for a in item.answers.values())
    status, view = drive.client("GET", f"/jobs/{job_id}")
    status, page = drive.client("GET", f"/jobs/{job_id}/results")
    balances, settled = 0, {"cents": 0, "answers": 0}
    for token in tokens:
        status, earned = drive.worker(token, "GET", "/workers/me/earnings")
        balances += earned["balance_cents"]
        for entry in earned["entries"]:
            if entry["kind"] == "settlement":
                settled["cents"] += entry["amount_cents"]
                settled["answers"] += entry["answers"]
    assert job.answered == view["counts"]["answered"] == ITEMS * 2, view["counts"]
    assert view["paid_cents"] == balances == settled["cents"] == job.answered * job.reward_cents
    assert settled["answers"] == view["reviews"]["approved"] == job.answered
    return {
        "answers": {item.item_id: sorted(a.answer["label"] for a in item.answers.values())
                    for item in items},
        "state": view["state"], "counts": view["counts"],
        "results": sorted((r["external_id"], r["answer"], r["n_answers"])
                          for r in page["results"]),
        "budget_cents": view["budget_cents"], "spent_cents": view["spent_cents"],
        "paid_cents": view["paid_cents"], "pool_cents": view["pool_cents"],
        "reviews": view["reviews"], "balances": balances, "settled": settled,
    }


@pytest.fixture
def clean(stack) -> tuple[Plan, dict[str, Any], list[tuple[str, str]], dict[str, Any]]:
    """A fault-free run: its plan (every write and its site), what final_state needs, every
    SQS message it sent, and its final state."""
    plan = Plan()
    run: dict[str, Any] = {}
    with messages_sent() as sent, crash_after_writes(plan):
        state = scenario(stack, plan, run=run)
    return plan, run, sent, state


def test_every_message_of_a_suite_run_delivered_twice_or_three_times_changes_nothing(
        stack, clean):
    # GIVEN a job worked in suites to the end, every SQS message kept aside
    plan, run, sent, before = clean
    assert ("SendMessageBatch", SEND) in plan.writes
    # WHEN every message is delivered two, then three, more times
    for copies in (2, 3):
        redeliver(sent, copies)
        _pump(stack)
        _sweep()
        # THEN answers, counts, results and money are as they were
        assert final_state(**run) == before, copies


@pytest.mark.parametrize("keyed", [True, False], ids=["same-key", "no-key"])
def test_a_crash_inside_a_suite_lease_or_submit_ends_in_the_fault_free_state(stack, clean,
                                                                             keyed):
    plan, _, _, expected = clean
    sites = {site for _, site in plan.writes}
    assert {LEASE, SUBMIT, SEND} <= sites, sorted(sites)
    # each crash point is a write of the fault-free run
    for site, nth in CRASH_POINTS:
        assert sum(1 for _, seen in plan.writes if seen == site) >= nth, (site, nth)
    for site, nth in CRASH_POINTS:
        crash = Plan(crash_site=site, nth=nth)
        with crash_after_writes(crash):
            try:
                state = scenario(stack, crash, keyed)
            except AssertionError as error:
                raise AssertionError(f"after a crash at {site} #{nth}: {error}") from error
        # THEN it crashed there, and the run ended as the fault-free one did
        assert crash.crashed is not None, (site, nth)
        assert state == expected, (site, nth)
        print(f"suite crash point passed: {site} #{nth} ({'same key' if keyed else 'no key'})",
              flush=True)


def _gold_write(operation: str, params: dict) -> bool:
    """A write touching a gold item's servings, or a batched send holding a gold answer's
    counting message."""
    return _touches_servings(operation, params) or (
        operation == "SendMessageBatch" and "gold_correct" in repr(params))


def gold_scenario(stack, plan: Plan, keyed: bool = True, run: dict | None = None
                  ) -> dict[str, Any]:
    """Four workers work a job of 12 items and a gold item (slots for several workers, gold
    tried at half the tasks) in suites of 3, each worker a suite per round, submitting it with
    "next"; the job's final state, checked as the gold crash test checks it. run, if given,
    gets what that check needs to look again."""
    api, tokens, _, clock = start_scenario(stack, [f"sg{n}" for n in range(4)])
    drive = SuiteDriver(api, keyed)
    p = platform()
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}} for n in range(GOLD_ITEMS)]
                      + [{"data": {"text": GOLD_TEXT}, "gold": {"label": "pos"}}], 1,
                      ["pos", "neg"], quote={"gold_rate": 0.5}, pilot={"items": 0},
                      quality={"gold_rate": 0.5}, suite_size=SUITE)
    pool_at_posting = p.jobs.get_job(job_id).pool_cents
    receipts: list[str] = []
    gold_seen: dict[int, int] = {}
    held: dict[int, list[dict[str, Any]]] = {}

    def step(view: dict[str, Any]) -> bool:
        worked = False
        for n, token in enumerate(tokens):
            suite = held.pop(n, None)
            if not suite:
                status, leased = drive.worker(token, "GET",
                                              f"/tasks/next?job_id={job_id}&count={SUITE}")
                if status != 200:
                    continue
                suite = leased["tasks"]
                assert not all(t["item"]["data"]["text"] == GOLD_TEXT for t in suite), suite
                gold_seen[n] = gold_seen.get(n, 0) + sum(
                    t["item"]["data"]["text"] == GOLD_TEXT for t in suite)
            worked = True
            status, done = drive.worker(token, "POST", "/assignments/submit", {
                "answers": [{"assignment_id": t["assignment_id"], "answer": {"label": "pos"}}
                            for t in suite],
                "next": {"count": SUITE, "job_id": job_id}})
            assert status == 200, done
            for result in done["results"]:
                if result["status"] in ("accepted", "duplicate"):
                    receipts.append(result["assignment_id"])
                else:  # a crash lost a lease's reply: the retry's lease ran out meanwhile
                    assert result["status"] in ("lease_expired", "assignment_not_active"), done
            following = done["next"]["tasks"]
            if following:
                assert not all(t["item"]["data"]["text"] == GOLD_TEXT for t in following)
                gold_seen[n] = gold_seen.get(n, 0) + sum(
                    t["item"]["data"]["text"] == GOLD_TEXT for t in following)
                held[n] = following
        return worked

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done", view
    approve_everything(drive, job_id, receipts)
    _pump(stack)
    plan.armed = False
    if run is not None:
        run.update(drive=drive, tokens=tokens, job_id=job_id, pool_at_posting=pool_at_posting)
    state = gold_final_state(drive, tokens, job_id, pool_at_posting)
    assert all(count <= 1 for count in gold_seen.values()), gold_seen  # never twice
    return state


def test_a_crash_at_a_gold_write_inside_a_suite_leaves_gold_exact(stack):
    # GIVEN a fault-free run in suites in which gold was served, leased and answered in a
    # suite, and its counting message batched, every SQS message kept aside
    gold_sites = {LEASE, SUBMIT, SEND}
    run: dict[str, Any] = {}
    for _ in range(TRIES):
        clean = Plan(only=_gold_write)
        with messages_sent() as sent, crash_after_writes(clean):
            before = gold_scenario(stack, clean, run=run)
        if gold_sites <= clean.matched:
            break
    assert gold_sites <= clean.matched, clean.matched
    # WHEN every message is delivered two, then three, more times THEN gold is as it was
    for copies in (2, 3):
        redeliver(sent, copies)
        _pump(stack)
        _sweep()
        assert gold_final_state(**run) == before, copies
    # WHEN a run crashes right after the first such write of each site, the client retrying
    # with the same key and without one
    for site in sorted(gold_sites):
        for keyed in (True, False):
            for _ in range(TRIES):
                plan = Plan(crash_site=site, only=_gold_write)
                with crash_after_writes(plan):
                    try:
                        gold_scenario(stack, plan, keyed)
                    except AssertionError as error:
                        raise AssertionError(f"after a crash at {plan.crashed}: {error}") \
                            from error
                if plan.crashed is not None:
                    break
            # THEN it crashed there, and gold ended exact (checked by gold_scenario)
            assert plan.crashed is not None, site
            print(f"suite gold crash point passed: {plan.crashed} (keyed: {keyed})", flush=True)
