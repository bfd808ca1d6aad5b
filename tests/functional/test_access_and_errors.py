"""Tenants are isolated, credentials are required, and every error is JSON naming the problem."""
import json

import pytest

from chalicelib import deps
from chalicelib.api.common import MAX_BODY_BYTES
from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT
from chalicelib.domain.pricing import infrastructure_cents
from chalicelib.domain.qualifications import Cohort
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api


def test_client_b_never_sees_or_changes_client_a_jobs(stack):
    # GIVEN client A's job and client B's key
    api = Api(stack)
    job = api.job(items=1, redundancy=1)
    _, other_key = create_account(platform(), CLIENT, "Client B")
    # WHEN B reads, cancels, downloads or reports on A's job THEN each is 404 and nothing changed
    for method, path in [("GET", f"/jobs/{job['job_id']}"),
                         ("POST", f"/jobs/{job['job_id']}/cancel"),
                         ("GET", f"/jobs/{job['job_id']}/results"),
                         ("GET", f"/jobs/{job['job_id']}/results/download"),
                         ("GET", f"/jobs/{job['job_id']}/report")]:
        status, body = api.as_client(method, path, key=other_key)
        assert status == 404 and body["error"] == "job_not_found", (path, body)
    _, listing = api.as_client("GET", "/jobs", key=other_key)
    assert listing["jobs"] == []
    _, state = api.as_client("GET", f"/jobs/{job['job_id']}")
    assert state["state"] == "active"
    # AND B cannot use A's quote
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1})
    status, body = api.as_client("POST", "/jobs", {"quote_id": quote["quote_id"]}, key=other_key)
    assert status == 404 and body["field"] == "quote_id"


def test_missing_or_bad_credentials_get_401_and_wrong_roles_403(stack):
    api = Api(stack)
    token = api.worker()
    for method, path in [("POST", "/quotes"), ("GET", "/jobs"), ("GET", "/tasks/next"),
                         ("POST", "/assignments/asg_x/submit")]:
        status, body = api.call(method, path, {} if method == "POST" else None)
        assert status == 401 and body["error"] == "missing_credentials", path
    status, body = api.as_client("GET", "/jobs", key="ck_forged")
    assert status == 401 and body["error"] == "invalid_credentials"
    status, body = api.as_client("GET", "/jobs", key=token)
    assert status == 403 and body["error"] == "wrong_role"
    status, body = api.as_worker(api.key, "GET", "/tasks/next")
    assert status == 403


def test_a_secret_in_the_other_roles_header_is_told_which_header_to_use(stack):
    # GIVEN a client key, an operator key and a worker token
    api = Api(stack)
    token = api.worker()
    operator = _operator_key()
    # WHEN a key is sent as a bearer token on a route that wants X-Api-Key
    for key, path in [(api.key, "/jobs"), (operator, "/operator/keys/rotate"),
                      (api.key, "/webhooks/endpoints")]:
        method = "POST" if "rotate" in path else "GET"
        status, error = api.call(method, path, None, {"Authorization": f"Bearer {key}"})
        # THEN the 401 says to send it in X-Api-Key
        assert status == 401 and error["error"] == "missing_credentials", error
        assert error["field"] == "X-Api-Key" and "'X-Api-Key' header" in error["message"]
        assert "not in 'Authorization'" in error["message"]
    # WHEN a worker token is sent in X-Api-Key, or without 'Bearer', on a worker route
    for headers in ({"X-Api-Key": token}, {"Authorization": token}):
        status, error = api.call("GET", "/tasks/next", None, headers)
        # THEN the 401 says to send it as a bearer token
        assert status == 401 and error["error"] == "missing_credentials", error
        assert error["field"] == "Authorization"
        assert "'Authorization: Bearer <token>'" in error["message"]
        assert "not in 'X-Api-Key'" in error["message"]
    # AND with no credentials at all, the 401 still names the header the route wants
    status, error = api.call("GET", "/jobs")
    assert status == 401 and error["field"] == "X-Api-Key" and "X-Api-Key" in error["message"]
    status, error = api.call("GET", "/workers/me")
    assert status == 401 and error["field"] == "Authorization"
    assert "not in" not in error["message"]


