"""Worker quality: gold scoring and the job's block rule, blocks by clients and operators,
what workers see of their accuracy, and the slots that replace left-out answers."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.answers import smoothed_accuracy
from chalicelib.domain.cache import MISSING
from chalicelib.domain.ids import is_job_id, new_id
from chalicelib.domain.model import (
    ACTIVE, DONE, FAILED, REJECTED, ItemState, Job, Principal, StoredAnswer,
)
from chalicelib.domain.ports import WorkerRecord
from chalicelib.errors import Conflict, NotFound
from chalicelib.handlers.payments import settle, worked_in
from chalicelib.handlers.platform import PRINCIPAL_CACHE_SECONDS, Platform, client_job

# A block by the gold rule starts refusing leases this long (uniformly drawn, seconds) after
# the answer that decided it: several tasks later, so it tells no task apart.
BLOCK_DELAY_SECONDS = (60.0, 600.0)
RULE = "rule"
# A round closes without a pass over its items only if at most this many workers are
# blocked everywhere (each is looked up in the job: one read).
EVERYWHERE_CHECKS = 100
# Blocked workers a job's view and report list at most.
BLOCKED_SHOWN = 1000
# Workers' records the backfill of block listings reads per request (one Scan).
BACKFILL_PAGE = 500
# Gold items release_leftovers reads per request (one query of the listing, one batch read).
GOLD_PAGE = 100
BLOCKED_BY_RULE = "your accuracy on this job's checked tasks is below the job's threshold"


def _gold_figures(answers: int, correct: int) -> dict[str, Any]:
    return {"gold_answers": answers, "gold_correct": correct,
            "gold_accuracy": round(smoothed_accuracy(correct, answers), 4) if answers else None}


def worker_quality(p: Platform, worker: Principal) -> dict[str, Any]:
    """What a worker sees of their own quality: gold accuracy per job and overall as of each
    job's last published round (so no single answer reveals a gold item), and their blocks."""
    records = p.stats.of_worker(worker.account_id)
    now = p.now()
    # A job appears once a round of it is published (or the worker's block from it has
    # started): listing it at the first gold answer would tell which task was gold.
    jobs = [r for r in records if is_job_id(r.scope)
            and (r.shown_gold_answers is not None or _block_started(r, now))]
    everywhere = next((r for r in records if r.scope == "*"), None)
    shown = [(r.shown_gold_answers or 0, r.shown_gold_correct or 0) for r in jobs]
    return {
        **_gold_figures(sum(a for a, _ in shown), sum(c for _, c in shown)),
        "jobs": [{"job_id": r.scope, **_gold_figures(r.shown_gold_answers or 0,
                                                      r.shown_gold_correct or 0),
                  "blocked": _block_started(r, now),
                  "blocked_reason": _reason_for_worker(r) if _block_started(r, now) else None}
                 for r in jobs],
        "blocked_everywhere": everywhere is not None and everywhere.blocked_at is not None,
    }


def _block_started(r: WorkerRecord, now: float) -> bool:
    return r.blocked_at is not None and r.blocked_at <= now


def blocked_jobs(p: Platform, worker_id: str) -> set[str]:
    """The jobs whose block of the worker has started, from the worker's own records."""
    now = p.now()
    return {r.scope for r in p.stats.of_worker(worker_id)
            if is_job_id(r.scope) and _block_started(r, now)}


def _reason_for_worker(r: WorkerRecord) -> str | None:
    """A block's reason as its worker reads it: a block by the gold rule says which rule, not
    the live figures (those would be feedback on single gold answers)."""
    if r.blocked_reason and r.blocked_reason.endswith(f"(by {RULE})"):
        return BLOCKED_BY_RULE
    return r.blocked_reason


def job_workers(p: Platform, client: Principal, job_id: str, query: Mapping[str, str]
                ) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a job's workers (`?limit=`, default 100, and `?cursor=`), each with their
    live gold record and whether they are blocked; and the next page's cursor."""
    job = client_job(p, client, job_id)
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    records, cursor = p.stats.of_job(job.job_id, v.page_limit(query, 100), query.get("cursor"))
    return [_worker_line(r, job) for r in records], cursor


