"""Qualifications, worker blocks and messages to workers through the MTurk-compatible API,
driven by boto3's own `mturk` client, and their enforcement when workers list and lease HITs."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from chalicelib.adapters.dynamo import open_jobs as index
from chalicelib.adapters.models import JobModel
from chalicelib.deps import platform
from chalicelib.domain import mturk_requirements as system
from chalicelib.domain.model import LedgerEntry, Offer
from chalicelib.domain.mturk_ids import worker_id
from tests.functional.marketplace import Api
from tests.functional.mturk_stack import Requester, Served, requester, served_stack, worker


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (one server per module)."""
    yield from served_stack()


def _error(action: Any) -> dict:
    with pytest.raises(ClientError) as raised:
        action()
    return raised.value.response


def _qual(lab: Requester, name: str | None = None, **extra: Any) -> str:
    made = lab.mturk.create_qualification_type(
        Name=name or f"consented {secrets.token_hex(4)}", Description="took part in the pilot",
        QualificationTypeStatus="Active", **extra)
    return made["QualificationType"]["QualificationTypeId"]


def _types(lab: Requester, **query: Any) -> list[dict]:
    pages = lab.mturk.get_paginator("list_qualification_types").paginate(**query)
    return [t for page in pages for t in page["QualificationTypes"]]


# --- qualification types -------------------------------------------------------------------

def test_a_type_is_created_listed_by_an_upper_case_query_and_deleted(server):
    lab, other = requester(server), requester(server, "Other lab")
    made = lab.mturk.create_qualification_type(
        Name="Experiment 7 done", Description="Workers who did experiment 7",
        Keywords="psych,lab", QualificationTypeStatus="Active", AutoGranted=True,
        AutoGrantedValue=3)["QualificationType"]
    assert made["Name"] == "Experiment 7 done" and made["QualificationTypeStatus"] == "Active"
    assert made["AutoGranted"] is True and made["AutoGrantedValue"] == 3
    assert made["IsRequestable"] is True and made["CreationTime"].year >= 2024
    type_id = made["QualificationTypeId"]
    assert type_id.isalnum() and type_id.isupper() and len(type_id) <= 50
    # Dallinger's lookup: the name upper-cased, owned by the caller
    found = lab.mturk.list_qualification_types(Query="EXPERIMENT 7 DONE", MustBeRequestable=True,
                                               MustBeOwnedByCaller=True, MaxResults=100)
    assert [t["QualificationTypeId"] for t in found["QualificationTypes"]] == [type_id]
    assert found["NumResults"] == 1 and "NextToken" in found
    assert [t["QualificationTypeId"] for t in _types(lab, Query="PSYCH", MustBeRequestable=True,
                                                     MustBeOwnedByCaller=True)] == [type_id]
    assert _types(lab, Query="experiment 8", MustBeRequestable=True) == []
    # another client sees none of it
    assert _types(other, Query="EXPERIMENT 7", MustBeRequestable=False) == []
    # deleted: no longer listed, and the name can be used again at once
    assert list(lab.mturk.delete_qualification_type(QualificationTypeId=type_id)) == \
        ["ResponseMetadata"]
    assert _types(lab, Query="EXPERIMENT 7", MustBeRequestable=True) == []
    again = _qual(lab, "Experiment 7 done")
    assert again != type_id
    error = _error(lambda: lab.mturk.delete_qualification_type(QualificationTypeId=type_id))
    assert "does not exist" in error["Error"]["Message"]


def test_a_name_is_unique_per_client_whatever_its_case(server):
    lab, other = requester(server), requester(server, "Other lab")
    _qual(lab, "Blocklist A")
    error = _error(lambda: _qual(lab, "BLOCKLIST a"))
    assert error["Error"]["Code"] == "RequestError"
    # Mephisto's test, exactly
    assert error["Error"]["Message"].startswith(
        "You have already created a QualificationType with this name.")
    assert _qual(other, "Blocklist A")  # another client's names are its own


