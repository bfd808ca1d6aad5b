"""Approvals, rejections, bonuses and earnings over HTTP and DynamoDB (moto)."""
import threading

from chalicelib import deps
from chalicelib.domain.model import APPROVED, CLIENT, REJECTED
from chalicelib.errors import Conflict
from chalicelib.handlers import accounts, payments
from tests.functional.marketplace import Api

DAY = 24 * 3600


def _answered(api, job, token, label="pos"):
    status, task = api.lease(token, job["job_id"])
    assert status == 200, task
    assert api.submit(token, task["assignment_id"], {"label": label})[0] == 200
    return task["assignment_id"]


def _settle(stack, api, job_id):
    """The client approves the job in bulk and the one-minute sweeper runs."""
    stack.drain()  # counting adds the answers to their workers' accruals
    status, asked = api.as_client("POST", f"/jobs/{job_id}/approve")
    assert status == 202 and asked["status"] == "approving", asked
    event = stack.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    stack.client.lambda_.invoke("finalize_due_jobs", event)


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
    # the 409 carries the decision that stands
    assert error["message"] == "this answer was already rejected" and error["review"] == review
    _, me = api.as_worker(token, "GET", "/workers/me")
    bonus = {"worker_id": me["worker_id"], "amount_cents": 4, "reason": "great notes",
             "bonus_id": "week-48"}
    status, entry = api.as_client("POST", f"/jobs/{job['job_id']}/bonuses", bonus)
    assert status == 201 and entry["amount_cents"] == 4
    status, again = api.as_client("POST", f"/jobs/{job['job_id']}/bonuses", bonus)
    assert status == 200 and again == entry
    # the approved answer is paid when its pay window is settled (here: a bulk approval)
    status, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert status == 200 and earned["balance_cents"] == 4
    _settle(stack, api, job["job_id"])
    status, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert status == 200 and earned["balance_cents"] == 9
    assert [(e["kind"], e["reason"], e["answers"]) for e in earned["entries"]] == [
        ("settlement", "1 answer approved", 1), ("bonus", "great notes", None),
        ("rejection", "not English", None)]
    assert earned["entries"][0]["job_id"] == job["job_id"]
    status, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert (view["paid_cents"], view["bonus_cents"], view["reviews"]) == (
        5, 4, {"approved": 1, "rejected": 1})
    status, error = api.as_worker(token, "GET", "/workers/me/earnings?limit=0")
    assert status == 400 and error["field"] == "limit"
    status, error = api.as_client("POST", f"/jobs/{job['job_id']}/approve",
                                  {"submitted_before": "soon"})
    assert status == 400 and error["field"] == "submitted_before"


