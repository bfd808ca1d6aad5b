"""One review of an accepted answer, with its ledger entry and its money, written once.

Both the client's reviews and automatic approval (chalicelib.domain.payments) and the round's
close, which rejects blocked workers' answers (chalicelib.domain.services), settle answers here;
the Platform is only a type to this module, so neither imports the other for it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.domain.model import (
    APPROVED, CANCELLED, DONE, FAILED, ItemState, Job, LedgerEntry, StoredAnswer,
)

if TYPE_CHECKING:
    from chalicelib.domain.services import Platform


def settle(p: Platform, job: Job, item: ItemState, worker_id: str, answer: StoredAnswer,
           status: str, reason: str | None, by: str) -> dict[str, Any] | None:
    """Write one review with its ledger entry; None if the answer was reviewed before."""
    now = p.now()
    review = {"status": status, "reason": reason, "at": now, "by": by}
    approved = status == APPROVED
    entry = LedgerEntry(worker_id, f"review#{answer.assignment_id}",
                        "approval" if approved else "rejection",
                        job.reward_cents if approved else 0, now, job.job_id,
                        answer.assignment_id, reason, by)
    # A rejected answer's reward is held for its replacement slot while the job may still
    # take answers (so a bonus cannot take it first); otherwise it goes back to the pool.
    replaceable = item.gold is None and job.state not in (CANCELLED, DONE, FAILED)
    written = p.items.review(job.job_id, item.item_id, worker_id, answer.assignment_id, review,
                             entry, 0 if approved else job.reward_cents,
                             "held" if replaceable else "pool")
    return review if written else None
