"""Signed webhooks and events: what happened to a client's jobs, pushed to their endpoints.

An event is built from something durable (a transition in the job's history, the job's
spend) and has an id derived from it, so building it twice gives the same event. For each of
the account's endpoints that wants it there is one delivery, written with a condition (a
repeat writes nothing) and then queued. The delivery consumer signs and POSTs it; a failure
is queued again with exponential back-off until the retry window (24 h) has passed, then the
delivery is failed, put on the dead-letter queue and a `webhook.delivery_failed` event is
published. Every attempt is kept on the delivery: when, the status code, how long it took.

Job transitions reach here through an outbox: a transition marks the job as having events
due (in the same write), `publish_job_events` publishes every transition not yet published
and then moves the job's mark, and the one-minute sweeper does the same for any job a crash
left marked.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chalicelib.domain import validation as v
from chalicelib.domain.ids import new_id, new_secret
from chalicelib.domain.jobs import iso
from chalicelib.domain.model import AGGREGATING, DONE, FAILED, PAUSED, Job, Principal
from chalicelib.domain.pricing import worker_budget
from chalicelib.errors import InvalidRequest, NotFound

PHASE_CHANGED = "job.phase_changed"
REPORT_READY = "job.report_ready"
COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
BUDGET_NEARLY_SPENT = "job.budget_nearly_spent"
DELIVERY_FAILED = "webhook.delivery_failed"
EVENT_TYPES = (PHASE_CHANGED, REPORT_READY, COMPLETED, JOB_FAILED, BUDGET_NEARLY_SPENT,
               DELIVERY_FAILED)

SIGNATURE_HEADER = "Crowd-Signature"
# Share of the budget spent (rewards of counted answers and bonuses) that is "nearly spent".
BUDGET_ALERT_SHARE = 0.9
MAX_ENDPOINTS = 10
MAX_URL_LENGTH = 2048
PENDING, DELIVERED, DEAD = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Endpoint:
    """Where an account's events go; secret signs them (shown to the client once)."""

    endpoint_id: str
    account_id: str
    url: str
    secret: str
    created_at: float
    events: tuple[str, ...] = ()  # empty: every event type
    job_id: str | None = None  # set: only that job's events (a job's callback_url)
    description: str = ""

    def wants(self, event_type: str, job_id: str | None) -> bool:
        """True when this endpoint takes events of this type about this job."""
        return (not self.events or event_type in self.events) and \
            (self.job_id is None or self.job_id == job_id)


