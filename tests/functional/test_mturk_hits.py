"""MTurk's HIT operations through boto3's own `mturk` client against the served stack: a HIT
is a job of one item, its status and counters come from that item and job."""
from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from chalicelib.deps import platform
from chalicelib.domain.mturk_ids import job_of_hit
from tests.functional.marketplace import Api
from tests.functional.mturk_stack import (
    Requester, Served, call, external_question, requester, served_stack,
)

EXTERNAL = external_question("https://lab.example.org/ad?mode=live", 600)
HTML = ('<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
        '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html><form>'
        '<input name="a"></form>]]></HTMLContent><FrameHeight>0</FrameHeight></HTMLQuestion>')
LOCALE = {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
          "LocaleValues": [{"Country": "US"}, {"Country": "CA"}],
          "ActionsGuarded": "DiscoverPreviewAndAccept"}
APPROVAL = {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [95], "ActionsGuarded": "Accept"}


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (one server per module)."""
    yield from served_stack()


@pytest.fixture
def lab(server: Served) -> Requester:
    return requester(server)


def hit_args(**extra: Any) -> dict[str, Any]:
    """A CreateHIT request as tools send it (the study's captured example)."""
    return {"MaxAssignments": 3, "AutoApprovalDelayInSeconds": 259200,
            "LifetimeInSeconds": 86400, "AssignmentDurationInSeconds": 600, "Reward": "0.05",
            "Title": "Label sentiment", "Keywords": "sentiment,nlp",
            "Description": "Read a sentence and choose its sentiment", "Question": EXTERNAL,
            "QualificationRequirements": [APPROVAL], **extra}


def request_error(call_: Any) -> dict:
    with pytest.raises(ClientError) as raised:
        call_()
    return raised.value.response


def test_create_hit_answers_the_hit_and_get_hit_reads_it_back(server, lab):
    before = time.time()
    hit = lab.mturk.create_hit(**hit_args())["HIT"]
    # every field tools read unconditionally, in MTurk's types
    assert hit["HITStatus"] == "Assignable"
    assert (hit["MaxAssignments"], hit["NumberOfAssignmentsAvailable"],
            hit["NumberOfAssignmentsPending"], hit["NumberOfAssignmentsCompleted"]) == (3, 3, 0, 0)
    assert hit["Reward"] == "0.05" and hit["Title"] == "Label sentiment"
    assert hit["Description"] == "Read a sentence and choose its sentiment"
    assert hit["Keywords"] == "sentiment,nlp" and hit["Question"] == EXTERNAL
    assert hit["AssignmentDurationInSeconds"] == 600
    assert hit["AutoApprovalDelayInSeconds"] == 259200
    assert hit["HITReviewStatus"] == "NotReviewed"
    assert hit["QualificationRequirements"] == [{**APPROVAL, "RequiredToPreview": False}]
    assert isinstance(hit["CreationTime"], datetime.datetime)
    assert before - 1 <= hit["CreationTime"].timestamp() <= time.time() + 1
    assert abs(hit["Expiration"].timestamp() - (hit["CreationTime"].timestamp() + 86400)) < 2
    for name in ("HITId", "HITTypeId", "HITGroupId"):
        assert hit[name].isalnum() and hit[name].isupper() and len(hit[name]) <= 50, name
    got = lab.mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert got == hit
    # the HIT is a job of one item the client sees in its ordinary API, billed as a quote
    job = platform().jobs.get_job(job_of_hit(hit["HITId"]))
    assert job.state == "active" and job.item_count == 1 and job.redundancy == 3
    assert job.task_type == "collection" and job.reward_cents == 5
    assert job.budget_cents == 15 + 3  # three rewards and the platform's 20% fee
    assert job.mturk == {"hit_type_id": hit["HITTypeId"], "requirements": [APPROVAL],
                         "question": "external", "frame_height": 600}
    assert job.answer_schema == {"min_length": 0, "max_length": 16000}
    listed = call(server, "GET", "/jobs", lab.api_key).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job.job_id]
    item = platform().items.get_item(job.job_id, "000000")
    assert item.data == {"question": EXTERNAL, "external_url": "https://lab.example.org/ad?mode=live",
                         "frame_height": 600}
    assert item.free == 3


