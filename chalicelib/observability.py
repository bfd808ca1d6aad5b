"""Structured JSON logs through powertools (tracing stays off: it costs cold-start time)."""
from __future__ import annotations

from aws_lambda_powertools.logging import Logger

logger = Logger(service="crowd")
