"""The worker side of HITs over real HTTP: `POST /mturk/externalSubmit` (form and multipart
bodies, the assignment id in the body or the query string, zero answer fields, non-ASCII,
repeats, refusals as MTurk's error page), the HTMLQuestion host's isolation headers, our
externalHIT_v1.js, a HIT's preview, and what a leased HIT task carries."""
from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chalicelib.api.mturk_worker import public_base
from chalicelib.deps import platform
from chalicelib.domain import mturk_ids
from chalicelib.domain.ids import item_id
from chalicelib.domain.mturk_worker import PROBLEM, SUBMITTED
from chalicelib.domain.question_answers import question_form_answers
from chalicelib.errors import TransientError
from chalicelib.handlers import mturk_events, tasks
from tests.functional.marketplace import Api
from tests.functional.mturk_stack import Served, requester, served_stack, worker
from tests.functional.mturk_worker_stack import hit, lease

STUDY = "https://lab.example/study?mode=live&x=a%26b"


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    yield from served_stack()


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The MTurk events emitted during the test."""
    calls: list[tuple] = []
    monkeypatch.setattr(mturk_events, "emit", lambda p, job, event_type, assignment_id=None,
                        at=None: calls.append((job.job_id, event_type, assignment_id)))
    return calls


def _accepted(server: Served, **settings) -> tuple[str, str, str, dict]:
    """A HIT accepted by a fresh worker: (HITId, worker account, worker token, task)."""
    hit_id = hit(server, external_url=STUDY, **settings)
    account, token = worker()
    leased = lease(server, token, hit_id)
    assert leased.status_code == 200, leased.text
    return hit_id, account, token, leased.json()


def _stored(hit_id: str, account: str) -> str | None:
    job_id = mturk_ids.job_of_hit(hit_id)
    item = platform().items.get_item(job_id, item_id(0, 1))
    answer = item.answers.get(account) if item else None
    return answer.answer["text"] if answer else None


def _post(server: Served, query: str = "", **kwargs) -> requests.Response:
    return requests.post(f"{server.url}/mturk/externalSubmit{query}", timeout=30, **kwargs)


def test_a_form_post_stores_the_fields_as_question_form_answers(server, emitted):
    hit_id, account, _, task = _accepted(server)
    assignment = task["hit"]["assignment_id"]
    posted = _post(server, data=[("assignmentId", assignment), ("hitId", hit_id),
                                 ("answer", "blue"), ("workerId", "A1"), ("age", "31")])
    assert posted.status_code == 200, posted.text
    assert posted.headers["Content-Type"].startswith("text/html")
    assert '"type": "assignmentSubmitted"' in posted.text and assignment in posted.text
    assert SUBMITTED in posted.text
    assert _stored(hit_id, account) == question_form_answers([("answer", "blue"), ("age", "31")])
    assert emitted == [(mturk_ids.job_of_hit(hit_id), "AssignmentAccepted", task["assignment_id"]),
                       (mturk_ids.job_of_hit(hit_id), "AssignmentSubmitted", task["assignment_id"])]


def test_a_multipart_post_with_non_ascii_is_stored_in_posted_order(server):
    hit_id, account, _, task = _accepted(server)
    assignment = task["hit"]["assignment_id"]
    fields = [("assignmentId", (None, assignment)), ("réponse", (None, "oui, très — שלום 😀")),
              ("notes", (None, "line 1\nline <2> & 3")), ("upload", ("data.csv", b"a,b\n"))]
    posted = _post(server, files=fields)
    assert posted.status_code == 200, posted.text
    text = _stored(hit_id, account)
    assert text == question_form_answers([("réponse", "oui, très — שלום 😀"),
                                          ("notes", "line 1\nline <2> & 3"),
                                          ("upload", "data.csv")])
    assert text.isascii() and "r&#233;ponse" in text and "&#128512;" in text


def test_the_assignment_id_may_come_in_the_query_string(server):
    hit_id, account, _, task = _accepted(server)
    assignment = task["hit"]["assignment_id"]
    posted = _post(server, f"?assignmentId={assignment}", data={"trial_data": "[1,2]"})
    assert posted.status_code == 200, posted.text
    assert _stored(hit_id, account) == question_form_answers([("trial_data", "[1,2]")])


def test_a_post_of_reserved_fields_only_stores_an_empty_document(server):
    hit_id, account, _, task = _accepted(server)
    posted = _post(server, data={"assignmentId": task["hit"]["assignment_id"],
                                 "hitId": hit_id, "workerId": task["hit"]["worker_id"]})
    assert posted.status_code == 200, posted.text
    assert _stored(hit_id, account) == question_form_answers([])
    assert _stored(hit_id, account).endswith("QuestionFormAnswers.xsd\"></QuestionFormAnswers>")


def test_a_repeated_post_changes_nothing_and_gets_the_same_page(server, emitted):
    hit_id, account, _, task = _accepted(server)
    assignment = task["hit"]["assignment_id"]
    first = _post(server, data={"assignmentId": assignment, "answer": "first"})
    again = _post(server, data={"assignmentId": assignment, "answer": "second"})
    assert first.status_code == again.status_code == 200
    assert first.text == again.text
    assert _stored(hit_id, account) == question_form_answers([("answer", "first")])
    assert [event for _, event, _ in emitted] == ["AssignmentAccepted", "AssignmentSubmitted"]


def _refused(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert PROBLEM in response.text


def test_the_preview_id_is_refused_with_mturk_s_error_page(server):
    hit_id, account, _, _ = _accepted(server)
    _refused(_post(server, data={"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "a": "1"}), 400)
    _refused(_post(server, data={"a": "1"}), 400)
    assert _stored(hit_id, account) is None


def test_ids_that_are_not_our_hit_assignments_are_refused(server):
    # an MTurk-format id of someone else's, garbage, and an ordinary job's assignment
    for assignment in ("3PR3LXCWSFNV4OJWZBHIMQOIJVSX9G", "<script>", "0" * 30):
        _refused(_post(server, data={"assignmentId": assignment, "a": "1"}), 404)
    api = Api(server.stack)
    job = api.job(items=1, redundancy=1, task_type="collection", pilot={"items": 0})
    token = api.worker("ordinary")
    _, task = api.lease(token, job["job_id"])
    assert "hit" not in task
    ordinary = mturk_ids.assignment_id(task["assignment_id"])
    _refused(_post(server, data={"assignmentId": ordinary, "a": "1"}), 404)


def test_an_expired_lease_is_refused_and_stores_nothing(server, monkeypatch):
    hit_id, account, _, task = _accepted(server, lease_seconds=30)
    p = platform()
    monkeypatch.setattr(p, "clock", lambda: time.time() + 31)
    _refused(_post(server, data={"assignmentId": task["hit"]["assignment_id"], "a": "1"}), 409)
    assert _stored(hit_id, account) is None


def test_an_answer_over_the_hit_s_size_is_refused(server):
    hit_id, account, _, task = _accepted(server, max_assignments=10)  # 16000 characters
    posted = _post(server, data={"assignmentId": task["hit"]["assignment_id"],
                                 "big": "é" * 3000})  # 6 characters each as a reference
    _refused(posted, 413)
    assert _stored(hit_id, account) is None


def test_the_size_shrinks_when_assignments_are_added_so_every_answer_fits_the_item(server):
    # GIVEN a HIT of one assignment (16,000 characters an answer) given 99 more: 3,000 each
    lab = requester(server)
    hit_id = hit(server, lab, external_url=STUDY, max_assignments=1)
    lab.mturk.create_additional_assignments_for_hit(HITId=hit_id,
                                                    NumberOfAdditionalAssignments=99)
    account, token = worker()
    task = lease(server, token, hit_id).json()
    # WHEN an answer of 4,000 characters is posted THEN it is refused, and nothing is stored
    posted = _post(server, data={"assignmentId": task["hit"]["assignment_id"], "a": "x" * 4000})
    _refused(posted, 413)
    assert _stored(hit_id, account) is None
    # AND one within the new share is taken
    posted = _post(server, data={"assignmentId": task["hit"]["assignment_id"], "a": "x" * 2000})
    assert posted.status_code == 200, posted.text


def test_a_body_that_is_not_a_form_is_refused(server):
    response = _post(server, json={"assignmentId": "x"})
    assert response.status_code == 415


def test_a_leased_hit_task_carries_what_framing_it_takes(server):
    hit_id, account, _, task = _accepted(server, frame_height=0)
    frame = task["hit"]
    assert frame["hit_id"] == hit_id and frame["question"] == "external"
    assert frame["worker_id"] == mturk_ids.worker_id(account)
    assert mturk_ids.our_assignment(frame["assignment_id"]) == task["assignment_id"]
    assert frame["turk_submit_to"] == server.url and frame["frame_height"] == 0
    assert frame["external_url"] == STUDY and frame["html"] is False
    url = frame["frame_url"]
    assert url.startswith(STUDY + "&assignmentId=")
    assert parse_qs(urlsplit(url).query) == {
        "mode": ["live"], "x": ["a&b"], "assignmentId": [frame["assignment_id"]],
        "hitId": [hit_id], "turkSubmitTo": [server.url], "workerId": [frame["worker_id"]]}


def test_the_job_list_marks_a_hit_and_its_preview_frames_no_assignment(server):
    hit_id = hit(server, external_url=STUDY, title="Listed study")
    _, token = worker()
    jobs = requests.get(f"{server.url}/workers/me/jobs", timeout=30,
                        headers={"Authorization": f"Bearer {token}"}).json()["jobs"]
    listed = next(job for job in jobs if job["job_id"] == mturk_ids.job_of_hit(hit_id))
    assert listed["hit"] == {"hit_id": hit_id, "question": "external", "frame_height": 600}
    seen = requests.get(f"{server.url}/mturk/preview/{hit_id}", timeout=30)
    assert seen.status_code == 200
    query = parse_qs(urlsplit(seen.json()["frame_url"]).query)
    assert query["assignmentId"] == ["ASSIGNMENT_ID_NOT_AVAILABLE"] and "workerId" not in query
    assert requests.get(f"{server.url}/mturk/preview/0123456789ABCDEF", timeout=30
                        ).status_code == 404


HTML = ("<script src='https://s3.amazonaws.com/mturk-public/externalHIT_v1.js'></script>"
        "<form name='mturk_form' method='post' id='mturk_form' "
        "action='https://www.mturk.com/mturk/externalSubmit'>"
        "<input type='hidden' name='assignmentId' id='assignmentId'>"
        "<input name='q1'><input type='submit' id='submitButton'></form>"
        "<script>turkSetAssignmentID();</script>")


def test_html_is_hosted_in_an_opaque_origin_with_our_script(server):
    hit_id = hit(server, html=HTML)
    served = requests.get(f"{server.url}/mturk/html/{hit_id}?assignmentId=ASSIGNMENT_ID_NOT_"
                          f"AVAILABLE&hitId={hit_id}&turkSubmitTo={server.url}", timeout=30)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("text/html")
    policy = served.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox ")
    assert set(policy.split()[1:]) == {"allow-scripts", "allow-forms", "allow-popups",
                                       "allow-popups-to-escape-sandbox", "allow-modals"}
    assert "allow-same-origin" not in policy
    assert f"src='{server.url}/mturk/externalHIT_v1.js'" in served.text
    assert f"action='{server.url}/mturk/externalSubmit'" in served.text
    script = requests.get(f"{server.url}/mturk/externalHIT_v1.js", timeout=30)
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "function turkSetAssignmentID" in script.text and "/mturk/externalSubmit" in script.text


def test_the_html_host_serves_only_html_questions(server):
    external = hit(server, external_url=STUDY)
    for hit_id in (external, "0123456789ABCDEF", "not-a-hit"):
        served = requests.get(f"{server.url}/mturk/html/{hit_id}", timeout=30)
        assert served.status_code == 404, hit_id
        assert served.headers["Content-Type"].startswith("text/html")


def test_the_public_base_keeps_the_stage_prefix_and_the_scheme():
    request = SimpleNamespace(
        headers={"host": "abc.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https"},
        context={"path": "/api/mturk/preview/0123456789ABCDEF",
                 "resourcePath": "/mturk/preview/{HITId}"},
        uri_params={"HITId": "0123456789ABCDEF"})
    assert public_base(request) == "https://abc.execute-api.us-east-1.amazonaws.com/api"
    local = SimpleNamespace(headers={"host": "127.0.0.1:8000"}, uri_params=None,
                            context={"path": "/tasks/next", "resourcePath": "/tasks/next"})
    assert public_base(local) == "http://127.0.0.1:8000"


def test_the_worker_routes_take_no_api_key_and_are_documented_as_pages(server):
    doc = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    submit = doc["paths"]["/mturk/externalSubmit"]["post"]
    assert "security" not in submit
    assert set(submit["requestBody"]["content"]) == {"application/x-www-form-urlencoded",
                                                     "multipart/form-data"}
    assert "text/html" in submit["responses"]["4XX"]["content"]
    for path in ("/mturk/html/{HITId}", "/mturk/externalHIT_v1.js", "/mturk/preview/{HITId}"):
        assert "security" not in doc["paths"][path]["get"], path
    routes = server.stack.app.app.routes
    assert not routes["/mturk/externalSubmit"]["POST"].api_key_required


def test_the_worker_page_may_frame_study_pages_and_is_framed_nowhere(server):
    policy = requests.get(f"{server.url}/work", timeout=30).headers["Content-Security-Policy"]
    assert "frame-src http: https:" in policy and "frame-ancestors 'none'" in policy


def test_a_failing_store_is_a_5xx_page_and_stores_nothing(server, monkeypatch):
    hit_id, account, _, task = _accepted(server)

    def failing(*args, **kwargs):
        raise TransientError("the table is throttled")

    monkeypatch.setattr(tasks, "submit_answer", failing)
    posted = _post(server, data={"assignmentId": task["hit"]["assignment_id"], "a": "1"})
    assert posted.status_code == 503 and PROBLEM in posted.text
    assert _stored(hit_id, account) is None


def _as_worker(server: Served, token: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.url + path, timeout=30,
                            headers={"Authorization": f"Bearer {token}"}, **kwargs)


def test_a_hit_returned_or_answered_through_the_worker_api_is_announced(server, emitted):
    hit_id = hit(server, external_url=STUDY, max_assignments=2)
    job_id = mturk_ids.job_of_hit(hit_id)
    _, returner = worker()
    given_back = lease(server, returner, hit_id).json()["assignment_id"]
    assert _as_worker(server, returner, "POST", f"/assignments/{given_back}/release"
                      ).status_code == 200
    _, answerer = worker()
    answered = lease(server, answerer, hit_id).json()["assignment_id"]
    for _ in range(2):  # the retry is not announced again
        sent = _as_worker(server, answerer, "POST", f"/assignments/{answered}/submit",
                          json={"text": question_form_answers([("a", "1")])})
        assert sent.status_code == 200, sent.text
    assert emitted == [(job_id, "AssignmentAccepted", given_back),
                       (job_id, "AssignmentReturned", given_back),
                       (job_id, "AssignmentAccepted", answered),
                       (job_id, "AssignmentSubmitted", answered)]


def test_an_ordinary_job_announces_nothing(server, emitted):
    api = Api(server.stack)
    job = api.job(items=2, redundancy=1, pilot={"items": 0})
    token = api.worker("ordinary")
    _, task = api.lease(token, job["job_id"])
    assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
    _, other = api.lease(token, job["job_id"])
    assert api.as_worker(token, "POST", f"/assignments/{other['assignment_id']}/release")[0] == 200
    assert emitted == []
