"""Crash after every write of the paged passes, and deliver every message again: a round
closes once, with each left-out answer replaced once, and a promotion opens every held item.

Left out: a 6-item job (redundancy 1) is worked over the API by a worker the client then
blocks from it, and by two others; when every item is done the round's pass over the items
runs a page of two items per ingest message (rejecting the blocked worker's answers and
reopening their items with paid replacement slots), the others answer the reopened items,
a second pass reopens nothing and closes the round. Promotion: an 8-item job's pilot is
answered and the client promotes it; the held items are opened a range and a page at a
time. Each runs once without faults, recording the write sites of the passes, then once per
such site with a crash right after its first (and, for a page's sites, its second) write,
recovering as AWS would (SQS redelivers, the HTTP caller retries, the sweeper runs): every
run ends in the fault-free run's state, and every message delivered twice or three times
more changes nothing.
"""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.deps import platform
from chalicelib.handlers import rounds
from tests.functional.faults import Plan, crash_after_writes, messages_sent, redeliver
from tests.functional.test_faults import (
    Driver, _pump, _sweep, post_job, start_scenario, until_done,
)

ITEMS = 6
# The write sites of the pass over the items before a round closes.
PASS_SITES = ("quality.replace_left_out > messaging.send",
              "rounds.left_out_page > jobs.claim_pass", "rounds.left_out_page > messaging.send",
              "rounds.left_out_page > jobs.advance_pass", "rounds.left_out_page > jobs.end_pass",
              "quality._add_paid_slots > items.add_slots", "payments.settle > items.review")
# The write sites of a promotion's opening of the held items.
OPEN_SITES = ("rounds.to_production > messaging.send",
              "rounds.open_held_page > messaging.send_many",
              "rounds.open_held_page > items.open_held", "rounds.open_held_page > messaging.send")


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of two items, so a small job's passes take several messages."""
    monkeypatch.setattr(rounds, "LEFT_OUT_PAGE", 2)
    monkeypatch.setattr(rounds, "OPEN_PAGE", 2)
    monkeypatch.setattr(rounds, "OPEN_FAN_OUT", 2)
    monkeypatch.setattr(rounds, "OPEN_SPLIT", 4)


def _work_one(drive: Driver, token: str, job_id: str, receipts: list[str]) -> bool:
    status, task = drive.worker(token, "GET", f"/tasks/next?job_id={job_id}")
    if status != 200:
        return False
    status, receipt = drive.worker(token, "POST", f"/assignments/{task['assignment_id']}/submit",
                                   {"label": "pos"})
    assert status == 200, receipt
    receipts.append(receipt["assignment_id"])
    return True


def left_out_scenario(stack, plan: Plan, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The blocked worker's scenario (armed: writes are recorded and one may crash)."""
    _, tokens, drive, clock = start_scenario(stack, ["bad", "good", "third"])
    bad, *others = tokens
    status, me = drive.worker(bad, "GET", "/workers/me")
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}} for n in range(ITEMS)], 1,
                      ["pos", "neg"], pilot={"items": 0})
    receipts: list[str] = []
    blocked: list[bool] = []

    def step(view: dict[str, Any]) -> bool:
        if view["state"] != "active":
            return False
        if not blocked:
            while len(receipts) < ITEMS // 2 and _work_one(drive, bad, job_id, receipts):
                pass
            if len(receipts) < ITEMS // 2:
                return False
            status, line = drive.client("POST", f"/jobs/{job_id}/workers/{me['worker_id']}/block",
                                        {"reason": "spam"})
            if status == 404 and line["error"] == "worker_not_found":
                return False  # none of their answers counted yet: the queues go first
            assert status == 200 and line["blocked"], line
            blocked.append(True)
            return True
        return any([_work_one(drive, token, job_id, receipts) for token in others])

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done", view
    plan.armed = False
    if run is not None:
        run.update(drive=drive, job_id=job_id, bad=me["worker_id"])
    return left_out_state(drive, job_id, me["worker_id"])