@dataclass(frozen=True)
class Event:
    """Something that happened, with an id that is the same however often it is built."""

    event_id: str
    event_type: str
    account_id: str
    created_at: float
    data: dict[str, Any]
    job_id: str | None = None

    def body(self) -> str:
        """The JSON text every receiver gets (and the signature covers); its time is ISO 8601,
        as every time in the API."""
        return json.dumps({"id": self.event_id, "type": self.event_type,
                           "created_at": iso(self.created_at), "job_id": self.job_id,
                           "data": self.data}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one endpoint, with every attempt made."""

    delivery_id: str
    account_id: str
    endpoint_id: str
    url: str
    event_id: str
    event_type: str
    body: str
    created_at: float
    job_id: str | None = None
    status: str = PENDING
    attempts: tuple[dict[str, Any], ...] = ()
    # Attempts started (claimed); attempts holds those that finished.
    attempt_count: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    replay_of: str | None = None


class WebhookStore(Protocol):
    """Endpoints and deliveries of each account."""

    def put_endpoint(self, endpoint: Endpoint) -> None: """Store a new endpoint."""
    def endpoints(self, account_id: str) -> list[Endpoint]: """The account's endpoints."""
    def delete_endpoint(self, account_id: str, endpoint_id: str) -> bool:
        """Delete one; False if there was none."""
    def create_delivery(self, delivery: Delivery) -> bool:
        """Store a delivery unless one with its id exists; True if written."""
    def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None:
        """One delivery."""
    def deliveries(self, account_id: str, limit: int, cursor: str | None
                   ) -> tuple[list[Delivery], str | None]:
        """The account's deliveries, newest first."""
    def claim_attempt(self, account_id: str, delivery_id: str, attempt_count: int,
                      lease_until: float) -> bool:
        """Start attempt attempt_count + 1 if no other has started since, holding it until
        lease_until (a copy of the message waits till then); True if claimed."""
    def finish_attempt(self, account_id: str, delivery_id: str, attempt: dict[str, Any],
                       status: str, next_attempt_at: float) -> bool:
        """Append a finished attempt and set the delivery's status and next attempt, if it is
        still the delivery's latest claimed attempt and the delivery is pending."""
    def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        """One endpoint."""


class EventBus(Protocol):
    """Where every event also goes (EventBridge)."""

    def put(self, event: Event) -> None: """Publish one event."""


# (url, body, headers, timeout) -> (status code or None, error text or None)
Sender = Callable[[str, bytes, Mapping[str, str], float], tuple[int | None, str | None]]


@dataclass(frozen=True)
class WebhookConfig:
    """Retry schedule and what endpoint URLs may be."""

    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    window_seconds: float = 24 * 3600.0
    timeout_seconds: float = 10.0
    # http or https to this machine's loopback: for local stacks and tests only.
    allow_insecure: bool = False


@dataclass
class Webhooks:
    """The ports webhooks use."""

    store: WebhookStore
    queue: Any  # MessageQueue with send(message, delay_seconds=0)
    dead_letters: Any  # MessageQueue
    send: Sender
    bus: EventBus | None = None
    config: WebhookConfig = field(default_factory=WebhookConfig)


# --- signing ----------------------------------------------------------------------------

def sign(secret: str, body: str, timestamp: int) -> str:
    """The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.{body}".encode("utf-8"),
                   hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff(attempt: int, config: WebhookConfig) -> float:
    """Seconds to wait after the attempt-th failed attempt (1-based): doubling, capped."""
    return min(config.retry_base_seconds * 2 ** (attempt - 1), config.retry_max_seconds)


# --- endpoints --------------------------------------------------------------------------

def check_url(url: Any, config: WebhookConfig, field_name: str = "url") -> str:
    """An endpoint URL we will POST to: https with a public host name or address; with
    allow_insecure (local stacks, tests) also http or https to this machine's loopback
    (127.0.0.1, ::1, localhost), and still nothing private, link-local or metadata."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"'{field_name}' must be a URL of at most {MAX_URL_LENGTH} "
                             "characters", field=field_name)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise InvalidRequest(f"'{field_name}' must be an https URL with a host",
                             field=field_name, code="invalid_url")
    if parsed.username or parsed.password:
        raise InvalidRequest(f"'{field_name}' must not carry credentials", field=field_name,
                             code="invalid_url")
    host = parsed.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if config.allow_insecure and (host == "localhost" or (address is not None
                                                          and address.is_loopback)):
        return url
    local = " (or http to 127.0.0.1 here)" if config.allow_insecure else ""
    if parsed.scheme != "https":
        raise InvalidRequest(f"'{field_name}' must be an https URL{local}", field=field_name,
                             code="invalid_url")
    if host == "localhost" or host.endswith(".localhost") or \
            (address is not None and not address.is_global):
        raise InvalidRequest(f"'{field_name}' must be a public address{local}",
                             field=field_name, code="invalid_url")
    return url


