"""MTurk's notifications without I/O: what a notification specification may say, the JSON
document a requester's topic or queue receives, and the retry rule of a queued delivery.

A specification is per HIT type: `{Destination, Transport, Version, EventTypes}`, with
`Active` switching it on or off. SNS (a topic ARN) and SQS (a queue URL) are served; Email is
not. The document is MTurk's: `{"EventDocVersion", "EventDocId", "CustomerId", "Events":
[{"EventType", "EventTimestamp", "HITTypeId", "HITId", "AssignmentId"?}]}`; for SNS it is the
published Message (SNS wraps it in the envelope receivers read), for SQS the message body.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.jobs import iso
from chalicelib.domain.mturk import MTurkError, request_error
from chalicelib.domain.ports import MessageQueue

# The EventType enum of the 2017-01-17 model.
EVENT_TYPES = ("AssignmentAccepted", "AssignmentAbandoned", "AssignmentReturned",
               "AssignmentSubmitted", "AssignmentRejected", "AssignmentApproved", "HITCreated",
               "HITExpired", "HITReviewable", "HITExtended", "HITDisposed", "Ping")
# The model documents 2006-05-05; Dallinger sends 2014-08-15. Either is echoed back.
VERSIONS = ("2006-05-05", "2014-08-15")
SNS, SQS, EMAIL = "SNS", "SQS", "Email"
TRANSPORTS = (SNS, SQS, EMAIL)
MAX_DESTINATION = 1024

_TOPIC_ARN = re.compile(
    r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256})$")
# AWS's queue URLs (both spellings), and a local stack's loopback queue URLs.
_QUEUE_URL = re.compile(
    r"^(?:https://(?:sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com|(?P<legacy>[a-z0-9-]+)"
    r"\.queue\.amazonaws\.com)|http://(?:localhost|127\.0\.0\.1)(?::\d{1,5})?)"
    r"/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_-]{1,80})$")


@dataclass(frozen=True)
class Spec:
    """A HIT type's notification specification as stored (`mturk#notify#<client>`)."""

    destination: str
    transport: str
    version: str
    event_types: tuple[str, ...]
    active: bool = True

    def wants(self, event_type: str) -> bool:
        """True when this specification is on and subscribes to the event type."""
        return self.active and event_type in self.event_types

    def to_body(self) -> dict[str, Any]:
        """The stored record's body."""
        return {"destination": self.destination, "transport": self.transport,
                "version": self.version, "event_types": list(self.event_types),
                "active": self.active}

    @classmethod
    def of(cls, body: dict[str, Any]) -> Spec:
        """A stored record's body read back."""
        return cls(str(body["destination"]), str(body["transport"]), str(body["version"]),
                   tuple(body.get("event_types") or ()), bool(body.get("active", True)))


@dataclass
class Notifier:
    """What notifications are sent with: send publishes one document now (raising
    NoticeRefused when the destination can never take it, anything else when it may later),
    queue carries deliveries to the consumer that sends and retries them, and no destination
    may be one of the stage's own queues or topics (their names start with reserved_prefix:
    the functions' role may send to them, a requester must not)."""

    send: Callable[[str, str, str], None]  # (transport, destination, body)
    queue: MessageQueue
    reserved_prefix: str
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    window_seconds: float = 24 * 3600.0


class NoticeRefused(Exception):
    """The destination refused the document for good (no such topic or queue, not allowed):
    retrying cannot help."""


def destination_region(transport: str, destination: str) -> str | None:
    """The region a destination names (None for a local stack's queue URL)."""
    match = (_TOPIC_ARN if transport == SNS else _QUEUE_URL).match(destination)
    if match is None:
        return None
    return match.group("region") or match.groupdict().get("legacy")


def read_spec(value: Any, reserved_prefix: str, field: str = "Notification") -> Spec:
    """A `NotificationSpecification` from a request, checked: SNS or SQS, a known version,
    known event types, a destination of its transport that is not one of the stage's own."""
    if not isinstance(value, dict):
        raise MTurkError("ValidationException", f"{field} must be a NotificationSpecification")
    destination, transport = value.get("Destination"), value.get("Transport")
    version, events = value.get("Version"), value.get("EventTypes")
    if not isinstance(transport, str) or transport not in TRANSPORTS:
        raise MTurkError("ValidationException",
                         f"{field}.Transport must be one of {', '.join(TRANSPORTS)}")
    if transport == EMAIL:
        raise request_error("The Email transport is not supported: send notifications to an "
                            "SNS topic (Transport SNS) or an SQS queue (Transport SQS)",
                            "AWS.MechanicalTurk.InvalidTransport")
    if not isinstance(version, str) or version not in VERSIONS:
        raise request_error(f"{field}.Version must be one of {', '.join(VERSIONS)}",
                            "AWS.MechanicalTurk.InvalidParameterValue")
    if not isinstance(events, list) or not events or \
            not all(isinstance(e, str) and e in EVENT_TYPES for e in events):
        raise MTurkError("ValidationException",
                         f"{field}.EventTypes must be a non-empty list of: {', '.join(EVENT_TYPES)}")
    if not isinstance(destination, str) or not 1 <= len(destination) <= MAX_DESTINATION:
        raise MTurkError("ValidationException", f"{field}.Destination must be a string")
    if destination.endswith(".fifo"):
        raise request_error(f"{field}.Destination is a FIFO topic or queue, which is not "
                            "supported: use a standard one",
                            "AWS.MechanicalTurk.InvalidParameterValue")
    pattern, what = (_TOPIC_ARN, "an SNS topic ARN") if transport == SNS \
        else (_QUEUE_URL, "an SQS queue URL")
    match = pattern.match(destination)
    if match is None:
        raise request_error(f"{field}.Destination must be {what} for Transport {transport}",
                            "AWS.MechanicalTurk.InvalidParameterValue")
    if reserved_prefix and match.group("name").startswith(reserved_prefix):
        raise request_error(f"{field}.Destination is one of this deployment's own queues or "
                            "topics: use a topic or queue of your own",
                            "AWS.MechanicalTurk.InvalidParameterValue")
    return Spec(destination, transport, version, tuple(dict.fromkeys(events)))


def document(version: str, customer_id: str, events: Sequence[dict[str, Any]]) -> str:
    """The JSON text a destination receives; EventDocId is new each time it is built (a
    queued delivery keeps its text, so a repeated delivery repeats the id)."""
    return json.dumps({"EventDocVersion": version, "EventDocId": uuid.uuid4().hex,
                       "CustomerId": customer_id, "Events": list(events)},
                      separators=(",", ":"))


def event(event_type: str, at: float, hit_type_id: str | None = None,
          hit_id: str | None = None, assignment_id: str | None = None) -> dict[str, Any]:
    """One entry of a document's Events: its time ISO 8601 in UTC with a Z."""
    entry: dict[str, Any] = {"EventType": event_type, "EventTimestamp": iso(at)}
    for name, value in (("HITTypeId", hit_type_id), ("HITId", hit_id),
                        ("AssignmentId", assignment_id)):
        if value is not None:
            entry[name] = value
    return entry


def backoff(attempt: int, notifier: Notifier) -> float:
    """Seconds to wait after the attempt-th failed attempt (1-based): doubling, capped."""
    return min(notifier.retry_base_seconds * 2 ** (attempt - 1), notifier.retry_max_seconds)
