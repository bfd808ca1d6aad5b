"""The OpenAPI 3.1 document of the whole API, built from the app's own routes (so it cannot
miss one): each operation's summary is its handler's docstring, its security the role the
route serves, and every error shares the one JSON error shape."""
from __future__ import annotations

import re
from typing import Any

from chalice import Blueprint, Chalice

bp = Blueprint(__name__)

PUBLIC = {("POST", "/workers"), ("GET", "/work"), ("GET", "/openapi.json")}
WORKER_PREFIXES = ("/workers/me", "/tasks", "/qualifications")
ERROR = {"type": "object", "required": ["error", "message"],
         "properties": {"error": {"type": "string", "description": "a stable error code"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "the field at fault, if any"}}}


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
                               for name in re.findall(r"{(\w+)}", path)],
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
            if method in ("POST", "PUT"):
                operation["requestBody"] = {"required": False, "content": {
                    "application/json": {"schema": {"type": "object"}}}}
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