def register(w: Webhooks, client: Principal, body: Any, now: float,
             job_id: str | None = None) -> Endpoint:
    """A new endpoint from {url, events?, description?}; its secret is returned this once."""
    body = v.require_object(body, "body")
    v.reject_unknown(body, ("url", "events", "description"))
    url = check_url(body.get("url"), w.config)
    events = body.get("events", [])
    if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
        raise InvalidRequest(f"'events' must be a list of: {', '.join(EVENT_TYPES)}",
                             field="events")
    description = v.text(body, "description", max_length=200, required=False) or ""
    if job_id is not None:
        # A job's callback endpoint has an id derived from the job: registering it again (a
        # retried job creation) finds the one already there.
        endpoint_id = f"whe_{job_id[4:]}"
        existing = w.store.get_endpoint(client.account_id, endpoint_id)
        if existing is not None:
            return existing
    else:
        endpoint_id = new_id("whe")
        if sum(e.job_id is None for e in w.store.endpoints(client.account_id)) >= MAX_ENDPOINTS:
            raise InvalidRequest(f"an account has at most {MAX_ENDPOINTS} endpoints; delete "
                                 "one first", field="url", code="too_many_endpoints")
    endpoint = Endpoint(endpoint_id=endpoint_id, account_id=client.account_id, url=url,
                        secret=new_secret("whsec"), created_at=now,
                        events=tuple(dict.fromkeys(events)), job_id=job_id,
                        description=description)
    w.store.put_endpoint(endpoint)
    return endpoint


def remove(w: Webhooks, client: Principal, endpoint_id: str) -> None:
    """Delete an endpoint; deliveries already made stay in the log."""
    if not w.store.delete_endpoint(client.account_id, endpoint_id):
        raise NotFound("no such webhook endpoint", code="webhook_not_found")


# --- publishing -------------------------------------------------------------------------

def delivery_id(event: Event, endpoint_id: str) -> str:
    """The delivery of one event to one endpoint: time-ordered, derived from both."""
    digest = hashlib.sha256(f"{event.event_id} {endpoint_id}".encode()).hexdigest()[:16]
    return f"whd_{int(event.created_at * 1000):013d}_{digest}"


def publish(w: Webhooks, event: Event, skip_endpoint: str | None = None,
            endpoints: Sequence[Endpoint] | None = None) -> list[str]:
    """Deliver an event to every endpoint of its account that wants it (once each however
    often this runs) and put it on the event bus; the ids of the deliveries queued.
    endpoints, when given, are the account's (read once for several events)."""
    queued = []
    if endpoints is None:
        endpoints = w.store.endpoints(event.account_id)
    for endpoint in endpoints:
        if endpoint.endpoint_id == skip_endpoint or not endpoint.wants(event.event_type,
                                                                       event.job_id):
            continue
        delivery = Delivery(delivery_id=delivery_id(event, endpoint.endpoint_id),
                            account_id=event.account_id, endpoint_id=endpoint.endpoint_id,
                            url=endpoint.url, event_id=event.event_id,
                            event_type=event.event_type, body=event.body(),
                            created_at=event.created_at, job_id=event.job_id,
                            next_attempt_at=event.created_at)
        if not w.store.create_delivery(delivery):
            stored = w.store.get_delivery(event.account_id, delivery.delivery_id)
            # Written before a crash but perhaps never queued: queue it (a repeat is harmless).
            if stored is None or stored.status != PENDING or stored.attempt_count:
                continue
        w.queue.send({"account_id": event.account_id, "delivery_id": delivery.delivery_id})
        queued.append(delivery.delivery_id)
    if w.bus is not None:
        w.bus.put(event)
    return queued


