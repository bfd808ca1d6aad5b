"""API Gateway's own answers in the platform's error shape.

API Gateway answers some requests before the app runs: a path or method the API does not have
(its `403 {"message": "Missing Authentication Token"}`), a missing or unknown client key, a
key over its rate or daily quota, a body over its size limit. `make deploy` sets a gateway
response for each after `chalice deploy` (the REST API exists only then, and Chalice's import
of the API definition may drop them), and deploys the stage again when one changed, so they
answer `{"error", "message", "field"?}` like the app. A second run changes nothing.

The local stack's server answers an unknown route with the same body (infra/api_server.py).
"""
from __future__ import annotations

import json
from typing import Any

# API Gateway's own text of the error, a quoted JSON string.
GATEWAY_MESSAGE = "$context.error.messageString"
NOT_FOUND_BODY = {"error": "not_found", "message": "no such route: check the method and the path"}

# Response type -> (status code, or None to keep API Gateway's; the body).
RESPONSES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "MISSING_AUTHENTICATION_TOKEN": ("404", NOT_FOUND_BODY),
    "INVALID_API_KEY": ("403", {
        "error": "invalid_credentials",
        "message": "send a client key of this stage in the 'X-Api-Key' header (worker tokens "
                   "go in 'Authorization: Bearer <token>')",
        "field": "X-Api-Key"}),
    "ACCESS_DENIED": ("403", {"error": "forbidden", "message": GATEWAY_MESSAGE}),
    "THROTTLED": ("429", {"error": "rate_limited",
                          "message": "too many requests with this key: retry with back-off"}),
    "QUOTA_EXCEEDED": ("429", {"error": "rate_limited",
                               "message": "this key's daily quota is used up"}),
    "REQUEST_TOO_LARGE": ("413", {"error": "payload_too_large", "message": GATEWAY_MESSAGE,
                                  "field": "body"}),
    "UNSUPPORTED_MEDIA_TYPE": ("415", {
        "error": "unsupported_media_type",
        "message": "send the body as JSON with the header 'Content-Type: application/json'",
        "field": "Content-Type"}),
    "INTEGRATION_TIMEOUT": ("504", {"error": "try_again",
                                    "message": "the request took too long; try again"}),
    "DEFAULT_4XX": (None, {"error": "invalid_request", "message": GATEWAY_MESSAGE}),
    "DEFAULT_5XX": (None, {"error": "internal_error", "message": GATEWAY_MESSAGE}),
}


def template(body: dict[str, Any]) -> str:
    """The response template of body: JSON, with API Gateway's message where it is named."""
    text = json.dumps(body, separators=(", ", ": "))
    return text.replace(json.dumps(GATEWAY_MESSAGE), GATEWAY_MESSAGE)


def _current(apigateway: Any, rest_api_id: str, response_type: str) -> dict[str, Any] | None:
    try:
        return apigateway.get_gateway_response(restApiId=rest_api_id, responseType=response_type)
    except apigateway.exceptions.NotFoundException:
        return None


def ensure_gateway_responses(apigateway: Any, rest_api_id: str, api_stage: str) -> list[str]:
    """Set every gateway response that differs from RESPONSES, then deploy the stage again if
    any did (a stage serves the responses of its last deployment); the types set."""
    changed = []
    for response_type, (status, body) in RESPONSES.items():
        wanted = {"application/json": template(body)}
        current = _current(apigateway, rest_api_id, response_type) or {}
        if current.get("statusCode") == status and current.get("responseTemplates") == wanted \
                and not current.get("defaultResponse"):
            continue
        apigateway.put_gateway_response(
            restApiId=rest_api_id, responseType=response_type, responseTemplates=wanted,
            **({"statusCode": status} if status else {}))
        changed.append(response_type)
    if changed:
        apigateway.create_deployment(restApiId=rest_api_id, stageName=api_stage,
                                     description="gateway responses in the error shape")
    return changed