def test_worker_responses_carry_no_other_workers_answers(stack):
    # GIVEN a worker who answered an item
    api = Api(stack)
    api.job(items=1, redundancy=2)
    first, second = api.worker("first"), api.worker("second")
    _, me = api.as_worker(first, "GET", "/workers/me")
    _, task = api.lease(first)
    _, receipt = api.submit(first, task["assignment_id"], {"label": "neg"})
    # WHEN another worker leases the same item
    status, task2 = api.lease(second)
    # THEN nothing in what they get names the first worker, their assignment or answer
    assert status == 200 and task2["item"]["item_id"] == task["item"]["item_id"]
    text = json.dumps(task2)
    assert me["worker_id"] not in text and task["assignment_id"] not in text
    assert set(task2["item"]) == {"item_id", "data"}
    assert "\"label\"" not in text and "external_id" not in text
    # AND they cannot submit on the first worker's assignment
    status, error = api.submit(second, task["assignment_id"], {"label": "pos"})
    assert status == 404 and error["error"] == "assignment_not_found"


@pytest.mark.parametrize("body, status, field", [
    ("{not json", 400, "body"),
    ("[]", 400, "body"),
    ({"task_type": "categorical", "items": "ten"}, 400, "items"),
    ({"task_type": "categorical", "items": 10, "redundancy": 99}, 400, "redundancy"),
    ({"task_type": "categorical", "items": 10, "reward_cents": 1.5}, 400, "reward_cents"),
    ({"task_type": "categorical", "items": 10, "surprise": 1}, 400, "surprise"),
    ({"items": 10}, 400, "task_type"),
])
def test_bad_quote_bodies_name_the_field(stack, body, status, field):
    api = Api(stack)
    got, error = api.as_client("POST", "/quotes", body)
    assert got == status and error["field"] == field and error["message"]