def test_a_hit_without_requirements_lists_an_empty_list_and_html_is_parsed(server, lab):
    hit = lab.mturk.create_hit(**hit_args(Question=HTML, QualificationRequirements=[],
                                          MaxAssignments=100))["HIT"]
    assert hit["QualificationRequirements"] == []
    job = platform().jobs.get_job(job_of_hit(hit["HITId"]))
    assert job.mturk["question"] == "html" and job.mturk["frame_height"] == 0
    assert job.answer_schema["max_length"] == 3000  # 100 answers share the item record
    data = platform().items.get_item(job.job_id, "000000").data
    assert data["html"] == '<!DOCTYPE html><form><input name="a"></form>'
    plain = lab.mturk.create_hit(**{k: v for k, v in hit_args().items()
                                    if k != "QualificationRequirements"})["HIT"]
    assert lab.mturk.get_hit(HITId=plain["HITId"])["HIT"]["QualificationRequirements"] == []


def test_hit_types_are_idempotent_by_value_and_hits_are_made_from_them(server, lab):
    props = {k: hit_args()[k] for k in ("AutoApprovalDelayInSeconds",
                                        "AssignmentDurationInSeconds", "Reward", "Title",
                                        "Keywords", "Description", "QualificationRequirements")}
    first = lab.mturk.create_hit_type(**props)["HITTypeId"]
    assert lab.mturk.create_hit_type(**props)["HITTypeId"] == first
    assert lab.mturk.create_hit_type(**{**props, "Reward": "0.06"})["HITTypeId"] != first
    hit = lab.mturk.create_hit_with_hit_type(HITTypeId=first, MaxAssignments=2,
                                             LifetimeInSeconds=3600, Question=EXTERNAL,
                                             RequesterAnnotation="batch 7")["HIT"]
    assert hit["HITTypeId"] == first and hit["Title"] == "Label sentiment"
    assert hit["RequesterAnnotation"] == "batch 7" and hit["MaxAssignments"] == 2
    # CreateHIT with the same properties uses the same type and group
    same = lab.mturk.create_hit(**hit_args(MaxAssignments=1))["HIT"]
    assert (same["HITTypeId"], same["HITGroupId"]) == (first, hit["HITGroupId"])
    error = request_error(lambda: lab.mturk.create_hit_with_hit_type(
        HITTypeId="3NOSUCHTYPE0000000000000000000", LifetimeInSeconds=60, Question=EXTERNAL))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HITTypeDoesNotExist"
    # another client does not see this client's type
    other = requester(server, "Other lab")
    error = request_error(lambda: other.mturk.create_hit_with_hit_type(
        HITTypeId=first, LifetimeInSeconds=60, Question=EXTERNAL))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HITTypeDoesNotExist"


def test_a_repeated_unique_request_token_is_an_error_naming_the_first_hit(server, lab):
    hit = lab.mturk.create_hit(**hit_args(UniqueRequestToken="batch-42-item-7"))["HIT"]
    error = request_error(lambda: lab.mturk.create_hit(**hit_args(
        UniqueRequestToken="batch-42-item-7")))
    assert error["Error"]["Code"] == "RequestError"
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
    assert hit["HITId"] in error["Error"]["Message"]
    # the same token through CreateHITWithHITType names the same HIT; no second job was made
    error = request_error(lambda: lab.mturk.create_hit_with_hit_type(
        HITTypeId=hit["HITTypeId"], LifetimeInSeconds=600, Question=EXTERNAL,
        UniqueRequestToken="batch-42-item-7"))
    assert hit["HITId"] in error["Error"]["Message"]
    jobs = call(server, "GET", "/jobs", lab.api_key).json()["jobs"]
    assert len(jobs) == 1
    # another client's token space is its own
    other = requester(server, "Other lab")
    assert other.mturk.create_hit(**hit_args(UniqueRequestToken="batch-42-item-7"))["HIT"]


