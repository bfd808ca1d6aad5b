"""Reviews and money: approve or reject accepted answers, settle what workers earned in bulk,
bonuses, and what workers see of their earnings. The round's close
(chalicelib.handlers.quality) rejects blocked workers' answers with the same `settle`.

Answers are paid in bulk (chalicelib.domain.payouts): counting adds each accepted answer to
its worker's accrual for the job and pay window, and the sweeper settles each accrual once it
is due (or once the client approves the job in bulk) with one ledger entry
("settlement#<job id>#<window>#<paid count>") and one balance change for all its answers not
yet paid or rejected, written in one transaction with the accrual's paid count (only if the
accrual is as read) and a condition that the entry does not exist: a settlement repeated, by
a redelivery or two sweepers at once, pays once. A rejection ("review#<assignment id>") is
recorded on the answer and its accrual together, only while that accrual was never settled:
after its settlement an answer is approved and stays so. A client's approval of one answer
is a mark on it; its money comes with its accrual's settlement.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import payouts
from chalicelib.domain import validation as v
from chalicelib.domain import webhooks
from chalicelib.domain.ids import parse_assignment_id
from chalicelib.domain.jobs import iso, parse_timestamp
from chalicelib.domain.model import (
    APPROVED, CANCELLED, DONE, FAILED, REJECTED, ItemState, Job, LedgerEntry, Principal,
    StoredAnswer,
)
from chalicelib.domain.payouts import Accrual
from chalicelib.domain.pricing import platform_fee, worker_budget
from chalicelib.domain.ports import ApprovalRequest
from chalicelib.errors import Conflict, NotFound, TransientError
from chalicelib.handlers.platform import Platform, cached_job, client_job

MAX_BONUS_CENTS = 100_000
AUTO = "auto"
# Accruals one sweeper run settles from the due index, and per bulk approval.
SETTLE_PAGE = 200
SETTLED_REASON = "approved when its pay window was settled"


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
    """Write one review: a rejection with its ledger entry and its accrual, an approval as a
    mark on the answer; None if the answer was reviewed before (or, for a rejection, its
    accrual was settled)."""
    now = p.now()
    review = {"status": status, "reason": reason, "at": now, "by": by}
    if status == APPROVED:
        written = p.items.approve(job.job_id, item.item_id, worker_id, answer.assignment_id,
                                  review, gold=item.gold is not None)
        return review if written else None
    entry = LedgerEntry(worker_id, f"review#{answer.assignment_id}", "rejection", 0, now,
                        job.job_id, answer.assignment_id, reason, by)
    # A rejected answer's reward is held for its replacement slot while the job may still
    # take answers (so a bonus cannot take it first); otherwise it goes back to the pool.
    replaceable = takes_replacements(job, item)
    written = p.items.review(job.job_id, item.item_id, worker_id, answer.assignment_id, review,
                             entry, job.reward_cents, "held" if replaceable else "pool")
    return review if written else None


def takes_replacements(job: Job, item: ItemState) -> bool:
    """Whether an answer of the item left out (rejected, or by a blocked worker) gets a
    replacement slot: a regular item of a job that may still take answers, unless the job is
    a HIT (Job.mturk): MTurk never reopens an assignment it rejected, so a HIT's rejected
    reward goes back to the pool and its slot stays used."""
    return item.gold is None and not job.mturk and job.state not in (CANCELLED, DONE, FAILED)


def decision(p: Platform, job_id: str, worker_id: str, answer: StoredAnswer
             ) -> dict[str, Any] | None:
    """An answer's review as it stands: its own (a rejection, or a client's approval), or an
    approval by its accrual's settlement; None while pending."""
    if answer.review is not None:
        return answer.review
    accrual = p.ledger.accrual(job_id, worker_id, payouts.window_of(answer.assignment_id))
    if accrual is None or accrual.settled_at is None:
        return None
    return {"status": APPROVED, "reason": SETTLED_REASON, "at": accrual.settled_at,
            "by": accrual.settled_by or AUTO}


def _review_body(body: Any, reason_required: bool) -> str | None:
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("reason",))
    reason = v.text(body, "reason", max_length=500, required=reason_required)
    return reason.strip() if reason else None