def test_bad_job_bodies_name_the_field_and_write_nothing(stack):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 2})
    base = {"quote_id": quote["quote_id"], "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"t": 1}}] * 2}
    cases = [
        ({**base, "items": [{"data": {"t": 1}}]}, 400, "items"),
        ({**base, "items": [{"data": "text"}, {"data": {"t": 1}}]}, 400, "items[0].data"),
        ({**base, "answer_schema": {"labels": "a,b"}}, 400, "answer_schema.labels"),
        ({**base, "not_applicable": "sometimes"}, 400, "not_applicable"),
        ({**base, "deadline": "tomorrow"}, 400, "deadline"),
        ({**base, "deadline": "2020-01-01T00:00:00Z"}, 400, "deadline"),
        ({**base, "lease_seconds": 5}, 400, "lease_seconds"),
        ({**base, "quote_id": "q_missing"}, 404, "quote_id"),
        ({**base, "items": [{"data": {"t": "x" * 9000}}] * 2}, 413, "items[0].data"),
    ]
    for body, status, field in cases:
        got, error = api.as_client("POST", "/jobs", body)
        assert (got, error.get("field")) == (status, field), (body, error)
    _, listing = api.as_client("GET", "/jobs")
    assert listing["jobs"] == []
    status, job = api.as_client("POST", "/jobs", base)
    assert status == 202
    # the same body while the job is still ingesting resumes it (a retry after a crash)
    status, again = api.as_client("POST", "/jobs", base)
    assert status == 202 and again["job_id"] == job["job_id"]
    stack.drain()
    status, error = api.as_client("POST", "/jobs", base)
    assert status == 409 and error["error"] == "quote_used"


def test_oversize_bodies_are_refused_before_any_work(stack):
    api = Api(stack)
    status, error = api.as_client("POST", "/quotes", "x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and error["error"] == "payload_too_large"
    # before any route runs: no credentials are looked up, on any route
    for path in ("/jobs", "/workers", "/assignments/nonsense/submit", "/webhooks/endpoints"):
        status, error = api.call("POST", path, "{" + " " * MAX_BODY_BYTES + "}")
        assert status == 413 and error["field"] == "body", (path, error)


def test_unknown_ids_are_404_and_non_json_is_415(stack):
    api = Api(stack)
    token = api.worker()
    assert api.as_client("GET", "/jobs/job_0123456789abcdef")[0] == 404
    assert api.as_client("GET", "/jobs/whatever")[0] == 404
    assert api.lease(token, "job_0123456789abcdef")[0] == 404
    status, error = api.submit(token, "asg_0123456789abcdef_000001_abcdef01_1", {"label": "a"})
    assert status == 404 and error["error"] == "assignment_not_found"
    status, error = api.submit(token, "nonsense", {"label": "a"})
    assert status == 404
    status, error = api.call("POST", "/quotes", "task_type=x",
                             {"X-Api-Key": api.key, "Content-Type": "text/plain"})
    assert status == 415 and error["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert error["field"] == "Content-Type"
    # the app's own check (a type Chalice lets through) says the same
    status, error = api.call("POST", "/quotes", "{}",
                             {"X-Api-Key": api.key, "Content-Type": "application/octet-stream"})
    assert status == 415 and "Content-Type: application/json" in error["message"], error
    status, error = api.call("PUT", "/quotes", None, {"X-Api-Key": api.key})
    assert status == 405 and set(error) == {"error", "message"}


def test_bad_answers_and_queries_name_the_field(stack):
    api = Api(stack)
    api.job(items=1, redundancy=1)
    token = api.worker()
    _, task = api.lease(token)
    for answer, field in [({"label": "maybe"}, "label"), ({"label": 3}, "label"),
                          ({"text": "hi"}, "text"), ({"not_applicable": "x"}, "not_applicable")]:
        status, error = api.submit(token, task["assignment_id"], answer)
        assert status == 400 and error["field"] == field, error
    status, error = api.as_worker(token, "GET", "/tasks/next?colour=red")
    assert status == 400 and error["field"] == "colour"
    status, error = api.as_client("GET", "/jobs?limit=many")
    assert status == 400 and error["field"] == "limit"
    status, error = api.as_client("GET", "/jobs?cursor=%%%")
    assert status == 400 and error["field"] == "cursor"


def test_workers_need_the_skills_a_job_requires(stack):
    api = Api(stack)
    status, error = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1,
                                                      "cohort": "en-ja"})
    assert status == 400 and error["error"] == "unknown_cohort" and error["field"] == "cohort"
    deps.platform().catalog.put_cohort(Cohort("en-ja", ("en-ja",), {"categorical": 7}))
    job = api.job(items=1, redundancy=1, quote={"cohort": "en-ja", "task_type": "categorical"})
    assert job["required_skills"] == ["en-ja"] and job["reward_cents"] == 7
    english = api.worker("en", ["en"])
    linguist = api.worker("ja", ["en", "en-ja"])
    assert api.lease(english)[0] == 204
    status, error = api.lease(english, job["job_id"])
    assert status == 403 and error["error"] == "not_qualified"
    assert api.lease(linguist)[0] == 200


def test_the_worker_page_is_served_by_the_api_as_one_locked_down_html_file(stack):
    response = stack.client.http.get("/work")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    page = response.body.decode()
    assert '<label for="token">Worker token</label>' in page
    # every API call is relative to the page, so it works under a stage prefix (/api/work)
    assert 'fetch(path.replace(/^\\//, "")' in page and "fetch(\"/" not in page


@pytest.mark.parametrize("rate", [1e-200, 1e-320, 5e-324, -0.0, 4e-7])
def test_tiny_gold_rates_are_priced_as_no_gold_not_a_server_error(stack, rate):
    # GIVEN a quote asking for a gold rate too small to serve a single gold task
    api = Api(stack)
    status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 10,
                                                      "gold_rate": rate})
    # THEN it is priced with no gold answers, its rate shown as 0
    assert status == 201, quote
    assert quote["gold_rate"] == 0
    assert {line["name"]: line["quantity"] for line in quote["line_items"]}["gold_answers"] == 0
    # AND a job posted from it with the same tiny rate in its quality rules is accepted
    status, job = api.as_client("POST", "/jobs", {
        "quote_id": quote["quote_id"], "instructions": "x", "answer_schema": {"labels": ["a", "b"]},
        "items": [{"data": {"n": n}} for n in range(10)], "quality": {"gold_rate": rate}})
    assert status == 202 and job["quality"]["gold_rate"] == 0, job


def test_a_quote_shows_the_platform_fee_its_aws_estimate_and_margin(stack):
    # GIVEN a quote for 10 items x 3 answers and gold at a tenth of tasks
    api = Api(stack)
    status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 10,
                                                      "reward_cents": 5})
    assert status == 201, quote
    lines = {line["name"]: line for line in quote["line_items"]}
    judgments = lines["worker_rewards"]["quantity"] + lines["gold_answers"]["quantity"]
    # THEN it shows the fee, the AWS estimate for its 34 answers, and the margin between them
    assert judgments == 34
    assert quote["fee_cents"] == lines["platform_fee"]["amount_cents"]
    assert quote["infrastructure_cents"] == infrastructure_cents(34)
    assert quote["margin_cents"] == quote["fee_cents"] - quote["infrastructure_cents"]
    # AND the total is still the lines' sum: the estimate is no line of it
    assert quote["total_cents"] == sum(line["amount_cents"] for line in lines.values())
    assert "infrastructure" not in lines


