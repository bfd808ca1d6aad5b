"""MTurk's notifications: the operations that configure them (merged into
chalicelib.handlers.mturk) and `emit`, which the HIT, assignment and worker-side code call
after a change of state a requester may be notified of."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain.model import Job, Principal
from chalicelib.handlers.platform import Platform

OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {}


def emit(p: Platform, job: Job, event_type: str, assignment_id: str | None = None,
         at: float | None = None) -> None:
    """Announce one of MTurk's events (AssignmentAccepted, AssignmentSubmitted, ...) of a
    HIT's job to the requester's notification settings for its HIT type. Called after the
    change is stored; it never raises into the caller."""
    del p, job, event_type, assignment_id, at  # no notification transport configured yet
