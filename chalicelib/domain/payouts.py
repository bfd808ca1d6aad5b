"""Pay windows and accruals: how accepted answers are paid in bulk.

Each accepted answer accrues, when it is counted, to one accrual: the record of what a worker
earned in one job in one pay window (the hour its task was leased in, read from the assignment
id, so every path finds the same accrual without a lookup). An accrual counts the answers
accrued, rejected and paid; the sweeper settles it once it is due (the window's end, plus the
job's lease time and review period, so every answer in it had the whole review period) with
one ledger entry and one balance change for all its answers not paid or rejected yet. A
rejection needs its accrual never settled: once settled, its answers are approved.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from chalicelib.domain.ids import parse_assignment_id

PAY_WINDOW_SECONDS = 3600
# The due index is spread over this many partition keys ("due#0" .. "due#7").
DUE_SHARDS = 8


@dataclass(frozen=True)
class Accrual:
    """What a worker earned in one job in one pay window: answers accrued (counted), rejected
    and paid so far; due_at while some are unpaid; settled_at once a settlement has run
    (after which its answers cannot be rejected)."""

    job_id: str
    worker_id: str
    window: int
    accrued: int = 0
    rejected: int = 0
    paid: int = 0
    due_at: float | None = None
    settled_at: float | None = None
    settled_by: str | None = None

    @property
    def payable(self) -> int:
        """Answers accrued but neither paid nor rejected (negative while a rejection arrived
        before its answer was counted)."""
        return self.accrued - self.rejected - self.paid

    @property
    def window_end(self) -> float:
        """When the pay window ends."""
        return window_end(self.window)


def window_of(assignment_id: str) -> int:
    """The pay window of an answer: the hour its task was leased in."""
    return int(parse_assignment_id(assignment_id)[2] // PAY_WINDOW_SECONDS)


def window_end(window: int) -> float:
    """When a pay window ends."""
    return float((window + 1) * PAY_WINDOW_SECONDS)


def due_at(window: int, lease_seconds: int, auto_approve_seconds: int) -> float:
    """When an accrual of the window is settled unless a client settles it sooner: the last
    answer leased in it had its whole review period."""
    return window_end(window) + lease_seconds + auto_approve_seconds


def pay_delay(lease_seconds: int, auto_approve_seconds: int, hit: bool = False) -> float:
    """How long after its window's end an accrual is due: the lease time and the review
    period. A HIT (a job made through the MTurk API) with no review period approves its
    answers as they are submitted (AutoApprovalDelayInSeconds 0): its accruals are due at
    once (from the window's start, which has passed), so the sweeper's next run pays them."""
    if hit and auto_approve_seconds <= 0:
        return -float(PAY_WINDOW_SECONDS)
    return float(lease_seconds + auto_approve_seconds)


def due_shard(job_id: str, worker_id: str) -> str:
    """The due index's partition key of an accrual: fixed per accrual, spread over shards."""
    return f"due#{zlib.crc32(f'{job_id}#{worker_id}'.encode()) % DUE_SHARDS}"


def accrual_entry_id(job_id: str, window: int, paid_after: int) -> str:
    """The ledger entry of a settlement: one per accrual and paid count, so a settlement
    written twice (a redelivery, two sweepers) pays once."""
    return f"settlement#{job_id}#{window}#{paid_after}"