def test_racing_approvals_and_sweepers_pay_once(stack):
    # GIVEN an answer, counted, and a bulk approval of its job
    api = Api(stack)
    job = api.job(items=2, redundancy=1)
    token = api.worker("w")
    assignment = _answered(api, job, token)
    stack.drain()
    client = accounts.authenticate(deps.platform(), api.key, CLIENT)
    payments.approve_job(deps.platform(), client, job["job_id"], None)
    results, start = [], threading.Barrier(9)

    def approve():
        platform = deps._build()
        start.wait()
        results.append(payments.review_assignment(platform, client, assignment, None, APPROVED))

    def sweep():
        platform = deps._build()
        start.wait()
        results.append(payments.auto_approve_due(platform))

    # WHEN four approvals and five sweepers race
    threads = [threading.Thread(target=approve) for _ in range(4)] + \
        [threading.Thread(target=sweep) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN the approvals all report the one approval, and the worker was paid once
    reviews = [r for r in results if isinstance(r, payments.Review)]
    assert len(reviews) == 4 and all(r.status == "approved" for r in reviews)
    assert len({r.decision["at"] for r in reviews}) == 1
    assert sum(r for r in results if isinstance(r, int)) == 1
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == 5 and len(earned["entries"]) == 1
    # AND a rejection after the settlement is too late: the answer is approved
    status, error = api.as_client("POST", f"/assignments/{assignment}/reject", {"reason": "x"})
    assert status == 409 and error["review"]["status"] == "approved"
    # AND the scheduled sweeper settles the second answer, once
    second = _answered(api, job, token)
    _settle(stack, api, job["job_id"])
    assert payments.auto_approve_due(deps.platform()) == 0
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == 10
    assert sorted(e["amount_cents"] for e in earned["entries"]) == [5, 5]
    _, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert view["reviews"] == {"approved": 2, "rejected": 0} and view["paid_cents"] == 10
    assert second


def _money_adds_up(job_id, view):
    """The job's figures add up to the budget, and `reserved` is what its items still hold
    (open and leased slots) plus the rewards held for replacements."""
    p = deps.platform()
    job = p.jobs.get_job(job_id)
    money = view["money"]
    assert money["budget_cents"] == money["fee_cents"] + money["for_workers_cents"]
    assert money["for_workers_cents"] == (money["spent_cents"] + money["bonus_cents"]
                                          + money["reserved_cents"] + money["pool_cents"])
    slots = sum(item.redundancy - item.answer_count for item in p.items.iter_items(job_id))
    assert money["reserved_cents"] == slots * job.reward_cents + job.held_cents
    assert money["spent_cents"] == (job.answered - job.rejected_answers) * job.reward_cents
    assert 0 <= money["paid_cents"] <= money["spent_cents"] and money["pool_cents"] >= 0
    assert view["spent_cents"] == money["spent_cents"] and view["pool_cents"] == money["pool_cents"]
    return money


def test_money_adds_up_through_a_storm_of_approvals_rejections_and_bonuses(stack):
    # GIVEN 12 items x 3 answers, of which two workers gave two per item
    api = Api(stack)
    job = api.job(items=12, redundancy=3)
    tokens = [api.worker(f"w{n}") for n in range(2)]
    answers = []
    for token in tokens:
        while (lease := api.lease(token, job["job_id"]))[0] == 200:
            assert api.submit(token, lease[1]["assignment_id"], {"label": "pos"})[0] == 200
            answers.append(lease[1]["assignment_id"])
    stack.drain()
    assert len(answers) == 24
    workers = [api.as_worker(token, "GET", "/workers/me")[1]["worker_id"] for token in tokens]
    client = accounts.authenticate(deps.platform(), api.key, CLIENT)
    _, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    pool = _money_adds_up(job["job_id"], view)["pool_cents"]
    # WHEN, all at once, half the answers are rejected, the rest approved, and bonuses of
    # 3 cents are asked for until the pool would be overdrawn twice over
    start, outcomes = threading.Barrier(24 + 2 * pool // 3), []

    def review(assignment, status):
        platform = deps._build()
        start.wait()
        body = {"reason": "off topic"} if status == REJECTED else None
        outcomes.append(payments.review_assignment(platform, client, assignment, body, status))

    def bonus(n):
        platform = deps._build()
        start.wait()
        try:
            outcomes.append(payments.pay_bonus(platform, client, job["job_id"], {
                "worker_id": workers[n % len(workers)], "amount_cents": 3, "reason": "thanks",
                "bonus_id": f"b{n}"}))
        except Conflict as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=review, args=(a, REJECTED if k % 2 else APPROVED))
               for k, a in enumerate(answers)]
    threads += [threading.Thread(target=bonus, args=(n,)) for n in range(2 * pool // 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # AND the approved answers are paid by the settlement of their pay windows
    _settle(stack, api, job["job_id"])
    # THEN every figure adds up, bonuses stopped at the pool, and the rejected answers'
    # rewards were held for their replacements, not spent on bonuses
    _, view = api.as_client("GET", f"/jobs/{job['job_id']}")
    money = _money_adds_up(job["job_id"], view)
    paid_bonuses = sum(1 for o in outcomes if isinstance(o, tuple))
    assert money["bonus_cents"] == 3 * paid_bonuses and paid_bonuses == pool // 3
    assert outcomes.count("insufficient_budget") == 2 * pool // 3 - paid_bonuses
    assert view["reviews"] == {"approved": 12, "rejected": 12}
    assert money["paid_cents"] == 12 * job["reward_cents"]
    ledger = sum(deps.platform().ledger.balance(w) for w in workers)
    assert ledger == money["paid_cents"] + money["bonus_cents"]
    # AND when more workers answer, each item ends with three answers that were not rejected
    for token in [api.worker(f"late{n}") for n in range(3)]:
        while (lease := api.lease(token, job["job_id"]))[0] == 200:
            assert api.submit(token, lease[1]["assignment_id"], {"label": "pos"})[0] == 200
            stack.drain()
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done"
    money = _money_adds_up(job["job_id"], final)
    assert money["reserved_cents"] == 0
    _, results = api.as_client("GET", f"/jobs/{job['job_id']}/results?limit=100")
    rejected = set(answers[1::2])
    for line in results["results"]:
        kept = [a for a in line["answers"] if a["assignment_id"] not in rejected]
        assert len(kept) == line["n_answers"] == 3, line
