"""Reviews and money: approve or reject accepted answers, automatic approval, bonuses, and
what workers see of their earnings. The round's close (chalicelib.handlers.quality) settles
blocked workers' answers with the same `settle`.

Every credit is a ledger entry whose id is derived from what it pays for
("review#<assignment id>", "bonus#<job id>#<bonus id>"), written in one transaction with the
balance it changes and a condition that it does not exist yet: a retried approval or bonus,
from the client, the sweeper or both at once, pays once.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain import webhooks
from chalicelib.domain.ids import parse_assignment_id
from chalicelib.domain.model import (
    APPROVED, CANCELLED, DONE, FAILED, REJECTED, ItemState, Job, LedgerEntry, Principal,
    StoredAnswer,
)
from chalicelib.errors import Conflict, NotFound
from chalicelib.handlers.platform import Platform, client_job

MAX_BONUS_CENTS = 100_000
AUTO = "auto"


@dataclass(frozen=True)
class Review:
    """An accepted answer's review: the decision {"status", "reason", "at", "by"} (None while
    nobody has reviewed it) and the reward it pays once approved."""

    assignment_id: str
    worker_id: str
    decision: Mapping[str, Any] | None
    reward_cents: int

    @property
    def status(self) -> str:
        """approved, rejected or pending."""
        return self.decision["status"] if self.decision else "pending"

    @property
    def paid_cents(self) -> int:
        """What the worker is paid for the answer."""
        return self.reward_cents if self.status == APPROVED else 0


class AlreadyReviewed(Conflict):
    """The answer was already given the other decision (or one cannot be read back); review
    is the decision that stands."""

    code = "already_reviewed"

    def __init__(self, review: Review) -> None:
        super().__init__(f"this answer was already "
                         f"{review.status if review.decision else 'reviewed'}")
        self.review = review


@dataclass(frozen=True)
class Earnings:
    """A page of a worker's ledger entries, newest first, with their balance."""

    worker_id: str
    balance_cents: int
    entries: list[LedgerEntry]
    next_cursor: str | None


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


def _review_body(body: Any, reason_required: bool) -> str | None:
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("reason",))
    reason = v.text(body, "reason", max_length=500, required=reason_required)
    return reason.strip() if reason else None


def _client_answer(p: Platform, client: Principal, assignment_id: str
                   ) -> tuple[Job, ItemState, str, StoredAnswer]:
    """The client's job, the item and the accepted answer of an assignment; 404 otherwise."""
    job_id, item_id, _, _ = parse_assignment_id(assignment_id)
    try:
        job = client_job(p, client, job_id)
    except NotFound:
        raise NotFound("no such assignment", code="assignment_not_found") from None
    item = p.items.get_item(job.job_id, item_id)
    for worker_id, answer in (item.answers.items() if item is not None else ()):
        if item is not None and answer.assignment_id == assignment_id:
            return job, item, worker_id, answer
    raise NotFound("no accepted answer for this assignment", code="assignment_not_found")


def review_assignment(p: Platform, client: Principal, assignment_id: str, body: Any,
                      status: str) -> Review:
    """Approve (reason optional) or reject (reason required) an accepted answer, once.

    The same decision again returns the first one unchanged; the other decision is 409
    (AlreadyReviewed, with the decision that stands).
    A rejected answer is left out of aggregation, its reward goes back to the job's pool,
    and while the job still takes answers its item gets a replacement slot.
    """
    job, item, worker_id, answer = _client_answer(p, client, assignment_id)  # 404 comes first
    reason = _review_body(body, reason_required=status == REJECTED)
    review = answer.review
    if review is None:
        review = settle(p, job, item, worker_id, answer, status, reason, client.account_id)
        if review is None:  # reviewed meanwhile (by the sweeper or another call)
            _, _, _, answer = _client_answer(p, client, assignment_id)
            review = answer.review
    outcome = Review(assignment_id, worker_id, review, job.reward_cents)
    if review is None or review["status"] != status:
        raise AlreadyReviewed(outcome)
    return outcome


def auto_approve_due(p: Platform) -> int:
    """The sweeper: approve every accepted answer nobody reviewed within its job's delay;
    return how many were approved."""
    now = p.now()
    approved = 0
    for job_id in p.jobs.jobs_due_for_review(now):
        job = p.jobs.get_job(job_id)
        if job is None:
            continue
        next_due: float | None = None
        for item in p.items.iter_items(job_id):
            for worker_id, answer in item.answers.items():
                if answer.review is not None:
                    continue
                due = answer.submitted_at + job.auto_approve_seconds
                if due <= now:
                    approved += settle(p, job, item, worker_id, answer, APPROVED,
                                       "approved automatically after the review period",
                                       AUTO) is not None
                else:
                    next_due = due if next_due is None else min(next_due, due)
        p.jobs.set_review_due(job_id, next_due, job.answered)
    return approved


def pay_bonus(p: Platform, client: Principal, job_id: str, body: Any) -> tuple[LedgerEntry, bool]:
    """Pay a worker of the job a bonus with a reason, from the job's pool; `bonus_id` (the
    client's own id for it) makes a retry pay nothing twice. Returns (entry, newly paid)."""
    job = client_job(p, client, job_id)
    body = v.require_object(body)
    v.reject_unknown(body, ("worker_id", "amount_cents", "reason", "bonus_id"))
    worker_id = v.text(body, "worker_id", max_length=64)
    amount = v.integer(body, "amount_cents", low=1, high=MAX_BONUS_CENTS)
    reason = v.text(body, "reason", max_length=500).strip()
    bonus_id = v.text(body, "bonus_id", max_length=64)
    entry_id = f"bonus#{job.job_id}#{bonus_id}"
    existing = p.ledger.get_entry(worker_id, entry_id)
    if existing is None:
        if not any(worker_id in item.seen for item in p.items.iter_items(job.job_id)):
            raise NotFound("no such worker in this job", field="worker_id",
                           code="worker_not_found")
        entry = LedgerEntry(worker_id, entry_id, "bonus", amount, p.now(), job.job_id, None,
                            reason, client.account_id)
        if p.ledger.bonus(entry, job.job_id):
            fresh = p.jobs.get_job(job.job_id)
            if fresh is not None:
                webhooks.check_budget(p, fresh)
            return entry, True
        existing = p.ledger.get_entry(worker_id, entry_id)
    if existing is None or existing.amount_cents != amount or existing.reason != reason:
        raise Conflict("this bonus_id was already used for another bonus", field="bonus_id",
                       code="bonus_id_reused")
    return existing, False


def earnings(p: Platform, worker: Principal, query: Mapping[str, str]) -> Earnings:
    """A worker's balance and history (approvals, rejections with their reasons, bonuses),
    newest first."""
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    entries, cursor = p.ledger.entries(worker.account_id, v.page_limit(query, 50), query.get("cursor"))
    return Earnings(worker.account_id, p.ledger.balance(worker.account_id), entries, cursor)
