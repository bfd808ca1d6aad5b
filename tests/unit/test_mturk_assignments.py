"""The MTurk API's assignment operations on the fakes, where time can pass: an assignment
nobody reviewed turns Approved at its AutoApprovalTime, and a rejection can be overridden
for 30 days after submission only."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import mturk, mturk_ids
from chalicelib.domain.model import CLIENT, WORKER
from chalicelib.handlers import accounts, mturk_assignments, mturk_hits, tasks
from tests.fakes import FakeClock, make_platform
from tests.functional.mturk_stack import external_question

DAY = 24 * 3600


@pytest.fixture
def p():
    return make_platform(FakeClock())


QUESTION = external_question("https://lab.example.org/mood", 600)


def _hit(p: Any, auto_approve_seconds: int = 3 * DAY) -> tuple[Any, Any]:
    """A client's HIT with two assignments, made as CreateHIT makes it; the client and the
    HIT's job."""
    client = accounts.create_account(p, CLIENT, "Lab")[0]
    hit = mturk_hits.create_hit(p, client, {
        "MaxAssignments": 2, "AutoApprovalDelayInSeconds": auto_approve_seconds,
        "LifetimeInSeconds": 3600, "AssignmentDurationInSeconds": 600, "Reward": "0.05",
        "Title": "Mood", "Description": "Describe the mood.", "Question": QUESTION})["HIT"]
    return client, p.jobs.get_job(mturk_ids.job_of_hit(hit["HITId"]))


def _submitted(p: Any, job: Any) -> str:
    worker = accounts.create_account(p, WORKER, "w")[0]
    task = tasks.lease_next_task(p, worker, job.job_id)
    p.clock.advance(5)
    tasks.submit_answer(p, worker, task.assignment_id, {"text": "<QuestionFormAnswers/>"})
    return mturk_ids.assignment_id(task.assignment_id)


def _status(p: Any, client: Any, assignment: str) -> str:
    got = mturk_assignments.get_assignment(p, client, {"AssignmentId": assignment})
    return got["Assignment"]["AssignmentStatus"]


def _turk_code(run: Any) -> str | None:
    with pytest.raises(mturk.MTurkError) as raised:
        run()
    return raised.value.turk_code


def test_an_unreviewed_assignment_turns_approved_at_its_auto_approval_time(p):
    client, job = _hit(p, auto_approve_seconds=DAY)
    assignment = _submitted(p, job)
    assert _status(p, client, assignment) == "Submitted"
    # WHEN its review period has passed THEN it reads Approved from its AutoApprovalTime
    p.clock.advance(DAY)
    got = mturk_assignments.get_assignment(p, client, {"AssignmentId": assignment})
    assert got["Assignment"]["AssignmentStatus"] == "Approved"
    assert got["Assignment"]["ApprovalTime"] == got["Assignment"]["AutoApprovalTime"]
    # AND it can no longer be rejected
    assert _turk_code(lambda: mturk_assignments.reject_assignment(
        p, client, {"AssignmentId": assignment, "RequesterFeedback": ""})) == \
        "AWS.MechanicalTurk.InvalidAssignmentState"


def test_a_rejection_can_be_overridden_within_30_days_of_submission_only(p):
    client, job = _hit(p)
    late, timely = _submitted(p, job), _submitted(p, job)
    for assignment in (late, timely):
        assert mturk_assignments.reject_assignment(
            p, client, {"AssignmentId": assignment, "RequesterFeedback": "no"}) == {}
    p.clock.advance(29 * DAY)
    body = {"AssignmentId": timely, "OverrideRejection": True}
    assert mturk_assignments.approve_assignment(p, client, body) == {}
    assert _status(p, client, timely) == "Approved"
    p.clock.advance(2 * DAY)
    assert _turk_code(lambda: mturk_assignments.approve_assignment(
        p, client, {"AssignmentId": late, "OverrideRejection": True})) == \
        "AWS.MechanicalTurk.InvalidAssignmentState"
    assert _status(p, client, late) == "Rejected"
