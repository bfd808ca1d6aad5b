"""How domain objects look on the wire."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from chalicelib.domain import mturk_ids, mturk_worker
from chalicelib.domain.jobs import iso
from chalicelib.domain.model import (
    Assignment, Job, LedgerEntry, Offer, Principal, Quote, SubmitReceipt,
)
from chalicelib.domain.pricing import job_money, platform_margin
from chalicelib.domain.qualifications import Cohort, Qualification
from chalicelib.domain.webhooks import EVENT_TYPES, PENDING, Delivery, Endpoint
from chalicelib.handlers.payments import Earnings, Review
from chalicelib.handlers.tasks import SuiteResult, SuiteSubmit


def quote_view(quote: Quote) -> dict[str, Any]:
    """A quote as the client sees it: its lines and total, and the platform's side of it (the
    fee, the estimated AWS cost of its answers and the margin between them, in no line)."""
    return {
        "quote_id": quote.quote_id, "task_type": quote.task_type, "items": quote.items,
        "redundancy": quote.adaptive or quote.redundancy, "reward_cents": quote.reward_cents,
        "cohort": quote.cohort, "skills": list(quote.skills), "gold_rate": quote.gold_rate,
        "currency": "USD",
        "line_items": [vars(line) for line in quote.line_items],
        "total_cents": quote.total_cents, "expires_at": iso(quote.expires_at),
        **platform_margin(quote),
    }


def job_view(job: Job, progress: dict[str, int] | None = None,
             blocked: list[str] | None = None) -> dict[str, Any]:
    """A job as its client sees it; the workers blocked from it when given (a job read on
    its own lists them, a page of jobs does not)."""
    view: dict[str, Any] = {
        "job_id": job.job_id, "title": job.title, "state": job.state,
        "task_type": job.task_type, "quote_id": job.quote_id,
        "redundancy": job.adaptive or job.redundancy, "reward_cents": job.reward_cents,
        "not_applicable": job.not_applicable, "answer_schema": job.answer_schema,
        "required_skills": list(job.required_skills), "min_skill_scores": job.min_skill_scores,
        "report": job.report_settings,
        "lease_seconds": job.lease_seconds, "suite_size": job.suite_size,
        "deadline": iso(job.deadline), "created_at": iso(job.created_at),
        "budget_cents": job.budget_cents, "spent_cents": job.spent_cents,
        "cancelled_at": iso(job.cancelled_at), "done_at": iso(job.done_at),
        "result_count": job.result_count,
        "ingest": {"chunks": job.chunk_count, "written": job.chunks_written,
                   **({"source": "upload", "format": job.upload["format"],
                       "bytes": job.upload["bytes"],
                       "skip_bad_lines": bool(job.upload.get("skip_bad_lines"))}
                      if job.upload else {})},
        "phase": job.phase, "round": job.round, "pilot_items": job.pilot_items,
        "instruction_version": job.instruction_version, "instructions": job.instructions,
        "promotion": job.promotion or None,
        "gold_items": job.gold_items, "gold_slots": job.gold_slots, "quality": job.quality,
        "pool_cents": job.pool_cents,
        "auto_approve_seconds": job.auto_approve_seconds, "paid_cents": job.paid_cents,
        "bonus_cents": job.bonus_cents, "money": job_money(job),
        "reviews": {"approved": job.approved_answers, "rejected": job.rejected_answers},
        "transitions": [{**entry, "at": iso(entry["at"])} for entry in job.transitions],
    }
    if progress is not None:
        view["counts"] = progress
    if blocked is not None:
        view["blocked_workers"] = blocked
    if job.error:
        view["error"] = job.error
    return view


def assignment_view(assignment: Assignment, worker_id: str | None = None,
                    submit_to: str | None = None) -> dict[str, Any]:
    """A leased task as the worker sees it: nothing about other workers or other answers. A
    HIT's task (given the worker and the API's base URL) also carries what framing its
    question takes: its MTurk ids, the worker's, turkSubmitTo and the URL to frame."""
    job = assignment.job
    view = {
        "assignment_id": assignment.assignment_id, "job_id": job.job_id, "title": job.title,
        "task_type": job.task_type, "instructions": job.instructions,
        "instruction_version": job.instruction_version, "answer_schema": job.answer_schema, "not_applicable": job.not_applicable,
        "reward_cents": job.reward_cents,
        "item": {"item_id": assignment.item.item_id, "data": assignment.item.data},
        "leased_at": iso(assignment.lease.leased_at),
        "expires_at": iso(assignment.lease.expires_at),
        "expires_in_seconds": int(assignment.lease.expires_at - assignment.lease.leased_at),
    }
    if job.mturk and worker_id is not None and submit_to is not None:
        view["hit"] = mturk_worker.leased(job, assignment.item.data, assignment.assignment_id,
                                          worker_id, submit_to)
    return view