def _worker_line(r: WorkerRecord, job: Job) -> dict[str, Any]:
    return {"worker_id": r.worker_id, **_gold_figures(r.gold_answers, r.gold_correct),
            "blocked": r.blocked_at is not None, "blocked_reason": r.blocked_reason}


def client_blocks_worker(p: Platform, client: Principal, job_id: str, worker_id: str,
                         body: Any) -> dict[str, Any]:
    """A client blocks a worker from their job by hand (their answers are left out too)."""
    job = client_job(p, client, job_id)
    reason = _reason(body)
    if job.state in (DONE, FAILED):
        raise Conflict("the job has ended", code="job_not_active")
    if not worked_in(p, job, worker_id):
        raise NotFound("no such worker in this job", code="worker_not_found")
    block_in_job(p, job, worker_id, client.account_id, reason)
    job = client_job(p, client, job_id)
    record = p.stats.record(worker_id, job.job_id) or WorkerRecord(worker_id, job.job_id)
    return _worker_line(record, job)


def _reason(body: Any) -> str:
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("reason",))
    return v.text(body, "reason", max_length=500).strip()


def operator_block(p: Platform, operator: Principal, worker_id: str, body: Any,
                   blocked: bool = True) -> dict[str, Any]:
    """An operator blocks a worker everywhere (no tasks from any job; their answers are left
    out of every round aggregated from now on), or lifts the block. Takes effect within a
    minute on every API container."""
    if not blocked:
        p.stats.unblock(worker_id, "*")
    else:
        reason = _reason(body)
        p.stats.mark_blocked(worker_id, "*", f"{reason} (by {operator.account_id})", p.now())
    p.cache.blocked.forget(worker_id)
    record = next((r for r in p.stats.of_worker(worker_id) if r.scope == "*"), None)
    return {"worker_id": worker_id,
            "blocked_everywhere": record is not None and record.blocked_at is not None,
            "blocked_reason": record.blocked_reason if record else None}


def blocked_workers(p: Platform, job_id: str) -> list[str]:
    """The workers blocked from a job, started or not, by worker id, at most BLOCKED_SHOWN
    of them (a query of the job's listing of blocks, then a batch read of those records);
    GET /jobs/{id}/workers pages through them all."""
    return sorted(p.stats.blocks_in_job(job_id, limit=BLOCKED_SHOWN))


def refuses(p: Platform, job_id: str, worker_id: str) -> bool:
    """Whether the worker's block from the job has started: their block record, read at
    most once a minute per container (a block written by this container counts at once)."""
    now = p.now()
    starts = p.cache.job_blocks.get((worker_id, job_id), now, PRINCIPAL_CACHE_SECONDS)
    if starts is MISSING:
        starts = p.cache.job_blocks.put(
            (worker_id, job_id), p.stats.blocks_in_job(job_id, [worker_id]).get(worker_id), now)
    return starts is not None and starts <= now


def blocked_everywhere(p: Platform, worker_id: str) -> bool:
    """Whether an operator has blocked the worker (cached per container like credentials)."""
    now = p.now()
    blocked = p.cache.blocked.get(worker_id, now, PRINCIPAL_CACHE_SECONDS)
    if blocked is MISSING:
        blocked = p.cache.blocked.put(
            worker_id, worker_id in p.stats.blocked_everywhere([worker_id]), now)
    return blocked


