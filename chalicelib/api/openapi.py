"""The OpenAPI 3.1 document of the whole API, built from the app's own routes (so it cannot
miss one): each operation's summary is its handler's docstring, its security the role the
route serves, and every error shares the one JSON error shape."""
from __future__ import annotations

import re
from typing import Any

from chalice import Blueprint, Chalice

from chalicelib.domain.leasing import MAX_SUITE_SIZE
from chalicelib.domain.locales import COUNTRIES
from chalicelib.domain.model import TASK_TYPES
from chalicelib.domain.webhooks import EVENT_TYPES

bp = Blueprint(__name__)

# `POST /mturk` authenticates by its SigV4 signature (a requester key), not by X-Api-Key;
# `/mturk/externalSubmit` by the assignment id it names (study pages post it cross-site);
# a HIT's preview, hosted HTML and script are what MTurk showed anyone.
PUBLIC = {("POST", "/workers"), ("GET", "/work"), ("GET", "/openapi.json"), ("POST", "/mturk"),
          ("POST", "/mturk/externalSubmit"), ("GET", "/mturk/html/{HITId}"),
          ("GET", "/mturk/externalHIT_v1.js"), ("GET", "/mturk/preview/{HITId}")}
WORKER_PREFIXES = ("/workers/me", "/tasks", "/qualifications")
ERROR = {"type": "object", "required": ["error", "message"],
         "properties": {"error": {"type": "string", "description": "a stable error code"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "the field at fault, if any"}}}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


_TEXT = {"type": "string", "minLength": 1}
# A worker's country and subdivision (null clears; either case is taken, stored upper case).
_LOCALE = {"country": {"description": "ISO 3166-1 alpha-2", "enum": [*sorted(COUNTRIES), None]},
           "subdivision": {"description": "the ISO 3166-2 code's part after the hyphen",
                           "type": ["string", "null"], "pattern": "^[A-Za-z0-9]{1,3}$"}}
_ANSWER = {"type": "object", "description": "one of {label}, {value}, {text} or "
                                            "{not_applicable: {reason}}",
           "maxProperties": 1, "minProperties": 1,
           "properties": {"label": {"type": "string"}, "value": {"type": "number"},
                          "text": {"type": "string"},
                          "not_applicable": {"type": "object",
                                             "properties": {"reason": {"type": "string"}}}}}