def job_events(job: Job, start: int = 0) -> list[Event]:
    """The events of the job's transitions from the start-th on."""
    events = []
    for index, record in enumerate(job.transitions[start:], start=start):
        before, after = record.get("from") or {}, record.get("to") or {}
        if before.get("state") is None:
            continue  # the job was posted: the client knows
        at = float(record.get("at") or job.created_at)
        base = {"from": before, "to": after, "by": record.get("by"),
                "reason": record.get("reason"), "at": iso(at)}
        kinds = []
        if before.get("phase") != after.get("phase"):
            kinds.append((PHASE_CHANGED, base))
        if before.get("state") == AGGREGATING and after.get("state") in (PAUSED, DONE):
            round_no = record.get("round")
            kinds.append((REPORT_READY, {"round": round_no, "phase": before.get("phase"),
                                         "report": f"/jobs/{job.job_id}/report"
                                                   + (f"?round={round_no}" if round_no else "")}))
        if after.get("state") == DONE:
            kinds.append((COMPLETED, {**base, "results": f"/jobs/{job.job_id}/results"}))
        if after.get("state") == FAILED:
            kinds.append((JOB_FAILED, base))
        for event_type, data in kinds:
            events.append(Event(event_id=f"evt_{job.job_id[4:]}_{index:04d}_{event_type}",
                                event_type=event_type, account_id=job.client_id,
                                created_at=at, data=data, job_id=job.job_id))
    return events


def publish_job_events(p: Any, job_id: str) -> int:
    """Publish the events of every transition of the job not yet published, then move its
    mark; a crash before the mark publishes them again, which delivers nothing twice."""
    if p.webhooks is None:
        return 0
    job = p.jobs.get_job(job_id)
    if job is None:
        return 0
    events = job_events(job, job.events_sent)
    endpoints = p.webhooks.store.endpoints(job.client_id) if events else []
    for event in events:
        publish(p.webhooks, event, endpoints=endpoints)
    p.jobs.mark_events_sent(job_id, job.events_sent, len(job.transitions), job.events_due_at)
    return len(events)


def publish_job_events_safely(p: Any, job_id: str) -> None:
    """publish_job_events right after a transition, where a failure must not undo the
    transition: the job stays on the outbox and the sweeper publishes within a minute."""
    try:
        publish_job_events(p, job_id)
    except Exception:  # noqa: BLE001 (logged; retried by the sweeper)
        from chalicelib.observability import logger

        logger.exception("publishing job events failed; the sweeper will retry",
                         extra={"job_id": job_id})


def record_has_events(record: Mapping[str, Any]) -> bool:
    """True when a transition record gives at least one event (the outbox marks only those)."""
    before, after = record.get("from") or {}, record.get("to") or {}
    return before.get("state") is not None and (
        before.get("phase") != after.get("phase") or after.get("state") in (DONE, FAILED)
        or (before.get("state") == AGGREGATING and after.get("state") == PAUSED))


SWEEP_JOBS = 100


def publish_due_job_events(p: Any) -> int:
    """The sweeper's part: jobs a crash left with events unpublished (at most SWEEP_JOBS a
    run; one job failing does not stop the others)."""
    if p.webhooks is None:
        return 0
    published = 0
    for job_id in p.jobs.jobs_with_events_due()[:SWEEP_JOBS]:
        try:
            published += publish_job_events(p, job_id)
        except Exception:  # noqa: BLE001 (logged; the next run tries again)
            from chalicelib.observability import logger

            logger.exception("publishing job events failed", extra={"job_id": job_id})
    return published


def budget_nearly_spent(job: Job) -> bool:
    """True when rewards of counted answers plus bonuses reach 90% of what the job's budget
    has for workers (the budget less the platform fee)."""
    for_workers = worker_budget(job.budget_cents)
    return for_workers > 0 and \
        job.spent_cents + job.bonus_cents >= BUDGET_ALERT_SHARE * for_workers


