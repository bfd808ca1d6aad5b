"""Domain errors with names; HTTP status codes are decided here and nowhere else."""
from __future__ import annotations

from typing import Any


class CrowdError(Exception):
    """Base of every error the platform raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        """The JSON body a client sees."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.details)
        return body


class InvalidRequest(CrowdError):
    """The request body or a parameter is malformed or out of range."""

    status = 400
    code = "invalid_request"


class Unauthorized(CrowdError):
    """Missing, unknown or revoked credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(CrowdError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFound(CrowdError):
    """No such resource for this caller (other tenants' resources look the same)."""

    status = 404
    code = "not_found"


class Conflict(CrowdError):
    """The resource is in a state that does not allow the request."""

    status = 409
    code = "conflict"


class PayloadTooLarge(CrowdError):
    """The body, or a list in it, is larger than the stated limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CrowdError):
    """The request body is not JSON."""

    status = 415
    code = "unsupported_media_type"


class UnprocessableEntity(CrowdError):
    """The request is well formed but contradicts an earlier one (e.g. a reused key)."""

    status = 422
    code = "unprocessable"


class TransientError(CrowdError):
    """A retryable failure (throttling, a lost race); Step Functions retries on this name."""

    status = 503
    code = "try_again"


class ConfigurationError(CrowdError):
    """The deployment is missing settings; fails fast at first use."""

    status = 500
    code = "configuration_error"