def _client_answer(p: Platform, client: Principal, assignment_id: str, fresh: bool = True
                   ) -> tuple[Job, ItemState, str, StoredAnswer]:
    """The client's job, the item and the accepted answer of an assignment; 404 otherwise.
    Without fresh the job is the container's cached copy: an approval needs only what never
    changes (its owner and reward), while a rejection routes money by the job's state."""
    job_id, item_id, _, _ = parse_assignment_id(assignment_id)
    try:
        job = client_job(p, client, job_id, cached=not fresh)
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
    (AlreadyReviewed, with the decision that stands): an answer whose pay window was settled
    is approved and cannot be rejected any more.
    A rejected answer is left out of aggregation, its reward goes back to the job's pool,
    and while the job still takes answers its item gets a replacement slot (a HIT's does not:
    takes_replacements). An approved one is paid with the other answers of its accrual when
    that is settled.
    """
    # 404 comes first
    found = _client_answer(p, client, assignment_id, fresh=status == REJECTED)
    reason = _review_body(body, reason_required=status == REJECTED)
    return review_answer(p, client, assignment_id, status, reason, found)


def review_answer(p: Platform, client: Principal, assignment_id: str, status: str,
                  reason: str | None,
                  found: tuple[Job, ItemState, str, StoredAnswer] | None = None) -> Review:
    """review_assignment with its reason read (None: no reason, which a rejection through
    the MTurk API may have) and, when given, the answer found (as _client_answer finds it:
    with a job read fresh for a rejection): the same decision again returns the first, the
    other decision is AlreadyReviewed, an unknown answer NotFound."""
    job, item, worker_id, answer = found or _client_answer(p, client, assignment_id,
                                                           fresh=status == REJECTED)
    # Written first, read only if refused: the write's conditions decide, and a client's
    # approval in the review period (the usual case) costs no read of the accrual.
    review = answer.review
    if review is None:
        review = settle(p, job, item, worker_id, answer, status, reason, client.account_id)
        if review is None:  # reviewed or settled meanwhile (by the sweeper or another call)
            _, _, _, answer = _client_answer(p, client, assignment_id)
            review = decision(p, job.job_id, worker_id, answer)
    outcome = Review(assignment_id, worker_id, review, job.reward_cents)
    if review is None or review["status"] != status:
        raise AlreadyReviewed(outcome)
    return outcome


def billed_cents(job: Job, amount_cents: int) -> int:
    """What paying amount_cents to a worker by billing the client adds to the job's budget:
    enough that the budget's workers' part (the budget less the platform fee) grows by
    exactly the amount, i.e. the amount and the fee on it, so the job's money figures
    (chalicelib.domain.pricing.job_money) still add up."""
    workers_part = worker_budget(job.budget_cents) + amount_cents
    return max(amount_cents, workers_part + platform_fee(workers_part) - job.budget_cents)


def override_rejection(p: Platform, job: Job, item: ItemState, worker_id: str,
                       answer: StoredAnswer, reason: str | None, by: str) -> bool:
    """Approve a rejected answer after all and pay it at once (MTurk's ApproveAssignment
    with OverrideRejection); False if it is not rejected any more.

    The rejection counted the answer rejected on its accrual, so no settlement pays it,
    whether that accrual was settled since or not; the override pays the reward with a
    ledger entry of its own ("override#<assignment id>", written only if new, in one
    transaction with the review turning to approved), so the worker is paid exactly once.
    The reward comes back from the job's pool, where the rejection put it; if the pool has
    spent it meanwhile, it is billed on the job (its budget grows by it and its fee).
    """
    now = p.now()
    review = {"status": APPROVED, "reason": reason, "at": now, "by": by}
    entry = LedgerEntry(worker_id, f"override#{answer.assignment_id}", "settlement",
                        job.reward_cents, now, job.job_id, answer.assignment_id,
                        "a rejected answer approved", by, 1)
    written = p.items.approve_rejected(job.job_id, item.item_id, worker_id,
                                       answer.assignment_id, review, entry)
    if written is None:
        written = p.items.approve_rejected(job.job_id, item.item_id, worker_id,
                                           answer.assignment_id, review, entry,
                                           billed_cents=billed_cents(job, job.reward_cents))
    if written:
        p.cache.jobs.forget(job.job_id)
    return bool(written)


def settle_accrual(p: Platform, accrual: Accrual, by: str) -> int:
    """Pay an accrual's answers not paid or rejected yet, in one settlement; return how many
    were paid (0 if nothing was payable, or the accrual changed since it was read: a later
    run settles it as it then stands)."""
    job = cached_job(p, accrual.job_id)
    count = accrual.payable
    if job is None or count < 0:
        return 0  # a rejection whose answer is not counted yet: settled once it is
    now = p.now()
    entry = None if count == 0 else LedgerEntry(
        accrual.worker_id, payouts.accrual_entry_id(accrual.job_id, accrual.window,
                                                    accrual.paid + count),
        "settlement", count * job.reward_cents, now, accrual.job_id, None,
        f"{count} answer{'s' if count != 1 else ''} approved", by, count)
    try:
        settled = p.ledger.settle(accrual, entry, count, now, by)
    except TransientError:
        return 0  # another sweeper is settling it: one of the two pays
    return count if settled else 0


def auto_approve_due(p: Platform, page: int = SETTLE_PAGE) -> int:
    """The sweeper: settle up to `page` due accruals from the due index (settled ones leave
    it, so the next run continues with the rest), then continue each bulk approval a client
    asked for by a page of its job's accruals; return how many answers were paid."""
    now = p.now()
    paid = sum(settle_accrual(p, accrual, AUTO) for accrual in p.ledger.accruals_due(now, page))
    for request in p.jobs.approvals_requested(now):
        paid += _continue_approval(p, request, page)
    return paid


