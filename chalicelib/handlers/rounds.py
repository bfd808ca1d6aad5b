"""Rounds: counting answers, starting a round's aggregation, the deadline sweeper, the end of
a round once its results are published (done, or paused in calibration), and the production
round that follows calibration."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from chalicelib.domain import payouts, phases, webhooks
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.keys import report_key
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CALIBRATION, CANCELLED, CLOSING, DONE, FAILED, INGESTING, PAUSED, PILOT,
    PRODUCTION, TAKES_ANSWERS, CountedAnswer, Job,
)
from chalicelib.handlers.mturk_events import emit_expired
from chalicelib.handlers.platform import Platform, cached_job
from chalicelib.handlers.quality import (
    release_leftovers, replace_in_items, replace_left_out, score_gold,
)

# An aggregating job is looked at again this long after its execution was started: if the
# start was lost the sweeper starts it (the execution name makes a repeat harmless).
AGGREGATION_CHECK_SECONDS = 900
# Jobs of each state the sweeper handles a run (it runs every minute).
SWEEP_JOBS = 100
# The pass over a job's items before its round closes reads this many items per message (at
# most two transactions each when all are left out: a batch of ten such messages stays within
# the ingest consumer's minute); a pass whose pages stopped this long ago (its messages lost)
# is taken over by the next.
LEFT_OUT_PAGE = 200
PASS_STALE_SECONDS = 900
# Held items are opened for production a page at a time: an ingest message reads at most
# OPEN_PAGE items of its range of item numbers, opens the held ones among them and queues the
# rest of its range; a range of more than OPEN_SPLIT items is first split into OPEN_FAN_OUT
# ranges of their own, so a large job's items are opened side by side.
OPEN_PAGE = 100  # at most one write per item: a batch of ten pages is a few seconds
OPEN_FAN_OUT = 10
OPEN_SPLIT = OPEN_PAGE * OPEN_FAN_OUT


def _adaptive() -> ModuleType:
    """The adaptive-redundancy handlers. numpy loads with them, so they are imported when an
    adaptive job's answer is first counted: the API routes, which import this module, never
    load it."""
    from chalicelib.handlers import redundancy  # numpy: see above

    return redundancy


def count_answers(p: Platform, messages: Iterable[Mapping[str, Any]]) -> None:
    """Count announced answers per job (idempotent) and start aggregation when a job is done."""
    by_job: dict[str, dict[str, CountedAnswer]] = {}
    ordinals: dict[str, int | None] = {}
    gold: dict[str, bool] = {}  # assignment id -> whether the gold answer was right
    repeats = set()
    for m in messages:
        if "gold_correct" in m:
            gold[m["assignment_id"]] = bool(m["gold_correct"])
        answer = CountedAnswer(m["job_id"], m["item_id"], m["worker_id"], m["assignment_id"],
                               bool(m["item_complete"]), gold="gold_correct" in m)
        batch = by_job.setdefault(answer.job_id, {})
        if answer.assignment_id in batch:
            repeats.add(answer.job_id)
        batch[answer.assignment_id] = answer
        ordinals[answer.assignment_id] = m.get("ordinal")
    for job_id, unique in by_job.items():
        answers = list(unique.values())
        cached = cached_job(p, job_id)
        if cached is not None and cached.adaptive:
            answers = [_adaptive().adapt(p, cached, a, ordinals[a.assignment_id]) if a.item_complete else a
                       for a in answers]
        delay = None if cached is None else payouts.pay_delay(
            cached.lease_seconds, cached.auto_approve_seconds, hit=bool(cached.mturk))
        new = p.jobs.record_counted(job_id, answers, pay_delay=delay)
        for a in answers:
            if a.assignment_id in gold and cached is not None:
                score_gold(p, cached, a.worker_id, a.assignment_id, gold[a.assignment_id])
        if cached is not None and cached.adaptive and new:
            _adaptive().refit_online_model(p, job_id, new)
        if cached is not None and p.webhooks is not None and not cached.budget_alerted and \
                webhooks.budget_nearly_spent(replace(cached, answered=cached.answered + new)):
            fresh = p.jobs.get_job(job_id)
            if fresh is not None:
                webhooks.check_budget(p, fresh)
        if job_id in repeats or new < len(answers) or any(a.item_complete for a in answers):
            job = p.jobs.get_job(job_id)
            if job is not None and job.state in TAKES_ANSWERS and job.items_done >= job.round_items:
                if replace_left_out(p, job):
                    # Only if every item is still done: another consumer may have reopened one.
                    start_aggregation(p, job, require_done=True)


def left_out_page(p: Platform, message: Mapping[str, Any]) -> None:
    """One page of the pass over a job's items before its round closes (queued by
    replace_left_out): at most LEFT_OUT_PAGE items read and given replacement slots for
    their left-out answers, then the next page queued with the last item id read and the
    items reopened so far. The last page lets go of the job and, if the whole pass reopened
    nothing, closes the round (only with every item still done). The job keeps taking
    answers meanwhile.

    One pass at a time holds the job (its pass record, renewed by every page, which also
    says which page the pass is at); a page of another pass, of a round gone by, or one
    delivered again after its pass moved on does nothing. A page repeated before that (its
    first delivery died before it moved the pass on) reopens and pays nothing twice
    (replace_in_items) and may queue its successor twice, whose second copy then finds the
    pass moved on. If a repeat undercounts what its first delivery reopened, the round
    still closes only with every item done, which a reopened item is not until it is
    answered again (its completion starts a new pass).
    """
    job_id, state = message["job_id"], message["left_out"]
    pass_id, after, reopened = state["pass"], state.get("after"), int(state.get("reopened", 0))
    job = p.jobs.get_job(job_id)
    if job is None or job.state != ACTIVE or job.round != state["round"]:
        p.jobs.end_pass(job_id, pass_id)
        return
    now = p.now()
    if not p.jobs.claim_pass(job_id, pass_id, after, now, now - PASS_STALE_SECONDS):
        return  # another pass holds the job, or this one has moved past this page
    items, cursor = p.items.item_page(job_id, after, LEFT_OUT_PAGE)
    added, dry = replace_in_items(p, job, items)
    reopened += added
    if cursor is not None and not dry:
        p.ingest_queue.send({"job_id": job_id, "left_out": {
            **state, "after": cursor, "reopened": reopened}})
        p.jobs.advance_pass(job_id, pass_id, after, cursor)
        return
    if reopened == 0:
        start_aggregation(p, job, require_done=True)
    p.jobs.end_pass(job_id, pass_id)


def start_aggregation(p: Platform, job: Job, require_done: bool = False) -> None:
    """Move the job to aggregating, then start its round's execution once.

    The state moves first so that stages always find the job aggregating; if the start
    is lost after that, the sweeper starts it again (the execution name makes a repeat
    harmless). With require_done the move also needs every item of the round done, so a
    round whose item was just reopened (a replacement slot) keeps taking answers.
    """
    now = p.now()
    moved = p.jobs.transition(
        job.job_id, TAKES_ANSWERS, AGGREGATING, aggregating_at=now,
        finalize_at=now + AGGREGATION_CHECK_SECONDS, expect_round=job.round,
        expect_items_done=job.round_items if require_done else None,
        record=phases.record(now, job.state, job.phase, AGGREGATING, job.phase,
                             "system", f"round {job.round} is being aggregated"))
    p.cache.jobs.forget(job.job_id)
    if not moved:
        current = p.jobs.get_job(job.job_id)
        if current is None or current.state != AGGREGATING or current.round != job.round:
            return
    p.workflow.start(f"{job.job_id}-r{job.round}", {"job_id": job.job_id, "round": job.round})


def finalize_due_jobs(p: Platform) -> list[str]:
    """The sweeper: start aggregation for jobs past their deadline or whose cancellation has
    run out, start again any whose start was lost, and fail jobs whose items never arrived.
    At most SWEEP_JOBS of each state a run, the soonest due first: each one handled leaves
    the due listing (a new state, or a later finalize_at), so the next run, a minute later,
    goes on with the rest."""
    now = p.now()
    started = []
    for state in (ACTIVE, CANCELLED, CLOSING):
        for job in p.jobs.jobs_in_state(state, finalize_before=now, limit=SWEEP_JOBS):
            start_aggregation(p, job)
            started.append(job.job_id)
            if state == ACTIVE:
                emit_expired(p, job)  # a HIT's expiry, to its requester's notifications
    for job in p.jobs.jobs_in_state(AGGREGATING, finalize_before=now, limit=SWEEP_JOBS):
        p.jobs.transition(job.job_id, (AGGREGATING,), AGGREGATING,
                          finalize_at=now + AGGREGATION_CHECK_SECONDS)
        p.workflow.start(f"{job.job_id}-r{job.round}", {"job_id": job.job_id, "round": job.round})
        started.append(job.job_id)
    for job in p.jobs.jobs_in_state(INGESTING, finalize_before=now, limit=SWEEP_JOBS):
        p.jobs.transition(job.job_id, (INGESTING,), FAILED,
                          error="its items were not all ingested before the deadline",
                          record=phases.record(now, INGESTING, job.phase, FAILED, job.phase,
                                               "system", "items not ingested by the deadline"))
    return started


def to_production(p: Platform, job: Job, by: str, reason: str,
                  instructions: str | None = None) -> bool:
    """Promote a job paused in calibration to production; False if it was no longer there.

    One ingest message to open the held items is queued first (they are opened a page at a
    time, see open_held_page; a repeat opens nothing new), then the job moves: its next round
    aggregates every item, the pilot's answers included.
    """
    now = p.now()
    p.ingest_queue.send({"job_id": job.job_id, "open_range": [0, job.id_space],
                         "items": job.id_space})
    changes: dict[str, Any] = {}
    if instructions is not None and instructions != job.instructions:
        changes = {"instructions": instructions, "instruction_version": job.instruction_version + 1}
        reason += f"; instructions revised to version {job.instruction_version + 1}"
    moved = p.jobs.transition(
        job.job_id, (PAUSED,), ACTIVE, phase=PRODUCTION, round=job.round + 1,
        finalize_at=job.deadline, aggregating_at=None,
        record=phases.record(now, PAUSED, job.phase, ACTIVE, PRODUCTION, by, reason), **changes)
    if not moved:
        return False
    p.cache.forget_job(job.job_id)
    webhooks.publish_job_events_safely(p, job.job_id)
    promoted = p.jobs.get_job(job.job_id)
    if promoted is not None and promoted.items_done >= promoted.round_items:
        start_aggregation(p, promoted)  # nothing was held back: the round is already answered
    return True


def open_held_page(p: Platform, message: Mapping[str, Any]) -> None:
    """Open held items of one range of item numbers for production, a page at a time: a
    large range is split into OPEN_FAN_OUT messages, a small one has at most OPEN_PAGE items
    read and the held ones among them opened, and the rest of the range queued with the last
    item id read. A repeated message opens nothing twice (an item opened is no longer held);
    one repeated after it queued its successors queues them again, which repeat nothing but
    reads."""
    job_id, count = message["job_id"], int(message["items"])
    first, end = (int(n) for n in message["open_range"])
    after = message.get("after")
    if after is None and end - first > OPEN_SPLIT:
        step = -(-(end - first) // OPEN_FAN_OUT)
        p.ingest_queue.send_many([{"job_id": job_id, "items": count,
                                   "open_range": [start, min(start + step, end)]}
                                  for start in range(first, end, step)])
        return
    if after is None and first > 0:
        after = numbered(first - 1, count)
    ids, cursor = p.items.held_item_ids(job_id, after, numbered(end, count) if end < count
                                        else None, OPEN_PAGE)
    p.items.open_held(job_id, ids)
    if cursor is not None:
        p.ingest_queue.send({**message, "after": cursor})


@dataclass(frozen=True)
class RoundEnd:
    """What ending a round did: the job's state after it ("done", "paused" or "promoted"),
    whether this call moved the job (False on a repeat) and how long aggregation took."""

    state: str
    changed: bool
    seconds: float


def end_round(p: Platform, job: Job, round_no: int, results_key: str, result_count: int
              ) -> RoundEnd:
    """End a round whose results are published: a production round marks the job done; a
    pilot round pauses it in calibration, and when the client set promotion thresholds the
    report decides at once (met: promoted to production by the rule; not met: paused, with the
    reasons recorded). A repeat leaves the job as it was."""
    now = p.now()
    published: dict[str, Any] = {"results_key": results_key, "result_count": result_count}
    # The pilot's round is round 1 of a job with a pilot that was not stopped; decided from
    # the round, not the current phase, so a retry after the pause still knows it.
    if job.pilot_items > 0 and round_no == 1 and job.cancelled_at is None:
        met, reasons = False, ["the pilot's report is ready for the client"]
        if job.promotion:
            report = json.loads(p.blobs.get_text(report_key(job.job_id, round_no)))
            met, reasons = phases.check_thresholds(report, job.promotion)
        changed = p.jobs.transition(
            job.job_id, (AGGREGATING,), PAUSED, phase=CALIBRATION, finalize_at=job.deadline,
            expect_round=round_no, **published,
            record=phases.record(now, AGGREGATING, PILOT, PAUSED, CALIBRATION,
                                 "rule" if job.promotion else "system", "; ".join(reasons),
                                 round_no))
        done_at = now
        state = PAUSED
        current = p.jobs.get_job(job.job_id)
        # Also on a retry: a job left paused with its thresholds met is promoted now.
        if met and current is not None and current.state == PAUSED and \
                current.round == round_no and \
                to_production(p, current, "rule", "promotion thresholds met: " + "; ".join(reasons)):
            state = "promoted"
    else:
        changed = p.jobs.transition(job.job_id, (AGGREGATING,), DONE, done_at=now,
                                    expect_round=round_no, **published,
                                    record=phases.record(now, AGGREGATING, job.phase, DONE,
                                                         job.phase, "system",
                                                         f"round {round_no} published",
                                                         round_no))
        done_at = now if changed else (job.done_at or now)
        state = DONE
        # Also on a retry: what the job held for answers it will never get is unspent now.
        release_leftovers(p, job)
    # Also on a retry: whatever a crash left unpublished goes out now.
    webhooks.publish_job_events_safely(p, job.job_id)
    return RoundEnd(state, changed, round(done_at - (job.aggregating_at or done_at), 3))