def test_a_token_older_than_a_day_or_naming_no_hit_is_taken_over(server, lab):
    from chalicelib.adapters.models import MTurkModel
    from chalicelib.domain import mturk_hits as hits

    first = lab.mturk.create_hit(**hit_args(UniqueRequestToken="t-1"))["HIT"]
    kind = hits.token_kind(lab.account_id)
    MTurkModel(kind, "CreateHIT#t-1", body={"HITId": first["HITId"]},
               created_at=time.time() - 24 * 3600 - 5, version=1).save()
    second = lab.mturk.create_hit(**hit_args(UniqueRequestToken="t-1"))["HIT"]
    assert second["HITId"] != first["HITId"]
    assert platform().mturk.get(kind, "CreateHIT#t-1").body == {"HITId": second["HITId"]}
    # a token whose request left no HIT (it crashed part-way) blocks a retry only while that
    # request may still be running, then is taken over
    platform().mturk.put_new(kind, "CreateHIT#t-2", {"HITId": "0123456789ABCDEF"}, time.time())
    with pytest.raises(ClientError) as raised:
        lab.mturk.create_hit(**hit_args(UniqueRequestToken="t-2"))
    assert raised.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.ServiceUnavailable"
    MTurkModel(kind, "CreateHIT#t-3", body={"HITId": "0123456789ABCDEF"},
               created_at=time.time() - 61, version=1).save()
    assert lab.mturk.create_hit(**hit_args(UniqueRequestToken="t-3"))["HIT"]["HITId"]


def _raw(lab: Requester, target: str, body: dict) -> requests.Response:
    """A request signed by hand (members botocore would refuse to send)."""
    import json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=lab.mturk.meta.endpoint_url, data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"MTurkRequesterServiceV20170117.{target}"})
    SigV4Auth(Credentials(lab.key_id, lab.secret), "mturk-requester",
              "us-east-1").add_auth(request)
    return requests.post(request.url, data=data, headers=dict(request.headers), timeout=30)


@pytest.mark.parametrize("change, code, words", [
    ({"Reward": "0.01"}, "AWS.MechanicalTurk.InvalidParameterValue", "Reward must be at least 0.05"),
    ({"MaxAssignments": 101}, "AWS.MechanicalTurk.InvalidParameterValue", "from 1 to 100"),
    ({"Question": "<ExternalQuestion><ExternalURL>x"}, "AWS.MechanicalTurk.XMLParseError",
     "not well-formed"),
    ({"Question": "<Foo/>"}, "AWS.MechanicalTurk.XMLParseError", "ExternalQuestion"),
    ({"HITLayoutId": "3LAYOUT"}, "AWS.MechanicalTurk.OperationNotSupported", "HITLayoutId"),
    ({"AssignmentDurationInSeconds": 7200}, "AWS.MechanicalTurk.InvalidParameterValue", "3600"),
    ({"LifetimeInSeconds": 10}, "AWS.MechanicalTurk.InvalidParameterValue", "LifetimeInSeconds"),
    ({"QualificationRequirements": [{**APPROVAL, "Comparator": "Bigger"}]}, None, "Comparator"),
    ({"QualificationRequirements": [{**APPROVAL, "IntegerValues": [1, 2]}]},
     "AWS.MechanicalTurk.InvalidParameterValue", "exactly one value"),
    ({"QualificationRequirements": [{**LOCALE, "LocaleValues": [{"Country": "USA"}]}]}, None,
     "ISO 3166"),
])
def test_create_hit_refuses_what_it_cannot_serve_with_a_clear_request_error(server, lab, change,
                                                                             code, words):
    body = hit_args(**change)
    if "Question" in change and "HITLayoutId" in change:
        body.pop("Question")
    response = _raw(lab, "CreateHIT", body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["__type"] == ("RequestError" if code else "ValidationException"), answer
    assert answer.get("TurkErrorCode") == code
    assert words in answer["Message"]
    assert call(server, "GET", "/jobs", lab.api_key).json()["jobs"] == []


def test_missing_members_are_validation_errors(server, lab):
    body = hit_args()
    del body["Title"]
    answer = _raw(lab, "CreateHIT", body).json()
    assert answer["__type"] == "ValidationException" and "'Title'" in answer["Message"]
    answer = _raw(lab, "GetHIT", {}).json()
    assert answer["__type"] == "ValidationException"


def test_an_unknown_hit_does_not_exist_in_mturk_s_words(server, lab):
    for value in ("3PR3LXCWSFNV4OJWZBHIMQOIJVSX9G", "ABCDEF0123456789"):
        error = request_error(lambda v=value: lab.mturk.get_hit(HITId=v))
        assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"
        assert f"Hit {value} does not exist." in error["Error"]["Message"]
    hit = lab.mturk.create_hit(**hit_args())["HIT"]
    other = requester(server, "Other lab")
    error = request_error(lambda: other.mturk.get_hit(HITId=hit["HITId"]))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"


def _work(server: Served, hit_id: str) -> tuple[Api, str, str]:
    """A worker who takes one assignment of the HIT: (api, worker token, assignment id)."""
    api = Api(server.stack)
    token = api.worker("mturk worker")
    status, task = api.lease(token, job_of_hit(hit_id))
    assert status == 200, task
    return api, token, task["assignment_id"]


def test_counters_follow_accepts_and_submissions(server, lab):
    hit = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]

    def counters() -> tuple[str, int, int, int]:
        got = lab.mturk.get_hit(HITId=hit["HITId"])["HIT"]
        return (got["HITStatus"], got["NumberOfAssignmentsAvailable"],
                got["NumberOfAssignmentsPending"], got["NumberOfAssignmentsCompleted"])

    api, first, first_asg = _work(server, hit["HITId"])
    assert counters() == ("Assignable", 2, 1, 0)
    status, _ = api.submit(first, first_asg, {"text": "<QuestionFormAnswers/>"})
    assert status == 200
    # submitted, not reviewed: neither pending nor available nor completed
    assert counters() == ("Assignable", 2, 0, 0)
    leases = [_work(server, hit["HITId"]) for _ in range(2)]
    assert counters() == ("Unassignable", 0, 2, 0)
    for api, token, asg in leases:
        assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    # every assignment submitted, none pending: Reviewable (MaxAssignments - 0 - 0 - 0 = 3)
    assert counters() == ("Reviewable", 0, 0, 0)


