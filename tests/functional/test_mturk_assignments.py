"""The MTurk API's assignments and money, driven by boto3's own `mturk` client: listing and
reading assignments, approving (with OverrideRejection), rejecting, bonuses and their
listing, on a HIT (a job of one item) that workers answer through the marketplace's API."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.deps import platform
from chalicelib.domain import mturk_ids, payouts
from chalicelib.domain.ids import item_id
from chalicelib.handlers import mturk_assignments, mturk_events, payments
from tests.functional.mturk_stack import (
    NO_RETRIES, Requester, Served, call, external_question, requester, served_stack, worker,
)

ANSWER = ('<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://'
          'mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/'
          'QuestionFormAnswers.xsd"><Answer><QuestionIdentifier>mood</QuestionIdentifier>'
          '<FreeText>{}</FreeText></Answer></QuestionFormAnswers>')


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (one server per module)."""
    yield from served_stack()


@pytest.fixture
def events(monkeypatch: Any) -> list[tuple[str, str | None]]:
    """The review events emitted (the worker side's accept and submit events left out), as
    (event type, AssignmentId)."""
    seen: list[tuple[str, str | None]] = []

    def emit(p: Any, job: Any, event_type: str, assignment_id: str | None = None,
             at: float | None = None) -> None:
        if event_type in ("AssignmentApproved", "AssignmentRejected"):
            seen.append((event_type, assignment_id))

    monkeypatch.setattr(mturk_events, "emit", emit)
    return seen


QUESTION = external_question("https://lab.example.org/mood?mode=live", 600)


def _hit_job(server: Served, lab: Requester, max_assignments: int,
             auto_approve_seconds: int = 3 * 24 * 3600) -> dict:
    """A HIT made with boto3's create_hit; its job as the client API shows it."""
    hit = lab.mturk.create_hit(
        MaxAssignments=max_assignments, AutoApprovalDelayInSeconds=auto_approve_seconds,
        LifetimeInSeconds=3600, AssignmentDurationInSeconds=600, Reward="0.05",
        Title="Describe the mood", Description="Read a sentence and describe its mood",
        Question=QUESTION)["HIT"]
    job_id = mturk_ids.job_of_hit(hit["HITId"])
    response = call(server, "GET", f"/jobs/{job_id}", lab.api_key)
    assert response.status_code == 200, response.text
    return response.json()


def _lease(server: Served, token: str, job_id: str) -> str:
    response = call_worker(server, "GET", f"/tasks/next?job_id={job_id}", token)
    assert response.status_code == 200, response.text
    return response.json()["assignment_id"]


