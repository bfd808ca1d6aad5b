"""The worker side of MTurk-style HITs, without I/O: the URL a HIT's question is framed at
(ExternalQuestion: the requester's page; HTMLQuestion: our host of its HTML) with MTurk's
four parameters appended CGI-style, what a leased HIT task carries for the worker page, the
pages `/mturk/externalSubmit` answers with, and the rewriting of AWS-hosted script and
submit URLs inside HTML we host."""
from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from chalicelib.domain import mturk_ids
from chalicelib.domain.model import Job

PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
EXTERNAL, HTML, FORM = "external", "html", "form"
SUBMIT_PATH = "/mturk/externalSubmit"
SCRIPT_PATH = "/mturk/externalHIT_v1.js"
PROBLEM = "There was a problem submitting your results for this HIT"
SUBMITTED = "Submitted, you may close this window"

# MTurk's own script for HTML forms, which tasks load from AWS, and the hard-coded submit
# addresses of MTurk's live and sandbox sites: both point at this platform in HTML we host.
_AWS_SCRIPT = re.compile(r"(?:https?:)?//s3\.amazonaws\.com/mturk-public/externalHIT_v1\.js",
                         re.IGNORECASE)
_MTURK_SUBMIT = re.compile(r"(?:https?:)?//(?:www|workersandbox)\.mturk\.com/mturk/externalSubmit",
                           re.IGNORECASE)


def question_kind(job: Job, data: dict[str, Any]) -> str:
    """external, html or form: as the HIT was made (Job.mturk), else from its item's data."""
    kind = job.mturk.get("question")
    if kind in (EXTERNAL, HTML, FORM):
        return str(kind)
    return EXTERNAL if "external_url" in data else HTML if "html" in data else FORM


def frame_height(job: Job, data: dict[str, Any]) -> int:
    """The HIT's FrameHeight in pixels; 0 means: fill the window."""
    value = data.get("frame_height", job.mturk.get("frame_height", 0))
    return value if isinstance(value, int) and value > 0 else 0


def with_parameters(url: str, parameters: dict[str, str]) -> str:
    """url with parameters appended CGI-style: its own query kept, one `?` then `&`, before
    any fragment (values URL-encoded, so turkSubmitTo reads `https%3A%2F%2F...`)."""
    parts = urlsplit(url)
    added = urlencode(parameters)
    query = f"{parts.query}&{added}" if parts.query.strip("&") else added
    return urlunsplit(parts._replace(query=query))


def html_url(submit_to: str, hit_id: str) -> str:
    """Where this platform serves an HTMLQuestion's HTMLContent."""
    return f"{submit_to}/mturk/html/{hit_id}"


def frame_url(job: Job, data: dict[str, Any], submit_to: str,
              assignment_id: str = PREVIEW_ASSIGNMENT, worker_id: str | None = None
              ) -> str | None:
    """The URL the worker page frames for a HIT: in preview (no assignment) the assignment id
    ASSIGNMENT_ID_NOT_AVAILABLE and no workerId; None for a question this platform cannot
    show (QuestionForm)."""
    hit = mturk_ids.hit_id(job.job_id)
    parameters = {"assignmentId": assignment_id, "hitId": hit, "turkSubmitTo": submit_to}
    if worker_id is not None:
        parameters["workerId"] = worker_id
    kind = question_kind(job, data)
    if kind == EXTERNAL and isinstance(data.get("external_url"), str):
        return with_parameters(data["external_url"], parameters)
    if kind == HTML:
        return with_parameters(html_url(submit_to, hit), parameters)
    return None


def preview(job: Job, data: dict[str, Any], submit_to: str) -> dict[str, Any]:
    """A HIT as a worker previews it, before accepting."""
    kind = question_kind(job, data)
    return {"hit_id": mturk_ids.hit_id(job.job_id), "question": kind,
            "external_url": data.get("external_url") if kind == EXTERNAL else None,
            "html": kind == HTML, "frame_height": frame_height(job, data),
            "turk_submit_to": submit_to, "frame_url": frame_url(job, data, submit_to)}