# Query parameters a route reads (routes not named here read none, or only paging's).
QUERY_PARAMETERS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/tasks/next"): [
        {"name": "job_id", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "lease from this job only"},
        {"name": "count", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SUITE_SIZE},
         "description": "lease a suite of up to this many tasks of one job (at most its "
                        "suite_size); without it, one task"}],
}
# The bodies the handlers read, as JSON Schema (the handlers check more: ranges that depend on
# the quote or the job, label sets, sizes). Routes not named here take an optional object.
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/quotes"): _object({
        "task_type": {"enum": list(TASK_TYPES)}, "items": {"type": "integer", "minimum": 1},
        "redundancy": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 10},
                                 _object({"min": {"type": "integer"}, "max": {"type": "integer"},
                                          "target_confidence": {"type": "number"}})]},
        "reward_cents": {"type": "integer", "minimum": 1}, "cohort": _TEXT,
        "gold_rate": {"type": "number", "minimum": 0, "maximum": 0.5}},
        ("task_type", "items")),
    ("POST", "/uploads"): _object({
        "format": {"enum": ["jsonl", "csv"]}, "bytes": {"type": "integer", "minimum": 1},
        "multipart": {"type": "boolean"},
        "part_bytes": {"type": "integer", "minimum": 5 * 1024 * 1024}},
        ("format", "bytes")),
    ("POST", "/uploads/{upload_id}/parts"): _object({
        "parts": {"type": "array", "minItems": 1, "maxItems": 100,
                  "items": {"type": "integer", "minimum": 1}}}, ("parts",)),
    ("POST", "/uploads/{upload_id}/complete"): _object({
        "parts": {"type": "array", "items": _object({
            "part_number": {"type": "integer", "minimum": 1}, "etag": _TEXT},
            ("part_number", "etag"))}}),
    ("POST", "/jobs"): _object({
        "quote_id": _TEXT, "title": {"type": "string"}, "instructions": _TEXT,
        "items": {"type": "array", "items": _object({
            "data": {"type": "object"}, "external_id": {"type": "string"}, "gold": _ANSWER},
            ("data",))},
        "answer_schema": {"type": "object"}, "not_applicable": {
            "enum": ["allowed_with_reason", "not_allowed"]},
        "lease_seconds": {"type": "integer"}, "deadline": {"type": "string"},
        "required_skills": {"type": "array", "items": {"type": "string"}},
        "report": {"type": "object"}, "pilot": {"type": "object"},
        "promotion": {"type": "object"}, "quality": {"type": "object"},
        "auto_approve_seconds": {"type": "integer"}, "min_skill_scores": {"type": "object"},
        "suite_size": {"type": "integer", "minimum": 1, "maximum": MAX_SUITE_SIZE},
        "callback_url": {"type": "string", "format": "uri"},
        "items_from": _object({"upload_id": _TEXT}, ("upload_id",)),
        "skip_bad_lines": {"type": "boolean"}},
        ("quote_id", "instructions", "answer_schema")),
    ("POST", "/assignments/{assignment_id}/submit"): _ANSWER,
    ("POST", "/assignments/submit"): _object({
        "answers": {"type": "array", "minItems": 1, "maxItems": MAX_SUITE_SIZE,
                    "description": "each assignment at most once",
                    "items": {"type": "object", "required": ["assignment_id"],
                              "additionalProperties": False,
                              "minProperties": 2, "maxProperties": 2,
                              "properties": {
                                  "assignment_id": _TEXT, "answer": _ANSWER,
                                  "not_applicable": {"oneOf": [_TEXT, _object(
                                      {"reason": _TEXT}, ("reason",))]}}}},
        "next": _object({"count": {"type": "integer", "minimum": 1, "maximum": MAX_SUITE_SIZE},
                         "job_id": _TEXT})}, ("answers",)),
    ("POST", "/assignments/{assignment_id}/reject"): _object({"reason": _TEXT}, ("reason",)),
    ("POST", "/assignments/{assignment_id}/approve"): _object({"reason": {"type": "string"}}),
    ("POST", "/jobs/{job_id}/approve"): _object({"submitted_before": {"type": "string"}}),
    ("POST", "/jobs/{job_id}/bonuses"): _object({
        "worker_id": _TEXT, "amount_cents": {"type": "integer", "minimum": 1},
        "reason": _TEXT, "bonus_id": _TEXT}, ("worker_id", "amount_cents", "bonus_id")),
    ("POST", "/jobs/{job_id}/promote"): _object({"instructions": _TEXT, "reason": _TEXT}),
    ("POST", "/workers"): _object({"name": _TEXT, "skills": {
        "type": "array", "items": {"type": "string"}}, **_LOCALE}, ("name",)),
    ("PATCH", "/workers/me"): {**_object(_LOCALE), "minProperties": 1},
    ("POST", "/operator/accounts"): _object({"role": {"enum": ["client", "operator"]},
                                             "name": _TEXT}, ("role", "name")),
    ("POST", "/webhooks/endpoints"): _object({
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": {"enum": list(EVENT_TYPES)}},
        "description": {"type": "string", "maxLength": 200}}, ("url",)),
}


# `POST /mturk` speaks MTurk's protocol, not this API's: AWS JSON 1.1 bodies (the operation in
# X-Amz-Target), SigV4 in Authorization, errors in MTurk's shape (docs/mturk.md).
_MTURK_JSON = "application/x-amz-json-1.1"
_MTURK_ERROR = {"content": {_MTURK_JSON: {"schema": {
    "type": "object", "required": ["__type", "Message"],
    "properties": {"__type": {"type": "string"}, "Message": {"type": "string"},
                   "TurkErrorCode": {"type": "string"}}}}}}
MTURK_OPERATION: dict[str, Any] = {
    "parameters": [{"name": "X-Amz-Target", "in": "header", "required": True,
                    "schema": {"type": "string"},
                    "description": "MTurkRequesterServiceV20170117.<Operation>"}],
    "requestBody": {"required": False, "content": {_MTURK_JSON: {"schema": {"type": "object"}}}},
    "responses": {"200": {"description": "the operation's output, as MTurk's"},
                  "4XX": {"description": "refused, in MTurk's error shape", **_MTURK_ERROR},
                  "5XX": {"description": "ServiceFault; botocore retries it", **_MTURK_ERROR}},
}

