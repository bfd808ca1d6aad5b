"""Qualification tests grant skills with scores; cohorts price quotes (on the fakes)."""
from __future__ import annotations

import json

import pytest

from chalicelib.api.views import cohort_view, qualification_list_view, qualification_view, questions_view
from chalicelib.domain.model import CLIENT, OPERATOR, WORKER
from chalicelib.errors import Conflict, Forbidden, InvalidRequest, NotFound
from chalicelib.handlers import accounts, jobs, qualifications, tasks
from tests.fakes import FakeClock, ingest_all, make_platform

SKILL = "label:sentiment-en"
TEST = {
    "skill": SKILL, "task_type": "categorical", "instructions": "Pick the sentiment.",
    "answer_schema": {"labels": ["pos", "neg"]}, "pass_score": 0.75, "retake_seconds": 3600,
    "items": [{"data": {"text": f"t{n}"}, "gold": {"label": "pos" if n % 2 else "neg"}}
              for n in range(4)],
}
RIGHT = {"000000": {"label": "neg"}, "000001": {"label": "pos"}, "000002": {"label": "neg"},
         "000003": {"label": "pos"}}


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _operator(p):
    return accounts.create_account(p, OPERATOR, "Ops")[0]


def _worker(p):
    principal, token = accounts.create_account(p, WORKER, "w", ["en"])
    return principal, token


def _take(p, token, qual_id, answers):
    worker = accounts.authenticate(p, token, WORKER)
    attempt = questions_view(*qualifications.start_qualification(p, worker, qual_id))
    return attempt, qualifications.submit_qualification(p, worker, qual_id,
                                                {"attempt_id": attempt["attempt_id"],
                                                 "answers": answers})


@pytest.mark.parametrize("change, field", [
    ({"items": []}, "items"),
    ({"items": [{"data": {"t": 1}}]}, "items[0].gold"),
    ({"items": [{"data": {"t": 1}, "gold": {"label": "maybe"}}]}, "items[0].gold"),
    ({"items": [{"data": {"t": 1}, "gold": {"not_applicable": "x"}}]}, "items[0].gold"),
    ({"pass_score": 2}, "pass_score"),
    ({"skill": ""}, "skill"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_test_names_its_field(p, change, field):
    with pytest.raises(InvalidRequest) as caught:
        qualification_view(qualifications.create_qualification(p, _operator(p), {**TEST, **change}))
    assert caught.value.field == field


def test_a_tests_items_and_the_whole_test_have_size_limits_in_utf8_bytes(p):
    from chalicelib.domain.qualifications import MAX_TEST_BYTES
    from chalicelib.errors import PayloadTooLarge

    operator = _operator(p)
    hebrew = {"data": {"text": "\u05e9" * 1500}, "gold": {"label": "pos"}}
    assert qualification_view(qualifications.create_qualification(p, operator, {**TEST, "items": [hebrew]}))["items"] == 1
    with pytest.raises(PayloadTooLarge) as caught:
        qualification_view(qualifications.create_qualification(p, operator, {**TEST, "items": [
            {"data": {"text": "\u05e9" * 4500}, "gold": {"label": "pos"}}]}))
    assert caught.value.field == "items[0].data"
    # 50 items each under the item limit, together over the test's
    near_limit = {"data": {"text": "x" * 8000}, "gold": {"label": "pos"}}
    assert 50 * 8000 > MAX_TEST_BYTES
    with pytest.raises(PayloadTooLarge) as caught:
        qualification_view(qualifications.create_qualification(p, operator, {**TEST, "items": [near_limit] * 50}))
    assert caught.value.field == "items"


def test_passing_a_test_grants_its_skill_with_the_score_and_opens_jobs_that_require_it(p):
    qual = qualification_view(qualifications.create_qualification(p, _operator(p), TEST))
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 2,
                                              "redundancy": 1})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "x", "answer_schema": {"labels": ["a", "b"]},
        "required_skills": [SKILL], "items": [{"data": {"n": n}} for n in range(2)]})
    ingest_all(p)
    worker, token = _worker(p)
    with pytest.raises(Forbidden):
        tasks.lease_next_task(p, accounts.authenticate(p, token, WORKER), job.job_id)
    # WHEN the worker takes the test: the questions carry no answers
    attempt, outcome = _take(p, token, qual["qualification_id"], {**RIGHT, "000003": {"label": "neg"}})
    assert [q["item_id"] for q in attempt["questions"]] == list(RIGHT)
    assert "gold" not in json.dumps(attempt) and '"pos"' not in json.dumps(attempt["questions"])
    # THEN 3 of 4 passes at 0.75 and grants the skill with its score
    assert outcome == {"qualification_id": qual["qualification_id"], "skill": SKILL,
                       "score": 0.75, "pass_score": 0.75, "passed": True}
    principal = accounts.authenticate(p, token, WORKER)
    assert SKILL in principal.skills and dict(principal.scores) == {SKILL: 0.75}
    assert tasks.lease_next_task(p, principal, job.job_id) is not None
    # AND the test cannot be taken again once passed
    with pytest.raises(Conflict) as caught:
        questions_view(*qualifications.start_qualification(p, principal, qual["qualification_id"]))
    assert caught.value.code == "qualification_passed"
    listed = [qualification_list_view(qual, attempt, principal)
              for qual, attempt in qualifications.list_qualifications(p, principal)]
    assert listed[0]["held"] and listed[0]["attempt"]["passed"]


