"""HITs on our model, without I/O: reading CreateHIT's members and rendering a HIT's status and
counters from its job and item."""
from __future__ import annotations

import pytest

from chalicelib.domain import mturk_hits as hits
from chalicelib.domain.model import CLIENT, ItemState, Job, Lease, Principal, StoredAnswer
from chalicelib.domain.mturk import MTurkError
from chalicelib.domain.mturk_ids import job_of_hit
from chalicelib.handlers import mturk_hits
from tests.fakes import make_platform

NOW = 1_800_000_000.0


def _error(call, kind: str = "RequestError") -> MTurkError:
    with pytest.raises(MTurkError) as raised:
        call()
    assert raised.value.kind == kind, raised.value.message
    return raised.value


def test_questions_are_parsed_with_their_namespaces():
    external = hits.parse_question({"Question": (
        '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/x.xsd">'
        '<ExternalURL> https://a.example/s?x=1&amp;y=2 </ExternalURL>'
        '<FrameHeight>450</FrameHeight></ExternalQuestion>')})
    assert external.kind == "external" and external.frame_height == 450
    assert external.data["external_url"] == "https://a.example/s?x=1&y=2"
    html = hits.parse_question({"Question": (
        "<HTMLQuestion><HTMLContent><![CDATA[<p>hi</p>]]></HTMLContent></HTMLQuestion>")})
    assert (html.kind, html.data["html"], html.frame_height) == ("html", "<p>hi</p>", 0)
    form = hits.parse_question({"Question": "<QuestionForm><Question/></QuestionForm>"})
    assert form.kind == "form" and form.data == {"question": form.data["question"],
                                                 "frame_height": 0}


@pytest.mark.parametrize("body, words", [
    ({"Question": "<ExternalQuestion><ExternalURL>ftp://x</ExternalURL></ExternalQuestion>"},
     "ExternalURL"),
    ({"Question": "<HTMLQuestion><HTMLContent> </HTMLContent></HTMLQuestion>"}, "HTMLContent"),
    ({"Question": "<ExternalQuestion><ExternalURL>https://x</ExternalURL><FrameHeight>-1"
                  "</FrameHeight></ExternalQuestion>"}, "FrameHeight"),
    ({"Question": "not xml"}, "not well-formed"),
    ({"Question": "<a/>" + " " * hits.MAX_QUESTION_BYTES}, "at most"),
    ({"HITLayoutId": "L", "Question": "<QuestionForm/>"}, "HITLayoutId"),
    ({}, "Question is required"),
])
def test_bad_questions_are_request_errors(body, words):
    assert words in _error(lambda: hits.parse_question(body)).message


def test_rewards_are_dollars_from_the_floor():
    assert hits.reward_cents({"Reward": "0.05"}, 5) == 5
    assert hits.reward_cents({"Reward": "1"}, 5) == 100
    assert hits.reward_cents({"Reward": "12.5"}, 5) == 1250
    assert "at least 0.05" in _error(lambda: hits.reward_cents({"Reward": "0.04"}, 5)).message
    assert "at most" in _error(lambda: hits.reward_cents({"Reward": "100.01"}, 5)).message
    for bad in ("0.051", "abc", "NaN", "-1", 5):
        _error(lambda b=bad: hits.reward_cents({"Reward": b}, 5), "ValidationException")


def test_requirements_are_checked_and_kept_as_given():
    given = [{"QualificationTypeId": "00000000000000000071", "Comparator": "NotIn",
              "LocaleValues": [{"Country": "US", "Subdivision": "NY"}],
              "RequiredToPreview": True},
             {"QualificationTypeId": "3ABC", "Comparator": "Exists",
              "ActionsGuarded": "DiscoverPreviewAndAccept"}]
    assert hits.requirements(given) == given
    assert hits.requirements(None) == []
    _error(lambda: hits.requirements([{"QualificationTypeId": "X", "Comparator": "Exists",
                                       "IntegerValues": [1]}]))
    _error(lambda: hits.requirements([{"QualificationTypeId": "X", "Comparator": "In"}]))
    _error(lambda: hits.requirements([{"QualificationTypeId": "X", "Comparator": "EqualTo",
                                       "IntegerValues": [True]}]), "ValidationException")
    _error(lambda: hits.requirements([{"QualificationTypeId": "X", "Comparator": "Exists",
                                       "ActionsGuarded": "Look"}]), "ValidationException")
    _error(lambda: hits.requirements([{"Comparator": "Exists"}]), "ValidationException")
    _error(lambda: hits.requirements([given[1]] * 11))


