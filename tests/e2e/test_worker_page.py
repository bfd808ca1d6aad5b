"""The worker page in a real browser (Debian's headless Chromium driven by Playwright) against
`make run`'s stack: keyboard only, on a phone-width screen; a task given back on every way out
of it, Enter answering no label by itself, right-to-left text."""
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from crowd_client import Client
from examples.demo import ApiError, call
from tests.e2e.stack_process import local_stack_process

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack_process(tmp_path_factory.mktemp("stack")) as running:
        yield running.info


def _job(stack, items=10, *, title="Review sentiment", texts=None, lease_seconds=30, **settings):
    """A labelling job (positive or negative) with one task per item, active and offered;
    settings go to the job as they are (suite_size...)."""
    client = Client(stack["base_url"], stack["client_key"])
    texts = texts or [f"review {n}" for n in range(items)]
    quote = client.quote(task_type="categorical", items=len(texts), redundancy=1, gold_rate=0)
    job = client.create_job(quote["quote_id"], [{"data": {"text": text}} for text in texts],
                            title=title, instructions="Is the review positive?",
                            answer_schema={"labels": ["positive", "negative"]},
                            not_applicable="allowed_with_reason", lease_seconds=lease_seconds,
                            pilot={"items": 0}, **settings)
    job = client.wait(job["job_id"], until=("active",), every=0.2, timeout=30)
    _offered(stack, job["job_id"])
    return client, job


def _offered(stack, job_id, seconds=10):
    """Wait until workers are offered the job: the API's container sees a new active job
    once its job list cache (2 s) runs out."""
    auth = {"Authorization": f"Bearer {_worker_token(stack, 'looking')}"}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, offers = call(stack["base_url"], "GET", "/workers/me/jobs", headers=auth)
        if any(offer["job_id"] == job_id for offer in offers["jobs"]):
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} was not offered within {seconds} s")


def _press(page, key):
    """Press a key once the page is idle (a task shown, no request in flight), and wait
    until the next task has been fetched and shown."""
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    with page.expect_response(lambda r: "/tasks/next" in r.url):
        page.keyboard.press(key)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")


def _tab_to(page, locator, presses=20):
    """Move the focus with Tab until it is on locator (keyboard only)."""
    for _ in range(presses):
        if locator.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError("Tab never reached the element")


def _worker_token(stack, name):
    _, worker = call(stack["base_url"], "POST", "/workers", {"name": name, "skills": ["en"]})
    return worker["token"]


def _signed_in(browser, stack, token):
    """A new page on /work, signed in with token, showing the jobs."""
    page = browser.new_page()
    page.goto(stack["base_url"] + "/work")
    page.locator("#token").fill(token)
    page.keyboard.press("Enter")
    expect(page.locator("#jobs")).to_be_visible()
    return page


def _start(page, title):
    """Start working on the job called title; return the assignment id of the task leased."""
    start = page.get_by_role("button", name=f"Start working on {title}")
    with page.expect_response(lambda r: "/tasks/next" in r.url) as leased:
        start.click()
    expect(page.locator("#task-body")).to_be_visible()
    return leased.value.json()["assignment_id"]


def _taken_by_another_worker(stack, job_id, seconds=10):
    """Whether another worker gets the job's only task within seconds (far less than its lease)."""
    token = _worker_token(stack, "next in line")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, task = call(stack["base_url"], "GET", f"/tasks/next?job_id={job_id}",
                       headers={"Authorization": f"Bearer {token}"})
        if task:
            return True
        time.sleep(0.3)
    return False


