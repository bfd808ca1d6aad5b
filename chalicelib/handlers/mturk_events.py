"""MTurk's notifications: the operations that configure them (merged into
chalicelib.handlers.mturk), `emit`, which the HIT, assignment and worker-side code call after a
change of state a requester may be notified of, and `deliver`, the queue consumer's part.

A HIT type's specification is one record, `mturk#notify#<client>` / HITTypeId. `emit` reads
it (one keyed read, kept NOTIFY_CACHE_SECONDS per container) and, when it is active and
subscribes to the event, queues the document on the webhook queue; the webhook consumer hands
such messages to `deliver`, which publishes to the SNS topic or sends to the SQS queue and, on
a failure that may pass, queues the same document again with back-off. So a slow or failing
destination never delays or fails the request that changed the HIT.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from chalicelib.domain import mturk
from chalicelib.domain.cache import MISSING
from chalicelib.domain.model import Job, Principal
from chalicelib.domain.mturk_hits import EXPIRED_BY_REQUEST
from chalicelib.domain.mturk_ids import assignment_id as mturk_assignment_id
from chalicelib.domain.mturk_ids import hit_id, our_assignment
from chalicelib.domain.mturk_notifications import (
    EVENT_TYPES, NoticeRefused, Notifier, Spec, backoff, document, event, read_spec,
)
from chalicelib.handlers.platform import Platform
from chalicelib.observability import count, logger

# A queued delivery's message: {NOTICE: {transport, destination, body, first_at, attempt}}.
NOTICE = "mturk_notice"
# How long a container keeps a HIT type's specification (a change made in another container
# reaches this one's notifications within this time; in this one, at once).
NOTIFY_CACHE_SECONDS = 10.0
# Test events of assignment and HIT types carry these in place of real ids.
TEST_IDS = {"HITTypeId": "TESTHITTYPEID", "HITId": "TESTHITID", "AssignmentId": "TESTASSIGNMENTID"}
UPDATE_TRIES = 3


def customer_id(client_id: str) -> str:
    """The requester's MTurk-style CustomerId (`A` and upper-case letters and digits)."""
    return "A" + client_id.partition("_")[2].upper()


def _kind(client_id: str) -> str:
    return f"mturk#notify#{client_id}"


def _notifier(p: Platform) -> Notifier:
    if p.mturk_notifier is None or p.mturk is None:
        raise mturk.request_error("Notifications are not configured on this deployment",
                                  "AWS.MechanicalTurk.OperationNotSupported")
    return p.mturk_notifier


