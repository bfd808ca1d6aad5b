"""AWS errors read in one place: which answers mean "busy, try again" (TransientError, which
the API returns as 503 and Step Functions retries), for every adapter and service alike.

Each adapter keeps its own meaning of the other codes (S3's NoSuchKey is NotFound, Step
Functions' ExecutionAlreadyExists is a repeat, DynamoDB's failed condition is a lost race).
"""
from __future__ import annotations

from botocore.exceptions import ClientError

from chalicelib.errors import TransientError

# Throttling and transient failures, as DynamoDB, S3, SQS and Step Functions name them
# (botocore has retried each of them before the error reaches the code).
BUSY_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "TransactionConflictException", "Throttling", "RequestThrottled", "SlowDown",
    "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500",
})


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, or of the AWS answer behind a pynamodb
    error (its cause_response_code); None for anything else."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return getattr(error, "cause_response_code", None)


def raise_if_busy(error: BaseException, service: str) -> None:
    """Raise TransientError from error when AWS answered that service is busy; return
    otherwise (the caller handles or re-raises the error)."""
    if error_code(error) in BUSY_CODES:
        raise TransientError(f"{service} is busy; try again") from error