def _hit_ids(pages: list[dict]) -> list[str]:
    return [hit["HITId"] for page in pages for hit in page["HITs"]]


def test_list_hits_pages_with_every_loop_style_tools_use(server, lab):
    made = sorted(lab.mturk.create_hit(**hit_args())["HIT"]["HITId"] for _ in range(5))
    # boto3's paginator (psiTurk, amti)
    pages = list(lab.mturk.get_paginator("list_hits").paginate(
        PaginationConfig={"PageSize": 2}))
    assert sorted(_hit_ids(pages)) == made
    assert [page["NumResults"] for page in pages] == [2, 2, 1, 0]
    # until an empty page, reading NextToken unconditionally (oTree, Mephisto)
    seen, response = [], lab.mturk.list_hits(MaxResults=2)
    while response["HITs"]:
        seen += response["HITs"]
        response = lab.mturk.list_hits(MaxResults=2, NextToken=response["NextToken"])
    assert sorted(h["HITId"] for h in seen) == made and "NextToken" not in response
    # while 'NextToken' in the response (Dallinger)
    seen, response = [], lab.mturk.list_hits(MaxResults=2)
    seen += response["HITs"]
    while "NextToken" in response:
        response = lab.mturk.list_hits(MaxResults=2, NextToken=response["NextToken"])
        seen += response["HITs"]
    assert sorted(h["HITId"] for h in seen) == made
    # the listed HITs are GetHIT's HITs
    assert seen[0] == lab.mturk.get_hit(HITId=seen[0]["HITId"])["HIT"]
    # MaxResults is bounded by the server (botocore sends 500 as it is)
    error = request_error(lambda: lab.mturk.list_hits(MaxResults=101))
    assert error["Error"]["Code"] == "ValidationException"
    # another client lists none of them
    other = requester(server, "Other lab")
    assert other.mturk.list_hits()["HITs"] == [] and other.mturk.list_hits()["NumResults"] == 0


def test_disposed_hits_leave_the_list_without_an_early_empty_page(server, lab):
    made = sorted(lab.mturk.create_hit(**hit_args())["HIT"]["HITId"] for _ in range(5))
    for hit_id in made[:3]:  # the first pages' worth, in the partition's order
        lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
        lab.mturk.delete_hit(HITId=hit_id)
    # the first stored page holds only disposed HITs: it is skipped, not answered empty
    pages = [lab.mturk.list_hits(MaxResults=2)]
    while pages[-1]["HITs"]:
        pages.append(lab.mturk.list_hits(MaxResults=2, NextToken=pages[-1]["NextToken"]))
    assert _hit_ids(pages) == made[3:]
    assert all(page["HITs"] for page in pages[:-1]) and "NextToken" not in pages[-1]
    assert all(lab.mturk.get_hit(HITId=h)["HIT"]["HITStatus"] == "Disposed" for h in made[:3])