def score_gold(p: Platform, job: Job, worker_id: str, assignment_id: str, correct: bool
               ) -> None:
    """Score a gold answer once per assignment (the counting consumer does it, with what the
    submit judged) and apply the job's rule: at least block_after gold answers with smoothed
    accuracy below block_below blocks the worker from the job. The block starts refusing
    their leases after a random delay, so its moment does not point at the gold task that
    decided it. A redelivered message applies the rule again (it may have been lost)."""
    totals = p.stats.record_gold(worker_id, job.job_id, assignment_id, correct)
    if totals is None:
        record = next((r for r in p.stats.of_worker(worker_id) if r.scope == job.job_id), None)
        if record is None:
            return
        totals = record.gold_answers, record.gold_correct
    answers, correct_answers = totals
    after, below = int(job.quality.get("block_after", 0)), job.quality.get("block_below", 0.0)
    accuracy = smoothed_accuracy(correct_answers, answers)
    if after and answers >= after and accuracy < below and \
            worker_id not in p.stats.blocks_in_job(job.job_id, [worker_id]):
        delay = p.rng.uniform(BLOCK_DELAY_SECONDS[0], BLOCK_DELAY_SECONDS[1])
        block_in_job(p, job, worker_id, RULE,
                     f"gold accuracy {accuracy:.2f} after {answers} gold answers is below {below}",
                     starts_at=p.now() + delay)


def block_in_job(p: Platform, job: Job, worker_id: str, by: str, reason: str,
                 starts_at: float | None = None) -> None:
    """Block a worker from a job: their answers are left out of its aggregation (their items
    get replacement slots before the round closes) and, from starts_at (default now), they
    get no more of its tasks."""
    now = p.now()
    p.stats.mark_blocked(worker_id, job.job_id, f"{reason} (by {by})", now,
                         None if starts_at is None else max(now, starts_at))
    if starts_at is None:
        p.cache.job_blocks.put((worker_id, job.job_id), now, now)  # the next lease here
    else:
        p.cache.job_blocks.forget((worker_id, job.job_id))


def left_out_workers(p: Platform, job: Job, workers: Iterable[str]) -> set[str]:
    """Those of the workers whose answers the job leaves out: blocked from it, or everywhere
    (a batch read of their block records in the job, then of the others' everywhere)."""
    workers = set(workers)
    blocked = set(p.stats.blocks_in_job(job.job_id, workers))
    return blocked | p.stats.blocked_everywhere(workers - blocked)


def is_left_out(answer: StoredAnswer, worker_id: str, left_out: set[str]) -> bool:
    """Whether an accepted answer stays out of aggregation: rejected, or by a blocked worker."""
    return worker_id in left_out or (answer.review or {}).get("status") == REJECTED


def may_leave_out(p: Platform, job: Job) -> bool:
    """Whether the job may have answers to leave out, from bounded records and no item: a
    rejected answer on its money record, a worker blocked from it (a query of its workers'
    records), or a worker blocked everywhere with an answer counted in it (the listing of
    blocks everywhere, then one read of each such worker's accruals in the job; more than
    EVERYWHERE_CHECKS of them are not read one by one: the answer is yes)."""
    if job.rejected_answers or p.stats.blocks_in_job(job.job_id):
        return True
    everywhere = p.stats.blocked_everywhere_ids(EVERYWHERE_CHECKS)
    if len(everywhere) > EVERYWHERE_CHECKS:
        return True
    return bool(p.ledger.workers_in_job(job.job_id, everywhere))


def replace_left_out(p: Platform, job: Job) -> bool:
    """Before a round closes: True if it may close now, as nothing is left out (see
    may_leave_out; no item is read) or the job takes no replacements; else a pass over its
    items is queued (left_out_page in rounds), which gives the items replacement slots a
    page at a time while the job keeps taking answers, and closes the round if it reopened
    nothing. A HIT (Job.mturk) takes no replacements: MTurk never reopens an assignment."""
    if job.state != ACTIVE or job.mturk or not may_leave_out(p, job):
        return True  # a stopped or closing job takes no new leases: nobody could fill them
    p.ingest_queue.send({"job_id": job.job_id, "left_out": {
        "round": job.round, "pass": new_id("pass"), "after": None, "reopened": 0}})
    return False


