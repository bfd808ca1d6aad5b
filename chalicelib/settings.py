"""Typed settings, read once from the environment (stage values live in .chalice/config.json)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.errors import ConfigurationError

_REQUIRED = {
    "accounts_table": "ACCOUNTS_TABLE",
    "credentials_table": "CREDENTIALS_TABLE",
    "quotes_table": "QUOTES_TABLE",
    "jobs_table": "JOBS_TABLE",
    "items_table": "ITEMS_TABLE",
    "results_table": "RESULTS_TABLE",
    "worker_stats_table": "WORKER_STATS_TABLE",
    "ledger_table": "LEDGER_TABLE",
    "catalog_table": "CATALOG_TABLE",
    "idempotency_table": "IDEMPOTENCY_TABLE",
    "webhooks_table": "WEBHOOKS_TABLE",
    "webhook_queue_name": "WEBHOOK_QUEUE_NAME",
    "webhook_dead_letter_queue_name": "WEBHOOK_DEAD_LETTER_QUEUE_NAME",
    "event_bus_name": "EVENT_BUS_NAME",
    "ingest_queue_name": "INGEST_QUEUE_NAME",
    "results_queue_name": "RESULTS_QUEUE_NAME",
    "results_bucket": "RESULTS_BUCKET",
    "aggregation_state_machine_arn": "AGGREGATION_STATE_MACHINE_ARN",
}

# Queue names are needed at import time by Chalice's decorators (they become the event
# source mappings at deploy time), so they have defaults that match the dev stage.
DEFAULT_INGEST_QUEUE = "crowd-dev-ingest"
DEFAULT_RESULTS_QUEUE = "crowd-dev-results"
DEFAULT_WEBHOOK_QUEUE = "crowd-dev-webhooks"


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment."""

    accounts_table: str
    credentials_table: str
    quotes_table: str
    jobs_table: str
    items_table: str
    results_table: str
    worker_stats_table: str
    ledger_table: str
    catalog_table: str
    idempotency_table: str
    webhooks_table: str
    webhook_queue_name: str
    webhook_dead_letter_queue_name: str
    event_bus_name: str
    ingest_queue_name: str
    results_queue_name: str
    results_bucket: str
    aggregation_state_machine_arn: str
    region: str
    open_worker_registration: bool
    cache_seconds: float
    webhook_retry_base_seconds: float = 30.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_window_seconds: float = 24 * 3600.0
    # Webhook endpoints on this machine's loopback, http too (local stacks and tests only).
    webhook_allow_insecure: bool = False
    # The API Gateway usage plan that caps each client key's request rate (written into the
    # stage by `make deploy`); empty: client keys are not registered (the local stack).
    usage_plan_id: str = ""
    # The KMS key that seals requester access keys' secrets (the stack's output); empty:
    # requester keys cannot be made on this stage.
    requester_keys_kms_key: str = ""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def read_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping; fail fast naming every missing variable."""
    env = os.environ if environ is None else environ
    missing = sorted(var for var in _REQUIRED.values() if not env.get(var))
    if missing:
        raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
    values = {field: env[var] for field, var in _REQUIRED.items()}
    return Settings(
        **values,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        open_worker_registration=_flag(env.get("OPEN_WORKER_REGISTRATION")),
        cache_seconds=float(env.get("CACHE_SECONDS", "2")),
        webhook_retry_base_seconds=float(env.get("WEBHOOK_RETRY_BASE_SECONDS", "30")),
        webhook_retry_max_seconds=float(env.get("WEBHOOK_RETRY_MAX_SECONDS", "3600")),
        webhook_window_seconds=float(env.get("WEBHOOK_WINDOW_SECONDS", str(24 * 3600))),
        webhook_allow_insecure=_flag(env.get("WEBHOOK_ALLOW_INSECURE")),
        usage_plan_id=env.get("USAGE_PLAN_ID", ""),
        requester_keys_kms_key=env.get("REQUESTER_KEYS_KMS_KEY", ""),
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read on first use."""
    return read_settings()


def queue_names() -> tuple[str, str, str]:
    """Ingest, results and webhook queue names for Chalice's event-source decorators."""
    return (
        os.environ.get("INGEST_QUEUE_NAME", DEFAULT_INGEST_QUEUE),
        os.environ.get("RESULTS_QUEUE_NAME", DEFAULT_RESULTS_QUEUE),
        os.environ.get("WEBHOOK_QUEUE_NAME", DEFAULT_WEBHOOK_QUEUE),
    )