def _job(**changes) -> Job:
    base = dict(job_id="job_0123456789abcdef", client_id="cli", quote_id="q", title="T",
                task_type="collection", instructions="D", answer_schema={},
                not_applicable="not_allowed", redundancy=4, reward_cents=5, budget_cents=24,
                item_count=1, chunk_count=1, lease_seconds=600, deadline=NOW + 100,
                created_at=NOW - 100, state="active")
    return Job(**{**base, **changes})


def _item(leases: dict, answers: dict, redundancy: int = 4) -> ItemState:
    return ItemState("job_0123456789abcdef", "000000", {}, redundancy, 0, leases=leases,
                     answers=answers, answer_count=len(answers))


def _answer(status: str | None) -> StoredAnswer:
    return StoredAnswer("a", {"text": "x"}, NOW - 10, NOW - 20,
                        review={"status": status} if status else None)


SETTINGS = {"Question": "<QuestionForm/>", "HITTypeId": "T" * 30, "HITGroupId": "G" * 30,
            "CreationTime": NOW - 100, "AutoApprovalDelayInSeconds": 60, "Keywords": "k",
            "QualificationRequirements": [{"QualificationTypeId": "X", "Comparator": "Exists"}]}


def test_counters_and_status_follow_the_study():
    live, ended = Lease("l", NOW + 50, NOW - 5), Lease("e", NOW - 1, NOW - 700)
    item = _item({"w1": live, "w2": ended},
                 {"w3": _answer(None), "w4": _answer("approved"), "w5": _answer("rejected")},
                 redundancy=6)
    tally = hits.counts(item, NOW)
    # an ended lease's slot is available again; a rejected answer keeps its slot
    assert (tally.available, tally.pending, tally.completed, tally.awaiting_review) == (2, 1, 2, 1)
    assert 6 - tally.completed - tally.pending - tally.available == tally.awaiting_review
    assert hits.status(_job(), {}, tally, NOW) == "Assignable"
    full = hits.counts(_item({"w1": live}, {"w3": _answer(None)}, redundancy=2), NOW)
    assert hits.status(_job(), {}, full, NOW) == "Unassignable"
    answered = hits.counts(_item({}, {"w3": _answer(None)}, redundancy=1), NOW)
    assert hits.status(_job(), {}, answered, NOW) == "Reviewable"
    # expired (deadline, or the job left active): Reviewable with Available kept
    assert hits.status(_job(deadline=NOW), {}, tally, NOW) == "Reviewable"
    assert hits.status(_job(state="done"), {}, tally, NOW) == "Reviewable"
    assert hits.status(_job(), {"disposed": True}, tally, NOW) == "Disposed"


def test_render_hit_has_every_field_and_numbers_for_times():
    hit = hits.render_hit(_job(), SETTINGS, _item({}, {}), NOW)
    assert hit["HITId"] == "0123456789ABCDEF" and hit["MaxAssignments"] == 4
    assert hit["Expiration"] == NOW + 100 and hit["CreationTime"] == NOW - 100
    assert hit["Reward"] == "0.05" and hit["AutoApprovalDelayInSeconds"] == 60
    assert hit["QualificationRequirements"] == [
        {"QualificationTypeId": "X", "Comparator": "Exists", "RequiredToPreview": False}]
    assert "RequesterAnnotation" not in hit
    assert set(hit) >= {"HITTypeId", "HITGroupId", "Title", "Description", "Question",
                        "Keywords", "HITStatus", "AssignmentDurationInSeconds",
                        "HITReviewStatus", "NumberOfAssignmentsPending",
                        "NumberOfAssignmentsAvailable", "NumberOfAssignmentsCompleted"}


def test_answer_schemas_share_the_item_record():
    assert hits.answer_schema(1) == {"min_length": 0, "max_length": 16000}
    assert hits.answer_schema(100)["max_length"] * 100 <= hits.ANSWER_BYTES


def test_an_answer_past_its_auto_approval_time_counts_as_completed():
    item = _item({}, {"w1": StoredAnswer("a", {"text": "x"}, NOW - 60, NOW - 70),
                      "w2": StoredAnswer("b", {"text": "x"}, NOW - 10, NOW - 20)}, redundancy=2)
    tally = hits.counts(item, NOW, auto_approve_seconds=30)
    assert (tally.completed, tally.awaiting_review) == (1, 1)
    assert hits.render_hit(_job(auto_approve_seconds=30), SETTINGS, item, NOW)[
        "NumberOfAssignmentsCompleted"] == 1
    assert hits.counts(item, NOW).completed == 0


