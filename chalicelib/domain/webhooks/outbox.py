"""Publishing events: one delivery per endpoint that wants an event, and the job events that
reach here through an outbox.

An event is built from something durable (a transition in the job's history, the job's
spend) and has an id derived from it, so building it twice gives the same event. For each of
the account's endpoints that wants it there is one delivery, written with a condition (a
repeat writes nothing) and then queued.

Job transitions reach here through an outbox: a transition marks the job as having events
due (in the same write), `publish_job_events` publishes every transition not yet published
and then moves the job's mark, and the one-minute sweeper does the same for any job a crash
left marked. The budget alert is published once, when a job's spend crosses the line.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chalicelib.domain.jobs import iso
from chalicelib.domain.model import AGGREGATING, DONE, FAILED, PAUSED, Job
from chalicelib.domain.ports import JobStore
from chalicelib.domain.pricing import worker_budget
from chalicelib.domain.webhooks.types import (
    BUDGET_NEARLY_SPENT, COMPLETED, JOB_FAILED, PENDING, PHASE_CHANGED, REPORT_READY, Delivery,
    Endpoint, Event, Webhooks,
)
from chalicelib.observability import logger

# Share of the budget spent (rewards of counted answers and bonuses) that is "nearly spent".
BUDGET_ALERT_SHARE = 0.9
SWEEP_JOBS = 100


class JobEventPorts(Protocol):
    """What publishing job events takes from the Platform: its jobs, its webhooks (None
    publishes nothing) and its clock."""

    jobs: JobStore
    webhooks: Webhooks | None

    def now(self) -> float: """The current time in epoch seconds."""


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


def record_has_events(record: Mapping[str, Any]) -> bool:
    """True when a transition record gives at least one event (the outbox marks only those)."""
    before, after = record.get("from") or {}, record.get("to") or {}
    return before.get("state") is not None and (
        before.get("phase") != after.get("phase") or after.get("state") in (DONE, FAILED)
        or (before.get("state") == AGGREGATING and after.get("state") == PAUSED))


def publish_job_events(p: JobEventPorts, job_id: str) -> int:
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


def publish_job_events_safely(p: JobEventPorts, job_id: str) -> None:
    """publish_job_events right after a transition, where a failure must not undo the
    transition: the job stays on the outbox and the sweeper publishes within a minute."""
    try:
        publish_job_events(p, job_id)
    except Exception:  # noqa: BLE001 (logged; retried by the sweeper)
        logger.exception("publishing job events failed; the sweeper will retry",
                         extra={"job_id": job_id})


def publish_due_job_events(p: JobEventPorts) -> int:
    """The sweeper's part: jobs a crash left with events unpublished (at most SWEEP_JOBS a
    run; one job failing does not stop the others)."""
    if p.webhooks is None:
        return 0
    published = 0
    for job_id in p.jobs.jobs_with_events_due()[:SWEEP_JOBS]:
        try:
            published += publish_job_events(p, job_id)
        except Exception:  # noqa: BLE001 (logged; the next run tries again)
            logger.exception("publishing job events failed", extra={"job_id": job_id})
    return published


def budget_nearly_spent(job: Job) -> bool:
    """True when rewards of counted answers plus bonuses reach 90% of what the job's budget
    has for workers (the budget less the platform fee)."""
    for_workers = worker_budget(job.budget_cents)
    return for_workers > 0 and \
        job.spent_cents + job.bonus_cents >= BUDGET_ALERT_SHARE * for_workers


def check_budget(p: JobEventPorts, job: Job) -> bool:
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
        logger.exception("the budget alert failed; it is tried again", extra={"job_id": job.job_id})
        return False
    return True