def test_qualification_tests_are_refused_clearly(server):
    lab = requester(server)
    error = _error(lambda: _qual(lab, Test="<QuestionForm/>", AnswerKey="<AnswerKey/>",
                                 TestDurationInSeconds=60))
    assert error["Error"]["Code"] == "RequestError"
    assert "tests" in error["Error"]["Message"] and "not supported" in error["Error"]["Message"]
    error = _error(lambda: lab.mturk.create_qualification_type(
        Name="x", Description="y", QualificationTypeStatus="Retired"))
    assert error["Error"]["Code"] == "ValidationException"


def test_must_be_requestable_is_required(server):
    # botocore checks required members itself: sent signed by hand, as oTree sends
    lab = requester(server)
    request = AWSRequest(method="POST", url=server.url + "/mturk", data=b'{"Query": "X"}', headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "MTurkRequesterServiceV20170117.ListQualificationTypes"})
    SigV4Auth(Credentials(lab.key_id, lab.secret), "mturk-requester", "us-east-1").add_auth(
        request)
    response = requests.post(request.url, data=request.body, headers=dict(request.headers),
                             timeout=30)
    assert response.status_code == 400
    assert response.json()["__type"] == "ValidationException"
    assert "MustBeRequestable" in response.json()["Message"]


def test_the_system_types_are_listed_when_not_owned_and_not_requestable(server):
    lab = requester(server)
    mine = _qual(lab)
    listed = {t["QualificationTypeId"]: t for t in _types(lab, MustBeRequestable=False,
                                                          MaxResults=2)}
    assert {system.PERCENT_APPROVED, system.NUMBER_APPROVED, system.LOCALE,
            system.MASTERS_LIVE, system.MASTERS_SANDBOX, mine} <= set(listed)
    assert listed[system.LOCALE]["IsRequestable"] is False
    assert [t["QualificationTypeId"] for t in _types(lab, MustBeRequestable=False,
                                                     Query="MASTERS")] == \
        [system.MASTERS_LIVE, system.MASTERS_SANDBOX]
    # requestable only, or owned only: the caller's own types alone
    assert [t["QualificationTypeId"] for t in _types(lab, MustBeRequestable=True)] == [mine]
    assert [t["QualificationTypeId"] for t in _types(lab, MustBeRequestable=False,
                                                     MustBeOwnedByCaller=True)] == [mine]


# --- grants ----------------------------------------------------------------------------------

def test_grant_regrant_score_and_revoke_with_dallinger_s_error_substrings(server):
    lab, other = requester(server), requester(server, "Other lab")
    type_id = _qual(lab)
    account, _ = worker()
    wid = worker_id(account)
    error = _error(lambda: lab.mturk.get_qualification_score(QualificationTypeId=type_id,
                                                             WorkerId=wid))
    assert "does not exist" in error["Error"]["Message"]
    assert lab.mturk.associate_qualification_with_worker(
        QualificationTypeId=type_id, WorkerId=wid, SendNotification=False) is not None
    score = lab.mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=wid)
    assert score["Qualification"]["IntegerValue"] == 1  # the default
    assert score["Qualification"]["Status"] == "Granted"
    assert score["Qualification"]["WorkerId"] == wid
    # a repeat (oTree grants on every start) replaces the value
    for value in (5, 7):
        answer = lab.mturk.associate_qualification_with_worker(
            QualificationTypeId=type_id, WorkerId=wid, IntegerValue=value)
        assert list(answer) == ["ResponseMetadata"]
    assert lab.mturk.get_qualification_score(
        QualificationTypeId=type_id, WorkerId=wid)["Qualification"]["IntegerValue"] == 7
    lab.mturk.disassociate_qualification_from_worker(QualificationTypeId=type_id, WorkerId=wid,
                                                     Reason="left the study")
    error = _error(lambda: lab.mturk.get_qualification_score(QualificationTypeId=type_id,
                                                             WorkerId=wid))
    assert "operation can be called with a status of: Granted" in error["Error"]["Message"]
    # only the caller's own types, and only our workers
    error = _error(lambda: other.mturk.associate_qualification_with_worker(
        QualificationTypeId=type_id, WorkerId=wid))
    assert "does not exist" in error["Error"]["Message"]
    error = _error(lambda: lab.mturk.associate_qualification_with_worker(
        QualificationTypeId=type_id, WorkerId="A1NOTOURS"))
    assert error["Error"]["Code"] == "RequestError"
    assert error["TurkErrorCode"] == "AWS.MechanicalTurk.WorkerDoesNotExist"