def test_a_job_can_ask_for_a_minimum_score(p):
    qual = qualification_view(qualifications.create_qualification(p, _operator(p), TEST))
    worker, token = _worker(p)
    _take(p, token, qual["qualification_id"], {**RIGHT, "000003": {"label": "neg"}})
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1,
                                              "redundancy": 1})
    body = {"quote_id": quote.quote_id, "instructions": "x",
            "answer_schema": {"labels": ["a", "b"]}, "required_skills": [SKILL],
            "items": [{"data": {"n": 1}}]}
    with pytest.raises(InvalidRequest) as caught:
        jobs.post_job(p, client, {**body, "min_skill_scores": {"other": 0.5}})
    assert caught.value.field == "min_skill_scores.other"
    job = jobs.post_job(p, client, {**body, "min_skill_scores": {SKILL: 0.9}})
    ingest_all(p)
    with pytest.raises(Forbidden) as caught:
        tasks.lease_next_task(p, accounts.authenticate(p, token, WORKER), job.job_id)
    assert caught.value.details["min_skill_scores"] == {SKILL: 0.9}


def test_a_failed_attempt_grants_nothing_and_may_be_retaken_after_the_wait(p):
    qual = qualification_view(qualifications.create_qualification(p, _operator(p), TEST))
    worker, token = _worker(p)
    attempt, outcome = _take(p, token, qual["qualification_id"],
                             {k: {"label": "pos"} for k in RIGHT})
    assert outcome["passed"] is False and outcome["score"] == 0.5
    principal = accounts.authenticate(p, token, WORKER)
    assert SKILL not in principal.skills
    # a repeated submit of the same attempt returns the same outcome, and grants nothing
    again = qualifications.submit_qualification(p, principal, qual["qualification_id"],
                                        {"attempt_id": attempt["attempt_id"], "answers": RIGHT})
    assert again == outcome
    with pytest.raises(Conflict) as caught:
        questions_view(*qualifications.start_qualification(p, principal, qual["qualification_id"]))
    assert caught.value.code == "retake_too_soon"
    p.clock.advance(3601)
    _, outcome = _take(p, token, qual["qualification_id"], RIGHT)
    assert outcome["passed"] and outcome["score"] == 1.0


def test_every_question_must_be_answered_validly(p):
    qual = qualification_view(qualifications.create_qualification(p, _operator(p), TEST))
    worker, token = _worker(p)
    principal = accounts.authenticate(p, token, WORKER)
    attempt = questions_view(*qualifications.start_qualification(p, principal, qual["qualification_id"]))
    for answers, field in [({"000000": {"label": "neg"}}, "answers.000001"),
                           ({**RIGHT, "000000": {"label": "maybe"}}, "answers.000000"),
                           ({**RIGHT, "000009": {"label": "neg"}}, "answers.000009")]:
        with pytest.raises(InvalidRequest) as caught:
            qualifications.submit_qualification(p, principal, qual["qualification_id"],
                                        {"attempt_id": attempt["attempt_id"], "answers": answers})
        assert caught.value.field == field
    with pytest.raises(NotFound):
        qualifications.submit_qualification(p, principal, qual["qualification_id"],
                                    {"attempt_id": "att_other", "answers": RIGHT})
    with pytest.raises(NotFound):
        questions_view(*qualifications.start_qualification(p, principal, "qual_0000"))


def test_a_cohort_sets_the_quotes_unit_price_floor_and_the_jobs_skills(p):
    operator = _operator(p)
    qualifications.put_cohort(p, operator, {"name": "en-ja-legal", "skills": ["translation:en-ja", "legal"],
                                    "unit_cents": {"translation": 90}})
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "translation", "items": 10,
                                              "redundancy": 1, "cohort": "en-ja-legal",
                                              "gold_rate": 0})
    assert quote.reward_cents == 90 and quote.total_cents == 900 + 180
    assert quote.skills == ("translation:en-ja", "legal")
    with pytest.raises(InvalidRequest) as caught:
        jobs.create_quote(p, client, {"task_type": "translation", "items": 1,
                                          "cohort": "en-ja-legal", "reward_cents": 50})
    assert caught.value.field == "reward_cents"
    # a task type the cohort does not price keeps the platform's defaults
    other = jobs.create_quote(p, client, {"task_type": "categorical", "items": 1,
                                              "cohort": "en-ja-legal"})
    assert other.reward_cents == 5
    assert [c["name"] for c in [cohort_view(c) for c in qualifications.list_cohorts(p)]] == ["en-ja-legal"]
    with pytest.raises(InvalidRequest) as caught:
        jobs.create_quote(p, client, {"task_type": "translation", "items": 1,
                                          "cohort": "en-fr"})
    assert caught.value.code == "unknown_cohort" and caught.value.field == "cohort"
    with pytest.raises(InvalidRequest) as caught:
        qualifications.put_cohort(p, operator, {"name": "x", "skills": ["a"],
                                        "unit_cents": {"translation": 1}})
    assert caught.value.field == "unit_cents.translation"  # below the type's floor
