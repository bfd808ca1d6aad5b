"""The MTurk-compatible API's assignments and money (merged into chalicelib.handlers.mturk):
ListAssignmentsForHIT, GetAssignment, ApproveAssignment, RejectAssignment, SendBonus and
ListBonusPayments, on a HIT's job (a job of one item, Job.mturk set).

An assignment is an accepted answer on the HIT's item (a lease not yet answered is not one
yet). Its AssignmentStatus comes from the answer's review: Approved or Rejected once
reviewed; Submitted while not, until its AutoApprovalTime (submission + the job's review
period) has passed, from when it is Approved (the sweeper pays it when its pay window is
due; a HIT with no review period is due at once). Reviews go through the marketplace's own
review code (chalicelib.handlers.payments), so money moves as for any job.

A bonus is billed to the client on the HIT's job (its budget grows by the bonus and the
platform fee on it; no prepaid balance is needed) and paid to the worker by one ledger
entry, in one transaction; a UniqueRequestToken names the entry, so a repeat pays nothing
and answers a RequestError naming the bonus already sent. Each bonus also gets a small
record, `mturk#bonus#<job id>` / `<time>#<entry id>`, which ListBonusPayments pages (the
ledger is kept per worker and has no listing per job).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.cursors import mturk_page_tokens
from chalicelib.domain import mturk, mturk_ids, payouts, webhooks
from chalicelib.domain.ids import item_id, new_id, parse_assignment_id
from chalicelib.domain.model import (
    APPROVED, REJECTED, ItemState, Job, LedgerEntry, Principal, StoredAnswer,
)
from chalicelib.domain.mturk_hits import render_hit
from chalicelib.domain.ports import MTurkRecord, MTurkRecords
from chalicelib.errors import Conflict, CrowdError, NotFound
from chalicelib.handlers import mturk_events, mturk_hits, payments
from chalicelib.handlers.platform import Platform
from chalicelib.observability import logger

SUBMITTED = "Submitted"
STATUSES = (SUBMITTED, "Approved", "Rejected")
_STATUS_OF_REVIEW = {APPROVED: "Approved", REJECTED: "Rejected"}
# A rejection may be overridden this long after the assignment was submitted.
OVERRIDE_SECONDS = 30 * 24 * 3600
MAX_FEEDBACK = 1024
MAX_TOKEN = 64
# CurrencyAmount in the service model: dollars, at most two decimals.
_AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{0,2})?$")
_HIT_DOES_NOT_EXIST = "AWS.MechanicalTurk.HITDoesNotExist"
_ASSIGNMENT_DOES_NOT_EXIST = "AWS.MechanicalTurk.AssignmentDoesNotExist"
_INVALID_STATE = "AWS.MechanicalTurk.InvalidAssignmentState"
_ONLY_SUBMITTED = "This operation can be called with a status of: Submitted"


@dataclass(frozen=True)
class Assignment:
    """An assignment of a client's HIT: its job, its item, the worker's accepted answer and
    the HIT's settings (its `mturk#hit#<client>` record's body)."""

    job: Job
    item: ItemState
    worker_id: str
    answer: StoredAnswer
    settings: dict[str, Any]

    @property
    def mturk_id(self) -> str:
        """Its AssignmentId."""
        return mturk_ids.assignment_id(self.answer.assignment_id)


def status_of(job: Job, answer: StoredAnswer, now: float) -> tuple[str, float | None]:
    """An answer's AssignmentStatus and when it took it (None while Submitted): its review,
    else Approved once its AutoApprovalTime has passed."""
    review = answer.review
    if review is not None and review.get("status") in _STATUS_OF_REVIEW:
        return _STATUS_OF_REVIEW[review["status"]], float(review["at"])
    auto = auto_approval_time(job, answer)
    return ("Approved", auto) if auto <= now else (SUBMITTED, None)


def auto_approval_time(job: Job, answer: StoredAnswer) -> float:
    """When an answer nobody reviewed counts as approved."""
    return answer.submitted_at + job.auto_approve_seconds


def render_assignment(job: Job, worker_id: str, answer: StoredAnswer, now: float
                      ) -> dict[str, Any]:
    """An Assignment as MTurk returns it: epoch-second times, ApprovalTime or RejectionTime
    only once they apply, RequesterFeedback only when one was given, Answer the stored
    QuestionFormAnswers XML."""
    status, at = status_of(job, answer, now)
    text = answer.answer.get("text")
    rendered: dict[str, Any] = {
        "AssignmentId": mturk_ids.assignment_id(answer.assignment_id),
        "WorkerId": mturk_ids.worker_id(worker_id),
        "HITId": mturk_ids.hit_id(job.job_id),
        "AssignmentStatus": status,
        "AutoApprovalTime": mturk.epoch(auto_approval_time(job, answer)),
        "AcceptTime": mturk.epoch(answer.leased_at),
        "SubmitTime": mturk.epoch(answer.submitted_at),
        "Deadline": mturk.epoch(answer.leased_at + job.lease_seconds),
        "Answer": text if isinstance(text, str) else "",
    }
    if status == "Approved" and at is not None:
        rendered["ApprovalTime"] = mturk.epoch(at)
    if status == "Rejected" and at is not None:
        rendered["RejectionTime"] = mturk.epoch(at)
    feedback = (answer.review or {}).get("reason")
    if isinstance(feedback, str):
        rendered["RequesterFeedback"] = feedback
    return rendered


def _no_hit(value: Any) -> mturk.MTurkError:
    return mturk.request_error(f"Hit {str(value)[:64]} does not exist.", _HIT_DOES_NOT_EXIST)


def _no_assignment(value: Any) -> mturk.MTurkError:
    return mturk.request_error(f"Assignment {str(value)[:64]} does not exist.",
                               _ASSIGNMENT_DOES_NOT_EXIST)


def _invalid_state(message: str = _ONLY_SUBMITTED) -> mturk.MTurkError:
    return mturk.request_error(message, _INVALID_STATE)


def _string(body: dict[str, Any], name: str, max_length: int, min_length: int = 1) -> str:
    """A required string member; ValidationException (as the service's schema check)."""
    value = body.get(name)
    if not isinstance(value, str):
        raise mturk.MTurkError("ValidationException",
                               f"Value null at '{name[0].lower()}{name[1:]}' failed to satisfy "
                               f"constraint: Member must not be null")
    if not min_length <= len(value) <= max_length:
        raise mturk.MTurkError("ValidationException",
                               f"{name} must have {min_length} to {max_length} characters")
    return value


def _optional_string(body: dict[str, Any], name: str, max_length: int) -> str | None:
    return None if body.get(name) is None else _string(body, name, max_length, 0)


def _item(p: Platform, job: Job) -> ItemState:
    """The HIT's one item (an item with no slots if it is not there)."""
    item = p.items.get_item(job.job_id, item_id(0, job.item_count))
    return item if item is not None else ItemState(job.job_id, item_id(0, job.item_count),
                                                   {}, 0, 0)


def find_assignment(p: Platform, client: Principal, value: Any) -> Assignment:
    """The submitted assignment an AssignmentId names in one of the client's HITs;
    AssignmentDoesNotExist for any other (unknown, another client's, not submitted yet)."""
    ours = mturk_ids.our_assignment(value)
    if ours is None:
        raise _no_assignment(value)
    job_id, item_number, _, _ = parse_assignment_id(ours)
    try:
        job, record = mturk_hits.find_hit(p, client, mturk_ids.hit_id(job_id))
    except mturk.MTurkError:
        raise _no_assignment(value) from None
    item = p.items.get_item(job.job_id, item_number)
    if item is not None:
        for worker_id, answer in item.answers.items():
            if answer.assignment_id == ours:
                return Assignment(job, item, worker_id, answer, record.body)
    raise _no_assignment(value)


def list_assignments_for_hit(p: Platform, client: Principal, body: dict[str, Any]
                             ) -> dict[str, Any]:
    """A page of a HIT's assignments (submitted or later) in submission order, of the
    statuses asked for (AssignmentStatuses; default all three)."""
    job = mturk_hits.find_hit(p, client, body.get("HITId"))[0]
    wanted = _statuses(body)
    tokens = mturk_page_tokens()
    request = tokens.read(body, "ListAssignmentsForHIT", job.job_id)
    now = p.now()

    def fetch(cursor: str | None, limit: int
              ) -> tuple[Sequence[tuple[str, StoredAnswer]], str | None]:
        rows = sorted(((f"{a.submitted_at:017.6f}#{a.assignment_id}", w, a)
                       for w, a in _item(p, job).answers.items()
                       if status_of(job, a, now)[0] in wanted), key=lambda row: row[0])
        rows = [row for row in rows if cursor is None or row[0] > cursor]
        page = rows[:limit]
        return [(w, a) for _, w, a in page], (page[-1][0] if len(rows) > limit else None)

    return tokens.page(request, fetch, "ListAssignmentsForHIT", job.job_id, "Assignments",
                       lambda row: render_assignment(job, row[0], row[1], now))


def _statuses(body: dict[str, Any]) -> frozenset[str]:
    value = body.get("AssignmentStatuses")
    if value is None:
        return frozenset(STATUSES)
    if not isinstance(value, list) or not value or any(s not in STATUSES for s in value):
        raise mturk.MTurkError("ValidationException",
                               f"AssignmentStatuses must be a list of {', '.join(STATUSES)}")
    return frozenset(value)


def get_assignment(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """One assignment and its HIT."""
    found = find_assignment(p, client, body.get("AssignmentId"))
    return {"Assignment": render_assignment(found.job, found.worker_id, found.answer, p.now()),
            "HIT": render_hit(found.job, found.settings, found.item, p.now())}


def approve_assignment(p: Platform, client: Principal, body: dict[str, Any]
                       ) -> dict[str, Any]:
    """Approve a Submitted assignment, or with OverrideRejection a Rejected one submitted in
    the last 30 days; any other state is InvalidAssignmentState. Either is paid at once, as
    MTurk pays on approval: a HIT's job has one item, so the worker's pay record for it holds
    this answer alone (an answer the counting queue has not reached yet is paid when its pay
    window is due, as every approved answer is)."""
    found = find_assignment(p, client, body.get("AssignmentId"))
    feedback = (_optional_string(body, "RequesterFeedback", MAX_FEEDBACK) or "").strip() or None
    override = body.get("OverrideRejection", False)
    if not isinstance(override, bool):
        raise mturk.MTurkError("ValidationException", "OverrideRejection must be a boolean")
    now = p.now()
    status, _ = status_of(found.job, found.answer, now)
    if status == "Rejected" and override:
        if found.answer.submitted_at + OVERRIDE_SECONDS < now:
            raise _invalid_state("A rejection can only be overridden within 30 days of the "
                                 "assignment's submission")
        if not payments.override_rejection(p, found.job, found.item, found.worker_id,
                                           found.answer, feedback, client.account_id):
            raise _invalid_state()
    elif status != SUBMITTED:
        raise _invalid_state()
    else:
        _review(p, client, found, APPROVED, feedback)
        accrual = p.ledger.accrual(found.job.job_id, found.worker_id,
                                   payouts.window_of(found.answer.assignment_id))
        if accrual is not None:
            payments.settle_accrual(p, accrual, client.account_id)
    mturk_events.emit(p, found.job, "AssignmentApproved", found.mturk_id, now)
    return mturk.void()


def reject_assignment(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Reject a Submitted assignment: its reward goes back to the job's pool and the HIT is
    not reopened (MTurk never reopens a rejected assignment). RequesterFeedback is required
    (it may be empty, as oTree sends it)."""
    feedback = _string(body, "RequesterFeedback", MAX_FEEDBACK, 0)
    found = find_assignment(p, client, body.get("AssignmentId"))
    now = p.now()
    if status_of(found.job, found.answer, now)[0] != SUBMITTED:
        raise _invalid_state()
    _review(p, client, found, REJECTED, feedback.strip() or None)
    mturk_events.emit(p, found.job, "AssignmentRejected", found.mturk_id, now)
    return mturk.void()


def _review(p: Platform, client: Principal, found: Assignment, status: str,
            reason: str | None) -> None:
    """One review through the marketplace's review code; its refusals in MTurk's words."""
    try:
        payments.review_answer(p, client, found.answer.assignment_id, status, reason,
                               (found.job, found.item, found.worker_id, found.answer))
    except payments.AlreadyReviewed:
        raise _invalid_state() from None
    except NotFound:
        raise _no_assignment(found.mturk_id) from None
    except CrowdError as error:
        raise mturk.request_error(str(error)) from None


def _amount(body: dict[str, Any]) -> int:
    value = _string(body, "BonusAmount", 16)
    if not _AMOUNT.match(value):
        raise mturk.MTurkError("ValidationException",
                               "BonusAmount must be an amount in dollars, such as \"1.25\"")
    dollars, _, cents = value.partition(".")
    total = int(dollars) * 100 + int((cents + "00")[:2])
    if not 1 <= total <= payments.MAX_BONUS_CENTS:
        raise mturk.request_error(
            f"BonusAmount must be from 0.01 to {mturk.money(payments.MAX_BONUS_CENTS)}",
            "AWS.MechanicalTurk.InvalidParameterValue")
    return total


def send_bonus(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Pay a worker a bonus for an assignment they submitted (Submitted, Approved or
    Rejected), billed to the client on the HIT's job and paid once. With a
    UniqueRequestToken, a repeat pays nothing and is a RequestError naming the bonus sent."""
    worker_value = _string(body, "WorkerId", 64)
    cents = _amount(body)
    reason = _string(body, "Reason", MAX_FEEDBACK, 0)
    token = _optional_string(body, "UniqueRequestToken", MAX_TOKEN)
    if token is not None and not token:
        raise mturk.MTurkError("ValidationException", "UniqueRequestToken must not be empty")
    found = find_assignment(p, client, body.get("AssignmentId"))
    if mturk_ids.worker_account(worker_value) != found.worker_id:
        raise mturk.request_error(
            f"Worker {worker_value[:64]} did not submit assignment {found.mturk_id}.",
            "AWS.MechanicalTurk.InvalidParameterValue")
    job = found.job
    entry_id = f"bonus#{job.job_id}#" + (f"token#{token}" if token else new_id("mturk"))
    entry = LedgerEntry(found.worker_id, entry_id, "bonus", cents, p.now(), job.job_id,
                        found.answer.assignment_id, reason, client.account_id)
    try:
        paid = p.ledger.bonus(entry, job.job_id, billed_cents=payments.billed_cents(job, cents))
    except (NotFound, Conflict) as error:
        raise mturk.request_error(str(error)) from None
    if not paid:
        original = p.ledger.get_entry(found.worker_id, entry_id)
        if original is not None:
            record_bonus(p.mturk, original)  # written now if the first call stopped before
        raise _repeated(token, worker_value, original)
    _after_bonus(p, entry)
    return mturk.void()


def _after_bonus(p: Platform, entry: LedgerEntry) -> None:
    """After a bonus is paid: its listing record, and the job's budget alert. Never raises:
    the bonus is paid, and an error now would have the caller send it again."""
    try:
        record_bonus(p.mturk, entry)
        fresh = p.jobs.get_job(entry.job_id or "")
        if fresh is not None:
            webhooks.check_budget(p, fresh)
    except Exception:  # noqa: BLE001 (logged; a repeat with its token writes the record)
        logger.exception("a bonus's listing record was not written",
                         extra={"job_id": entry.job_id, "entry_id": entry.entry_id})


def _repeated(token: str | None, worker_value: str, original: LedgerEntry | None
              ) -> mturk.MTurkError:
    """The answer to a UniqueRequestToken used before: it names the bonus already sent."""
    sent = ""
    if original is not None and original.assignment_id:
        sent = (f" for the bonus of {mturk.money(original.amount_cents)} to worker "
                f"{worker_value[:64]} for assignment "
                f"{mturk_ids.assignment_id(original.assignment_id)}")
    return mturk.request_error(
        f"The UniqueRequestToken {token} was already used{sent}. No bonus was sent again.",
        "AWS.MechanicalTurk.DuplicateRequest")


def bonus_kind(job_id: str) -> str:
    """The records kind that lists a HIT's bonuses."""
    return f"mturk#bonus#{job_id}"


def record_bonus(records: MTurkRecords | None, entry: LedgerEntry) -> None:
    """The bonus's listing record beside its HIT (its name from the entry: writing it again
    changes nothing)."""
    if records is None or entry.job_id is None:
        return
    records.put_new(bonus_kind(entry.job_id), f"{entry.created_at:017.6f}#{entry.entry_id}",
                    {"worker_id": entry.account_id, "assignment_id": entry.assignment_id,
                     "amount_cents": entry.amount_cents, "reason": entry.reason or "",
                     "at": entry.created_at}, entry.created_at)


def list_bonus_payments(p: Platform, client: Principal, body: dict[str, Any]
                        ) -> dict[str, Any]:
    """A page of the bonuses of a HIT (HITId) or of one assignment (AssignmentId), oldest
    first."""
    has_hit, has_assignment = body.get("HITId") is not None, \
        body.get("AssignmentId") is not None
    if has_hit == has_assignment:
        raise mturk.request_error("Give either HITId or AssignmentId",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    only: str | None = None
    if has_hit:
        job = mturk_hits.find_hit(p, client, body["HITId"])[0]
    else:
        found = find_assignment(p, client, body["AssignmentId"])
        job, only = found.job, found.answer.assignment_id
    tokens = mturk_page_tokens()
    scope = f"{job.job_id}#{only or ''}"
    request = tokens.read(body, "ListBonusPayments", scope)
    records = p.mturk
    if records is None:
        raise mturk.request_error("bonus payments are not kept on this deployment")
    fetch = _matching_pages(records, bonus_kind(job.job_id), only)
    return tokens.page(request, fetch, "ListBonusPayments", scope, "BonusPayments",
                       _render_bonus)


def _matching_pages(records: MTurkRecords, kind: str, only: str | None
                    ) -> Callable[[str | None, int], tuple[Sequence[MTurkRecord], str | None]]:
    """Fetch pages of the kind's records, those of one assignment when only is given: pages
    read until one has a match (so no page but the last is empty), at most limit each."""
    def fetch(cursor: str | None, limit: int) -> tuple[Sequence[MTurkRecord], str | None]:
        while True:
            page, cursor = records.page(kind, limit, cursor)
            matching = [r for r in page if only is None or r.body.get("assignment_id") == only]
            if matching or cursor is None:
                return matching, cursor
    return fetch


def _render_bonus(record: MTurkRecord) -> dict[str, Any]:
    body = record.body
    assignment = body.get("assignment_id")
    return {"WorkerId": mturk_ids.worker_id(str(body.get("worker_id"))),
            "BonusAmount": mturk.money(int(body.get("amount_cents") or 0)),
            "AssignmentId": mturk_ids.assignment_id(assignment) if assignment else "",
            "Reason": str(body.get("reason") or ""),
            "GrantTime": mturk.epoch(float(body.get("at") or record.created_at))}



OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {
    "ListAssignmentsForHIT": list_assignments_for_hit,
    "GetAssignment": get_assignment,
    "ApproveAssignment": approve_assignment,
    "RejectAssignment": reject_assignment,
    "SendBonus": send_bonus,
    "ListBonusPayments": list_bonus_payments,
}