def test_workers_with_a_type_are_paged_with_every_loop_style(server):
    lab = requester(server)
    type_id = _qual(lab)
    workers = sorted(worker_id(worker()[0]) for _ in range(5))
    for wid in workers:
        lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id, WorkerId=wid)
    lab.mturk.disassociate_qualification_from_worker(QualificationTypeId=type_id,
                                                     WorkerId=workers[2])
    granted = [w for w in workers if w != workers[2]]
    # boto3's paginator (psiTurk, amti)
    pages = list(lab.mturk.get_paginator("list_workers_with_qualification_type").paginate(
        QualificationTypeId=type_id, Status="Granted", PaginationConfig={"PageSize": 2}))
    assert [q["WorkerId"] for p in pages for q in p["Qualifications"]] == granted
    # Dallinger's `while 'NextToken' in response`
    seen, sizes = [], []
    response = lab.mturk.list_workers_with_qualification_type(
        QualificationTypeId=type_id, Status="Granted", MaxResults=2)
    while True:
        seen += [q["WorkerId"] for q in response["Qualifications"]]
        sizes.append(response["NumResults"])
        if "NextToken" not in response:
            break
        response = lab.mturk.list_workers_with_qualification_type(
            QualificationTypeId=type_id, Status="Granted", MaxResults=2,
            NextToken=response["NextToken"])
    assert seen == granted and sizes == [2, 2, 0]
    # every worker, either status
    everyone = lab.mturk.list_workers_with_qualification_type(QualificationTypeId=type_id)
    assert {q["WorkerId"]: q["Status"] for q in everyone["Qualifications"]} == {
        w: "Revoked" if w == workers[2] else "Granted" for w in workers}
    revoked = lab.mturk.list_workers_with_qualification_type(QualificationTypeId=type_id,
                                                             Status="Revoked")
    assert [q["WorkerId"] for q in revoked["Qualifications"]] == [workers[2]]


# --- worker blocks ---------------------------------------------------------------------------

def test_worker_blocks_are_created_listed_and_deleted(server):
    lab = requester(server)
    blocked = sorted(worker_id(worker()[0]) for _ in range(3))
    for wid in blocked:
        assert list(lab.mturk.create_worker_block(WorkerId=wid, Reason="spam")) == \
            ["ResponseMetadata"]
    lab.mturk.create_worker_block(WorkerId=blocked[0], Reason="copied answers")
    pages = list(lab.mturk.get_paginator("list_worker_blocks").paginate(
        PaginationConfig={"PageSize": 2}))
    listed = [b for p in pages for b in p["WorkerBlocks"]]
    assert listed == [{"WorkerId": blocked[0], "Reason": "copied answers"},
                      *({"WorkerId": w, "Reason": "spam"} for w in blocked[1:])]
    lab.mturk.delete_worker_block(WorkerId=blocked[1], Reason="appealed")
    lab.mturk.delete_worker_block(WorkerId=blocked[1])  # nothing left to lift: still fine
    left = lab.mturk.list_worker_blocks()["WorkerBlocks"]
    assert [b["WorkerId"] for b in left] == [blocked[0], blocked[2]]
    assert requester(server).mturk.list_worker_blocks()["WorkerBlocks"] == []
    error = _error(lambda: lab.mturk.create_worker_block(WorkerId="nobody", Reason="x"))
    assert error["Error"]["Code"] == "RequestError"


# --- messages --------------------------------------------------------------------------------

def _inbox(server: Served, key: str, query: str = "") -> requests.Response:
    return requests.get(server.url + "/workers/me/messages" + query, timeout=30,
                        headers={"Authorization": f"Bearer {key}"})


def _messages(server: Served, key: str, query: str = "") -> dict:
    response = _inbox(server, key, query)
    assert response.status_code == 200, response.text
    return response.json()