def check_budget(p: Any, job: Job) -> bool:
    """Publish `job.budget_nearly_spent` once when the job's spend crosses the line.

    The alert's time is claimed on the job first (a condition: the first claim wins) and the
    event is built from it, so a repeat after a crash builds the same event and delivers
    nothing twice; the alert is marked sent after publishing. Never raises: a failure is
    logged and the next count or bonus of the job tries again.
    """
    if p.webhooks is None or job.budget_alerted or not budget_nearly_spent(job):
        return False
    try:
        at = job.budget_alert_at or p.jobs.claim_budget_alert(job.job_id, p.now())
        for_workers = max(1, worker_budget(job.budget_cents))
        spent = job.spent_cents + job.bonus_cents
        publish(p.webhooks, Event(
            event_id=f"evt_{job.job_id[4:]}_budget_{BUDGET_NEARLY_SPENT}",
            event_type=BUDGET_NEARLY_SPENT, account_id=job.client_id, created_at=at,
            job_id=job.job_id,
            data={"budget_cents": job.budget_cents, "for_workers_cents": for_workers,
                  "spent_cents": spent, "share": round(spent / for_workers, 4),
                  "pool_cents": job.pool_cents}))
        p.jobs.mark_budget_alerted(job.job_id)
    except Exception:  # noqa: BLE001 (logged; tried again on the next count or bonus)
        from chalicelib.observability import logger

        logger.exception("the budget alert failed; it is tried again", extra={"job_id": job.job_id})
        return False
    return True



# --- delivering -------------------------------------------------------------------------

def deliver(w: Webhooks, message: Mapping[str, Any], now: Callable[[], float] = time.time
            ) -> str:
    """The delivery consumer: one attempt at a due pending delivery; what happened."""
    delivery = w.store.get_delivery(str(message.get("account_id")),
                                    str(message.get("delivery_id")))
    if delivery is None or delivery.status != PENDING:
        return "nothing to do"
    started = now()
    if delivery.next_attempt_at > started + 1:
        # Back-off longer than SQS's 15-minute delay, or another copy's attempt in flight
        # (its claim holds the delivery): look again then.
        w.queue.send(dict(message), delay_seconds=_delay(delivery.next_attempt_at - started))
        return "not due"
    if not w.store.claim_attempt(delivery.account_id, delivery.delivery_id,
                                 delivery.attempt_count,
                                 started + 2 * w.config.timeout_seconds):
        return "taken"  # another copy of the message got there first
    endpoint = w.store.get_endpoint(delivery.account_id, delivery.endpoint_id)
    number = delivery.attempt_count + 1
    if endpoint is None:
        # The client deleted the endpoint: nothing to retry, report or alarm on.
        w.store.finish_attempt(delivery.account_id, delivery.delivery_id, {
            "attempt": number, "at": started, "status_code": None, "latency_ms": 0.0,
            "error": "the endpoint was deleted"}, DEAD, 0)
        return "endpoint deleted"
    else:
        timestamp = int(started)
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(endpoint.secret, delivery.body, timestamp),
                   "Crowd-Event": delivery.event_type, "Crowd-Delivery": delivery.delivery_id,
                   "Crowd-Event-Id": delivery.event_id, "User-Agent": "crowd-webhooks/1"}
        status, error = w.send(endpoint.url, delivery.body.encode("utf-8"), headers,
                               w.config.timeout_seconds)
        took = now() - started
    attempt = {"attempt": number, "at": started, "status_code": status,
               "latency_ms": round(took * 1000, 1), **({"error": error} if error else {})}
    if status is not None and 200 <= status < 300:
        w.store.finish_attempt(delivery.account_id, delivery.delivery_id, attempt, DELIVERED,
                               started)
        return "delivered"
    wait = backoff(number, w.config)
    if started + wait > delivery.created_at + w.config.window_seconds:
        # The notices go out before the delivery is marked failed: a crash in between
        # makes the redelivered message try once more and send them again (the notice's
        # event id is fixed, so its deliveries are not repeated).
        w.dead_letters.send({"account_id": delivery.account_id,
                             "delivery_id": delivery.delivery_id,
                             "event_id": delivery.event_id, "event_type": delivery.event_type,
                             "attempts": number, "last_status": status, "last_error": error})
        if delivery.event_type != DELIVERY_FAILED:  # no failure notices about failure notices
            publish(w, Event(
                event_id=f"evt_failed_{delivery.delivery_id}", event_type=DELIVERY_FAILED,
                account_id=delivery.account_id, created_at=started, job_id=delivery.job_id,
                data={"delivery_id": delivery.delivery_id, "endpoint_id": delivery.endpoint_id,
                      "event_id": delivery.event_id, "event_type": delivery.event_type,
                      "attempts": number, "last_status": status}),
                skip_endpoint=delivery.endpoint_id)
        w.store.finish_attempt(delivery.account_id, delivery.delivery_id, attempt, DEAD, 0)
        return "failed"
    if not w.store.finish_attempt(delivery.account_id, delivery.delivery_id, attempt, PENDING,
                                  started + wait):
        return "superseded"  # a later attempt (a duplicate message's) owns the delivery now
    w.queue.send(dict(message), delay_seconds=_delay(wait))
    return "retrying"


