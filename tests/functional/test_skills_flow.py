"""Cohorts and qualification tests over HTTP and DynamoDB (moto)."""
from chalicelib import deps
from chalicelib.domain.model import OPERATOR
from chalicelib.handlers.accounts import create_account
from tests.functional.marketplace import Api

TEST = {
    "skill": "translation:en-ja", "task_type": "translation",
    "instructions": "Translate into Japanese.", "answer_schema": {"max_length": 200},
    "pass_score": 0.5,
    "items": [{"data": {"text": "Good morning"}, "gold": {"text": "おはようございます"}},
              {"data": {"text": "Thank you"}, "gold": {"text": "ありがとうございます"}}],
}


def test_operators_publish_cohorts_and_tests_workers_earn_skills_clients_price_with_cohorts(stack):
    api = Api(stack)
    _, operator_key = create_account(deps.platform(), OPERATOR, "Ops")
    status, error = api.as_client("POST", "/operator/qualifications", TEST)
    assert status == 403 and error["error"] == "wrong_role"
    status, qual = api.as_client("POST", "/operator/qualifications", TEST, key=operator_key)
    assert status == 201 and qual["items"] == 2
    status, cohort = api.as_client("PUT", "/operator/cohorts", {
        "name": "en-ja", "skills": ["translation:en-ja"], "unit_cents": {"translation": 60}},
        key=operator_key)
    assert status == 200 and cohort["unit_cents"] == {"translation": 60}
    status, listed = api.as_client("GET", "/cohorts")
    assert status == 200 and listed["cohorts"] == [cohort]
    # a client quotes for the cohort and posts a job that requires its skill
    job = api.job(items=2, redundancy=1, task_type="translation",
                  quote={"cohort": "en-ja", "gold_rate": 0})
    assert job["reward_cents"] == 60 and job["required_skills"] == ["translation:en-ja"]
    token = api.worker("linguist", ["en", "ja"])
    assert api.lease(token, job["job_id"])[0] == 403
    # the worker takes the test and passes with one of two right
    status, tests = api.as_worker(token, "GET", "/qualifications")
    assert status == 200 and tests["qualifications"][0]["attempt"] is None
    path = f"/qualifications/{qual['qualification_id']}"
    status, attempt = api.as_worker(token, "POST", f"{path}/start")
    assert status == 200 and "gold" not in str(attempt) and "ございます" not in str(attempt)
    status, error = api.as_worker(token, "POST", f"{path}/submit",
                                  {"attempt_id": attempt["attempt_id"], "answers": {}})
    assert status == 400 and error["field"] == "answers.000000"
    status, outcome = api.as_worker(token, "POST", f"{path}/submit", {
        "attempt_id": attempt["attempt_id"],
        "answers": {"000000": {"text": "おはようございます"}, "000001": {"text": "さようなら"}}})
    assert status == 200 and outcome["passed"] is True and outcome["score"] == 0.5
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert "translation:en-ja" in me["skills"]
    assert me["skill_scores"] == {"translation:en-ja": 0.5}
    # and now gets the job's tasks
    assert api.lease(token, job["job_id"])[0] == 200
    status, error = api.as_worker(token, "POST", f"{path}/start")
    assert status == 409 and error["error"] == "qualification_passed"


def test_a_test_in_hebrew_is_stored_whole_and_an_oversize_one_is_413_not_a_server_error(stack):
    api = Api(stack)
    _, operator_key = create_account(deps.platform(), OPERATOR, "Ops")
    # GIVEN a test of 50 items of 3,000 bytes of Hebrew each (150 KB as UTF-8, 450 KB as
    # ASCII-escaped JSON: more than a DynamoDB item holds)
    text = "\u05e9" * 1500
    body = {"skill": "label:he", "task_type": "categorical", "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]},
            "items": [{"data": {"text": text}, "gold": {"label": "a"}} for _ in range(50)]}
    status, qual = api.as_client("POST", "/operator/qualifications", body, key=operator_key)
    assert status == 201 and qual["items"] == 50, qual
    # THEN a worker starting it gets every item back as sent
    token = api.worker("he", ["en"])
    status, attempt = api.as_worker(token, "POST",
                                    f"/qualifications/{qual['qualification_id']}/start")
    assert status == 200 and [i["data"]["text"] for i in attempt["questions"]] == [text] * 50
    # AND a test bigger than one stored item may hold is refused as too large
    body["items"] = [{"data": {"text": "x" * 8000}, "gold": {"label": "a"}}] * 50
    status, error = api.as_client("POST", "/operator/qualifications", body, key=operator_key)
    assert status == 413 and error["field"] == "items", error
