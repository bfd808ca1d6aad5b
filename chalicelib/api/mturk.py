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
    try:
        signed = _signed(request)
        client = operations.requester(p, signed)
        operation = mturk.operation_of(signed.headers.get("x-amz-target"))
        body = operations.call(p, client, operation, mturk.parse_body(signed.body))
        return _answer(200, body, request_id)
    except mturk.MTurkError as error:
        count("Rejections")
        logger.debug("mturk request refused", extra={"error_code": error.kind})
        return _answer(error.status, error.to_body(p.now()), request_id)
    except Exception:
        # Only reads are served so far; a failure is ServiceFault, which botocore retries.
        logger.exception("mturk request failed")
        fault = mturk.MTurkError("ServiceFault", "the service failed; try again", 500,
                                 "AWS.MechanicalTurk.ServiceFault")
        return _answer(500, fault.to_body(p.now()), request_id)


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
