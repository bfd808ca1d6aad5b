"""A study moved from MTurk, end to end on a served stack: a HIT whose ExternalQuestion points
at a small study page on another origin; a worker previews it, accepts it, and the study page
posts its form to turkSubmitTo + "/mturk/externalSubmit"; the answer is stored as MTurk's
QuestionFormAnswers XML. Once over plain HTTP (a simulated worker), then in a real browser on
the worker page (Debian's Chromium driven by Playwright), and for an HTMLQuestion we host,
whose content must not reach the worker page's storage."""
from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import expect

from chalicelib.deps import platform
from chalicelib.domain import mturk_ids
from chalicelib.domain.ids import item_id
from chalicelib.domain.mturk_worker import SUBMITTED
from chalicelib.domain.question_answers import question_form_answers
from tests.functional.mturk_stack import Served, requester, served_stack, worker
from tests.functional.mturk_worker_stack import hit, lease, study_server


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    yield from served_stack()


@pytest.fixture(scope="module")
def study() -> Iterator[tuple[str, list[str]]]:
    with study_server() as running:
        yield running


def _stored(hit_id: str, account: str) -> str | None:
    item = platform().items.get_item(mturk_ids.job_of_hit(hit_id), item_id(0, 1))
    answer = item.answers.get(account) if item else None
    return answer.answer["text"] if answer else None


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def test_a_simulated_worker_previews_accepts_and_the_study_posts_its_answers(server, study):
    study_url, seen = study
    # GIVEN a HIT made with boto3's create_hit whose ExternalQuestion is the study page
    lab = requester(server)
    hit_id = hit(server, lab, external_url=study_url, title="Simulated study")
    account, token = worker("simulated")
    # WHEN the worker previews it: the study page is fetched with the preview parameters
    preview = requests.get(f"{server.url}/mturk/preview/{hit_id}", timeout=30).json()
    assert requests.get(preview["frame_url"], timeout=30).status_code == 200
    shown = _query(seen[-1])
    assert shown == {"mode": "live", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE",
                     "hitId": hit_id, "turkSubmitTo": server.url}
    # AND accepts it: a lease, and the study page framed with the real assignment
    task = lease(server, token, hit_id).json()
    assert requests.get(task["hit"]["frame_url"], timeout=30).status_code == 200
    params = _query(seen[-1])
    assert params["workerId"] == mturk_ids.worker_id(account)
    assert mturk_ids.our_assignment(params["assignmentId"]) == task["assignment_id"]
    # AND the study page's form posts to turkSubmitTo + "/mturk/externalSubmit"
    posted = requests.post(params["turkSubmitTo"] + "/mturk/externalSubmit", timeout=30,
                           data=[("assignmentId", params["assignmentId"]),
                                 ("answer", "42"), ("condition", "B")])
    # THEN the success page answers, and the answer is MTurk's XML of the answer fields
    assert posted.status_code == 200 and "assignmentSubmitted" in posted.text
    assert _stored(hit_id, account) == question_form_answers([("answer", "42"),
                                                              ("condition", "B")])
    # AND the requester's tool lists the assignment with that XML, approves it and sends a
    # bonus, and both reach the worker's earnings
    server.stack.drain()
    listed = lab.mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]
    assert [(a["AssignmentId"], a["WorkerId"], a["AssignmentStatus"]) for a in listed] == \
        [(params["assignmentId"], mturk_ids.worker_id(account), "Submitted")]
    assert listed[0]["Answer"] == _stored(hit_id, account)
    lab.mturk.approve_assignment(AssignmentId=params["assignmentId"])
    lab.mturk.send_bonus(WorkerId=params["workerId"], BonusAmount="0.25",
                         AssignmentId=params["assignmentId"], Reason="Thanks for taking part",
                         UniqueRequestToken="bonus-1")
    earnings = requests.get(f"{server.url}/workers/me/earnings", timeout=30,
                            headers={"Authorization": f"Bearer {token}"}).json()
    assert earnings["balance_cents"] == 5 + 25
    assert lab.mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsCompleted"] == 1
    # AND the client sees the HIT as a job of its own, with the answer in its results
    job_id = mturk_ids.job_of_hit(hit_id)
    final = server.stack.wait_for_state(job_id, lab.api_key, ("done",))
    assert final["state"] == "done"
    rows = requests.get(f"{server.url}/jobs/{job_id}/results", timeout=30,
                        headers={"X-Api-Key": lab.api_key}).json()["results"]
    assert [row["answer"] for row in rows] == [{"text": _stored(hit_id, account)}]
    report = requests.get(f"{server.url}/jobs/{job_id}/report", timeout=30,
                          headers={"X-Api-Key": lab.api_key})
    assert report.status_code == 200, report.text


