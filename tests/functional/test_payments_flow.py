"""Approvals, rejections, bonuses and earnings over HTTP and DynamoDB (moto)."""
import threading

from chalicelib import deps
from chalicelib.domain import payments, services
from chalicelib.domain.model import APPROVED
from tests.functional.marketplace import Api

DAY = 24 * 3600


def _answered(api, job, token, label="pos"):
    status, task = api.lease(token, job["job_id"])
    assert status == 200, task
    assert api.submit(token, task["assignment_id"], {"label": label})[0] == 200
    return task["assignment_id"]


def test_approve_reject_bonus_and_earnings_over_http(stack):
    api = Api(stack)
    job = api.job(items=3, redundancy=2)
    token = api.worker("w")
    first, second = _answered(api, job, token), _answered(api, job, token)
    status, review = api.as_client("POST", f"/assignments/{first}/approve")
    assert status == 200 and review["status"] == "approved" and review["paid_cents"] == 5
    assert api.as_client("POST", f"/assignments/{first}/approve")[1] == review
    status, error = api.as_client("POST", f"/assignments/{second}/reject", {})
    assert status == 400 and error["field"] == "reason"
    status, review = api.as_client("POST", f"/assignments/{second}/reject",
                                   {"reason": "not English"})
    assert status == 200 and review["status"] == "rejected"
    status, error = api.as_client("POST", f"/assignments/{second}/approve")
    assert status == 409 and error["error"] == "already_reviewed"
    _, me = api.as_worker(token, "GET", "/workers/me")
    bonus = {"worker_id": me["worker_id"], "amount_cents": 4, "reason": "great notes",
             "bonus_id": "week-48"}
    status, entry = api.as_client("POST", f"/jobs/{job['job_id']}/bonuses", bonus)
    assert status == 201 and entry["amount_cents"] == 4
    status, again = api.as_client("POST", f"/jobs/{job['job_id']}/bonuses", bonus)
    assert status == 200 and again == entry
    status, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert status == 200 and earned["balance_cents"] == 9
    assert [(e["kind"], e["reason"]) for e in earned["entries"]] == [
        ("bonus", "great notes"), ("rejection", "not English"), ("approval", None)]
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert (view["paid_cents"], view["bonus_cents"], view["reviews"]) == (
        5, 4, {"approved": 1, "rejected": 1})
    status, error = api.as_worker(token, "GET", "/workers/me/earnings?limit=0")
    assert status == 400 and error["field"] == "limit"


def test_racing_approvals_and_the_sweeper_pay_once(stack):
    # GIVEN an answer, and a job whose review period has passed
    api = Api(stack)
    job = api.job(items=2, redundancy=1, auto_approve_seconds=0)
    token = api.worker("w")
    assignment = _answered(api, job, token)
    stack.drain()  # counting queues the job for automatic approval
    client = services.authenticate(deps.platform(), api.key, services.CLIENT)
    results, start = [], threading.Barrier(9)

    def approve():
        platform = deps._build()
        start.wait()
        results.append(payments.review_assignment(platform, client, assignment, None, APPROVED))

    def sweep():
        platform = deps._build()
        start.wait()
        results.append(payments.auto_approve_due(platform))

    # WHEN eight approvals and the sweeper race
    threads = [threading.Thread(target=approve) for _ in range(8)] + [threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN they all report the one approval, and the worker was paid once
    reviews = [r for r in results if isinstance(r, dict)]
    assert len(reviews) == 8 and len({r["reviewed_at"] for r in reviews}) == 1
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == 5 and len(earned["entries"]) == 1
    # AND the scheduled sweeper finds the second answer and approves it, once
    second = _answered(api, job, token)
    stack.drain()
    event = stack.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    stack.client.lambda_.invoke("finalize_due_jobs", event)
    assert payments.auto_approve_due(deps.platform()) == 0
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == 10
    assert {e["assignment_id"] for e in earned["entries"]} == {assignment, second}