def _job(hit_id: str):
    return platform().jobs.get_job(job_of_hit(hit_id))


def test_update_expiration_expires_now_and_extends(server, lab):
    hit = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]
    hit_id = hit["HITId"]
    # 0 (Dallinger) expires it now: Reviewable, the available count kept (Mephisto reads it)
    assert list(lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)) == \
        ["ResponseMetadata"]
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"]) == ("Reviewable", 3)
    assert got["Expiration"].timestamp() <= time.time()
    api = Api(server.stack)
    assert api.lease(api.worker("late"), job_of_hit(hit_id))[0] == 204
    # a float in the future extends it (oTree sends floats)
    later = time.time() + 7200.5
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=later)
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert got["HITStatus"] == "Assignable" and abs(got["Expiration"].timestamp() - later) < 1
    assert _job(hit_id).deadline == pytest.approx(later, abs=1)
    # a naive datetime in the past (Mephisto, ParlAI) expires it again
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=datetime.datetime(2015, 1, 1))
    assert lab.mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"
    # expiring an expired HIT changes nothing
    deadline = _job(hit_id).deadline
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    assert _job(hit_id).deadline == deadline
    error = request_error(lambda: lab.mturk.update_expiration_for_hit(
        HITId=hit_id, ExpireAt=time.time() + 91 * 86400))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidParameterValue"


def test_an_expired_hit_whose_job_closed_is_reopened_by_an_extension(server, lab):
    from chalicelib.handlers.rounds import finalize_due_jobs

    hit_id = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]["HITId"]
    api, token, asg = _work(server, hit_id)
    assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    # the leases ended: its answers are aggregated and published like any job's
    finalize_due_jobs(platform())
    job = server.stack.wait_for_state(job_of_hit(hit_id), lab.api_key, ("done",))
    assert job["state"] == "done"
    assert lab.mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=time.time() + 3600)
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"]) == ("Assignable", 2)
    reopened = _job(hit_id)
    assert (reopened.state, reopened.round) == ("active", 2)
    assert _work(server, hit_id)[2]


def test_delete_hit_needs_a_reviewable_hit_and_disposes_of_it(server, lab):
    hit_id = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]["HITId"]
    error = request_error(lambda: lab.mturk.delete_hit(HITId=hit_id))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.InvalidHITState"
    assert "currently in the state 'Assignable'" in error["Error"]["Message"]
    # a submitted answer nobody reviewed blocks it even once expired
    api, token, asg = _work(server, hit_id)
    assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    error = request_error(lambda: lab.mturk.delete_hit(HITId=hit_id))
    assert "awaiting review" in error["Error"]["Message"]
    quiet = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]["HITId"]
    lab.mturk.update_expiration_for_hit(HITId=quiet, ExpireAt=0)
    assert list(lab.mturk.delete_hit(HITId=quiet)) == ["ResponseMetadata"]
    got = lab.mturk.get_hit(HITId=quiet)["HIT"]
    assert got["HITStatus"] == "Disposed" and got["QualificationRequirements"] == []
    error = request_error(lambda: lab.mturk.delete_hit(HITId=quiet))
    assert "This HIT is currently in the state 'Disposed'" in error["Error"]["Message"]
    assert quiet not in [h["HITId"] for h in lab.mturk.list_hits()["HITs"]]
    # its job stopped taking workers; a disposed HIT cannot be extended or grown
    assert _job(quiet).state in ("cancelled", "aggregating", "done")
    for operation in (lambda: lab.mturk.update_expiration_for_hit(HITId=quiet, ExpireAt=0),
                      lambda: lab.mturk.create_additional_assignments_for_hit(
                          HITId=quiet, NumberOfAdditionalAssignments=1)):
        assert "state 'Disposed'" in request_error(operation)["Error"]["Message"]


