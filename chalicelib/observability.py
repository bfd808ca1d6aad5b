"""Structured JSON logs and EMF metrics through powertools.

The level is a stage setting (infra/stage_settings.py writes it into .chalice/config.json as
POWERTOOLS_LOG_LEVEL, read when the logger is made): the hot paths (lease, submit, release,
counting) log per request only at DEBUG, since their counts are metrics. An invocation's
metrics go out as one EMF line, flushed once when it ends; they do not depend on the level.

Tracing is not wired in code: X-Ray is switched on per stage with Chalice's `xray`
setting in .chalice/config.json (off by default; powertools' Tracer alone costs about
200 ms of cold start).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

CORRELATION_KEYS = ("job_id", "assignment_id")

logger = Logger(service="crowd")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Crowd"),
                  service="crowd")
# The metric set is one per process: a Lambda container runs one invocation at a time, but the
# local API server runs requests on threads, and a flush that found metrics could otherwise
# find them gone (flushed by another request) and fail a request that had done its work.
_METRICS_LOCK = threading.Lock()


def count(name: str, value: float = 1) -> None:
    """Add to a count metric (published when the invocation ends)."""
    _add(name, MetricUnit.Count, value)


def seconds(name: str, value: float) -> None:
    """Record a duration metric in seconds."""
    _add(name, MetricUnit.Seconds, value)


def _add(name: str, unit: MetricUnit, value: float) -> None:
    """Add a metric to the process's set, under the lock its flush takes."""
    with _METRICS_LOCK:
        metrics.add_metric(name=name, unit=unit, value=value)


def flush() -> None:
    """Publish the metrics gathered so far as one EMF log line (nothing if there are none)."""
    with _METRICS_LOCK:
        if metrics.metric_set:
            metrics.flush_metrics()


@contextmanager
def correlated(**keys: str | None) -> Iterator[None]:
    """Log with the job and assignment ids for the block, then publish its metrics."""
    present = {k: v for k, v in keys.items() if k in CORRELATION_KEYS and v}
    logger.append_keys(**present)
    try:
        yield
    finally:
        logger.remove_keys(list(present))
        flush()