def test_a_worker_works_by_keyboard_alone_on_a_phone(stack, browser):
    client, job = _job(stack)
    token = _worker_token(stack, "keyboard")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(stack["base_url"] + "/work")
    # sign in: the token field has the focus
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    start = page.get_by_role("button", name="Start working on Review sentiment")
    expect(start).to_be_focused()
    expect(page.locator("#job-list")).to_contain_text("$0.05 per task")
    _press(page, "Enter")
    expect(page.locator("#task-instructions")).to_have_text("Is the review positive?")
    expect(page.locator("#task-body")).to_be_focused()
    # five tasks answered with the number keys, the next task coming at once each time
    for n in range(5):
        _press(page, "1" if n % 2 == 0 else "2")
    # one marked not applicable, with a reason, by keyboard
    page.keyboard.press("n")
    expect(page.locator("#na-reason")).to_be_focused()
    page.keyboard.type("not a product review")
    _press(page, "Enter")
    expect(page.locator("#message")).to_have_text("Marked not applicable. Next task.")
    # the phone-width page does not scroll sideways
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    # the lease runs out: a warning first, then a plain message and a focused "Next task"
    expect(page.locator("#clock")).to_have_class("warn", timeout=35_000)
    expect(page.locator("#message")).to_contain_text("ran out", timeout=40_000)
    expect(page.locator("#next")).to_be_focused()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "worker-page-lease-expired.png"), full_page=True)
    assert "Traceback" not in page.content()
    # THEN the API holds the six answers, one of them N/A
    deadline = time.monotonic() + 20
    while client.job(job["job_id"])["counts"]["answered"] < 6 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert client.job(job["job_id"])["counts"]["answered"] == 6
    # AND the earnings page shows the balance (nothing approved yet) by keyboard too
    page.locator("#to-earnings").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#balance")).to_have_text("$0.00")
    expect(page.locator("#accuracy")).to_contain_text("not measured yet")
    page.close()


def test_api_errors_are_plain_messages(stack, browser):
    page = browser.new_page()
    page.goto(stack["base_url"] + "/work")
    page.keyboard.type("wt_not_a_real_token")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text(
        "That token is not valid. Check it and sign in again.")
    expect(page.locator("#token")).to_be_focused()
    # a worker with nothing to do is told so
    page.locator("#token").fill(_worker_token(stack, "idle"))
    page.keyboard.press("Enter")
    expect(page.locator("#job-list")).to_be_visible()
    page.close()


def test_a_translation_is_typed_beside_its_source_and_sent_with_ctrl_enter(stack, browser):
    client = Client(stack["base_url"], stack["client_key"])
    quote = client.quote(task_type="translation", items=2, redundancy=1, gold_rate=0)
    job = client.create_job(quote["quote_id"], [{"data": {"source": "Good morning"}},
                                                {"data": {"source": "Thank you"}}],
                            title="English to French", instructions="Translate into French.",
                            answer_schema={"max_length": 200}, pilot={"items": 0})
    client.wait(job["job_id"], until=("active",), every=0.2, timeout=30)
    _offered(stack, job["job_id"])
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    page.goto(stack["base_url"] + "/work")
    page.keyboard.type(_worker_token(stack, "translator"))
    page.keyboard.press("Enter")
    start = page.get_by_role("button", name="Start working on English to French")
    expect(start).to_be_visible()
    _tab_to(page, start)
    _press(page, "Enter")
    # the source and the editor sit side by side; the editor has the focus
    expect(page.locator("#answer-input")).to_be_focused()
    source = page.locator("#task-body dd").bounding_box()
    editor = page.locator("#answer-input").bounding_box()
    assert editor["x"] > source["x"] + source["width"] - 1
    page.keyboard.type("Bonjour")
    _press(page, "Control+Enter")
    expect(page.locator("#message")).to_have_text("Submitted. Next task.")
    deadline = time.monotonic() + 20
    while client.job(job["job_id"])["counts"]["answered"] < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert client.job(job["job_id"])["counts"]["answered"] == 1
    page.close()


WAYS_OUT = {
    "the Earnings button": lambda page: page.locator("#to-earnings").click(),
    "the Jobs button": lambda page: page.locator("#to-jobs").click(),
    "signing out": lambda page: page.locator("#sign-out").click(),
    "Back to jobs": lambda page: page.locator("#leave").click(),
    "going to another page": lambda page: page.goto("about:blank"),
    "closing the tab": lambda page: page.close(),
}


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_every_way_out_of_a_task_gives_it_back(stack, browser, way_out):
    title = f"Leave by {way_out}"
    _, job = _job(stack, items=1, title=title, lease_seconds=600)
    token = _worker_token(stack, "leaving")
    page = _signed_in(browser, stack, token)
    assignment_id = _start(page, title)
    WAYS_OUT[way_out](page)
    # the only task goes to the next worker now, not when its 10-minute lease ends
    assert _taken_by_another_worker(stack, job["job_id"])
    with pytest.raises(ApiError) as gone:
        call(stack["base_url"], "POST", f"/assignments/{assignment_id}/release",
             headers={"Authorization": f"Bearer {token}"})
    assert gone.value.status == 409
    assert gone.value.body["error"] == "assignment_not_active"
    if not page.is_closed():
        page.close()