def test_notify_workers_reaches_workers_of_the_requester_and_reports_the_others(server):
    lab = requester(server)
    type_id = _qual(lab)
    (holder, holder_key), (stranger, stranger_key) = worker(), worker()
    (paid, paid_key), (blocked, _) = worker(), worker()
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(holder))
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(blocked))
    lab.mturk.create_worker_block(WorkerId=worker_id(blocked), Reason="spam")
    # a worker the requester paid a bonus in one of its jobs (the ledger says so)
    api = Api(server.stack)
    api.key = lab.api_key
    job = api.job(items=1, redundancy=1, pilot={"items": 0},
                  required_skills=[f"other-{secrets.token_hex(4)}"])  # listed to nobody here
    p = platform()
    assert p.ledger.bonus(LedgerEntry(paid, f"bonus#{job['job_id']}#b1", "bonus", 1, p.now(),
                                      job["job_id"], None, "thanks", lab.account_id), job["job_id"])
    answer = lab.mturk.notify_workers(
        Subject="Follow-up study", MessageText="Part 2 is open.",
        WorkerIds=[worker_id(holder), worker_id(stranger), worker_id(paid),
                   worker_id(blocked), "A1NOTOURS", worker_id(holder)])
    failures = {f["WorkerId"]: f for f in answer["NotifyWorkersFailureStatuses"]}
    assert set(failures) == {worker_id(stranger), worker_id(blocked), "A1NOTOURS"}
    assert {f["NotifyWorkersFailureCode"] for f in failures.values()} == {"HardFailure"}
    assert "has not worked for you" in failures[worker_id(stranger)]["NotifyWorkersFailureMessage"]
    for key in (holder_key, paid_key):
        inbox = _messages(server, key)["messages"]
        assert [(m["subject"], m["text"], m["from"]) for m in inbox] == \
            [("Follow-up study", "Part 2 is open.", lab.account_id)]  # once, not twice
    assert _messages(server, stranger_key)["messages"] == []


def test_notify_workers_bounds(server):
    lab = requester(server)
    wid = worker_id(worker()[0])
    error = _error(lambda: lab.mturk.notify_workers(Subject="s" * 201, MessageText="m",
                                                    WorkerIds=[wid]))
    assert "Subject" in error["Error"]["Message"]
    error = _error(lambda: lab.mturk.notify_workers(Subject="s", MessageText="m" * 4097,
                                                    WorkerIds=[wid]))
    assert "MessageText" in error["Error"]["Message"]
    error = _error(lambda: lab.mturk.notify_workers(Subject="s", MessageText="m",
                                                    WorkerIds=[wid] * 101))
    assert "at most 100" in error["Error"]["Message"]


def test_a_worker_s_messages_are_paged_newest_first(server):
    lab = requester(server)
    type_id = _qual(lab)
    account, key = worker()
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(account))
    for n in range(3):
        lab.mturk.notify_workers(Subject=f"note {n}", MessageText="hello",
                                 WorkerIds=[worker_id(account)])
    first = _messages(server, key, "?limit=2")
    assert [m["subject"] for m in first["messages"]] == ["note 2", "note 1"]
    rest = _messages(server, key, f"?limit=2&cursor={first['next_cursor']}")
    assert [m["subject"] for m in rest["messages"]] == ["note 0"]
    response = _inbox(server, key, "?color=red")
    assert response.status_code == 400 and response.json()["error"]


# --- enforcement on the worker side ----------------------------------------------------------

def _hit_job(server: Served, lab: Requester, requirements: list[dict]) -> tuple[str, str]:
    """A one-item collection job of the requester carrying MTurk requirements, as a HIT's job
    does; only workers with the returned skill can list it, so a test sees just this one.
    Returns (job id, skill). (A HIT made by create_hit instead is listed to every worker: the
    leases without a job id that expect 204 then need the module's other HITs out of reach.)"""
    skill = f"hit-{secrets.token_hex(4)}"
    api = Api(server.stack)
    api.key = lab.api_key
    job = api.job(items=1, redundancy=1, task_type="collection", pilot={"items": 0},
                  required_skills=[skill])
    job_id = job["job_id"]
    mturk = {"hit_type_id": "3HITTYPE", "requirements": requirements, "question": "external",
             "frame_height": 600}
    JobModel(job_id).update(actions=[JobModel.mturk.set(mturk)])
    p = platform()
    stored = p.jobs.get_job(job_id)
    assert stored is not None and stored.mturk == mturk
    index.open_job_record(Offer.of(stored)).save()
    p.cache.forget_job(job_id)
    return job_id, skill