def _continue_approval(p: Platform, request: ApprovalRequest, page: int) -> int:
    """Settle one page of the job's accruals of the windows the bulk approval covers."""
    before = None if request.before is None else \
        int(request.before // payouts.PAY_WINDOW_SECONDS)
    accruals, cursor = p.ledger.accruals_of_job(request.job_id, before, request.cursor, page)
    paid = sum(settle_accrual(p, accrual, request.by) for accrual in accruals
               if accrual.payable or accrual.settled_at is None)
    p.jobs.advance_approval(request, cursor)
    return paid


def approve_job(p: Platform, client: Principal, job_id: str, body: Any) -> dict[str, Any]:
    """Approve a job's answers in bulk: every answer counted in the pay windows that ended by
    `submitted_before` (an ISO 8601 time; default: every window) and not rejected
    is approved and paid by the sweeper, a page of accruals per run, without reading the
    job's items. Answers counted later are paid when their window is due."""
    job = client_job(p, client, job_id)
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("submitted_before",))
    before = None if body.get("submitted_before") is None else \
        parse_timestamp(body["submitted_before"], "submitted_before")
    now = p.now()
    p.jobs.request_approval(job.job_id, before, client.account_id, now)
    return {"job_id": job.job_id, "status": "approving", "requested_at": iso(now),
            "submitted_before": iso(before)}


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
        if not worked_in(p, job, worker_id):
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


def worked_in(p: Platform, job: Job, worker_id: str) -> bool:
    """Whether the worker has worked in the job: an answer of theirs counted in it (gold
    ones too: every counted answer accrues) or a record of theirs in the job (a gold score
    or a block). Two key reads, whatever the job's size; an answer not yet counted (the
    counting queue is seconds behind) or a lease never answered does not count."""
    return p.stats.record(worker_id, job.job_id) is not None or \
        bool(p.ledger.workers_in_job(job.job_id, [worker_id]))


def earnings(p: Platform, worker: Principal, query: Mapping[str, str]) -> Earnings:
    """A worker's balance and history (approvals, rejections with their reasons, bonuses),
    newest first."""
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    entries, cursor = p.ledger.entries(worker.account_id, v.page_limit(query, 50), query.get("cursor"))
    return Earnings(worker.account_id, p.ledger.balance(worker.account_id), entries, cursor)
