"""Idempotency-Key on the requests that create or pay (powertools idempotency on DynamoDB)."""
import json

from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import payments
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api

SPEC = {"task_type": "categorical", "items": 2, "redundancy": 1}


def _post(api, path, body, key, api_key=None, token=None):
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    headers.update({"Authorization": f"Bearer {token}"} if token else
                   {"X-Api-Key": api_key or api.key})
    response = api.http.post(path, headers=headers, body=json.dumps(body))
    return response.status_code, json.loads(response.body), response.headers


def test_a_repeated_key_returns_the_first_response_and_another_body_is_422(stack):
    api = Api(stack)
    status, first, headers = _post(api, "/quotes", SPEC, "quote-1")
    assert status == 201 and "Idempotent-Replayed" not in headers
    status, again, headers = _post(api, "/quotes", SPEC, "quote-1")
    assert status == 201 and again == first and headers["Idempotent-Replayed"] == "true"
    status, error, _ = _post(api, "/quotes", {**SPEC, "items": 3}, "quote-1")
    assert status == 422 and error["error"] == "idempotency_key_reused"
    assert error["field"] == "Idempotency-Key"
    status, other, _ = _post(api, "/quotes", SPEC, "quote-2")
    assert status == 201 and other["quote_id"] != first["quote_id"]
    # keys belong to their account: another client's same key is a request of its own
    _, other_key = create_account(platform(), CLIENT, "Other")
    status, theirs, _ = _post(api, "/quotes", SPEC, "quote-1", api_key=other_key)
    assert status == 201 and theirs["quote_id"] != first["quote_id"]
    status, error, _ = _post(api, "/quotes", SPEC, "x" * 256)
    assert status == 400 and error["field"] == "Idempotency-Key"


def test_a_failed_request_is_not_kept_so_its_retry_runs(stack):
    api = Api(stack)
    status, error, _ = _post(api, "/quotes", {**SPEC, "items": 0}, "fix-me")
    assert status == 400
    status, error, _ = _post(api, "/quotes", {**SPEC, "items": 0}, "fix-me")
    assert status == 400 and error["field"] == "items"


def test_a_retried_job_post_creates_one_job_and_a_retried_submit_and_approval_pay_once(stack):
    api = Api(stack)
    _, quote, _ = _post(api, "/quotes", SPEC, "q")
    body = {"quote_id": quote["quote_id"], "instructions": "Pick one.",
            "answer_schema": {"labels": ["pos", "neg"]},
            "items": [{"data": {"text": f"item {n}"}} for n in range(2)]}
    status, job, _ = _post(api, "/jobs", body, "job-1")
    assert status == 202
    status, again, headers = _post(api, "/jobs", body, "job-1")
    assert status == 202 and again["job_id"] == job["job_id"] and headers["Idempotent-Replayed"]
    stack.drain()
    token = api.worker("w")
    _, task = api.lease(token, job["job_id"])
    path = f"/assignments/{task['assignment_id']}/submit"
    status, receipt, _ = _post(api, path, {"label": "pos"}, "answer-1", token=token)
    assert status == 200
    status, error, _ = _post(api, path, {"label": "neg"}, "answer-1", token=token)
    assert status == 422
    approve = f"/assignments/{task['assignment_id']}/approve"
    first = _post(api, approve, {"reason": "good"}, "pay-1")
    second = _post(api, approve, {"reason": "good"}, "pay-1")
    assert first[0] == second[0] == 200 and first[1] == second[1]
    stack.drain()
    bulk = f"/jobs/{job['job_id']}/approve"
    assert _post(api, bulk, {}, "settle-1")[0] == 202
    status, _, headers = _post(api, bulk, {}, "settle-1")
    assert status == 202 and headers["Idempotent-Replayed"] == "true"
    payments.auto_approve_due(platform())
    payments.auto_approve_due(platform())
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == job["reward_cents"]
    _, me = api.as_worker(token, "GET", "/workers/me")
    bonus = {"worker_id": me["worker_id"], "amount_cents": 1, "reason": "thanks", "bonus_id": "b1"}
    assert _post(api, f"/jobs/{job['job_id']}/bonuses", bonus, "bonus-1")[0] == 201
    status, _, headers = _post(api, f"/jobs/{job['job_id']}/bonuses", bonus, "bonus-1")
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == job["reward_cents"] + 1