def test_additional_assignments_add_slots_and_bill_the_client(server, lab):
    hit = lab.mturk.create_hit(**hit_args(MaxAssignments=2, QualificationRequirements=[]))["HIT"]
    hit_id = hit["HITId"]
    budget = _job(hit_id).budget_cents
    assert budget == 10 + 2
    assert list(lab.mturk.create_additional_assignments_for_hit(
        HITId=hit_id, NumberOfAdditionalAssignments=3, UniqueRequestToken="more-1")) == \
        ["ResponseMetadata"]
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["MaxAssignments"], got["NumberOfAssignmentsAvailable"]) == (5, 5)
    job = _job(hit_id)
    assert job.budget_cents == budget + 15 + 3  # three more rewards and their fee
    assert job.pool_cents == 0  # the added rewards went to the new slots
    money = call(server, "GET", f"/jobs/{job.job_id}", lab.api_key).json()["money"]
    assert money["budget_cents"] == 30 and money["reserved_cents"] == 25
    error = request_error(lambda: lab.mturk.create_additional_assignments_for_hit(
        HITId=hit_id, NumberOfAdditionalAssignments=3, UniqueRequestToken="more-1"))
    assert "more-1" in error["Error"]["Message"] and hit_id in error["Error"]["Message"]
    assert lab.mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 5
    error = request_error(lambda: lab.mturk.create_additional_assignments_for_hit(
        HITId=hit_id, NumberOfAdditionalAssignments=96))
    assert "at most 100 assignments" in error["Error"]["Message"]


def test_additional_assignments_reopen_a_hit_whose_every_assignment_was_answered(server, lab):
    hit_id = lab.mturk.create_hit(**hit_args(MaxAssignments=1,
                                             QualificationRequirements=[]))["HIT"]["HITId"]
    api, token, asg = _work(server, hit_id)
    assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    job = server.stack.wait_for_state(job_of_hit(hit_id), lab.api_key, ("done",))
    assert job["state"] == "done"
    lab.mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=1)
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["MaxAssignments"], got["NumberOfAssignmentsAvailable"]) == \
        ("Assignable", 2, 1)
    # aggregated again at its deadline, not by the sweeper's next run
    reopened = _job(hit_id)
    assert reopened.state == "active" and reopened.finalize_at >= reopened.deadline
    assert _work(server, hit_id)[2]


def _raising(error: Exception) -> Any:
    def operation(p: Any, client: Any, body: Any) -> dict:
        raise error
    return operation


def test_a_failure_of_a_write_is_a_request_error_and_of_a_read_a_service_fault(server, lab,
                                                                               monkeypatch):
    from chalicelib.handlers import mturk as operations

    monkeypatch.setitem(operations.OPERATIONS, "CreateHIT", _raising(RuntimeError("boom")))
    monkeypatch.setitem(operations.OPERATIONS, "GetHIT", _raising(RuntimeError("boom")))
    # a write that may have written part of its work: 400, which botocore never retries
    response = _raw(lab, "CreateHIT", hit_args())
    assert response.status_code == 400
    assert response.json()["__type"] == "RequestError"
    assert response.json()["TurkErrorCode"] == "AWS.MechanicalTurk.ServiceUnavailable"
    assert "retry with the same UniqueRequestToken" in response.json()["Message"]
    error = request_error(lambda: lab.mturk.create_hit(**hit_args()))
    assert error["Error"]["Code"] == "RequestError"
    # a read: ServiceFault (500), which botocore may retry safely
    response = _raw(lab, "GetHIT", {"HITId": "ABC"})
    assert response.status_code == 500 and response.json()["__type"] == "ServiceFault"
    assert "boom" not in response.text