def suite_view(suite: list[Assignment], worker_id: str | None = None,
               submit_to: str | None = None) -> dict[str, Any]:
    """A leased suite: each task as a single lease shows it, and the job's suite size."""
    return {"tasks": [assignment_view(assignment, worker_id, submit_to) for assignment in suite],
            "suite_size": suite[0].job.suite_size if suite else None}


def suite_result_view(result: SuiteResult) -> dict[str, Any]:
    """One answer of a suite submit: the single submit's receipt (status accepted, or
    duplicate for an answer stored before), or why it was refused."""
    if result.receipt is not None:
        return {**receipt_view(result.receipt), "status": result.status}
    assert result.error is not None
    view = {"assignment_id": result.assignment_id, "status": result.status,
            "error": result.error.code, "message": result.error.message}
    if result.error.field:
        view["field"] = result.error.field
    return view


def suite_submit_view(outcome: SuiteSubmit) -> dict[str, Any]:
    """A suite submit's answer: each answer's result, in the order sent, and the next suite
    (null when none was asked for; its error when it could not be leased)."""
    following: dict[str, Any] | None = None
    if outcome.next is not None:
        following = suite_view(outcome.next)
        if outcome.next_error is not None:
            following.update(outcome.next_error.to_body())
    return {"results": [suite_result_view(result) for result in outcome.results],
            "next": following}


def receipt_view(receipt: SubmitReceipt) -> dict[str, Any]:
    """The answer receipt; identical on every retry of the same submit."""
    return {"assignment_id": receipt.assignment_id, "job_id": receipt.job_id,
            "status": "accepted", "submitted_at": iso(receipt.submitted_at),
            "reward_cents": receipt.reward_cents}


def worker_view(worker: Principal, token: str | None = None) -> dict[str, Any]:
    """A worker account (with its token only at registration)."""
    view: dict[str, Any] = {"worker_id": worker.account_id, "name": worker.name,
                            "skills": sorted(worker.skills), "skill_scores": dict(worker.scores),
                            "country": worker.country, "subdivision": worker.subdivision}
    if token:
        view["token"] = token
    return view


def offer_view(job: Job | Offer) -> dict[str, Any]:
    """A job as a worker browsing for work sees it: nothing about other workers or gold, and
    the start of its instructions (the whole text comes with each task)."""
    offer = job if isinstance(job, Offer) else Offer.of(job)
    view = {"job_id": job.job_id, "title": job.title, "task_type": job.task_type,
            "instructions": offer.instructions,
            "instructions_truncated": offer.instructions_truncated,
            "instruction_version": job.instruction_version,
            "answer_schema": job.answer_schema, "not_applicable": job.not_applicable,
            "reward_cents": job.reward_cents, "lease_seconds": job.lease_seconds,
            "suite_size": job.suite_size, "deadline": iso(job.deadline)}
    if offer.mturk:  # a HIT: previewed and accepted as MTurk showed it
        view["hit"] = {"hit_id": mturk_ids.hit_id(job.job_id),
                       "question": offer.mturk.get("question"),
                       "frame_height": offer.mturk.get("frame_height", 0)}
    return view