def _delay(seconds: float) -> int:
    """An SQS message delay: whole seconds, at most 15 minutes."""
    return max(0, min(900, int(seconds + 0.999)))


def replay(w: Webhooks, client: Principal, delivery_id_: str, now: float) -> Delivery:
    """Send a delivery's event again, as a new delivery (the old one keeps its log)."""
    original = delivery_of(w, client, delivery_id_)
    if w.store.get_endpoint(client.account_id, original.endpoint_id) is None:
        raise NotFound("the delivery's endpoint was deleted", code="webhook_not_found")
    copy = replace(original, delivery_id=f"whd_{int(now * 1000):013d}_{new_id('r')[2:]}",
                   created_at=now, status=PENDING, attempts=(), attempt_count=0,
                   next_attempt_at=now, delivered_at=None, replay_of=original.delivery_id)
    w.store.create_delivery(copy)
    w.queue.send({"account_id": copy.account_id, "delivery_id": copy.delivery_id})
    return copy


def delivery_of(w: Webhooks, client: Principal, delivery_id_: str) -> Delivery:
    """One of the client's deliveries; 404 for any other."""
    delivery = w.store.get_delivery(client.account_id, delivery_id_)
    if delivery is None:
        raise NotFound("no such delivery", code="delivery_not_found")
    return delivery


def endpoint_view(endpoint: Endpoint, with_secret: bool = False) -> dict[str, Any]:
    """An endpoint as the API shows it; the secret only when it was just made."""
    view = {"endpoint_id": endpoint.endpoint_id, "url": endpoint.url,
            "events": list(endpoint.events) or list(EVENT_TYPES), "job_id": endpoint.job_id,
            "description": endpoint.description, "created_at": iso(endpoint.created_at)}
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A delivery with its attempts, as the API shows it (times in ISO 8601)."""
    return {"delivery_id": delivery.delivery_id, "endpoint_id": delivery.endpoint_id,
            "url": delivery.url, "event_id": delivery.event_id,
            "event_type": delivery.event_type, "job_id": delivery.job_id,
            "status": delivery.status, "created_at": iso(delivery.created_at),
            "next_attempt_at": iso(delivery.next_attempt_at)
            if delivery.status == PENDING else None,
            "delivered_at": iso(delivery.delivered_at), "replay_of": delivery.replay_of,
            "attempts": [{**attempt, "at": iso(attempt.get("at"))}
                         for attempt in delivery.attempts],
            "payload": json.loads(delivery.body)}


def page_of(w: Webhooks, client: Principal, query: Mapping[str, str]
            ) -> tuple[list[Delivery], str | None]:
    """A page of the client's deliveries, newest first; `job_id` filters this page."""
    v.reject_unknown(query, ("limit", "cursor", "job_id"), "query.")
    limit = v.page_limit(query, 50)
    deliveries, cursor = w.store.deliveries(client.account_id, limit, query.get("cursor"))
    job_id = query.get("job_id")
    if job_id:
        deliveries = [d for d in deliveries if d.job_id == job_id]
    return deliveries, cursor


def endpoints_of(w: Webhooks, client: Principal) -> Sequence[Endpoint]:
    """The client's endpoints, oldest first."""
    return sorted(w.store.endpoints(client.account_id), key=lambda e: e.created_at)