# The worker side of HITs answers pages, not JSON: study pages post HTML forms to
# externalSubmit and read its page; the HTML host and the script are loaded by browsers.
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_FORM_FIELDS = {"type": "object", "properties": {"assignmentId": {"type": "string"}},
                "additionalProperties": {"type": "string"}}
MTURK_WORKER_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/mturk/externalSubmit"): {
        "parameters": [{"name": "assignmentId", "in": "query", "required": False,
                        "schema": {"type": "string"},
                        "description": "the MTurk AssignmentId, when not in the body"}],
        "requestBody": {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": _FORM_FIELDS},
            "multipart/form-data": {"schema": _FORM_FIELDS}}},
        "responses": {
            "200": {"description": "stored (or stored before): a page that tells the worker "
                                   "page", "content": _PAGE},
            "4XX": {"description": "refused: a page saying why (the JSON error shape for a "
                                   "body that is not a form)",
                    "content": {**_PAGE, "application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}}}},
            "5XX": {"description": "the platform failed", "content": _PAGE}}},
    ("GET", "/mturk/html/{HITId}"): {"responses": {
        "200": {"description": "the HTMLQuestion's HTML, sandboxed", "content": _PAGE},
        "4XX": {"description": "no such HIT", "content": {**_PAGE, "application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}}},
    ("GET", "/mturk/externalHIT_v1.js"): {"responses": {
        "200": {"description": "the script", "content": {
            "text/javascript": {"schema": {"type": "string"}}}},
        "4XX": {"description": "refused", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}}},
}


def role_of(method: str, path: str) -> str | None:
    """Who may call a route: "client", "worker", "operator", or None for anyone."""
    if (method, path) in PUBLIC:
        return None
    if path.startswith("/operator"):
        return "operator"
    if path.startswith(WORKER_PREFIXES) or (path.startswith("/assignments")
                                            and path.endswith(("/submit", "/release"))):
        return "worker"
    return "client"


def document(app: Chalice) -> dict[str, Any]:
    """The OpenAPI document for every route of app."""
    paths: dict[str, Any] = {}
    for path, entries in sorted(app.routes.items()):
        for method, entry in sorted(entries.items()):
            role = role_of(method, path)
            summary = (entry.view_function.__doc__ or "").strip().split("\n\n")[0]
            operation: dict[str, Any] = {
                "operationId": entry.view_name, "summary": " ".join(summary.split()),
                "tags": [role or "public"],
                "parameters": [{"name": name, "in": "path", "required": True,
                                "schema": {"type": "string"}}
                               for name in re.findall(r"{(\w+)}", path)]
                              + QUERY_PARAMETERS.get((method, path), []),
                "responses": {
                    "200": {"description": "success (201 for a creation, 202 for a posted job, "
                                           "204 when there is no task)"},
                    "4XX": {"description": "refused; the body names the problem",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "5XX": {"description": "the platform failed; retry later",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            }
            if role is not None:
                operation["security"] = [{"workerToken": []}] if role == "worker" else [{"apiKey": []}]
            if (method, path) == ("POST", "/mturk"):
                operation.update(MTURK_OPERATION)
            elif (method, path) in MTURK_WORKER_OPERATIONS:
                operation.update(MTURK_WORKER_OPERATIONS[(method, path)])
            elif method in ("POST", "PUT"):
                schema = REQUEST_BODIES.get((method, path))
                operation["requestBody"] = {"required": schema is not None, "content": {
                    "application/json": {"schema": schema or {"type": "object"}}}}
                operation["parameters"].append({
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "schema": {"type": "string", "maxLength": 255}})
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Crowd-work marketplace API", "version": "1",
                 "description": "Clients buy labelled language data; workers do the tasks; "
                                "operators run the platform. See the README for each call."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                           "description": "a client or operator key"},
                "workerToken": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.route("/openapi.json", methods=["GET"])
def openapi() -> dict:
    """This API's OpenAPI document."""
    return document(bp.current_app)
