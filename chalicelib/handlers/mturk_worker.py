"""The worker side of MTurk-style HITs: a HIT's question for preview and hosting, and
`/mturk/externalSubmit`, which stores a study page's posted fields as the lease holder's
answer. The assignment id is the capability: whoever holds a live lease under it is the
worker the answer is stored for (the post comes cross-site, without the worker's token)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.domain import mturk_ids
from chalicelib.domain.ids import item_id, parse_assignment_id
from chalicelib.domain.model import (
    WORKER, Assignment, ItemState, Job, Principal, SubmitReceipt,
)
from chalicelib.domain.mturk_hits import answer_schema
from chalicelib.domain.mturk_worker import HTML, PREVIEW_ASSIGNMENT, question_kind
from chalicelib.domain.question_answers import question_form_answers
from chalicelib.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from chalicelib.handlers import mturk_events, tasks
from chalicelib.handlers.platform import Platform, cached_job


@dataclass(frozen=True)
class ExternalSubmit:
    """A stored externalSubmit: the MTurk AssignmentId, and whether it was stored before."""

    assignment_id: str
    duplicate: bool


def hit_item(p: Platform, hit_id: str) -> tuple[Job, ItemState]:
    """A HIT's job and its one item (which holds the question); NotFound for anything else."""
    job_id = mturk_ids.job_of_hit(hit_id)
    job = cached_job(p, job_id) if job_id else None
    item = p.items.get_item(job.job_id, item_id(0, job.item_count)) \
        if job is not None and job.mturk else None
    if job is None or item is None:
        raise NotFound("no such HIT", field="HITId", code="hit_not_found")
    return job, item


def hosted_content(p: Platform, hit_id: str) -> str:
    """An HTMLQuestion's HTMLContent; NotFound when the HIT has no HTMLQuestion."""
    job, item = hit_item(p, hit_id)
    content = item.data.get("html")
    if question_kind(job, item.data) != HTML or not isinstance(content, str):
        raise NotFound("this HIT has no HTMLQuestion", field="HITId", code="hit_not_found")
    return content


def submit_external(p: Platform, assignment: str | None, fields: Sequence[tuple[str, str]]
                    ) -> ExternalSubmit:
    """Store the posted fields, as QuestionFormAnswers XML, as the answer of the worker who
    holds the lease named by the MTurk AssignmentId; a repeat stores nothing and reports the
    first submission. Refused: no id, the preview id, an id that is not one of our HIT
    assignments, an assignment no longer leased (or its lease expired), an oversize answer."""
    if not assignment:
        raise InvalidRequest("the post has no assignmentId", field="assignmentId",
                             code="assignment_missing")
    if assignment == PREVIEW_ASSIGNMENT:
        raise InvalidRequest("this HIT was previewed, not accepted: accept it before "
                             "submitting", field="assignmentId", code="hit_not_accepted")
    ours = mturk_ids.our_assignment(assignment)
    if ours is None:
        raise NotFound("no such assignment", field="assignmentId", code="assignment_not_found")
    job_id, item, _, _ = parse_assignment_id(ours)
    job = cached_job(p, job_id)
    if job is None or not job.mturk:
        raise NotFound("no such assignment", field="assignmentId", code="assignment_not_found")
    found = p.items.get_item(job_id, item)
    worker = _holder(found, ours)
    text = question_form_answers(fields)
    # The HIT's share of its item record per answer, for as many assignments as it has now
    # (CreateAdditionalAssignmentsForHIT adds slots after the job's schema was set).
    limit = min(int(job.answer_schema.get("max_length", len(text))),
                answer_schema(found.redundancy if found is not None else 1)["max_length"])
    if len(text) > limit:
        raise PayloadTooLarge(f"the answers take {len(text)} characters as QuestionFormAnswers; "
                              f"this HIT takes at most {limit}", field="body",
                              code="answer_too_large")
    receipt = tasks.submit_answer(p, Principal(worker, WORKER), ours, {"text": text})
    submitted(p, [receipt])
    return ExternalSubmit(assignment, receipt.duplicate)


def accepted(p: Platform, assignments: Sequence[Assignment]) -> None:
    """Announce AssignmentAccepted for each lease of a HIT (a worker accepting it)."""
    for assignment in assignments:
        if assignment.job.mturk:
            mturk_events.emit(p, assignment.job, "AssignmentAccepted",
                              assignment_id=assignment.assignment_id,
                              at=assignment.lease.leased_at)


def submitted(p: Platform, receipts: Sequence[SubmitReceipt]) -> None:
    """Announce AssignmentSubmitted for each answer of a HIT stored now (not a retry's)."""
    for receipt in receipts:
        job = None if receipt.duplicate else cached_job(p, receipt.job_id)
        if job is not None and job.mturk:
            mturk_events.emit(p, job, "AssignmentSubmitted", assignment_id=receipt.assignment_id,
                              at=receipt.submitted_at)


def returned(p: Platform, assignment_id: str) -> None:
    """Announce AssignmentReturned for a HIT's assignment its worker gave back."""
    job = cached_job(p, parse_assignment_id(assignment_id)[0])
    if job is not None and job.mturk:
        mturk_events.emit(p, job, "AssignmentReturned", assignment_id=assignment_id)


def _holder(item: ItemState | None, assignment_id: str) -> str:
    """The worker whose lease (or stored answer) is this assignment; Conflict when nobody
    holds it any more (it expired and was taken, or was returned), NotFound without the item."""
    if item is None:
        raise NotFound("no such assignment", field="assignmentId", code="assignment_not_found")
    for worker, lease in item.leases.items():
        if lease.assignment_id == assignment_id:
            return worker
    for worker, answer in item.answers.items():
        if answer.assignment_id == assignment_id:
            return worker
    raise Conflict("this assignment is not leased any more: it expired or was returned",
                   field="assignmentId", code="assignment_not_active")
