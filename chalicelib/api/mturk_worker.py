"""The worker side of MTurk-style HITs on the API's own origin: `POST /mturk/externalSubmit`
(where study pages post their answers: `turkSubmitTo` + "/mturk/externalSubmit"), the host of
HTMLQuestion content (sandboxed to an opaque origin), our stand-in for MTurk's
externalHIT_v1.js, and a HIT's preview for the worker page. None of them takes credentials:
externalSubmit is authorised by the assignment id, the rest show only what a preview shows."""
from __future__ import annotations

from collections.abc import Mapping
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from chalice import Blueprint, Response

from chalicelib.api.common import json_errors, note_error
from chalicelib.deps import platform
from chalicelib.domain import mturk_worker as pages
from chalicelib.errors import CrowdError, InvalidRequest, UnsupportedMediaType
from chalicelib.handlers import mturk_worker
from chalicelib.observability import count, logger

bp = Blueprint(__name__)

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# HTMLQuestion content runs with scripts, forms and popups but in an opaque origin (no
# allow-same-origin): served from the API's origin, it still cannot read the worker page's
# storage or call the API as the worker.
HTML_SANDBOX = ("sandbox allow-scripts allow-forms allow-popups "
                "allow-popups-to-escape-sandbox allow-modals")
# The submit pages run one inline script (the message to the worker page) and load nothing.
PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"


def public_base(request: Any) -> str:
    """The API's base URL as the client sees it, without a trailing slash: the scheme API
    Gateway was reached with, the Host, and the stage prefix (API Gateway's
    `requestContext.path` is the path the client sent; the route's own path is at its end)."""
    headers = request.headers or {}
    scheme = (headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
    context = request.context or {}
    path = context.get("path") or ""
    route = context.get("resourcePath") or ""
    for name, value in (request.uri_params or {}).items():
        route = route.replace("{" + name + "}", value)
    prefix = path[:len(path) - len(route)] if route and path.endswith(route) else ""
    return f"{scheme}://{headers.get('host', 'localhost')}{prefix}".rstrip("/")


def _html(body: str, status: int = 200, policy: str = PAGE_POLICY) -> Response:
    return Response(body=body, status_code=status, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
        "Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer"})


@bp.route("/mturk/externalSubmit", methods=["POST"], content_types=[FORM, MULTIPART])
def external_submit() -> Response:
    """A study page's answers for an accepted HIT (MTurk's externalSubmit): form or multipart
    fields, stored as QuestionFormAnswers XML for the worker holding the assignment named by
    `assignmentId` (in the body or the query string). Answers an HTML page either way."""
    request = bp.current_request
    try:
        raw = request.raw_body or b""
        fields = posted_fields(request.headers.get("content-type") or "",
                               raw.encode("utf-8") if isinstance(raw, str) else raw)
        assignment = next((value for name, value in fields if name == "assignmentId"), None) \
            or _query(request.query_params).get("assignmentId")
        stored = mturk_worker.submit_external(platform(), assignment, fields)
    except CrowdError as error:
        note_error(error, "external submit")
        return _html(pages.problem_page(error.message), error.status)
    except Exception:
        logger.exception("external submit failed")
        return _html(pages.problem_page("the service failed; try again in a moment"), 500)
    count("Submissions")
    logger.debug("external submit stored", extra={"duplicate": stored.duplicate})
    return _html(pages.submitted_page(stored.assignment_id))


def _query(query: Any) -> Mapping[str, str]:
    return dict(query or {})


def posted_fields(content_type: str, raw: bytes) -> list[tuple[str, str]]:
    """A form post's (name, value) fields in posted order: URL-encoded or multipart (parsed
    with the standard library's MIME parser; a file field's value is its file name)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == FORM:
        return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    if kind != MULTIPART:
        raise UnsupportedMediaType(f"post the form as {FORM} or {MULTIPART}",
                                   field="Content-Type")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("utf-8", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise InvalidRequest("the multipart body could not be read (is its boundary right?)",
                             field="body")
    parts = message.get_payload()
    return [field for part in parts if isinstance(part, Message)
            and (field := _part_field(part)) is not None]


def _part_field(part: Message) -> tuple[str, str] | None:
    """One multipart part as a form field; None for a part without a name."""
    name = part.get_param("name", header="content-disposition")
    if not isinstance(name, str):
        return None
    filename = part.get_param("filename", header="content-disposition")
    if isinstance(filename, str):
        return _text(name), _text(filename)
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return _text(name), data.decode(part.get_content_charset() or "utf-8", "replace")


def _text(value: str) -> str:
    """A header parameter as text: browsers send names in raw UTF-8, which the MIME parser
    keeps as escaped bytes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@bp.route("/mturk/html/{HITId}", methods=["GET"])
def hosted_html(HITId: str) -> Response:  # noqa: N803 - the path parameter is MTurk's name
    """An HTMLQuestion HIT's HTML, as MTurk hosted it (the page reads assignmentId, hitId,
    turkSubmitTo and workerId from its URL), sandboxed to an opaque origin."""
    request = bp.current_request
    try:
        content = mturk_worker.hosted_content(platform(), HITId)
    except CrowdError as error:
        return _html(pages.message_page("No such HIT", error.message), error.status)
    return _html(pages.hosted_html(content, public_base(request)), policy=HTML_SANDBOX)


@bp.route("/mturk/externalHIT_v1.js", methods=["GET"])
def external_hit_script() -> Response:
    """Our stand-in for MTurk's externalHIT_v1.js (turkGetParam, turkSetAssignmentID), which
    HTMLQuestions we host load instead of AWS's copy."""
    return Response(body=pages.EXTERNAL_HIT_SCRIPT, status_code=200, headers={
        "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "max-age=3600",
        "X-Content-Type-Options": "nosniff"})


@bp.route("/mturk/preview/{HITId}", methods=["GET"])
@json_errors
def preview(HITId: str) -> dict:  # noqa: N803 - the path parameter is MTurk's name
    """A HIT as a worker previews it: its question kind, frame height, and the URL to frame
    (with assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE, hitId and turkSubmitTo)."""
    job, item = mturk_worker.hit_item(platform(), HITId)
    return pages.preview(job, item.data, public_base(bp.current_request))