def _hit_worker(server: Served, skill: str) -> tuple[str, str]:
    api = Api(server.stack)
    token = api.worker("hit worker", skills=[skill])
    status, me = api.as_worker(token, "GET", "/workers/me")
    assert status == 200
    return me["worker_id"], token


def _listed(server: Served, token: str) -> list[str]:
    status, body = Api(server.stack).as_worker(token, "GET", "/workers/me/jobs")
    assert status == 200
    return [job["job_id"] for job in body["jobs"]]


def _lease(server: Served, token: str, job_id: str | None = None) -> tuple[int, Any]:
    return Api(server.stack).lease(token, job_id)


def test_a_worker_without_a_required_qualification_neither_sees_nor_leases_the_hit(server):
    lab = requester(server)
    type_id = _qual(lab)
    job_id, skill = _hit_job(server, lab, [{
        "QualificationTypeId": type_id, "Comparator": "GreaterThanOrEqualTo",
        "IntegerValues": [3], "ActionsGuarded": "DiscoverPreviewAndAccept"}])
    account, token = _hit_worker(server, skill)
    # not listed, not leased when named, not leased from the open jobs
    assert job_id not in _listed(server, token)
    status, body = _lease(server, token, job_id)
    assert status == 403 and body["error"] == "qualification_required"
    assert _lease(server, token)[0] == 204
    # a value too low is not enough
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(account), IntegerValue=2)
    assert _lease(server, token, job_id)[0] == 403
    # granting a value that meets it makes the HIT visible and leasable
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(account), IntegerValue=3)
    assert job_id in _listed(server, token)
    status, body = _lease(server, token)
    assert status == 200 and body["job_id"] == job_id