@pytest.mark.parametrize("error, code", [
    ("Conflict:insufficient_budget", "AWS.MechanicalTurk.InsufficientFunds"),
    ("Conflict:job_not_active", "AWS.MechanicalTurk.InvalidState"),
    ("NotFound:job_not_found", "AWS.MechanicalTurk.DoesNotExist"),
    ("InvalidRequest:invalid_request", "AWS.MechanicalTurk.InvalidParameterValue"),
    ("PayloadTooLarge:payload_too_large", "AWS.MechanicalTurk.InvalidParameterValue"),
    ("Forbidden:forbidden", "AWS.MechanicalTurk.PermissionDenied"),
])
def test_our_own_errors_inside_an_operation_are_request_errors(server, lab, monkeypatch, error,
                                                               code):
    from chalicelib import errors
    from chalicelib.handlers import mturk as operations

    kind, our_code = error.split(":")
    monkeypatch.setitem(operations.OPERATIONS, "SendBonus", _raising(
        getattr(errors, kind)(f"the {kind} message", code=our_code)))
    response = _raw(lab, "SendBonus", {})
    assert response.status_code == 400
    answer = response.json()
    assert (answer["__type"], answer["TurkErrorCode"]) == ("RequestError", code)
    assert answer["Message"].startswith(f"the {kind} message (")


def test_a_transient_error_in_a_write_is_not_a_5xx(server, lab, monkeypatch):
    from chalicelib.errors import TransientError
    from chalicelib.handlers import mturk as operations

    monkeypatch.setitem(operations.OPERATIONS, "SendBonus", _raising(TransientError("busy")))
    monkeypatch.setitem(operations.OPERATIONS, "ListHITs", _raising(TransientError("busy")))
    assert _raw(lab, "SendBonus", {}).status_code == 400
    assert _raw(lab, "ListHITs", {}).status_code == 500


def test_a_create_hit_that_fails_part_way_leaves_nothing_and_its_token_can_be_retried(
        server, lab, monkeypatch):
    from chalicelib.handlers import mturk_hits

    def broken(p: Any, message: Any) -> None:
        raise RuntimeError("the item store failed")

    monkeypatch.setattr(mturk_hits, "ingest_chunk", broken)
    error = request_error(lambda: lab.mturk.create_hit(**hit_args(UniqueRequestToken="r-1")))
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.ServiceUnavailable"
    assert call(server, "GET", "/jobs", lab.api_key).json()["jobs"] == []
    assert lab.mturk.list_hits()["HITs"] == []
    monkeypatch.undo()
    hit = lab.mturk.create_hit(**hit_args(UniqueRequestToken="r-1"))["HIT"]
    assert hit["HITStatus"] == "Assignable"
    assert len(call(server, "GET", "/jobs", lab.api_key).json()["jobs"]) == 1


def test_an_assignment_accepted_before_the_hit_expired_may_still_be_submitted(server, lab):
    hit_id = lab.mturk.create_hit(**hit_args(QualificationRequirements=[]))["HIT"]["HITId"]
    api, token, asg = _work(server, hit_id)
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsPending"],
            got["NumberOfAssignmentsAvailable"]) == ("Reviewable", 1, 2)
    # its answers are aggregated only once the live lease has had its time
    job = _job(hit_id)
    assert job.state == "active" and job.finalize_at >= time.time() + 600 - 5
    assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsPending"]) == ("Reviewable", 0)


def test_concurrent_additions_each_add_what_they_bill(server, lab):
    from concurrent.futures import ThreadPoolExecutor

    hit_id = lab.mturk.create_hit(**hit_args(MaxAssignments=1,
                                             QualificationRequirements=[]))["HIT"]["HITId"]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: lab.mturk.create_additional_assignments_for_hit(
            HITId=hit_id, NumberOfAdditionalAssignments=3), range(4)))
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["MaxAssignments"], got["NumberOfAssignmentsAvailable"]) == (13, 13)
    job = _job(hit_id)
    assert job.pool_cents == 0
    assert call(server, "GET", f"/jobs/{job.job_id}", lab.api_key).json()["money"][
        "reserved_cents"] == 13 * 5


def test_an_answer_past_its_auto_approval_time_is_completed_and_the_hit_can_be_deleted(server,
                                                                                     lab):
    hit_id = lab.mturk.create_hit(**hit_args(AutoApprovalDelayInSeconds=0, MaxAssignments=2,
                                             QualificationRequirements=[]))["HIT"]["HITId"]
    api, token, asg = _work(server, hit_id)
    assert api.submit(token, asg, {"text": "<QuestionFormAnswers/>"})[0] == 200
    got = lab.mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["NumberOfAssignmentsCompleted"], got["NumberOfAssignmentsAvailable"]) == (1, 1)
    lab.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    assert list(lab.mturk.delete_hit(HITId=hit_id)) == ["ResponseMetadata"]