def test_the_header_buttons_show_only_when_signed_in(stack, browser):
    page = browser.new_page()
    page.goto(stack["base_url"] + "/work")
    expect(page.locator("#token")).to_be_visible()
    for name in ("Jobs", "Earnings", "Sign out"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    page.locator("#token").fill(_worker_token(stack, "header"))
    page.keyboard.press("Enter")
    for name in ("Jobs", "Earnings", "Sign out"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    page.close()


def _save_place(page, country, subdivision):
    """Fill the country form and save it; the API's answer to the change."""
    page.locator("#country").fill(country)  # (waits until the saved values are loaded)
    page.locator("#subdivision").fill(subdivision)
    with page.expect_response(lambda r: r.request.method == "PATCH") as sent:
        page.get_by_role("button", name="Save").click()
    return sent.value


def test_a_worker_sets_and_clears_their_country_on_the_earnings_page(stack, browser):
    token = _worker_token(stack, "placed")
    auth = {"Authorization": f"Bearer {token}"}
    page = _signed_in(browser, stack, token)
    page.locator("#to-earnings").click()
    # a code that is not a country is refused with the API's message
    assert _save_place(page, "ZZ", "").status == 400
    expect(page.locator("#message")).to_contain_text("country")
    assert call(stack["base_url"], "GET", "/workers/me", headers=auth)[1]["country"] is None
    # typed in lower case, saved upper case, and shown again on the next visit
    assert _save_place(page, "us", "ca").status == 200
    expect(page.locator("#message")).to_have_text("Saved.")
    _, me = call(stack["base_url"], "GET", "/workers/me", headers=auth)
    assert (me["country"], me["subdivision"]) == ("US", "CA")
    page.locator("#to-jobs").click()
    page.locator("#to-earnings").click()
    expect(page.locator("#country")).to_have_value("US")
    expect(page.locator("#subdivision")).to_have_value("CA")
    # emptied fields clear it
    assert _save_place(page, "", "").status == 200
    expect(page.locator("#message")).to_have_text("Saved.")
    _, me = call(stack["base_url"], "GET", "/workers/me", headers=auth)
    assert (me["country"], me["subdivision"]) == (None, None)
    page.close()


def test_enter_answers_no_label_the_worker_did_not_choose(stack, browser):
    title = "Enter chooses nothing"
    _job(stack, items=3, title=title, lease_seconds=600)
    page = _signed_in(browser, stack, _worker_token(stack, "enter"))
    assignment_id = _start(page, title)
    submits = []
    page.on("request", lambda request: submits.append(request) if "/submit" in request.url else None)
    page.keyboard.press("Enter")
    page.wait_for_timeout(1000)
    assert submits == []
    expect(page.locator("#task-body")).to_be_focused()
    # Tab reaches the labels; a number answers with its label
    _tab_to(page, page.get_by_role("button", name="1: positive"))
    with page.expect_request(lambda request: "/submit" in request.url) as sent:
        page.keyboard.press("2")
    assert assignment_id in sent.value.url
    assert sent.value.post_data_json == {"label": "negative"}
    page.close()


ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def test_right_to_left_text_a_fresh_status_and_readable_times(stack, browser):
    title = "Hebrew reviews"
    client, _ = _job(stack, title=title, texts=["השירות היה מצוין", "המשלוח איחר בשבוע"],
                       lease_seconds=600)
    page = _signed_in(browser, stack, _worker_token(stack, "hebrew"))
    assignment_id = _start(page, title)
    # the item's text is laid out right to left
    item = page.locator("#task-body dd").first
    expect(item).to_have_attribute("dir", "auto")
    assert item.evaluate("element => getComputedStyle(element).direction") == "rtl"
    expect(page.locator("#task-title")).to_have_attribute("dir", "auto")
    _press(page, "1")
    expect(page.locator("#message")).to_have_text("Submitted. Next task.")
    # (a rejection's reason is in the worker's history at once; approvals come as settlements)
    client.request("POST", f"/assignments/{assignment_id}/reject", {"reason": "לא בעברית"})
    # the status said on the task does not follow the worker to Earnings
    page.locator("#to-earnings").click()
    expect(page.locator("#history")).to_contain_text("לא בעברית")
    expect(page.locator("#message")).to_have_text("")
    row = page.locator("#history tr").first
    reason = row.locator("td").nth(3)
    expect(reason).to_have_attribute("dir", "auto")
    assert reason.evaluate("element => getComputedStyle(element).direction") == "rtl"
    # times are for people: not ISO 8601, with the machine-readable time kept in <time>
    when = row.locator("td").first
    assert when.inner_text().strip()
    assert not ISO_TIME.search(when.inner_text())
    assert ISO_TIME.match(when.locator("time").get_attribute("datetime"))
    page.close()


def test_a_suite_is_one_page_answered_by_keyboard_and_submitted_once(stack, browser):
    # GIVEN a job of 6 items in suites of 3
    title = "Reviews three at a time"
    client, job = _job(stack, items=6, title=title, lease_seconds=600, suite_size=3)
    page = _signed_in(browser, stack, _worker_token(stack, "suites"))
    expect(page.locator("#job-list")).to_contain_text("3 tasks per page")
    submits = []
    page.on("request", lambda request: submits.append(request) if "/submit" in request.url else None)
    # WHEN the worker starts: one lease of a suite, its three tasks on one page
    start = page.get_by_role("button", name=f"Start working on {title}")
    with page.expect_response(lambda r: "/tasks/next" in r.url) as leased:
        start.click()
    assert "count=3" in leased.value.url
    first = [task["assignment_id"] for task in leased.value.json()["tasks"]]
    tasks = page.locator(".suite-task")
    expect(tasks).to_have_count(3)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    expect(tasks.nth(0)).to_be_focused()
    # the label keys answer the focused task and move on; N marks the focused one N/A
    page.keyboard.press("1")
    expect(tasks.nth(1)).to_be_focused()
    page.keyboard.press("n")
    expect(page.locator("#na-reason")).to_be_focused()
    page.keyboard.type("not a review")
    page.keyboard.press("Enter")
    expect(tasks.nth(2)).to_be_focused()
    expect(tasks.nth(1)).to_contain_text("Not applicable: not a review")
    page.keyboard.press("2")
    expect(page.locator("#submit-suite")).to_be_focused()
    assert submits == []  # nothing is sent before the page is
    # THEN one request submits the page and brings the next suite
    with page.expect_response(lambda r: r.url.endswith("/assignments/submit")) as sent:
        page.keyboard.press("Enter")
    assert sent.value.request.post_data_json == {
        "answers": [{"assignment_id": first[0], "answer": {"label": "positive"}},
                    {"assignment_id": first[1], "not_applicable": "not a review"},
                    {"assignment_id": first[2], "answer": {"label": "negative"}}],
        "next": {"count": 3, "job_id": job["job_id"]}}
    expect(page.locator("#message")).to_have_text("Submitted 3 answers. Next tasks.")
    expect(tasks).to_have_count(3)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    expect(tasks.nth(0)).to_be_focused()
    for key in ("2", "1", "1"):
        page.keyboard.press(key)
    expect(page.locator("#submit-suite")).to_be_focused()
    with page.expect_response(lambda r: r.url.endswith("/assignments/submit")):
        page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Nothing is left for you in that job")
    assert len(submits) == 2
    deadline = time.monotonic() + 20
    while client.job(job["job_id"])["counts"]["answered"] < 6 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert client.job(job["job_id"])["counts"]["answered"] == 6
    page.close()


def test_leaving_a_suite_gives_every_task_of_it_back(stack, browser):
    title = "A suite left behind"
    _, job = _job(stack, items=2, title=title, lease_seconds=600, suite_size=2)
    page = _signed_in(browser, stack, _worker_token(stack, "suite-leaver"))
    start = page.get_by_role("button", name=f"Start working on {title}")
    with page.expect_response(lambda r: "/tasks/next" in r.url):
        start.click()
    expect(page.locator(".suite-task")).to_have_count(2)
    page.locator("#leave").click()
    # both tasks go to the next worker now
    token = _worker_token(stack, "after the leaver")
    deadline = time.monotonic() + 10
    leased = []
    while len(leased) < 2 and time.monotonic() < deadline:
        _, suite = call(stack["base_url"], "GET", f"/tasks/next?job_id={job['job_id']}&count=2",
                        headers={"Authorization": f"Bearer {token}"})
        leased += suite["tasks"] if suite else []
        time.sleep(0.3)
    assert len(leased) == 2
    page.close()
