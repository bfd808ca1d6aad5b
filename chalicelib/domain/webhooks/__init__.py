"""Signed webhooks and events: what happened to a client's jobs, pushed to their endpoints.

- types.py: event names, Endpoint, Event, Delivery, WebhookConfig and Webhooks (the ports
  they use: WebhookStore, EventBus and Sender, declared in chalicelib/domain/ports.py)
- urls.py: which endpoint URLs are allowed
- endpoints.py: registering, listing and deleting an account's endpoints
- signing.py: the signature and headers every receiver gets
- outbox.py: publishing an event to its endpoints, job events through the outbox, the
  budget alert
- delivery.py: the delivery consumer (attempts, back-off, the dead-letter queue), the
  delivery log and replays

How endpoints and deliveries look on the wire is chalicelib/api/views.py's business.
"""
from __future__ import annotations

from chalicelib.domain.ports import EventBus, Sender, WebhookStore
from chalicelib.domain.webhooks.delivery import backoff, deliver, delivery_of, page_of, replay
from chalicelib.domain.webhooks.endpoints import MAX_ENDPOINTS, endpoints_of, register, remove
from chalicelib.domain.webhooks.outbox import (
    BUDGET_ALERT_SHARE, SWEEP_JOBS, JobEventPorts, budget_nearly_spent, check_budget,
    delivery_id, job_events, publish, publish_due_job_events, publish_job_events,
    publish_job_events_safely, record_has_events,
)
from chalicelib.domain.webhooks.signing import SIGNATURE_HEADER, sign, signed_headers
from chalicelib.domain.webhooks.types import (
    BUDGET_NEARLY_SPENT, COMPLETED, DEAD, DELIVERED, DELIVERY_FAILED, EVENT_TYPES, JOB_FAILED,
    PENDING, PHASE_CHANGED, REPORT_READY, Delivery, Endpoint, Event, WebhookConfig, Webhooks,
)
from chalicelib.domain.webhooks.urls import MAX_URL_LENGTH, check_url

__all__ = [
    "BUDGET_ALERT_SHARE", "BUDGET_NEARLY_SPENT", "COMPLETED", "DEAD", "DELIVERED",
    "DELIVERY_FAILED", "EVENT_TYPES", "JOB_FAILED", "MAX_ENDPOINTS", "MAX_URL_LENGTH",
    "PENDING", "PHASE_CHANGED", "REPORT_READY", "SIGNATURE_HEADER", "SWEEP_JOBS", "Delivery",
    "Endpoint", "Event", "EventBus", "JobEventPorts", "Sender", "WebhookConfig", "WebhookStore",
    "Webhooks", "backoff", "budget_nearly_spent", "check_budget", "check_url", "deliver",
    "delivery_id", "delivery_of", "endpoints_of", "job_events", "page_of", "publish",
    "publish_due_job_events", "publish_job_events", "publish_job_events_safely",
    "record_has_events", "register", "remove", "replay", "sign", "signed_headers",
]
