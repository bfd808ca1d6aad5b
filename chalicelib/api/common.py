"""What every route shares: JSON bodies, credentials, and errors as JSON."""
from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.deps import platform
from chalicelib.errors import (
    CrowdError, InvalidRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType,
)
from chalicelib.observability import correlated, count, logger

MAX_BODY_BYTES = 5 * 1024 * 1024
JSON_ONLY = "send the body as JSON with the header 'Content-Type: application/json'"
CLIENT_KEY_HEADER = "x-api-key"


def json_body(request: Any) -> Any:
    """The request's JSON body; 413 before parsing anything oversize, 400/415 when not JSON."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes", field="body")
    content_type = (request.headers.get("content-type") or "application/json").lower()
    if not content_type.startswith("application/json"):
        raise UnsupportedMediaType(f"{JSON_ONLY} (got {content_type[:100]!r})", field="Content-Type")
    if not raw.strip():
        raise InvalidRequest("a JSON body is required", field="body")
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("the body is not valid JSON", field="body",
                             code="malformed_json") from None
    if _SURROGATE_ESCAPE.search(raw):  # only a \uD800-\uDFFF escape can spell one
        refuse_invalid_text(body)
    return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def refuse_invalid_text(value: Any, path: str = "", container: str = "the body") -> None:
    """InvalidRequest naming a string (or an object's key) in value that is not valid
    Unicode text: JSON's escapes can spell a lone surrogate ("\\ud800"), which no store, log
    or receiver can encode. One rule for every body, query string and path parameter."""
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:  # a loop, not recursion: bodies may nest as deep as the parser allows
        where, current = pending.pop()
        if isinstance(current, str):
            _check_text(current, where, f"'{where or 'body'}'")
        elif isinstance(current, dict):
            for key, inner in current.items():
                _check_text(key, where, f"a key of '{where}'" if where else f"a name in {container}")
                pending.append((f"{where}.{key}" if where else key, inner))
        elif isinstance(current, list):
            pending.extend((f"{where}[{index}]", inner) for index, inner in enumerate(current))


def _check_text(text: str, field: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} is not valid Unicode text: it holds an unpaired "
                             "surrogate (\\ud800-\\udfff)", field=field or "body") from None


def refuse_invalid_parameters(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: query strings and path parameters follow the same text rule as bodies,
    before any route runs."""
    query = event.query_params or {}
    try:
        for name in query:  # every value of a repeated parameter
            for value in query.getlist(name) if hasattr(query, "getlist") else [query[name]]:
                refuse_invalid_text({name: value}, container="the query string")
        refuse_invalid_text(dict(event.uri_params or {}), container="the path")
    except InvalidRequest as error:
        return error_response(error)
    return get_response(event)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to infinity
        raise ValueError(f"{text} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; accepting them would send invalid JSON to workers.
    raise ValueError(f"{name} is not allowed")


def client_secret(request: Any) -> str:
    """The client or operator API key from its header; 401 missing_credentials naming the
    header when there is none (and saying so when the key came as a bearer token)."""
    secret = request.headers.get(CLIENT_KEY_HEADER)
    if secret:
        return secret
    sent = _authorization_token(request)
    if sent.startswith(("ck_", "ok_")):
        raise Unauthorized("missing credentials: send a client or operator key in the "
                           "'X-Api-Key' header, not in 'Authorization' (that is for worker "
                           "tokens)", code="missing_credentials", field="X-Api-Key")
    raise Unauthorized("missing credentials: send your API key in the 'X-Api-Key' header",
                       code="missing_credentials", field="X-Api-Key")


def worker_secret(request: Any) -> str:
    """The worker token from 'Authorization: Bearer <token>'; 401 missing_credentials naming
    the header when there is none (and saying so when the token came in 'X-Api-Key')."""
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if (request.headers.get(CLIENT_KEY_HEADER) or "").startswith("wt_") or \
            _authorization_token(request).startswith("wt_"):
        raise Unauthorized("missing credentials: send a worker token as 'Authorization: "
                           "Bearer <token>', not in 'X-Api-Key' or without 'Bearer' (the "
                           "header for client keys)", code="missing_credentials",
                           field="Authorization")
    raise Unauthorized("missing credentials: send your worker token as 'Authorization: "
                       "Bearer <token>'", code="missing_credentials", field="Authorization")


def _authorization_token(request: Any) -> str:
    """The last word of the Authorization header (whatever its scheme), or ''."""
    words = (request.headers.get("authorization") or "").split()
    return words[-1] if words else ""


def error_response(error: CrowdError) -> Response:
    """The JSON response for a domain error."""
    return Response(body=error.to_body(), status_code=error.status,
                    headers={"Content-Type": "application/json"})


def note_error(error: CrowdError, what: str = "request") -> None:
    """Log a domain error the way every route does: a 5xx with its stack, a refusal counted
    (Rejections) and logged at DEBUG only."""
    if error.status >= 500:
        logger.exception(f"{what} failed", extra={"error_code": error.code})
    else:
        count("Rejections")
        logger.debug(f"{what} refused", extra={"error_code": error.code, "status": error.status})


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into their status and JSON body; anything else into a JSON 500."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with correlated(**kwargs):
            try:
                return view(*args, **kwargs)
            except CrowdError as error:
                note_error(error)
                return error_response(error)
            except Exception:
                logger.exception("unhandled error")
                return Response(body={"error": "internal_error",
                                      "message": "an internal error occurred"}, status_code=500)
    return wrapper


def _snake(name: str) -> str:
    name = re.sub(r"(Error)$", "", name)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


def refuse_oversize(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: a body over the limit is 413 before any route runs (no credential lookup,
    no parsing, no write)."""
    length = event.headers.get("content-length") if event.headers else None
    if (length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES) or \
            len(event.raw_body or b"") > MAX_BODY_BYTES:
        return error_response(PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes",
                                              field="body"))
    return get_response(event)


def chalice_errors_as_json(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: Chalice's own errors (405, 415, ...) get the platform's error shape."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        message = str(body.get("Message", ""))
        response.body = {"error": _snake(str(body["Code"])), "message": message}
        if response.status_code == 415:
            response.body.update(message=f"{JSON_ONLY} ({message})", field="Content-Type")
    return response


IDEMPOTENCY_HEADER = "idempotency-key"


def idempotent(blueprint: Any, account_id: str, handler: Callable[[], tuple[int, Any]]) -> Response:
    """Run a creating or paying request; with an `Idempotency-Key` header, at most once per
    (account, route, key): a repeat with the same body gets the first response again (with
    `Idempotent-Replayed: true`), another body gets 422."""
    request = blueprint.current_request

    def run() -> dict[str, Any]:
        status, body = handler()
        return {"status": status, "body": body}

    key = request.headers.get(IDEMPOTENCY_HEADER)
    store = platform().idempotency
    if key is None or store is None:
        result = run()
    else:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidRequest("'Idempotency-Key' must be 1 to 255 printable characters",
                                 field="Idempotency-Key")
        route = request.context.get("resourcePath", "")
        params = json.dumps(request.uri_params or {}, sort_keys=True)
        scoped = f"{account_id} {request.method} {route} {params} {key}"
        result = store.once(scoped, (request.raw_body or b"").decode("utf-8", "replace"), run,
                            blueprint.lambda_context)
    headers: dict[str, str | list[str]] = (
        {"Idempotent-Replayed": "true"} if result.get("replayed") else {})
    return Response(body=result["body"], status_code=result["status"], headers=headers)