def replace_in_items(p: Platform, job: Job, items: Iterable[ItemState]) -> tuple[int, bool]:
    """Give each of the items as many new slots as it has answers left out (rejected by the
    client, or by workers blocked from the job or everywhere) and not yet replaced, paid from
    the job's pool; return how many items were reopened, and whether the money ran out.

    A blocked worker's answers nobody reviewed are rejected here with the block as the reason,
    which gives their rewards back to the pool for the replacements. When the pool runs dry,
    the rest are aggregated without replacements. Done again over the same items (a
    redelivered page), it reopens and pays nothing twice: an item's replacements are
    counted on it and each slot is added only from the count it was read with.
    """
    items = [item for item in items if item.gold is None and not item.held]
    left_out = left_out_workers(p, job, {w for item in items for w in item.answers})
    reopened = 0
    for item in items:
        missing = 0
        for worker, answer in item.answers.items():
            if not is_left_out(answer, worker, left_out):
                continue
            missing += 1
            if answer.review is None:
                settle(p, job, item, worker, answer, REJECTED,
                       "left out: the worker was blocked", "rule")
        missing -= item.replaced
        if missing <= 0:
            continue
        added = _add_paid_slots(p, job, item, missing)
        if added is None:
            return reopened, True
        if added:
            reopened += 1
    if reopened:
        p.cache.jobs.forget(job.job_id)
    return reopened, False


def _add_paid_slots(p: Platform, job: Job, item: ItemState, missing: int) -> bool | None:
    """Reopen the item with `missing` replacement slots, paid from the money held for them
    (the rejected answers' rewards) or else from the pool, the slots and the money together;
    None if neither holds as much."""
    for source in ("held", "pool"):
        added = p.items.add_slots(job.job_id, item.item_id, missing, item.replaced,
                                  missing * job.reward_cents, source)
        if added is not None:
            return added
    return None


def release_leftovers(p: Platform, job: Job) -> int:
    """When a job has ended: the money held for replacements and the gold slots nobody
    answered (free, or held by an expired lease) go back to the pool, where the client's
    figures show them unspent and bonuses may use them; return the cents released.
    A live gold lease keeps its slot: its answer may still come. Only the gold items are
    read, from the job's gold listing, GOLD_PAGE a request."""
    now = p.now()
    released = p.jobs.release_held(job.job_id)
    if not job.gold_items:
        return released
    after: str | None = None
    listed = 0
    while True:
        items, after = p.items.gold_items(job.job_id, after, GOLD_PAGE)
        listed += len(items)
        released += sum(_release_gold(p, job, item, now) for item in items)
        if after is None:
            break
    if not listed:  # a job ingested before gold items were listed apart: walk its items
        released += sum(_release_gold(p, job, item, now)
                        for item in p.items.iter_items(job.job_id) if item.gold is not None)
    return released


def _release_gold(p: Platform, job: Job, item: ItemState, now: float) -> int:
    """A gold item's free slots and those of its expired leases, back to the pool."""
    expired = [w for w, lease in item.leases.items() if lease.expires_at <= now]
    if not item.free and not expired:
        return 0
    return p.items.release_gold_slots(job.job_id, item.item_id, item.free, expired, now,
                                      job.reward_cents)


def backfill_block_listings(p: Platform, cursor: str | None = None, pages: int | None = None,
                            limit: int | None = None) -> dict[str, Any]:
    """List every block (from a job or everywhere) beside it, for blocks made before their
    listings existed: a walk over the workers' records, limit a page, each block found listed
    (a put of a key: the same on a repeat, so a page run again, or the whole walk, changes
    nothing). At most `pages` pages of limit (default BACKFILL_PAGE) records a call (all if
    None), from `cursor`; returns the pages read, the blocks listed, and the cursor to go on
    from (None when the walk is over)."""
    listed = done = 0
    while pages is None or done < pages:
        records, cursor = p.stats.blocks_page(cursor, limit or BACKFILL_PAGE)
        for record in records:
            p.stats.list_block(record.worker_id, record.scope)
        listed += len(records)
        done += 1
        if cursor is None:
            break
    return {"pages": done, "listed": listed, "next_cursor": cursor}
