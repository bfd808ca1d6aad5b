"""What webhooks are made of: event names, endpoints, events, deliveries, the retry
settings, and the ports they are sent through."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.jobs import iso
from chalicelib.domain.ports import EventBus, MessageQueue, Sender, WebhookStore

PHASE_CHANGED = "job.phase_changed"
REPORT_READY = "job.report_ready"
COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
BUDGET_NEARLY_SPENT = "job.budget_nearly_spent"
DELIVERY_FAILED = "webhook.delivery_failed"
EVENT_TYPES = (PHASE_CHANGED, REPORT_READY, COMPLETED, JOB_FAILED, BUDGET_NEARLY_SPENT,
               DELIVERY_FAILED)

# A delivery's status.
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
    queue: MessageQueue  # deliveries due (a message per attempt, delayed for back-off)
    dead_letters: MessageQueue  # deliveries given up on, for an operator
    send: Sender
    bus: EventBus | None = None
    config: WebhookConfig = field(default_factory=WebhookConfig)