def test_small_but_servable_gold_rates_keep_six_decimals(stack):
    api = Api(stack)
    status, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 2000,
                                                      "redundancy": 10, "gold_rate": 0.0012344})
    assert status == 201 and quote["gold_rate"] == 0.001234
    assert {line["name"]: line["quantity"] for line in quote["line_items"]}["gold_answers"] == 25


def _with_surrogate(body: dict) -> str:
    """body as JSON text where each "LONE" is the escape of an unpaired surrogate."""
    return json.dumps(body).replace("LONE", "\\ud800")


def _operator_key() -> str:
    from chalicelib.domain.model import OPERATOR

    return create_account(platform(), OPERATOR, "Ops")[1]


# (role, method, path, body, field): one route of each family that takes text.
SURROGATE_CASES = [
    ("anyone", "POST", "/workers", {"name": "LONE", "skills": ["en"]}, "name"),
    ("anyone", "POST", "/workers", {"name": "w", "skills": ["enLONE"]}, "skills[0]"),
    ("operator", "POST", "/operator/accounts", {"role": "client", "name": "aLONE"}, "name"),
    ("operator", "PUT", "/operator/cohorts", {"name": "LONE", "skills": ["en"]}, "name"),
    ("operator", "POST", "/operator/qualifications",
     {"skill": "LONE", "task_type": "categorical", "instructions": "x",
      "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"t": 1}, "gold": {"label": "a"}}]},
     "skill"),
    ("operator", "POST", "/operator/qualifications",
     {"skill": "s", "title": "LONE", "task_type": "categorical", "instructions": "x",
      "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"t": 1}, "gold": {"label": "a"}}]},
     "title"),
    ("operator", "POST", "/operator/qualifications",
     {"skill": "s", "task_type": "categorical", "instructions": "LONE",
      "answer_schema": {"labels": ["a", "b"]}, "items": [{"data": {"t": 1}, "gold": {"label": "a"}}]},
     "instructions"),
    ("operator", "POST", "/operator/workers/wrk_0123456789abcdef/block", {"reason": "LONE"},
     "reason"),
    ("client", "POST", "/assignments/asg_x/approve", {"reason": "LONE"}, "reason"),
    ("client", "POST", "/assignments/asg_x/reject", {"reason": "LONE"}, "reason"),
    ("client", "POST", "/jobs/job_0123456789abcdef/workers/wrk_0123456789abcdef/block",
     {"reason": "LONE"}, "reason"),
    ("client", "POST", "/webhooks/endpoints",
     {"url": "https://example.com/h", "description": "LONE"}, "description"),
    ("client", "POST", "/quotes", {"task_type": "categorical", "items": 1, "cohort": "LONE"},
     "cohort"),
    ("client", "POST", "/jobs",
     {"quote_id": "q_x", "instructions": "x", "items": [{"data": {"text": ["ok", "LONE"]}}]},
     "items[0].data.text[1]"),
    ("client", "POST", "/jobs", {"quote_id": "q_x", "items": [{"data": {"LONE": 1}}]},
     "items[0].data"),
    ("worker", "POST", "/assignments/asg_x/submit", {"text": "LONE"}, "text"),
    ("client", "GET", "/jobs?cursor=LONE", None, "cursor"),
    ("client", "GET", "/jobs/job_LONE", None, "job_id"),
    ("worker", "GET", "/tasks/next?job_id=ok&job_id=LONE", None, "job_id"),
]


@pytest.mark.parametrize("role, method, path, body, field", SURROGATE_CASES,
                         ids=[f"{c[1]} {c[2]} {c[4]}" for c in SURROGATE_CASES])
def test_text_that_is_not_valid_unicode_is_refused_on_every_route(stack, role, method, path,
                                                                 body, field):
    # GIVEN a body, query string or path parameter holding an unpaired surrogate
    api = Api(stack)
    key = {"client": api.key, "operator": _operator_key(), "anyone": None,
           "worker": None}[role]
    headers = {"X-Api-Key": key} if key else {}
    if role == "worker":
        headers = {"Authorization": f"Bearer {api.worker()}"}
    path = path.replace("LONE", "\ud800")
    # WHEN it is sent
    status, error = api.call(method, path, _with_surrogate(body) if body is not None else None,
                             headers)
    # THEN it is a 400 naming the field, and nothing echoes the invalid text
    assert status == 400, error
    assert error["error"] == "invalid_request" and error["field"] == field, error
    assert "Unicode" in error["message"]
    if path.startswith("/workers"):
        assert [a for a in _accounts() if a.role == "worker"] == []


def _accounts() -> list:
    from chalicelib.adapters.models import AccountModel

    return list(AccountModel.scan())