def _offered(server: Served, token: str, hit_id: str, seconds: float = 10) -> None:
    """Wait until the worker's job list shows the HIT (the list is cached for 2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = requests.get(f"{server.url}/workers/me/jobs", timeout=30,
                            headers={"Authorization": f"Bearer {token}"}).json()["jobs"]
        if any(job.get("hit", {}).get("hit_id") == hit_id for job in jobs):
            return
        time.sleep(0.2)
    raise AssertionError(f"HIT {hit_id} was not offered within {seconds} s")


def _signed_in(browser, server: Served, token: str):
    page = browser.new_page(viewport={"width": 1024, "height": 900})
    page.goto(server.url + "/work")
    page.locator("#token").fill(token)
    page.keyboard.press("Enter")
    expect(page.locator("#jobs")).to_be_visible()
    return page


def test_the_worker_page_previews_accepts_and_moves_on_when_the_study_submits(
        server, study, browser):
    study_url, _ = study
    hit_id = hit(server, external_url=study_url, title="Browser study", frame_height=0)
    account, token = worker("browser")
    _offered(server, token, hit_id)
    page = _signed_in(browser, server, token)
    # WHEN the worker previews the HIT: the study page in a frame, its submit disabled
    page.get_by_role("button", name="Preview Browser study").click()
    frame = page.frame_locator("iframe.hit")
    expect(frame.locator("#submitButton")).to_be_disabled()
    iframe = page.locator("iframe.hit")
    assert iframe.get_attribute("sandbox") == ("allow-scripts allow-forms allow-same-origin "
                                               "allow-popups allow-popups-to-escape-sandbox")
    assert _query(iframe.get_attribute("src"))["assignmentId"] == "ASSIGNMENT_ID_NOT_AVAILABLE"
    # FrameHeight 0: the frame fills the window's height
    assert iframe.bounding_box()["height"] > 700
    # AND accepts it: the frame reloads with the assignment and the worker's id
    with page.expect_response(lambda r: "/tasks/next" in r.url) as leased:
        page.locator("#accept").click()
    task = leased.value.json()
    expect(frame.locator("#submitButton")).to_be_enabled()
    assert _query(iframe.get_attribute("src"))["workerId"] == mturk_ids.worker_id(account)
    # AND answers in the study page, which posts to externalSubmit
    frame.locator("#answer").fill("très bien")
    frame.locator("#submitButton").click()
    # THEN the worker page hears of it and goes back to the jobs
    expect(page.locator("#message")).to_have_text("HIT submitted. Thank you!")
    expect(page.locator("#jobs")).to_be_visible()
    assert _stored(hit_id, account) == question_form_answers([("answer", "très bien"),
                                                              ("condition", "B")])
    assert mturk_ids.our_assignment(task["hit"]["assignment_id"]) == task["assignment_id"]
    page.close()


def test_a_study_in_a_popup_submits_and_the_worker_page_hears_of_it(server, study, browser):
    study_url, _ = study
    hit_id = hit(server, external_url=study_url.replace("/study", "/ad"), title="Popup study")
    account, token = worker("popup")
    _offered(server, token, hit_id)
    page = _signed_in(browser, server, token)
    page.get_by_role("button", name="Accept Popup study").click()
    # WHEN the framed ad opens the experiment in a window of its own, which posts the answers
    with page.expect_popup() as opened:
        page.frame_locator("iframe.hit").locator("#open").click()
    popup = opened.value
    popup.locator("#answer").fill("from the popup")
    popup.locator("#submitButton").click()
    # THEN the popup says it may be closed, and the worker page moves on
    expect(popup.locator("#status")).to_have_text(SUBMITTED)
    expect(page.locator("#message")).to_have_text("HIT submitted. Thank you!")
    assert _stored(hit_id, account) == question_form_answers([("answer", "from the popup"),
                                                              ("condition", "B")])
    popup.close()
    page.close()


HTML = """<!doctype html><html><head><meta charset="utf-8">
<script type="text/javascript" src="https://s3.amazonaws.com/mturk-public/externalHIT_v1.js"></script>
</head><body>
<form name="mturk_form" method="post" id="mturk_form" action="https://www.mturk.com/mturk/externalSubmit">
<input type="hidden" value="" name="assignmentId" id="assignmentId">
<input name="q1" id="q1">
<input type="hidden" name="probe" id="probe">
<input type="submit" id="submitButton" value="Submit"></form>
<script>
var reached = [];
try { reached.push("storage:" + window.sessionStorage.getItem("crowd-token")); } catch (e) {}
try { reached.push("parent:" + window.parent.sessionStorage.getItem("crowd-token")); } catch (e) {}
try { reached.push("cookie:" + document.cookie); } catch (e) {}
document.getElementById("probe").value = reached.length ? reached.join(";") : "nothing";
turkSetAssignmentID();
</script></body></html>"""


def test_an_html_question_is_hosted_isolated_and_submits_through_our_script(server, browser):
    hit_id = hit(server, html=HTML, title="Hosted form", frame_height=500)
    account, token = worker("html")
    _offered(server, token, hit_id)
    page = _signed_in(browser, server, token)
    page.get_by_role("button", name="Preview Hosted form").click()
    frame = page.frame_locator("iframe.hit")
    # our externalHIT_v1.js disables the submit button in preview
    expect(frame.locator("#submitButton")).to_be_disabled()
    assert page.locator("iframe.hit").bounding_box()["height"] == pytest.approx(500, abs=2)
    page.locator("#accept").click()
    expect(frame.locator("#submitButton")).to_be_enabled()
    frame.locator("#q1").fill("yes")
    frame.locator("#submitButton").click()
    expect(page.locator("#message")).to_have_text("HIT submitted. Thank you!")
    # THEN the answer came through our script's form action, and the hosted page could read
    # neither its own storage nor the worker page's (an opaque origin), so not the token
    stored = _stored(hit_id, account)
    assert stored == question_form_answers([("q1", "yes"), ("probe", "nothing")])
    page.close()
