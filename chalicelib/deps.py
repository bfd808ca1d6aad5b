"""Builds the Platform once per Lambda container, lazily: nothing connects at import."""
from __future__ import annotations

import threading

from chalicelib.handlers.platform import Platform

_platform: Platform | None = None
_lock = threading.Lock()


def platform() -> Platform:
    """The container's Platform, wired to DynamoDB, SQS, S3 and Step Functions."""
    global _platform
    if _platform is None:
        with _lock:
            if _platform is None:
                _platform = _build()
    return _platform


def _build() -> Platform:
    # The adapters bring boto3 and pynamodb: imported at the first request, not with the app,
    # so a cold start that only routes (or answers from a cache) does not pay for them.
    from chalicelib.adapters import aws
    from chalicelib.adapters.dynamo import (
        DynamoAccounts, DynamoCatalog, DynamoItems, DynamoJobs, DynamoQuotes, DynamoLedger, DynamoResults,
        DynamoWorkerStats,
    )
    from chalicelib.adapters.idempotency import DynamoIdempotency
    from chalicelib.adapters.messaging import SqsQueue, StepFunctionsWorkflow
    from chalicelib.adapters.models import bind_models
    from chalicelib.adapters.mturk_notices import sender as notice_sender
    from chalicelib.adapters.mturk_records import DynamoMTurkRecords
    from chalicelib.adapters.rate_limits import ApiGatewayKeys
    from chalicelib.adapters.requester_keys import DynamoRequesterKeys
    from chalicelib.adapters.storage import S3Blobs
    from chalicelib.adapters.webhooks import DynamoWebhooks, EventBridgeBus, sender
    from chalicelib.domain.mturk_notifications import Notifier
    from chalicelib.domain.webhooks import WebhookConfig, Webhooks
    from chalicelib.settings import settings

    config = settings()
    bind_models(config)
    sqs = aws.client("sqs", config.region)
    webhook_queue = SqsQueue(sqs, config.webhook_queue_name)
    return Platform(
        accounts=DynamoAccounts(), quotes=DynamoQuotes(), jobs=DynamoJobs(),
        items=DynamoItems(), results=DynamoResults(), stats=DynamoWorkerStats(),
        ledger=DynamoLedger(), catalog=DynamoCatalog(),
        blobs=S3Blobs(aws.client("s3", config.region), config.results_bucket),
        ingest_queue=SqsQueue(sqs, config.ingest_queue_name),
        results_queue=SqsQueue(sqs, config.results_queue_name),
        workflow=StepFunctionsWorkflow(aws.client("stepfunctions", config.region),
                                       config.aggregation_state_machine_arn),
        idempotency=DynamoIdempotency(config.idempotency_table,
                                      aws.client("dynamodb", config.region)),
        webhooks=Webhooks(
            store=DynamoWebhooks(), queue=webhook_queue,
            dead_letters=SqsQueue(sqs, config.webhook_dead_letter_queue_name),
            send=sender(allow_loopback=config.webhook_allow_insecure),
            bus=EventBridgeBus(aws.client("events", config.region), config.event_bus_name),
            config=WebhookConfig(retry_base_seconds=config.webhook_retry_base_seconds,
                                 retry_max_seconds=config.webhook_retry_max_seconds,
                                 window_seconds=config.webhook_window_seconds,
                                 allow_insecure=config.webhook_allow_insecure)),
        client_keys=ApiGatewayKeys(aws.client("apigateway", config.region),
                                   config.usage_plan_id) if config.usage_plan_id else None,
        requester_keys=DynamoRequesterKeys(aws.client("kms", config.region),
                                           config.requester_keys_kms_key)
        if config.requester_keys_kms_key else None,
        mturk=DynamoMTurkRecords(),
        # Notifications ride the webhook queue and its consumer; the stage's own queues
        # (named <app>-<stage>-...) are never a requester's destination.
        mturk_notifier=Notifier(
            send=notice_sender(aws.client, config.region), queue=webhook_queue,
            reserved_prefix=config.ingest_queue_name.rsplit("-", 1)[0] + "-",
            retry_base_seconds=config.webhook_retry_base_seconds,
            retry_max_seconds=config.webhook_retry_max_seconds,
            window_seconds=config.webhook_window_seconds),
        cache_seconds=config.cache_seconds,
        open_registration=config.open_worker_registration,
    )


def reset() -> None:
    """Forget the Platform, settings and AWS clients (tests switch stacks between runs)."""
    global _platform
    from chalicelib.adapters import aws, cursors  # as in _build: boto3 and pynamodb, lazily
    from chalicelib.settings import settings

    _platform = None
    settings.cache_clear()
    aws.reset()
    cursors.reset()