def test_an_accept_only_requirement_lists_the_hit_but_refuses_the_lease(server):
    lab = requester(server)
    type_id = _qual(lab)
    job_id, skill = _hit_job(server, lab, [
        {"QualificationTypeId": type_id, "Comparator": "Exists"},
        {"QualificationTypeId": system.PERCENT_APPROVED, "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [95], "RequiredToPreview": True}])
    account, token = _hit_worker(server, skill)
    assert job_id in _listed(server, token)  # Discover is not guarded
    assert _lease(server, token, job_id)[0] == 403
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(account))
    # a new worker has 100% approved, as MTurk showed new workers
    assert _lease(server, token, job_id)[0] == 200


def test_a_revoked_qualification_no_longer_admits(server):
    lab = requester(server)
    type_id = _qual(lab)
    job_id, skill = _hit_job(server, lab, [{"QualificationTypeId": type_id,
                                            "Comparator": "Exists"}])
    account, token = _hit_worker(server, skill)
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=type_id,
                                                  WorkerId=worker_id(account))
    lab.mturk.disassociate_qualification_from_worker(QualificationTypeId=type_id,
                                                     WorkerId=worker_id(account))
    assert _lease(server, token, job_id)[0] == 403


def test_a_block_list_made_with_does_not_exist_keeps_its_members_out(server):
    lab = requester(server)
    done_before = _qual(lab)
    job_id, skill = _hit_job(server, lab, [{
        "QualificationTypeId": done_before, "Comparator": "DoesNotExist",
        "ActionsGuarded": "DiscoverPreviewAndAccept"}])
    (veteran, veteran_token), (_, new_token) = _hit_worker(server, skill), \
        _hit_worker(server, skill)
    lab.mturk.associate_qualification_with_worker(QualificationTypeId=done_before,
                                                  WorkerId=worker_id(veteran))
    assert job_id not in _listed(server, veteran_token)
    assert _lease(server, veteran_token, job_id)[0] == 403
    assert job_id in _listed(server, new_token)
    assert _lease(server, new_token, job_id)[0] == 200


@pytest.mark.parametrize("requirement", [
    {"QualificationTypeId": system.MASTERS_LIVE, "Comparator": "Exists"},
    {"QualificationTypeId": system.NUMBER_APPROVED, "Comparator": "GreaterThan",
     "IntegerValues": [0]},
    # Mephisto's requirement outside its sandbox, for a worker who gave no country
    {"QualificationTypeId": system.LOCALE, "Comparator": "In",
     "LocaleValues": [{"Country": c} for c in ("US", "CA", "GB", "AU", "NZ")],
     "ActionsGuarded": "DiscoverPreviewAndAccept"},
])
def test_system_requirements_no_worker_here_meets(server, requirement):
    lab = requester(server)
    job_id, skill = _hit_job(server, lab, [requirement])
    _, token = _hit_worker(server, skill)
    assert _lease(server, token, job_id)[0] == 403


MEPHISTO_LOCALE = {"QualificationTypeId": system.LOCALE, "Comparator": "In",
                   "LocaleValues": [{"Country": c} for c in ("US", "CA", "GB", "AU", "NZ")],
                   "ActionsGuarded": "DiscoverPreviewAndAccept"}


def _located_worker(server: Served, skill: str, **locale: str) -> str:
    """A worker registered with a country (and subdivision); returns their token."""
    status, body = Api(server.stack).call("POST", "/workers", {"name": "located worker",
                                                                "skills": [skill], **locale})
    assert status == 201, body
    return body["token"]


def test_mephisto_s_locale_requirement_admits_workers_of_its_countries_only(server):
    lab = requester(server)
    job_id, skill = _hit_job(server, lab, [MEPHISTO_LOCALE])
    american = _located_worker(server, skill, country="US", subdivision="CA")
    german = _located_worker(server, skill, country="DE")
    _, unplaced = _hit_worker(server, skill)
    for token in (german, unplaced):
        assert job_id not in _listed(server, token)
        status, body = _lease(server, token, job_id)
        assert status == 403 and body["error"] == "qualification_required"
    assert job_id in _listed(server, american)
    assert _lease(server, american, job_id)[0] == 200


def test_a_worker_who_sets_a_listed_country_then_sees_the_hit(server):
    lab = requester(server)
    job_id, skill = _hit_job(server, lab, [
        {**MEPHISTO_LOCALE, "LocaleValues": [{"Country": "US", "Subdivision": "NY"}]}])
    token = _located_worker(server, skill, country="US", subdivision="CA")
    assert job_id not in _listed(server, token)
    api = Api(server.stack)
    assert api.as_worker(token, "PATCH", "/workers/me", {"subdivision": "NY"})[0] == 200
    assert job_id in _listed(server, token)
    assert _lease(server, token, job_id)[0] == 200


def test_an_auto_granted_type_admits_a_worker_without_a_grant(server):
    lab = requester(server)
    type_id = _qual(lab, AutoGranted=True, AutoGrantedValue=4)
    job_id, skill = _hit_job(server, lab, [{"QualificationTypeId": type_id,
                                            "Comparator": "EqualTo", "IntegerValues": [4]}])
    _, token = _hit_worker(server, skill)
    assert _lease(server, token, job_id)[0] == 200


def test_a_worker_the_requester_blocked_takes_none_of_its_hits(server):
    lab = requester(server)
    job_id, skill = _hit_job(server, lab, [])
    account, token = _hit_worker(server, skill)
    lab.mturk.create_worker_block(WorkerId=worker_id(account), Reason="spam")
    assert job_id not in _listed(server, token)
    status, body = _lease(server, token, job_id)
    assert status == 403 and body["error"] == "blocked_by_requester"
    assert _lease(server, token)[0] == 204
    # another requester's block changes nothing; lifting it lets the worker in
    requester(server, "Other lab").mturk.delete_worker_block(WorkerId=worker_id(account))
    assert _lease(server, token, job_id)[0] == 403
    lab.mturk.delete_worker_block(WorkerId=worker_id(account))
    assert job_id in _listed(server, token)
    assert _lease(server, token, job_id)[0] == 200


def test_an_ordinary_job_ignores_the_client_s_worker_blocks(server):
    lab = requester(server)
    skill = f"plain-{secrets.token_hex(4)}"
    api = Api(server.stack)
    api.key = lab.api_key
    job = api.job(items=1, redundancy=1, task_type="collection", pilot={"items": 0},
                  required_skills=[skill])
    account, token = _hit_worker(server, skill)
    lab.mturk.create_worker_block(WorkerId=worker_id(account), Reason="spam")
    assert _lease(server, token, job["job_id"])[0] == 200
