"""What the worker side's tests share: a HIT-shaped job on a served stack, a throwaway study
page server, and a worker's lease of a HIT over HTTP.

`hit` is the one place a HIT is made: boto3's create_hit."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from chalicelib.domain import mturk_ids
from tests.functional.mturk_stack import Requester, Served, external_question, requester

HTML_QUESTION = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[{html}]]></HTMLContent>'
    "<FrameHeight>{height}</FrameHeight></HTMLQuestion>")


def hit(server: Served, lab: Requester | None = None, *, external_url: str | None = None,
        html: str | None = None, max_assignments: int = 1, frame_height: int = 600,
        lease_seconds: int = 600, title: str = "A study") -> str:
    """A HIT (ExternalQuestion at external_url, or HTMLQuestion of html) made with boto3's
    create_hit by lab (a fresh requester if none); its HITId. It is Assignable on return."""
    if external_url is not None:
        question = external_question(external_url, frame_height)
    else:
        question = HTML_QUESTION.format(html=html, height=frame_height)
    made = (lab or requester(server)).mturk.create_hit(
        MaxAssignments=max_assignments, LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=lease_seconds, Reward="0.05", Title=title,
        Description="Take part.", Question=question)["HIT"]
    assert made["HITStatus"] == "Assignable"
    return made["HITId"]


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
