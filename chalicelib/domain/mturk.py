"""The MTurk requester API's wire rules (AWS JSON 1.1), without I/O: its operations, its
errors as botocore parses them, money and timestamps as MTurk writes them, and its pagination
rule (a NextToken on every non-empty page, none on the empty one)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

TARGET_PREFIX = "MTurkRequesterServiceV20170117"
CONTENT_TYPE = "application/x-amz-json-1.1"
SIGNING_SERVICE = "mturk-requester"
MAX_RESULTS = 100
# The model bounds PaginationToken at 255 characters, but botocore does not check it: a token
# wraps a store's sealed cursor, which may be longer, so a longer one is accepted back.
MAX_TOKEN_CHARS = 4096

# Every operation of the 2017-01-17 API (botocore's service model).
OPERATIONS = frozenset((
    "AcceptQualificationRequest", "ApproveAssignment", "AssociateQualificationWithWorker",
    "CreateAdditionalAssignmentsForHIT", "CreateHIT", "CreateHITType", "CreateHITWithHITType",
    "CreateQualificationType", "CreateWorkerBlock", "DeleteHIT", "DeleteQualificationType",
    "DeleteWorkerBlock", "DisassociateQualificationFromWorker", "GetAccountBalance",
    "GetAssignment", "GetFileUploadURL", "GetHIT", "GetQualificationScore",
    "GetQualificationType", "ListAssignmentsForHIT", "ListBonusPayments", "ListHITs",
    "ListHITsForQualificationType", "ListQualificationRequests", "ListQualificationTypes",
    "ListReviewPolicyResultsForHIT", "ListReviewableHITs", "ListWorkerBlocks",
    "ListWorkersWithQualificationType", "NotifyWorkers", "RejectAssignment",
    "RejectQualificationRequest", "SendBonus", "SendTestEventNotification",
    "UpdateExpirationForHIT", "UpdateHITReviewStatus", "UpdateHITTypeOfHIT",
    "UpdateNotificationSettings", "UpdateQualificationType",
))

T = TypeVar("T")


class MTurkError(Exception):
    """An error in MTurk's shape: `{"__type", "Message", "TurkErrorCode"}` with its status.

    botocore takes the code from `__type` (a RequestError or ServiceFault becomes the
    client's modelled exception); MTurk's own messages end in ` (<epoch ms>)`."""

    def __init__(self, kind: str, message: str, status: int = 400,
                 turk_code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.turk_code = turk_code

    def to_body(self, now: float | None = None) -> dict[str, Any]:
        """The JSON body botocore parses."""
        stamp = int((time.time() if now is None else now) * 1000)
        body: dict[str, Any] = {"__type": self.kind, "Message": f"{self.message} ({stamp})"}
        if self.turk_code:
            body["TurkErrorCode"] = self.turk_code
        return body


def request_error(message: str, turk_code: str = "AWS.MechanicalTurk.RequestError"
                  ) -> MTurkError:
    """A RequestError (400): botocore raises the client's `RequestError`."""
    return MTurkError("RequestError", message, 400, turk_code)


def operation_of(target: str | None) -> str:
    """The operation an `X-Amz-Target` names; UnknownOperationException otherwise."""
    prefix, _, name = (target or "").partition(".")
    if prefix != TARGET_PREFIX or name not in OPERATIONS:
        raise MTurkError("UnknownOperationException",
                         f"unknown operation {str(target)[:120]!r}: send 'X-Amz-Target: "
                         f"{TARGET_PREFIX}.<Operation>'")
    return name


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}`); SerializationException otherwise."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MTurkError("SerializationException", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MTurkError("SerializationException", "the body must be a JSON object")
    return body


def void() -> dict[str, Any]:
    """The answer of an operation with no output: exactly `{}` (botocore then gives only
    ResponseMetadata, which tools such as Dallinger test for)."""
    return {}


def money(cents: int) -> str:
    """A CurrencyAmount as MTurk writes it: dollars with two decimals, e.g. `"12.05"`."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def epoch(seconds: float) -> float:
    """A timestamp as the JSON protocol sends it: epoch seconds as a number."""
    return float(round(seconds, 3))


def read_timestamp(body: dict[str, Any], name: str) -> float:
    """An input timestamp: boto3 sends integers, hand-signed tools floats (0 is valid)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MTurkError("ValidationException",
                         f"{name} must be a timestamp in epoch seconds (a number)")
    return float(value)


@dataclass(frozen=True)
class PageRequest:
    """Where a list operation starts (a store's cursor, or None) and how many it returns."""

    cursor: str | None
    limit: int


class PageTokens:
    """NextToken for the list operations: an HMAC-sealed, operation-bound wrapper of a
    store's cursor, so a caller can neither forge one nor replay it on another list."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def read(self, body: dict[str, Any], operation: str, scope: str) -> PageRequest:
        """The page a request asks for: `MaxResults` 1-100 (default 100), `NextToken` opened."""
        limit = body.get("MaxResults", MAX_RESULTS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
            raise MTurkError("ValidationException",
                             f"MaxResults must be an integer from 1 to {MAX_RESULTS}")
        token = body.get("NextToken")
        if token is None:
            return PageRequest(None, limit)
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_CHARS:
            raise request_error("NextToken is not a token this API gave")
        return PageRequest(self._open(token, operation, scope), limit)

    def page(self, request: PageRequest, fetch: Callable[[str | None, int],
                                                         tuple[Sequence[T], str | None]],
             operation: str, scope: str, key: str, render: Callable[[T], Any]
             ) -> dict[str, Any]:
        """One page of a list operation: `NumResults`, the items under key and a NextToken on
        every non-empty page (the empty page, after the last, has none); loops that stop on
        an empty page and loops that stop when NextToken is missing both end."""
        if request.cursor == _END:
            items: Sequence[T] = []
            cursor = None
        else:
            items, cursor = fetch(request.cursor, request.limit)
        response: dict[str, Any] = {"NumResults": len(items), key: [render(i) for i in items]}
        if items:
            response["NextToken"] = self._seal(cursor or _END, operation, scope)
        return response

    def _seal(self, cursor: str, operation: str, scope: str) -> str:
        payload = base64.urlsafe_b64encode(cursor.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{payload}.{self._mac(payload, operation, scope)}"

    def _open(self, token: str, operation: str, scope: str) -> str:
        payload, _, mac = token.rpartition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload, operation, scope)):
            raise request_error("NextToken is not a token this API gave for this list")
        padded = payload + "=" * (-len(payload) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")

    def _mac(self, payload: str, operation: str, scope: str) -> str:
        message = f"{operation}\n{scope}\n{payload}".encode("utf-8")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


# The cursor of the page after the last: its page is empty and has no NextToken. Distinct
# tokens for every page (botocore's paginator refuses a repeated one).
_END = "\x00end"
