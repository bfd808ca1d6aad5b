"""Delivering: the consumer's attempts with back-off, the dead-letter queue, the delivery log
and replays.

The delivery consumer signs and POSTs a delivery; a failure is queued again with exponential
back-off until the retry window (24 h) has passed, then the delivery is failed, put on the
dead-letter queue and a `webhook.delivery_failed` event is published. Every attempt is kept
on the delivery: when, the status code, how long it took.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.ids import new_id
from chalicelib.domain.model import Principal
from chalicelib.domain.webhooks.outbox import publish
from chalicelib.domain.webhooks.signing import signed_headers
from chalicelib.domain.webhooks.types import (
    DEAD, DELIVERED, DELIVERY_FAILED, PENDING, Delivery, Event, WebhookConfig, Webhooks,
)
from chalicelib.errors import NotFound


def backoff(attempt: int, config: WebhookConfig) -> float:
    """Seconds to wait after the attempt-th failed attempt (1-based): doubling, capped."""
    return min(config.retry_base_seconds * 2 ** (attempt - 1), config.retry_max_seconds)


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
    status, error = w.send(endpoint.url, delivery.body.encode("utf-8"),
                           signed_headers(delivery, endpoint.secret, int(started)),
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

