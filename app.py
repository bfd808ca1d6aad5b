"""Chalice entrypoint: the HTTP API, the SQS consumers, the sweeper and the aggregation stages.

Thin by design: every handler parses its input and calls one function in chalicelib.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice import Chalice

from chalicelib.api import (
    clients, mturk, mturk_worker, openapi, operators, pages, webhooks, workers,
)
from chalicelib.api.common import chalice_errors_as_json, refuse_invalid_parameters, refuse_oversize
from chalicelib.api.openapi import role_of
from chalicelib.deps import platform
from chalicelib.domain.webhooks import deliver, publish_due_job_events
from chalicelib.handlers import jobs, mturk_events, rounds
from chalicelib.handlers.payments import auto_approve_due
from chalicelib.observability import correlated, count, logger
from chalicelib.settings import queue_names
from chalicelib.workflows import aggregation

app = Chalice(app_name="crowd")
app.register_blueprint(clients.bp)
app.register_blueprint(workers.bp)
app.register_blueprint(operators.bp)
app.register_blueprint(pages.bp)
app.register_blueprint(openapi.bp)
app.register_blueprint(webhooks.bp)
app.register_blueprint(mturk.bp)
app.register_blueprint(mturk_worker.bp)
app.register_middleware(chalice_errors_as_json, "http")
# API Gateway admits a client route only with an `X-Api-Key` it holds in the stage's usage
# plan, and caps each key's rate there. `POST /keys/rotate` stays open to any key, so a key
# issued before the plan existed can be rotated into it.
for _path, _entries in app.routes.items():
    for _method, _entry in _entries.items():
        _entry.api_key_required = role_of(_method, _path) == "client" and _path != "/keys/rotate"
app.register_middleware(refuse_oversize, "http")
app.register_middleware(refuse_invalid_parameters, "http")

INGEST_QUEUE, RESULTS_QUEUE, WEBHOOK_QUEUE = queue_names()


def _message_id(record: Any) -> str | None:
    # Chalice's SQSRecord exposes only the body and receipt handle.
    return record.to_dict().get("messageId")


def _each_message(event: Any, handle: Callable[[dict], object]) -> None:
    """Handle every record; re-raise after the batch if any failed.

    Chalice cannot enable ReportBatchItemFailures, so a failure fails the whole batch
    and SQS redelivers it; the consumers are idempotent, so the repeats change nothing.
    """
    failures = 0
    for record in event:
        try:
            message = json.loads(record.body)
        except ValueError:
            failures += 1
            logger.exception("message is not JSON", extra={"message_id": _message_id(record)})
            continue
        with correlated(job_id=message.get("job_id")):
            try:
                handle(message)
            except Exception:
                failures += 1
                logger.exception("message failed", extra={"message_id": _message_id(record)})
    if failures:
        raise RuntimeError(f"{failures} message(s) failed; the batch will be redelivered")


@app.on_sqs_message(queue=INGEST_QUEUE, batch_size=10)
def ingest_items(event: Any) -> None:
    """Write posted items into the items table, a chunk per message."""
    _each_message(event, lambda message: jobs.ingest_chunk(platform(), message))


# Concurrent counters of one job conflict on its row; a few at a time keep that rare.
@app.on_sqs_message(queue=RESULTS_QUEUE, batch_size=10, maximum_concurrency=5)
def count_answers(event: Any) -> None:
    """Count accepted answers per job and start aggregation when a job has all its answers."""
    messages, unreadable = [], 0
    for record in event:
        try:
            messages.append(json.loads(record.body))
        except ValueError:
            unreadable += 1
            logger.exception("message is not JSON", extra={"message_id": _message_id(record)})
    with correlated():
        rounds.count_answers(platform(), messages)
        count("AnswersCounted", len(messages))
    if unreadable:
        # The readable ones are counted (and idempotent on redelivery); the rest go on to
        # the dead-letter queue for an operator.
        raise RuntimeError(f"{unreadable} message(s) were not JSON")


# One delivery per invocation: a slow receiver holds up no other client's delivery.
@app.on_sqs_message(queue=WEBHOOK_QUEUE, batch_size=1)
def deliver_webhooks(event: Any) -> None:
    """Attempt each due webhook delivery, or MTurk notification, once; failures are queued
    again with back-off."""
    p = platform()
    hooks = p.webhooks
    if hooks is None:
        raise RuntimeError("webhooks are not wired on this platform")
    _each_message(event, lambda message: mturk_events.deliver(p, message)
                  if mturk_events.is_notice(message) else deliver(hooks, message, p.now))


@app.schedule("rate(1 minute)")
def finalize_due_jobs(event: Any) -> None:
    """Start aggregation for jobs past their deadline or cancelled with no leases left,
    publish job events a crash left unpublished, and settle the workers' pay windows that are
    due (a page of the due index a run) and continue bulk approvals."""
    p = platform()
    rounds.finalize_due_jobs(p)
    approved = auto_approve_due(p)
    if approved:
        count("AutoApprovals", approved)
    publish_due_job_events(p)


@app.lambda_function(name="load_answers")
def load_answers(event: dict, context: Any) -> dict:
    """State machine stage: write the next shards of the round's answers to S3."""
    return aggregation.load_answers(platform(), event)


@app.lambda_function(name="fit_model")
def fit_model(event: dict, context: Any) -> dict:
    """State machine stage: fit the round's categorical model on all its answers."""
    with correlated(job_id=event.get("job_id")):
        return aggregation.fit_model(platform(), event)


@app.lambda_function(name="aggregate_shard")
def aggregate_shard(event: dict, context: Any) -> dict:
    """State machine stage (inside the Map): aggregate one shard."""
    return aggregation.aggregate_shard(platform(), event)


@app.lambda_function(name="publish_results")
def publish_results(event: dict, context: Any) -> dict:
    """State machine stage: publish the JSON Lines results."""
    return aggregation.publish_results(platform(), event)


@app.lambda_function(name="mark_done")
def mark_done(event: dict, context: Any) -> dict:
    """State machine stage: mark the job done."""
    with correlated(job_id=event.get("job_id")):
        return aggregation.mark_done(platform(), event)


@app.lambda_function(name="mark_failed")
def mark_failed(event: dict, context: Any) -> dict:
    """State machine catch stage: record that aggregation failed."""
    with correlated(job_id=event.get("job_id")):
        logger.error("aggregation failed", extra={"error": event.get("error")})
        count("AggregationFailures")
        return aggregation.mark_failed(platform(), event)