def endpoint_view(endpoint: Endpoint, with_secret: bool = False) -> dict[str, Any]:
    """A webhook endpoint as the API shows it; the secret only when it was just made."""
    view = {"endpoint_id": endpoint.endpoint_id, "url": endpoint.url,
            "events": list(endpoint.events) or list(EVENT_TYPES), "job_id": endpoint.job_id,
            "description": endpoint.description, "created_at": iso(endpoint.created_at)}
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A webhook delivery with its attempts, as the API shows it (times in ISO 8601)."""
    return {"delivery_id": delivery.delivery_id, "endpoint_id": delivery.endpoint_id,
            "url": delivery.url, "event_id": delivery.event_id,
            "event_type": delivery.event_type, "job_id": delivery.job_id,
            "status": delivery.status, "created_at": iso(delivery.created_at),
            "next_attempt_at": iso(delivery.next_attempt_at)
            if delivery.status == PENDING else None,
            "delivered_at": iso(delivery.delivered_at), "replay_of": delivery.replay_of,
            "attempts": [{**attempt, "at": iso(attempt.get("at"))}
                         for attempt in delivery.attempts],
            "payload": json.loads(delivery.body)}


def review_view(review: Review) -> dict[str, Any]:
    """An assignment's review as the client sees it."""
    decision = review.decision
    return {"assignment_id": review.assignment_id, "worker_id": review.worker_id,
            "status": review.status,
            "reason": decision.get("reason") if decision else None,
            "reviewed_at": iso(decision["at"]) if decision else None,
            "reviewed_by": decision.get("by") if decision else None,
            "paid_cents": review.paid_cents}


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry (a settlement of a pay window's answers, a rejection, a bonus) on the
    wire; a settlement says how many answers it paid."""
    return {"entry_id": entry.entry_id, "kind": entry.kind, "amount_cents": entry.amount_cents,
            "created_at": iso(entry.created_at), "job_id": entry.job_id,
            "assignment_id": entry.assignment_id, "reason": entry.reason,
            "answers": entry.answers, "worker_id": entry.account_id}


def earnings_view(earnings: Earnings) -> dict[str, Any]:
    """A worker's balance and a page of their ledger, newest first."""
    return {"worker_id": earnings.worker_id, "balance_cents": earnings.balance_cents,
            "currency": "USD", "entries": [entry_view(e) for e in earnings.entries],
            "next_cursor": earnings.next_cursor}


def cohort_view(cohort: Cohort) -> dict[str, Any]:
    """A cohort on the wire."""
    return {"name": cohort.name, **{k: v for k, v in asdict(cohort).items() if k != "name"},
            "skills": list(cohort.skills)}


def qualification_view(qual: Qualification) -> dict[str, Any]:
    """What a worker sees of a test before and while taking it: never the answers."""
    return {"qualification_id": qual.qual_id, "skill": qual.skill, "title": qual.title,
            "task_type": qual.task_type, "instructions": qual.instructions,
            "answer_schema": qual.answer_schema, "items": len(qual.items),
            "pass_score": qual.pass_score, "retake_seconds": qual.retake_seconds}


def attempt_view(attempt: dict[str, Any] | None) -> dict[str, Any] | None:
    """A worker's attempt at a test: when it started and how it was scored."""
    if attempt is None:
        return None
    return {"attempt_id": attempt["attempt_id"], "started_at": iso(attempt["attempt_at"]),
            "score": attempt["score"], "passed": attempt["passed"]}


def qualification_list_view(qual: Qualification, attempt: dict[str, Any] | None,
                            worker: Principal) -> dict[str, Any]:
    """A test in a worker's list: whether they hold its skill and their last attempt."""
    return {**qualification_view(qual), "held": qual.skill in worker.skills,
            "attempt": attempt_view(attempt)}


def questions_view(qual: Qualification, attempt_id: str) -> dict[str, Any]:
    """An attempt just opened: the test and its questions, never their answers."""
    view = {k: value for k, value in qualification_view(qual).items() if k != "retake_seconds"}
    return {**view, "attempt_id": attempt_id,
            "questions": [{"item_id": item["item_id"], "data": item["data"]}
                          for item in qual.items]}