def call_worker(server: Served, method: str, path: str, token: str, **kwargs: Any) -> Any:
    """A request to the platform's API as a worker."""
    import requests  # noqa: PLC0415 - only the worker's calls need it here

    return requests.request(method, server.url + path, timeout=30,
                            headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _submitted(server: Served, job_id: str, count: int, mood: str = "calm"
               ) -> list[tuple[str, str]]:
    """count fresh workers each lease and answer the HIT; (worker account, AssignmentId) each."""
    done = []
    for _ in range(count):
        account, token = worker()
        assignment = _lease(server, token, job_id)
        response = call_worker(server, "POST", f"/assignments/{assignment}/submit", token,
                               json={"text": ANSWER.format(mood)})
        assert response.status_code in (200, 201), response.text
        done.append((account, mturk_ids.assignment_id(assignment)))
    return done


def _error(run: Any) -> dict:
    with pytest.raises(ClientError) as raised:
        run()
    return raised.value.response


def _until_empty(mturk: Any, **kwargs: Any) -> list[dict]:
    """oTree's and Mephisto's loop: read NextToken unconditionally until an empty page."""
    found, token = [], None
    while True:
        page = mturk.list_assignments_for_hit(**kwargs, **({"NextToken": token} if token else {}))
        if not page["Assignments"]:
            assert "NextToken" not in page and page["NumResults"] == 0
            return found
        found += page["Assignments"]
        token = page["NextToken"]


def test_assignments_are_listed_with_their_answers_in_pages_and_by_status(server):
    # GIVEN a HIT of 4 assignments: 3 submitted, one only accepted
    lab = requester(server)
    job = _hit_job(server, lab, 4)
    hit = mturk_ids.hit_id(job["job_id"])
    submitted = _submitted(server, job["job_id"], 3)
    _lease(server, worker()[1], job["job_id"])
    # WHEN boto3's paginator lists them two a page
    pages = list(lab.mturk.get_paginator("list_assignments_for_hit").paginate(
        HITId=hit, PaginationConfig={"PageSize": 2}))
    # THEN it gets the 3 submitted (not the accepted one) in pages of 2 and 1, then an empty
    # page without a NextToken
    assert [p["NumResults"] for p in pages] == [2, 1, 0]
    assert ["NextToken" in p for p in pages] == [True, True, False]
    listed = [a for p in pages for a in p["Assignments"]]
    assert [(a["WorkerId"], a["AssignmentId"]) for a in listed] == \
        [(mturk_ids.worker_id(w), a) for w, a in submitted]
    # AND each is a Submitted assignment in MTurk's shape, its answer the XML as submitted
    first = listed[0]
    assert first["HITId"] == hit and first["AssignmentStatus"] == "Submitted"
    assert first["Answer"] == ANSWER.format("calm")
    assert first["SubmitTime"] >= first["AcceptTime"]
    assert first["Deadline"] > first["AcceptTime"]
    assert (first["AutoApprovalTime"] - first["SubmitTime"]).total_seconds() == \
        pytest.approx(3 * 24 * 3600, abs=1)
    assert not {"ApprovalTime", "RejectionTime", "RequesterFeedback"} & set(first)
    # AND the until-empty-page loop gets the same three
    assert [a["AssignmentId"] for a in _until_empty(lab.mturk, HITId=hit, MaxResults=2)] == \
        [a for _, a in submitted]
    # AND a status filter keeps those of its statuses only
    lab.mturk.approve_assignment(AssignmentId=submitted[0][1])
    approved = lab.mturk.list_assignments_for_hit(HITId=hit, AssignmentStatuses=["Approved"])
    assert [a["AssignmentId"] for a in approved["Assignments"]] == [submitted[0][1]]
    waiting = lab.mturk.list_assignments_for_hit(HITId=hit, AssignmentStatuses=["Submitted"])
    assert [a["AssignmentId"] for a in waiting["Assignments"]] == [a for _, a in submitted[1:]]
    # AND another client's HIT does not exist for this one
    other = requester(server, "Other lab")
    error = _error(lambda: other.mturk.list_assignments_for_hit(HITId=hit))
    assert error["Error"]["Code"] == "RequestError"
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"
    assert "does not exist" in error["Error"]["Message"]


def test_get_assignment_returns_it_with_its_hit_and_unknown_ones_do_not_exist(server):
    lab = requester(server)
    job = _hit_job(server, lab, 2)
    ((account, assignment),) = _submitted(server, job["job_id"], 1)
    accepted = mturk_ids.assignment_id(_lease(server, worker()[1], job["job_id"]))
    # WHEN boto3 gets the submitted assignment
    got = lab.mturk.get_assignment(AssignmentId=assignment)
    # THEN it has the assignment and its HIT, counters as tools read them
    assert got["Assignment"]["AssignmentId"] == assignment
    assert got["Assignment"]["WorkerId"] == mturk_ids.worker_id(account)
    hit = got["HIT"]
    assert hit["HITId"] == mturk_ids.hit_id(job["job_id"]) and hit["MaxAssignments"] == 2
    assert (hit["NumberOfAssignmentsAvailable"], hit["NumberOfAssignmentsPending"],
            hit["NumberOfAssignmentsCompleted"]) == (0, 1, 0)
    assert hit["QualificationRequirements"] == [] and hit["HITStatus"] == "Unassignable"
    # AND an accepted-only assignment, an unknown one and a malformed id do not exist
    for value in (accepted, assignment[:-2] + "V9", "NOTANID"):
        error = _error(lambda value=value: lab.mturk.get_assignment(AssignmentId=value))
        assert error["Error"]["Code"] == "RequestError"
        assert error["TurkErrorCode"] == "AWS.MechanicalTurk.AssignmentDoesNotExist"
        assert "does not exist" in error["Error"]["Message"]


def test_approving_is_void_once_and_an_invalid_state_twice(server, events):
    lab = requester(server)
    job = _hit_job(server, lab, 2)
    (paid, first), (unpaid, second) = _submitted(server, job["job_id"], 2)
    server.stack.drain()  # the answers counted, as seconds after submission
    # WHEN one is approved with feedback
    answer = lab.mturk.approve_assignment(AssignmentId=first, RequesterFeedback="Thanks!")
    # THEN the answer is exactly {}, the worker is paid at once (as MTurk pays on approval),
    # and the assignment reads Approved with its time and feedback
    assert list(answer) == ["ResponseMetadata"]
    assert platform().ledger.balance(paid) == job["reward_cents"]
    assert platform().ledger.balance(unpaid) == 0
    got = lab.mturk.get_assignment(AssignmentId=first)["Assignment"]
    assert got["AssignmentStatus"] == "Approved" and got["RequesterFeedback"] == "Thanks!"
    assert got["ApprovalTime"] >= got["SubmitTime"] and "RejectionTime" not in got
    assert events == [("AssignmentApproved", first)]
    # AND approving it again, or rejecting it, is MTurk's InvalidAssignmentState
    for again in (lambda: lab.mturk.approve_assignment(AssignmentId=first),
                  lambda: lab.mturk.reject_assignment(AssignmentId=first, RequesterFeedback="")):
        error = _error(again)
        assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
        assert error["Error"]["Message"].startswith(
            "This operation can be called with a status of: Submitted")
    # AND the other one is still Submitted
    assert lab.mturk.get_assignment(AssignmentId=second)["Assignment"]["AssignmentStatus"] \
        == "Submitted"
    assert events == [("AssignmentApproved", first)]


def test_rejecting_needs_feedback_may_be_empty_and_does_not_reopen_the_hit(server, events):
    # GIVEN a HIT of two assignments, one submitted
    lab = requester(server)
    job = _hit_job(server, lab, 2)
    ((_, first),) = _submitted(server, job["job_id"], 1)
    # WHEN it is rejected without RequesterFeedback THEN the schema check refuses it
    unchecked = boto3.client("mturk", endpoint_url=server.url + "/mturk",
                             region_name="us-east-1", aws_access_key_id=lab.key_id,
                             aws_secret_access_key=lab.secret,
                             config=NO_RETRIES.merge(Config(parameter_validation=False)))
    error = _error(lambda: unchecked.reject_assignment(AssignmentId=first))
    assert error["Error"]["Code"] == "ValidationException"
    assert "requesterFeedback" in error["Error"]["Message"]
    # WHEN it is rejected with an empty feedback, as oTree sends it
    assert list(lab.mturk.reject_assignment(AssignmentId=first, RequesterFeedback="")) == \
        ["ResponseMetadata"]
    # THEN it reads Rejected with its time and no feedback
    got = lab.mturk.get_assignment(AssignmentId=first)["Assignment"]
    assert got["AssignmentStatus"] == "Rejected" and "RequesterFeedback" not in got
    assert got["RejectionTime"] >= got["SubmitTime"] and "ApprovalTime" not in got
    assert events == [("AssignmentRejected", first)]
    # WHEN the second assignment is submitted and the answers are counted (the round closes)
    _submitted(server, job["job_id"], 1)
    server.stack.drain()
    # THEN the HIT is not reopened: no slot is available, no worker can accept it, and its
    # counters add up (2 = 1 completed + 1 submitted)
    hit = lab.mturk.get_assignment(AssignmentId=first)["HIT"]
    assert (hit["NumberOfAssignmentsAvailable"], hit["NumberOfAssignmentsPending"],
            hit["NumberOfAssignmentsCompleted"]) == (0, 0, 1)
    assert call_worker(server, "GET", f"/tasks/next?job_id={job['job_id']}",
                       worker()[1]).status_code == 204
    item = platform().items.get_item(job["job_id"], item_id(0, 1))
    assert item.redundancy == 2 and item.replaced == 0
    # AND its reward went back to the pool, none held for a replacement
    money = call(server, "GET", f"/jobs/{job['job_id']}", lab.api_key).json()["money"]
    assert money["pool_cents"] == job["money"]["pool_cents"] + job["reward_cents"]
    assert platform().jobs.get_job(job["job_id"]).held_cents == 0


def test_override_rejection_approves_a_rejected_assignment_and_pays_it_once(server, events):
    # GIVEN a rejected assignment whose answer was counted
    lab = requester(server)
    job = _hit_job(server, lab, 1)
    ((account, assignment),) = _submitted(server, job["job_id"], 1)
    server.stack.drain()
    lab.mturk.reject_assignment(AssignmentId=assignment, RequesterFeedback="Too short")
    # WHEN it is approved without OverrideRejection THEN that is an invalid state
    error = _error(lambda: lab.mturk.approve_assignment(AssignmentId=assignment))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
    assert platform().ledger.balance(account) == 0
    # WHEN it is approved with OverrideRejection
    assert list(lab.mturk.approve_assignment(AssignmentId=assignment, OverrideRejection=True,
                                             RequesterFeedback="Sorry")) == ["ResponseMetadata"]
    # THEN it reads Approved and the worker is paid its reward at once
    got = lab.mturk.get_assignment(AssignmentId=assignment)["Assignment"]
    assert got["AssignmentStatus"] == "Approved" and got["RequesterFeedback"] == "Sorry"
    assert "RejectionTime" not in got
    assert platform().ledger.balance(account) == job["reward_cents"]
    assert events == [("AssignmentRejected", assignment), ("AssignmentApproved", assignment)]
    # AND neither another override nor the settlement of its pay window pays it again
    error = _error(lambda: lab.mturk.approve_assignment(AssignmentId=assignment,
                                                        OverrideRejection=True))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
    ours = mturk_ids.our_assignment(assignment)
    accrual = platform().ledger.accrual(job["job_id"], account, payouts.window_of(ours))
    assert accrual is not None
    assert payments.settle_accrual(platform(), accrual, "auto") == 0
    assert platform().ledger.balance(account) == job["reward_cents"]
    read = platform().jobs.get_job(job["job_id"])
    assert (read.paid_cents, read.approved_answers, read.rejected_answers) == \
        (job["reward_cents"], 1, 0)


def test_a_hit_with_no_auto_approval_delay_approves_and_pays_at_once(server):
    # GIVEN a HIT with AutoApprovalDelayInSeconds 0 and a submitted assignment
    lab = requester(server)
    job = _hit_job(server, lab, 1, auto_approve_seconds=0)
    ((account, assignment),) = _submitted(server, job["job_id"], 1)
    # THEN it reads Approved at once, approved when it was submitted
    got = lab.mturk.get_assignment(AssignmentId=assignment)["Assignment"]
    assert got["AssignmentStatus"] == "Approved"
    assert got["ApprovalTime"] == got["SubmitTime"] == got["AutoApprovalTime"]
    # AND it can be neither rejected nor approved again
    error = _error(lambda: lab.mturk.reject_assignment(AssignmentId=assignment,
                                                       RequesterFeedback="late"))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
    # AND once counted, the sweeper's next run pays it (not an hour and a lease later)
    server.stack.drain()
    assert payments.auto_approve_due(platform()) >= 1
    assert platform().ledger.balance(account) == job["reward_cents"]


def _budget(server: Served, lab: Requester, job_id: str) -> dict:
    return call(server, "GET", f"/jobs/{job_id}", lab.api_key).json()["money"]


def test_a_bonus_is_billed_on_the_hit_paid_once_per_token_and_listed(server):
    # GIVEN a HIT with two submitted assignments (oTree pays bonuses before approving)
    lab = requester(server)
    job = _hit_job(server, lab, 2)
    (first_worker, first), (second_worker, second) = _submitted(server, job["job_id"], 2)
    before = _budget(server, lab, job["job_id"])
    hit = mturk_ids.hit_id(job["job_id"])
    # WHEN a bonus of 1.25 is sent with a UniqueRequestToken
    sent = lab.mturk.send_bonus(WorkerId=mturk_ids.worker_id(first_worker), BonusAmount="1.25",
                                AssignmentId=first, Reason="Great work",
                                UniqueRequestToken="bonus-1")
    # THEN the answer is {}, the worker has it and the client is billed on the job: the
    # budget's workers' part grows by the bonus, the pool is untouched
    assert list(sent) == ["ResponseMetadata"]
    assert platform().ledger.balance(first_worker) == 125
    after = _budget(server, lab, job["job_id"])
    assert after["for_workers_cents"] == before["for_workers_cents"] + 125
    assert after["budget_cents"] > before["budget_cents"] + 125
    assert after["bonus_cents"] == 125 and after["pool_cents"] == before["pool_cents"]
    assert after["reserved_cents"] == before["reserved_cents"]
    # WHEN the same token is sent again THEN it is an error naming the bonus sent, and
    # nothing is paid twice
    error = _error(lambda: lab.mturk.send_bonus(
        WorkerId=mturk_ids.worker_id(first_worker), BonusAmount="1.25", AssignmentId=first,
        Reason="Great work", UniqueRequestToken="bonus-1"))
    assert error["Error"]["Code"] == "RequestError"
    assert "bonus-1" in error["Error"]["Message"] and first in error["Error"]["Message"]
    assert platform().ledger.balance(first_worker) == 125
    # WHEN bonuses are sent without a token THEN each call is a new bonus
    for _ in range(2):
        lab.mturk.send_bonus(WorkerId=mturk_ids.worker_id(second_worker), BonusAmount="0.5",
                             AssignmentId=second, Reason="Bonus")
    assert platform().ledger.balance(second_worker) == 100
    # AND a worker who did not submit the assignment, or a bad amount, is refused
    error = _error(lambda: lab.mturk.send_bonus(
        WorkerId=mturk_ids.worker_id(second_worker), BonusAmount="1.00", AssignmentId=first,
        Reason="x"))
    assert error["Error"]["Code"] == "RequestError"
    for amount in ("-1", "1.234", "0.00", "abc"):
        error = _error(lambda amount=amount: lab.mturk.send_bonus(
            WorkerId=mturk_ids.worker_id(first_worker), BonusAmount=amount,
            AssignmentId=first, Reason="x"))
        assert error["Error"]["Code"] in ("ValidationException", "RequestError")
    assert platform().ledger.balance(first_worker) == 125
    # WHEN the HIT's bonuses are listed one a page with the paginator
    pages = list(lab.mturk.get_paginator("list_bonus_payments").paginate(
        HITId=hit, PaginationConfig={"PageSize": 1}))
    # THEN the three bonuses come in the order sent, then an empty page
    assert [p["NumResults"] for p in pages] == [1, 1, 1, 0]
    bonuses = [b for p in pages for b in p["BonusPayments"]]
    assert [(b["WorkerId"], b["BonusAmount"], b["AssignmentId"], b["Reason"])
            for b in bonuses] == [
        (mturk_ids.worker_id(first_worker), "1.25", first, "Great work"),
        (mturk_ids.worker_id(second_worker), "0.50", second, "Bonus"),
        (mturk_ids.worker_id(second_worker), "0.50", second, "Bonus")]
    assert all(b["GrantTime"] for b in bonuses)
    # AND by assignment, only that assignment's (Mephisto reads NumResults)
    by_assignment = lab.mturk.list_bonus_payments(AssignmentId=first)
    assert by_assignment["NumResults"] == 1
    assert by_assignment["BonusPayments"][0]["BonusAmount"] == "1.25"
    only_second = lab.mturk.list_bonus_payments(AssignmentId=second, MaxResults=1)
    assert only_second["NumResults"] == 1 and "NextToken" in only_second


def test_a_bonus_paid_is_never_answered_with_an_error(server, monkeypatch):
    # GIVEN a submitted assignment, and a records table that fails after the bonus is paid
    lab = requester(server)
    job = _hit_job(server, lab, 1)
    ((account, assignment),) = _submitted(server, job["job_id"], 1)
    def failing(records: Any, entry: Any) -> None:
        raise RuntimeError("throttled")

    monkeypatch.setattr(mturk_assignments, "record_bonus", failing)
    # WHEN a bonus is sent without a token THEN it answers {} (botocore would retry an
    # error and pay twice) and the worker is paid once
    sent = lab.mturk.send_bonus(WorkerId=mturk_ids.worker_id(account), BonusAmount="0.10",
                                AssignmentId=assignment, Reason="thanks")
    assert list(sent) == ["ResponseMetadata"]
    assert platform().ledger.balance(account) == 10