def left_out_state(drive: Driver, job_id: str, bad: str) -> dict[str, Any]:
    """What must not depend on crashes: each item's replacements and answers, the results
    without the blocked worker's answers, the counts and the money."""
    items = list(platform().items.iter_items(job_id))
    status, view = drive.client("GET", f"/jobs/{job_id}")
    status, page = drive.client("GET", f"/jobs/{job_id}/results")
    assert len(page["results"]) == ITEMS and all(
        bad not in [a["worker_id"] for a in line["answers"]] for line in page["results"])
    return {"state": view["state"], "round": view["round"], "counts": view["counts"],
            "replaced": sorted(item.replaced for item in items),
            "answers": sorted(item.answer_count for item in items),
            "slots": sorted(item.redundancy for item in items),
            "money": view["money"], "reviews": view["reviews"]}


def _crash_every_site(stack, scenario, sites: set[str], clean_state: dict[str, Any]) -> None:
    """Run the scenario once per site with a crash after its first and second write."""
    for site in sorted(sites):
        for nth in (1, 2):
            plan = Plan(crash_site=site, nth=nth)
            with crash_after_writes(plan):
                try:
                    state = scenario(stack, plan)
                except AssertionError as error:
                    raise AssertionError(f"after a crash at {plan.crashed}: {error}") from error
            if nth == 1:
                assert plan.crashed is not None, site
            assert state == clean_state, (site, nth, plan.crashed)
            print(f"crash point passed: {site} #{nth}", flush=True)


def test_a_paged_left_out_pass_survives_a_crash_at_any_of_its_writes(stack, small_pages):
    # GIVEN a fault-free run, every SQS message it sent kept aside
    run: dict[str, Any] = {}
    clean = Plan()
    with messages_sent() as sent, crash_after_writes(clean):
        before = left_out_scenario(stack, clean, run)
    # (the blocked worker's three items were each reopened once and answered by another)
    assert before["replaced"] == [0, 0, 0, 1, 1, 1] and before["reviews"]["rejected"] == 3
    sites = {site for _, site in clean.writes}
    for site in PASS_SITES:
        assert site in sites, (site, sorted(sites))
    # WHEN every message is delivered twice, then three times, more THEN nothing moves
    for copies in (2, 3):
        redeliver(sent, copies)
        _pump(stack)
        _sweep()
        assert left_out_state(**run) == before, copies
    # AND WHEN a run crashes right after the first or second write of any of the pass's sites
    # THEN it ends as the fault-free run did
    _crash_every_site(stack, left_out_scenario, set(PASS_SITES), before)


def promotion_scenario(stack, plan: Plan, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """An 8-item job whose pilot of 2 is answered, then promoted by the client and answered."""
    _, tokens, drive, clock = start_scenario(stack, ["p1", "p2"])
    plan.armed = True
    job_id = post_job(drive, [{"data": {"text": f"item {n}"}} for n in range(8)], 1,
                      ["pos", "neg"], pilot={"items": 2})
    receipts: list[str] = []

    def step(view: dict[str, Any]) -> bool:
        if view["state"] == "paused":
            status, promoted = drive.client("POST", f"/jobs/{job_id}/promote", {})
            assert status in (200, 409), promoted
            return True
        if view["state"] != "active":
            return False
        return any([_work_one(drive, token, job_id, receipts) for token in tokens])

    view = until_done(stack, drive, job_id, clock, step)
    assert view["state"] == "done", view
    plan.armed = False
    if run is not None:
        run.update(drive=drive, job_id=job_id)
    return promotion_state(drive, job_id)


def promotion_state(drive: Driver, job_id: str) -> dict[str, Any]:
    items = list(platform().items.iter_items(job_id))
    status, view = drive.client("GET", f"/jobs/{job_id}")
    return {"state": view["state"], "phase": view["phase"], "round": view["round"],
            "counts": view["counts"], "held": [item.item_id for item in items if item.held],
            "answers": [item.answer_count for item in items], "money": view["money"]}


def test_a_paged_promotion_survives_a_crash_at_any_of_its_writes(stack, small_pages):
    run: dict[str, Any] = {}
    clean = Plan()
    with messages_sent() as sent, crash_after_writes(clean):
        before = promotion_scenario(stack, clean, run)
    assert (before["phase"], before["round"], before["held"]) == ("production", 2, [])
    assert before["answers"] == [1] * 8
    sites = {site for _, site in clean.writes}
    for site in OPEN_SITES:
        assert site in sites, (site, sorted(sites))
    for copies in (2, 3):
        redeliver(sent, copies)
        _pump(stack)
        _sweep()
        assert promotion_state(**run) == before, copies
    _crash_every_site(stack, promotion_scenario, set(OPEN_SITES), before)