def leased(job: Job, data: dict[str, Any], assignment_id: str, worker_account: str,
           submit_to: str) -> dict[str, Any]:
    """What a leased HIT task carries for the worker page: the HIT's MTurk ids, the
    worker's, and the question framed with the real assignment."""
    mturk_assignment = mturk_ids.assignment_id(assignment_id)
    worker = mturk_ids.worker_id(worker_account)
    return {**preview(job, data, submit_to), "assignment_id": mturk_assignment,
            "worker_id": worker,
            "frame_url": frame_url(job, data, submit_to, mturk_assignment, worker)}


def hosted_html(content: str, submit_to: str) -> str:
    """An HTMLQuestion's HTMLContent as we serve it: MTurk's externalHIT_v1.js replaced by
    ours, and MTurk's hard-coded externalSubmit addresses by this platform's."""
    content = _AWS_SCRIPT.sub(lambda _: submit_to + SCRIPT_PATH, content)
    return _MTURK_SUBMIT.sub(lambda _: submit_to + SUBMIT_PATH, content)


def _page(title: str, body: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            "<style>body{font:16px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430}</style>"
            f"</head><body>{body}</body></html>")


def submitted_page(assignment_id: str) -> str:
    """The page a stored submission gets, in a frame or a popup alike: it tells the worker
    page (its parent, its opener, and any page of this origin listening on the
    `crowd-mturk` channel) that the assignment was submitted; a top-level window says it
    may be closed."""
    message = json.dumps({"type": "assignmentSubmitted", "assignmentId": assignment_id})
    # In a <script>, "</" must not appear: JSON's \u escape keeps it out.
    message = message.replace("<", "\\u003c").replace(">", "\\u003e")
    script = (
        "<script>(function(){var m=" + message + ";"
        "try{if(window.parent&&window.parent!==window)window.parent.postMessage(m,'*');}catch(e){}"
        "try{if(window.opener)window.opener.postMessage(m,'*');}catch(e){}"
        "try{var c=new BroadcastChannel('crowd-mturk');c.postMessage(m);c.close();}catch(e){}"
        "if(window.top===window)document.getElementById('status').textContent="
        + json.dumps(SUBMITTED) + ";})();</script>")
    return _page("Submitted", '<p id="status" role="status">Submitted.</p>' + script)


def problem_page(reason: str) -> str:
    """The page a refused submission gets (MTurk's wording, then why)."""
    return _page(PROBLEM, f"<h1>{html.escape(PROBLEM)}</h1><p>{html.escape(reason)}</p>")


def message_page(title: str, text: str) -> str:
    """A plain page for the HTML host's refusals (no such HIT...)."""
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>")


# A clean-room stand-in for MTurk's externalHIT_v1.js: the two functions HTML forms call.
EXTERNAL_HIT_SCRIPT = r"""/* MTurk-style HIT forms: turkGetParam(name, fallback) reads a parameter of this page's URL;
   turkSetAssignmentID(formId, buttonId) fills the #assignmentId field, posts the form to
   turkSubmitTo + "/mturk/externalSubmit", and in preview disables the submit button. */
(function () {
  "use strict";
  var PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE";
  // This platform's base URL, where this script is served: the fallback for turkSubmitTo.
  var script = document.currentScript ? document.currentScript.src : "";
  var HOME = script.replace(/\/mturk\/externalHIT_v1\.js([?#].*)?$/, "");
  function turkGetParam(name, fallback) {
    var value = new URLSearchParams(window.location.search).get(name);
    return value === null || value === "" ? fallback : value;
  }
  function turkSetAssignmentID(formId, buttonId) {
    var assignment = turkGetParam("assignmentId", "");
    var field = document.getElementById("assignmentId");
    if (field) { field.value = assignment; }
    var button = document.getElementById(buttonId || "submitButton");
    if (button && assignment === PREVIEW) {
      button.disabled = true;
      if ("value" in button) { button.value = "You must accept this HIT before you can submit"; }
    }
    var form = document.getElementById(formId || "mturk_form") ||
      (field && field.form) || document.forms[0];
    if (form) {
      form.action = turkGetParam("turkSubmitTo", HOME).replace(/\/+$/, "") + "/mturk/externalSubmit";
    }
  }
  window.turkGetParam = turkGetParam;
  window.turkSetAssignmentID = turkSetAssignmentID;
}());
"""
