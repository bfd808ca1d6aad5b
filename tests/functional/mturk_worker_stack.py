"""What the worker side's tests share: a HIT-shaped job on a served stack, a throwaway study
page server, and a worker's lease of a HIT over HTTP.

`hit` is the one place a HIT is made: a job of one `collection` item holding the question
and what was parsed from it, with `Job.mturk` set and the answer schema HITs get, as
CreateHIT makes them. Once CreateHIT is served, it becomes a call to boto3's `create_hit`."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from chalicelib.adapters.models import JobModel
from chalicelib.deps import platform
from chalicelib.domain import mturk_ids
from chalicelib.domain.model import CLIENT
from chalicelib.handlers.accounts import create_account
from tests.functional.mturk_stack import Served, call

EXTERNAL_QUESTION = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>{url}</ExternalURL>'
    "<FrameHeight>{height}</FrameHeight></ExternalQuestion>")
HTML_QUESTION = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[{html}]]></HTMLContent>'
    "<FrameHeight>{height}</FrameHeight></HTMLQuestion>")


def hit(server: Served, client_key: str | None = None, *, external_url: str | None = None,
        html: str | None = None, max_assignments: int = 1, frame_height: int = 600,
        lease_seconds: int = 600, title: str = "A study") -> str:
    """A HIT (ExternalQuestion at external_url, or HTMLQuestion of html) as CreateHIT makes
    one; its HITId. The job is made through the client API, given Job.mturk while its item
    is still being written, and is active when this returns."""
    key = client_key or create_account(platform(), CLIENT, "Lab")[1]
    if external_url is not None:
        data: dict[str, Any] = {"question": EXTERNAL_QUESTION.format(
            url=external_url.replace("&", "&amp;"), height=frame_height),
            "external_url": external_url, "frame_height": frame_height}
        kind = "external"
    else:
        data = {"question": HTML_QUESTION.format(html=html, height=frame_height),
                "html": html, "frame_height": frame_height}
        kind = "html"
    quote = call(server, "POST", "/quotes", key, json={
        "task_type": "collection", "items": 1, "redundancy": max_assignments,
        "reward_cents": 5, "gold_rate": 0})
    assert quote.status_code == 201, quote.text
    posted = call(server, "POST", "/jobs", key, json={
        "quote_id": quote.json()["quote_id"], "title": title, "instructions": "Take part.",
        "answer_schema": {"min_length": 1, "max_length": 5000}, "items": [{"data": data}],
        "lease_seconds": lease_seconds, "pilot": {"items": 0}})
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job_id"]
    JobModel(job_id).update(actions=[
        JobModel.mturk.set({"hit_type_id": "T" * 30, "requirements": [], "question": kind,
                            "frame_height": frame_height}),
        JobModel.answer_schema.set({"min_length": 0,
                                    "max_length": min(16000, 300000 // max_assignments)})])
    server.stack.drain()
    deadline = time.monotonic() + 20
    while call(server, "GET", f"/jobs/{job_id}", key).json()["state"] != "active":
        assert time.monotonic() < deadline, "the HIT's job never became active"
        server.stack.drain()
        time.sleep(0.05)
    return mturk_ids.hit_id(job_id)


def lease(server: Served, token: str, hit_id: str) -> requests.Response:
    """Accept a HIT as a worker: a lease in its job."""
    job_id = mturk_ids.job_of_hit(hit_id)
    return requests.get(f"{server.url}/tasks/next?job_id={job_id}",
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


STUDY_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Study</title></head>
<body><form id="study" method="post">
<input type="hidden" name="assignmentId" id="assignmentId">
<label>Your answer <input name="answer" id="answer"></label>
<input type="hidden" name="condition" value="B">
<button id="submitButton" type="submit">Submit</button></form>
<script>
var q = new URLSearchParams(location.search);
document.getElementById("assignmentId").value = q.get("assignmentId");
document.getElementById("study").action = q.get("turkSubmitTo") + "/mturk/externalSubmit";
if (q.get("assignmentId") === "ASSIGNMENT_ID_NOT_AVAILABLE")
  document.getElementById("submitButton").disabled = true;
document.title = "Study " + (q.get("workerId") || "preview");
</script></body></html>"""


# psiTurk's way: the framed ad opens the experiment in a popup, which posts the answers.
AD_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Ad</title></head>
<body><button id="open" type="button">Begin in a new window</button>
<script>
document.getElementById("open").onclick = function () {
  window.open(location.href.replace("/ad", "/study"), "experiment", "width=800,height=600");
};
</script></body></html>"""


@contextmanager
def study_server() -> Iterator[tuple[str, list[str]]]:
    """A small study page on 127.0.0.1 (another origin than the API): it reads MTurk's
    parameters and posts its form to turkSubmitTo + "/mturk/externalSubmit" (under `/ad`, a
    page that opens it in a popup). Yields its URL and the request paths it served."""
    seen: list[str] = []

    class Study(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)
            body = (AD_PAGE if self.path.startswith("/ad") else STUDY_PAGE).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Study)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/study?mode=live", seen
    finally:
        server.shutdown()
        server.server_close()