def update_notification_settings(p: Platform, client: Principal, body: dict[str, Any]
                                 ) -> dict[str, Any]:
    """Replace a HIT type's specification (on unless Active says otherwise), or with Active
    alone switch the existing one on or off."""
    notifier = _notifier(p)
    assert p.mturk is not None  # checked by _notifier
    hit_type = body.get("HITTypeId")
    notification, active = body.get("Notification"), body.get("Active")
    if not isinstance(hit_type, str) or not hit_type:
        raise mturk.MTurkError("ValidationException", "HITTypeId is required")
    if active is not None and not isinstance(active, bool):
        raise mturk.MTurkError("ValidationException", "Active must be true or false")
    if notification is None and active is None:
        raise mturk.request_error("Send a Notification, or Active to switch the existing one",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    spec = read_spec(notification, notifier.reserved_prefix) if notification is not None else None
    if p.mturk.get(f"mturk#hittype#{client.account_id}", hit_type) is None:
        raise mturk.request_error(f"HIT type {hit_type} does not exist.",
                                  "AWS.MechanicalTurk.HITTypeDoesNotExist")
    for _ in range(UPDATE_TRIES):
        if _write_spec(p, client.account_id, hit_type, spec, active):
            p.cache.mturk_notify.forget((client.account_id, hit_type))
            return mturk.void()
    raise mturk.request_error("The notification settings changed meanwhile; send the request "
                              "again", "AWS.MechanicalTurk.ConcurrentUpdate")


def _write_spec(p: Platform, client_id: str, hit_type: str, spec: Spec | None,
                active: bool | None) -> bool:
    """One optimistic write of the specification; False when another writer got there."""
    assert p.mturk is not None
    record = p.mturk.get(_kind(client_id), hit_type)
    if spec is None:
        if record is None:
            raise mturk.request_error(
                f"HIT type {hit_type} has no notification specification: send a Notification",
                "AWS.MechanicalTurk.InvalidParameterValue")
        new = replace(Spec.of(record.body), active=bool(active))
    else:
        new = replace(spec, active=True if active is None else active)
    if record is None:
        return p.mturk.put_new(_kind(client_id), hit_type, new.to_body(), p.now())
    return p.mturk.replace(record, new.to_body())


def send_test_event_notification(p: Platform, client: Principal, body: dict[str, Any]
                                 ) -> dict[str, Any]:
    """Send one document of TestEventType (Ping, or any event type, with placeholder ids) to
    the given specification's destination now; a RequestError saying why if it failed."""
    notifier = _notifier(p)
    spec = read_spec(body.get("Notification"), notifier.reserved_prefix)
    kind = body.get("TestEventType")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise mturk.MTurkError("ValidationException",
                               f"TestEventType must be one of {', '.join(EVENT_TYPES)}")
    ids = {} if kind == "Ping" else {
        "hit_type_id": TEST_IDS["HITTypeId"], "hit_id": TEST_IDS["HITId"],
        "assignment_id": TEST_IDS["AssignmentId"] if kind.startswith("Assignment") else None}
    text = document(spec.version, customer_id(client.account_id), [event(kind, p.now(), **ids)])
    try:
        notifier.send(spec.transport, spec.destination, text)
    except Exception as error:  # noqa: BLE001 (the caller is told why; nothing was stored)
        raise mturk.request_error(
            f"The test notification could not be sent to {spec.destination}: "
            f"{type(error).__name__}: {error}"[:600],
            "AWS.MechanicalTurk.NotificationDeliveryFailed") from None
    return mturk.void()


OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {
    "UpdateNotificationSettings": update_notification_settings,
    "SendTestEventNotification": send_test_event_notification,
}


def spec_of(p: Platform, client_id: str, hit_type: str) -> Spec | None:
    """A HIT type's specification as this container read it at most NOTIFY_CACHE_SECONDS
    ago (None: there is none)."""
    assert p.mturk is not None
    key, now = (client_id, hit_type), p.now()
    spec = p.cache.mturk_notify.get(key, now, NOTIFY_CACHE_SECONDS)
    if spec is MISSING:
        record = p.mturk.get(_kind(client_id), hit_type)
        spec = p.cache.mturk_notify.put(key, Spec.of(record.body) if record else None, now)
    return spec


def emit(p: Platform, job: Job, event_type: str, assignment_id: str | None = None,
         at: float | None = None) -> None:
    """Announce one of MTurk's events (AssignmentAccepted, AssignmentSubmitted, ...) of a
    HIT's job to the requester's notification settings for its HIT type. Called after the
    change is stored; it never raises into the caller. assignment_id is ours or MTurk's;
    at is when it happened (default now)."""
    if not job.mturk:
        return
    try:
        if _queue(p, job, event_type, assignment_id, at):
            count("MTurkNotificationsQueued")
    except Exception:  # noqa: BLE001 (the change is stored: a lost notice is only logged)
        logger.exception("an MTurk notification was not queued",
                         extra={"job_id": job.job_id, "event_type": event_type})


def emit_expired(p: Platform, job: Job) -> None:
    """The sweeper's part: a HIT whose expiry it found passed is expired and reviewable
    (announced as of its deadline; the sweeper runs every minute, so up to a minute late).
    A HIT expired by UpdateExpirationForHIT had its HITExpired announced then; a HIT whose
    round closed before its deadline (every assignment in) is reviewable, not expired."""
    if not job.mturk:
        return
    now = p.now()
    announced = bool(job.transitions) and \
        job.transitions[-1].get("reason") == EXPIRED_BY_REQUEST
    if job.deadline <= now and not announced:
        emit(p, job, "HITExpired", at=job.deadline)
    emit(p, job, "HITReviewable", at=min(job.deadline, now))


def _queue(p: Platform, job: Job, event_type: str, assignment_id: str | None,
           at: float | None) -> bool:
    notifier, hit_type = p.mturk_notifier, job.mturk.get("hit_type_id")
    if notifier is None or p.mturk is None or not hit_type:
        return False
    spec = spec_of(p, job.client_id, str(hit_type))
    if spec is None or not spec.wants(event_type):
        return False
    now = p.now()
    text = document(spec.version, customer_id(job.client_id), [
        event(event_type, now if at is None else at, str(hit_type), hit_id(job.job_id),
              _mturk_assignment(assignment_id))])
    notifier.queue.send({NOTICE: {"transport": spec.transport, "destination": spec.destination,
                                  "body": text, "first_at": now, "due_at": now, "attempt": 0},
                         "job_id": job.job_id})
    return True


def _mturk_assignment(value: str | None) -> str | None:
    """An AssignmentId from one of ours (or MTurk's, kept as it is)."""
    if value is None or our_assignment(value) is not None:
        return value
    try:
        return mturk_assignment_id(value)
    except ValueError:
        return value


def is_notice(message: Mapping[str, Any]) -> bool:
    """True for a queued notification delivery (the webhook queue carries both)."""
    return NOTICE in message


def deliver(p: Platform, message: Mapping[str, Any]) -> str:
    """The consumer's part: one attempt at a queued notification; on a failure that may pass,
    the same document is queued again after a back-off, until the retry window has passed;
    a destination that refuses it for good is not tried again. What happened."""
    notifier = p.mturk_notifier
    if notifier is None:
        raise RuntimeError("MTurk notifications are not wired on this platform")
    notice = dict(message[NOTICE])
    started = p.now()
    due = float(notice.get("due_at") or started)
    if due > started + 1:
        # A back-off longer than SQS's 15-minute delay: look again then.
        notifier.queue.send(dict(message), delay_seconds=_delay(due - started))
        return "not due"
    attempt = int(notice.get("attempt") or 0) + 1
    where = {"job_id": message.get("job_id"), "destination": notice.get("destination"),
             "attempt": attempt}
    try:
        notifier.send(str(notice["transport"]), str(notice["destination"]), str(notice["body"]))
    except NoticeRefused as error:
        logger.warning("an MTurk notification was refused by its destination",
                       extra={**where, "error": str(error)})
        count("MTurkNotificationsRefused")
        return "refused"
    except Exception as error:  # noqa: BLE001 (tried again below, or given up on and logged)
        wait = backoff(attempt, notifier)
        if started + wait > float(notice.get("first_at") or started) + notifier.window_seconds:
            logger.error("an MTurk notification was given up on",
                         extra={**where, "error": f"{type(error).__name__}: {error}"[:300]})
            count("MTurkNotificationsFailed")
            return "failed"
        notifier.queue.send({**message, NOTICE: {**notice, "attempt": attempt,
                                                 "due_at": started + wait}},
                            delay_seconds=_delay(wait))
        return "retrying"
    count("MTurkNotificationsSent")
    return "delivered"


def _delay(seconds: float) -> int:
    """An SQS message delay: whole seconds, at most 15 minutes."""
    return max(0, min(900, int(seconds + 0.999)))
