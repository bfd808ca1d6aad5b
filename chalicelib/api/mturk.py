"""The MTurk-compatible requester API: AWS JSON 1.1 on one route, `POST /mturk`, so boto3's
`mturk` client reaches it with `endpoint_url=<api>/mturk` (or `AWS_ENDPOINT_URL_MTURK`)."""
from __future__ import annotations

import json
import uuid
from typing import Any

from chalice import Blueprint, Response

from chalicelib.adapters.sigv4 import SignedRequest
from chalicelib.deps import platform
from chalicelib.domain import mturk
from chalicelib.errors import (
    ConfigurationError, Conflict, CrowdError, Forbidden, InvalidRequest, NotFound,
    PayloadTooLarge, TransientError, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
)
from chalicelib.handlers import mturk as operations
from chalicelib.observability import count, logger

bp = Blueprint(__name__)


@bp.route("/mturk", methods=["POST"], content_types=[mturk.CONTENT_TYPE])
def requester_api() -> Response:
    """The MTurk requester API (2017-01-17): the operation in `X-Amz-Target`, signed with
    SigV4 by a requester key for service `mturk-requester`; errors as MTurk sends them."""
    request = bp.current_request
    request_id = str(uuid.uuid4())
    p = platform()
    operation = None
    try:
        signed = _signed(request)
        client = operations.requester(p, signed)
        operation = mturk.operation_of(signed.headers.get("x-amz-target"))
        body = operations.call(p, client, operation, mturk.parse_body(signed.body))
        return _answer(200, body, request_id)
    except mturk.MTurkError as error:
        return _refused(error, p.now(), request_id)
    except CrowdError as error:
        if isinstance(error, (TransientError, ConfigurationError)):
            logger.warning("mturk operation failed", extra={"error_code": error.code})
            return _failed(operation, p.now(), request_id)
        return _refused(request_error_of(error), p.now(), request_id)
    except Exception:
        logger.exception("mturk request failed")
        return _failed(operation, p.now(), request_id)


# The marketplace's own errors, raised inside an operation, as MTurk's TurkErrorCodes.
TURK_CODES: dict[type[CrowdError], str] = {
    InvalidRequest: "AWS.MechanicalTurk.InvalidParameterValue",
    PayloadTooLarge: "AWS.MechanicalTurk.InvalidParameterValue",
    UnprocessableEntity: "AWS.MechanicalTurk.InvalidParameterValue",
    UnsupportedMediaType: "AWS.MechanicalTurk.InvalidParameterValue",
    NotFound: "AWS.MechanicalTurk.DoesNotExist",
    Conflict: "AWS.MechanicalTurk.InvalidState",
    Forbidden: "AWS.MechanicalTurk.PermissionDenied",
    Unauthorized: "AWS.MechanicalTurk.PermissionDenied",
}
# Conflicts with a code of their own in MTurk's vocabulary.
CONFLICT_CODES = {"insufficient_budget": "AWS.MechanicalTurk.InsufficientFunds"}


def request_error_of(error: CrowdError) -> mturk.MTurkError:
    """One of our errors (chalicelib.errors) as a RequestError: the message as we wrote it,
    a TurkErrorCode by its kind (a budget too small is InsufficientFunds)."""
    code = CONFLICT_CODES.get(error.code) if isinstance(error, Conflict) else None
    turk_code = code or next((value for kind, value in TURK_CODES.items()
                              if isinstance(error, kind)), "AWS.MechanicalTurk.RequestError")
    return mturk.request_error(error.message, turk_code)


def is_read(operation: str | None) -> bool:
    """Whether an operation only reads (Get*, List*): retrying it can change nothing."""
    return operation is not None and operation.startswith(("Get", "List"))


def _failed(operation: str | None, now: float, request_id: str) -> Response:
    """An unexpected failure: ServiceFault (500, which botocore retries) for an operation that
    only reads; for one that writes, which may have written part of its work, a RequestError
    (400, never retried by botocore) telling the caller to retry with its token."""
    count("Faults")
    if operation is None or is_read(operation):
        fault = mturk.MTurkError("ServiceFault", "the service failed; try again", 500,
                                 "AWS.MechanicalTurk.ServiceFault")
        return _answer(500, fault.to_body(now), request_id)
    return _answer(400, mturk.request_error(
        "the service failed while serving this request, which may have been done in part; "
        "retry with the same UniqueRequestToken (where the operation takes one), then check "
        "its outcome", "AWS.MechanicalTurk.ServiceUnavailable").to_body(now), request_id)


def _refused(error: mturk.MTurkError, now: float, request_id: str) -> Response:
    count("Rejections")
    logger.debug("mturk request refused", extra={"error_code": error.kind})
    return _answer(error.status, error.to_body(now), request_id)


def _signed(request: Any) -> SignedRequest:
    """The request as the client signed it: API Gateway's `requestContext.path` is the path
    the client sent, the stage prefix included (Chalice's own path is the route's)."""
    query = request.query_params or {}
    pairs = [(name, value) for name in query
             for value in (query.getlist(name) if hasattr(query, "getlist") else [query[name]])]
    return SignedRequest(
        method=request.method, path=(request.context or {}).get("path") or request.path,
        query=pairs, headers={name.lower(): value for name, value in request.headers.items()},
        body=request.raw_body or b"")


def _answer(status: int, body: dict[str, Any], request_id: str) -> Response:
    return Response(body=json.dumps(body), status_code=status,
                    headers={"Content-Type": mturk.CONTENT_TYPE,
                             "x-amzn-RequestId": request_id})
