"""Every route, called with every kind of credential and with another tenant's ids: each denied
call is 401/403/404 with the JSON error shape, and changes nothing in any table. Credentials
rotate and revoke. No secret or gold answer reaches the logs."""
import json
import logging

import boto3
import pytest

from chalicelib.api.openapi import role_of as _role
from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT, OPERATOR
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api


def _snapshot():
    ddb = boto3.client("dynamodb")
    tables = {}
    for name in ddb.list_tables()["TableNames"]:
        items = ddb.scan(TableName=name)["Items"]
        tables[name] = sorted(json.dumps(item, sort_keys=True) for item in items)
    return tables


@pytest.fixture
def world(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=1, pilot={"items": 0})
    worker = api.worker("w")
    _, task = api.lease(worker, job["job_id"])
    assert api.submit(worker, task["assignment_id"], {"label": "pos"})[0] == 200
    _, other_client = create_account(platform(), CLIENT, "Other tenant")
    _, operator = create_account(platform(), OPERATOR, "Ops")
    _, me = api.as_worker(worker, "GET", "/workers/me")
    return {"api": api, "job_id": job["job_id"], "assignment_id": task["assignment_id"],
            "worker": worker, "worker_id": me["worker_id"], "other_client": other_client,
            "operator": operator}


def _fill(path, world):
    return (path.replace("{job_id}", world["job_id"])
            .replace("{assignment_id}", world["assignment_id"])
            .replace("{worker_id}", world["worker_id"]).replace("{account_id}", world["worker_id"])
            .replace("{qual_id}", "qual_0123456789abcdef"))


def test_every_denied_call_is_refused_with_the_error_shape_and_changes_nothing(stack, world):
    api = world["api"]
    credentials = {
        "none": {},
        "client": {"X-Api-Key": api.key},
        "other_client": {"X-Api-Key": world["other_client"]},
        "worker": {"Authorization": f"Bearer {world['worker']}"},
        "worker_as_key": {"X-Api-Key": world["worker"]},
        "operator": {"X-Api-Key": world["operator"]},
        "forged": {"X-Api-Key": "ck_forged", "Authorization": "Bearer wt_forged"},
    }
    routes = [(method, path) for path, entries in stack.app.app.routes.items()
              for method in entries]
    assert len(routes) >= 35
    before = _snapshot()
    checked = 0
    for method, path in routes:
        role = _role(method, path)
        if role is None:
            continue
        for name, headers in credentials.items():
            allowed = name == role or (name == "other_client" and role == "client")
            if allowed and not (name == "other_client" and "{" in path):
                continue  # the owner's own calls are tested elsewhere
            status, body = api.call(method, _fill(path, world), {} if method in ("POST", "PUT")
                                    else None, headers)
            assert status in (401, 403, 404), (method, path, name, status, body)
            assert set(body) >= {"error", "message"}, (method, path, name, body)
            checked += 1
    # THEN nothing in any table changed
    assert checked > 150
    assert _snapshot() == before


def test_credentials_rotate_and_revoke(stack, world):
    api = world["api"]
    status, rotated = api.as_client("POST", "/keys/rotate")
    assert status == 200 and rotated["api_key"].startswith("ck_")
    assert api.as_client("GET", "/jobs")[0] == 401  # the old key stopped working
    assert api.as_client("GET", "/jobs", key=rotated["api_key"])[0] == 200
    status, token = api.as_worker(world["worker"], "POST", "/workers/me/token/rotate")
    assert status == 200 and api.as_worker(token["token"], "GET", "/workers/me")[0] == 200
    assert api.as_worker(world["worker"], "GET", "/workers/me")[0] == 401
    # an operator revokes the worker's new token
    status, body = api.as_client("POST", f"/operator/accounts/{world['worker_id']}/revoke",
                                 key=world["operator"])
    assert status == 200 and body["revoked"] is True
    assert api.as_worker(token["token"], "GET", "/workers/me")[0] == 401
    status, error = api.as_client("POST", "/operator/accounts/wrk_nobody/revoke",
                                  key=world["operator"])
    assert status == 404 and error["error"] == "account_not_found"


def test_no_secret_or_gold_answer_reaches_the_logs(stack, caplog, capsys):
    # Everything logged at the app's production level (INFO), by the app and the libraries.
    caplog.set_level(logging.INFO)
    api = Api(stack)
    secret_gold = "zebra-gold-label"
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 2,
                                                 "redundancy": 1})
    status, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "x", "pilot": {"items": 0},
        "answer_schema": {"labels": ["pos", secret_gold]},
        "quality": {"gold_rate": 0.5, "block_after": 0},
        "items": [{"data": {"text": "a"}, "gold": {"label": secret_gold}}, {"data": {"text": "b"}}]})
    assert status == 202
    stack.drain()
    token = api.worker("w")
    while True:
        status, task = api.lease(token, job["job_id"])
        if status != 200:
            break
        api.submit(token, task["assignment_id"], {"label": "pos"})
    api.as_client("GET", "/jobs", key="ck_wrong_secret")
    stack.drain()
    logs = caplog.text + capsys.readouterr().out
    assert logs  # the flow did log
    for secret in (api.key, token, "ck_wrong_secret"):
        assert secret not in logs
    assert json.dumps({"label": secret_gold}) not in logs and '"gold"' not in logs


def test_the_openapi_document_covers_every_route_with_its_role(stack):
    api = Api(stack)
    status, doc = api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    routes = {(method.lower(), path) for path, entries in stack.app.app.routes.items()
              for method in entries}
    documented = {(method, path) for path, operations in doc["paths"].items()
                  for method in operations}
    assert documented == routes
    submit = doc["paths"]["/assignments/{assignment_id}/submit"]["post"]
    assert submit["security"] == [{"workerToken": []}]
    assert {p["name"] for p in submit["parameters"]} == {"assignment_id", "Idempotency-Key"}
    assert doc["paths"]["/quotes"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in doc["paths"]["/workers"]["post"]
    assert all(op["summary"] for ops in doc["paths"].values() for op in ops.values())
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "message"]