def test_a_hit_on_the_fakes_is_an_active_job_and_its_extra_assignments_are_billed():
    p = make_platform()
    client = Principal("cli_0123456789abcdef", CLIENT)
    hit = mturk_hits.create_hit(p, client, {
        "MaxAssignments": 2, "LifetimeInSeconds": 3600, "AssignmentDurationInSeconds": 600,
        "Reward": "0.10", "Title": "T", "Description": "D",
        "Question": "<QuestionForm><Question/></QuestionForm>"})["HIT"]
    job = p.jobs.get_job(job_of_hit(hit["HITId"]))
    assert (job.state, job.budget_cents, hit["HITStatus"]) == ("active", 24, "Assignable")
    mturk_hits.create_additional_assignments_for_hit(
        p, client, {"HITId": hit["HITId"], "NumberOfAdditionalAssignments": 3})
    job = p.jobs.get_job(job.job_id)
    assert (job.budget_cents, job.pool_cents) == (24 + 30 + 6, 0)
    assert mturk_hits.get_hit(p, client, {"HITId": hit["HITId"]})["HIT"][
        "NumberOfAssignmentsAvailable"] == 5


def _fake_hit(p, client) -> dict:
    return mturk_hits.create_hit(p, client, {
        "MaxAssignments": 2, "LifetimeInSeconds": 3600, "AssignmentDurationInSeconds": 600,
        "Reward": "0.10", "Title": "T", "Description": "D",
        "Question": "<QuestionForm><Question/></QuestionForm>"})["HIT"]


def test_assignments_billed_but_not_all_added_are_not_billed_again_by_a_retry(monkeypatch):
    # GIVEN a HIT whose item takes only one more slot before its writes stop succeeding
    p = make_platform()
    client = Principal("cli_0123456789abcdef", CLIENT)
    hit = _fake_hit(p, client)
    real, calls = p.items.extend, []

    def extend_once(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs) if len(calls) == 1 else None

    monkeypatch.setattr(p.items, "extend", extend_once)
    body = {"HITId": hit["HITId"], "NumberOfAdditionalAssignments": 3,
            "UniqueRequestToken": "more-1"}
    # WHEN three more are asked for with a token
    error = _error(lambda: mturk_hits.create_additional_assignments_for_hit(p, client, body))
    # THEN the error says what was added and not to send it again; the three were billed once
    assert "1 of 3 assignments were added" in error.message and "Do not send" in error.message
    job = p.jobs.get_job(job_of_hit(hit["HITId"]))
    assert job.budget_cents == 24 + 30 + 6
    # AND the same request again is a duplicate: nothing is billed twice
    again = _error(lambda: mturk_hits.create_additional_assignments_for_hit(p, client, body))
    assert again.turk_code == mturk_hits.DUPLICATE_REQUEST
    assert p.jobs.get_job(job.job_id).budget_cents == 24 + 30 + 6


def test_a_token_whose_request_may_still_be_running_is_not_taken_over():
    # GIVEN a CreateHIT token taken moments ago by a request that has not made its HIT yet
    p = make_platform()
    client = Principal("cli_0123456789abcdef", CLIENT)
    body = {"MaxAssignments": 1, "LifetimeInSeconds": 3600, "AssignmentDurationInSeconds": 600,
            "Reward": "0.10", "Title": "T", "Description": "D",
            "Question": "<QuestionForm><Question/></QuestionForm>", "UniqueRequestToken": "t-1"}
    p.mturk.put_new(hits.token_kind(client.account_id), "CreateHIT#t-1",
                    {"HITId": "0123456789ABCDEF"}, p.now())
    # WHEN the same token arrives again (a client retrying after a gateway timeout)
    error = _error(lambda: mturk_hits.create_hit(p, client, body))
    # THEN it is a retryable error and no second HIT is made
    assert error.turk_code == "AWS.MechanicalTurk.ServiceUnavailable"
    assert p.jobs.jobs_of_client(client.account_id, 10, None)[0] == []
    # AND once the first request had its time and left nothing, the token is taken over
    p.clock.advance(mturk_hits.TOKEN_IN_FLIGHT_SECONDS + 1)
    made = mturk_hits.create_hit(p, client, body)["HIT"]
    assert made["HITStatus"] == "Assignable"
