"""A worker's tasks: which jobs they may work on, leasing, submitting and releasing.

Hot paths are written for cost: a lease is one conditional write (candidate items come from a
per-container pool refreshed by one query), and a submit is one conditional write and one SQS
message for the counting consumer. A suite is a job's tasks leased, and answered, together in
one request: each task its own lease write and its own submit write, and the answers' counting
messages sent together (one SendMessageBatch per ten).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from chalicelib.domain import leasing
from chalicelib.domain import validation as v
from chalicelib.domain.answers import matches_gold, validate_answer
from chalicelib.domain.cache import MISSING
from chalicelib.domain.ids import is_job_id, parse_assignment_id, random_item_id
from chalicelib.domain.model import (
    Assignment, ItemState, Job, Offer, Principal, StoredAnswer, SubmitReceipt, open_keys,
)
from chalicelib.domain.mturk_requirements import ACCEPT, DISCOVER
from chalicelib.domain.suites import NextSuite, SuiteAnswer, parse_count, suite_length
from chalicelib.errors import Conflict, Forbidden, InvalidRequest, NotFound, TransientError
from chalicelib.handlers.mturk_quals import refusal
from chalicelib.handlers.platform import Platform, cached_job
from chalicelib.handlers.quality import blocked_everywhere, blocked_jobs, refuses

POOL_REFRESH_SIZE = 100


def _open_jobs(p: Platform, worker: Principal) -> list[Offer]:
    """Active jobs the worker qualifies for, oldest first, from the open-jobs index keys that
    can list a job for them (each read at most once per cache_seconds per container)."""
    now = p.now()
    found: dict[str, Offer] = {}
    refreshed = False
    for key in open_keys(worker.skills):
        offers = p.cache.open.get(key, now, p.cache_seconds)
        if offers is MISSING:
            offers = p.cache.open.put(key, p.jobs.open_jobs(key), now)
            refreshed = True
        found.update((offer.job_id, offer) for offer in offers
                     if now < offer.deadline and leasing.qualifies(worker, offer))
    if refreshed:
        p.cache.keep_pools()
    return sorted(found.values(), key=lambda offer: (offer.created_at, offer.job_id))


def available_jobs(p: Platform, worker: Principal) -> list[Offer]:
    """Active jobs the worker qualifies for and is not blocked from, oldest first (a HIT
    only if its requester did not block the worker and its requirements guarding Discover
    admit them)."""
    if blocked_everywhere(p, worker.account_id):
        return []
    offers = _open_jobs(p, worker)
    blocked = blocked_jobs(p, worker.account_id) if offers else set()
    return [offer for offer in offers if offer.job_id not in blocked
            and refusal(p, worker, offer, DISCOVER) is None]


def lease_query(query: Mapping[str, str]) -> tuple[str | None, int | None]:
    """The job id a worker asked for, if any, and how many tasks (None: one task, as a single
    lease answers); unknown parameters are refused."""
    v.reject_unknown(query, ("job_id", "count"))
    return query.get("job_id"), parse_count(query.get("count"))


def lease_next_task(p: Platform, worker: Principal, job_id: str | None = None
                    ) -> Assignment | None:
    """Lease one task the worker qualifies for and has not seen; None when there is none."""
    now = p.now()
    for candidate in _candidates(p, worker, job_id, now):
        assignment = _lease_in_job(p, candidate, worker.account_id, now)
        if assignment is not None:
            return assignment
    return None


def lease_suite(p: Platform, worker: Principal, count: int, job_id: str | None = None
                ) -> list[Assignment]:
    """Lease up to count tasks of one job (at most its suite_size), each its own lease of a
    slot of an item the worker has not seen, in random order; empty when there is none."""
    now = p.now()
    for candidate in _candidates(p, worker, job_id, now):
        suite = _lease_suite_in_job(p, candidate, worker.account_id,
                                    suite_length(count, candidate.suite_size), now)
        if suite:
            return suite
    return []


def _candidates(p: Platform, worker: Principal, job_id: str | None, now: float
                ) -> Iterable[Job]:
    """The jobs to lease from, in order: the named one, or the open ones the worker qualifies
    for; each taking leases and not refusing the worker. A named job the worker may not
    work on, or a worker blocked everywhere, is refused here."""
    if blocked_everywhere(p, worker.account_id):
        raise Forbidden("your account is blocked from taking tasks; contact the operator",
                        code="worker_blocked")
    if job_id is not None:
        job = cached_job(p, job_id) if is_job_id(job_id) else None
        if job is None:
            raise NotFound("no such job", field="job_id", code="job_not_found")
        if not leasing.qualifies(worker, job):
            raise Forbidden("you do not hold the skills (or scores) this job requires",
                            code="not_qualified",
                            details={"required_skills": list(job.required_skills),
                                     "min_skill_scores": job.min_skill_scores})
        if refuses(p, job.job_id, worker.account_id):
            raise Forbidden("you are blocked from this job", code="blocked_from_job")
        _check_hit(p, worker, job)
        candidates: Iterable[Job | None] = [job]
    else:
        # The index names the jobs, oldest first; each is read (as this container saw it
        # moments ago) only when its turn comes.
        candidates = (cached_job(p, offer.job_id) for offer in _open_jobs(p, worker))
    return (candidate for candidate in candidates
            if candidate is not None and candidate.takes_leases(now)
            and not refuses(p, candidate.job_id, worker.account_id)
            and refusal(p, worker, candidate, ACCEPT) is None)


def _check_hit(p: Platform, worker: Principal, job: Job) -> None:
    """Refuse a HIT's lease (its Accept) to a worker its requester blocked or who fails a
    QualificationRequirement guarding Accept; ordinary jobs pass."""
    why = refusal(p, worker, job, ACCEPT)
    if why == "blocked_by_requester":
        raise Forbidden("the requester of this HIT blocked you from its HITs", code=why)
    if why is not None:
        raise Forbidden("you do not meet this HIT's qualification requirements", code=why)


def _lease_suite_in_job(p: Platform, job: Job, worker_id: str, size: int, now: float
                        ) -> list[Assignment]:
    """Up to size tasks of job, gold tried first on each at the job's gold rate but never a
    suite of two or more made only of gold: the regular draws are leased first, and gold
    joins only a suite that holds regular work. Shuffled, so a task's place tells nothing."""
    if size == 1:
        single = _lease_in_job(p, job, worker_id, now)
        return [single] if single is not None else []
    draws = leasing.suite_gold_draws(size, job.quality.get("gold_rate", 0.0), p.rng)
    suite: list[Assignment] = []
    for gold in sorted(draws):  # False (regular only) first
        assignment = _lease_in_job(p, job, worker_id, now, gold=gold)
        if assignment is None:
            break  # nothing more for this worker now (or every try met another's write)
        suite.append(assignment)
    p.rng.shuffle(suite)
    return suite


def _slots_only(item: ItemState) -> ItemState:
    """What the pool keeps of an item: its slots (and whether it is gold), not its data or answers."""
    return replace(item, data={}, answers={})


def _plans(p: Platform, job: Job, snapshot: list[ItemState], worker_id: str, now: float,
           gold: bool | None = None) -> list[leasing.LeasePlan]:
    """Plans to try, in order.

    Gold is tried first on a gold_rate share of leases (or when `gold` says so; never when
    it is False), and only while the worker still has regular work: a worker is never served
    gold alone. Otherwise the order is leasing's.
    """
    regular = leasing.candidate_plans([i for i in snapshot if i.gold is None], worker_id, now, p.rng)
    if not regular:
        return []
    if gold is None:
        gold = p.rng.random() < job.quality.get("gold_rate", 0.0)
    if gold:
        known = leasing.candidate_plans([i for i in snapshot if i.gold is not None], worker_id,
                                        now, p.rng, limit=2)
        return known + regular
    return regular


def _lease_in_job(p: Platform, job: Job, worker_id: str, now: float, gold: bool | None = None
                  ) -> Assignment | None:
    """One task of job: the pool's candidates first, then a refresh of the pool; `gold`
    as _plans takes it."""
    pool = p.cache.pool(job.job_id)
    if p.cache.nothing_for.get((worker_id, job.job_id), now, p.cache_seconds) is not MISSING:
        return None  # a worker polling an exhausted job does not re-read its items each time
    for refreshed in (False, True):
        if refreshed:
            # From a random item on: containers (and refreshes) draw on different parts of a
            # big job, not all on its first open items.
            start = random_item_id(p.rng, job.id_space)
            fresh = p.items.open_items(job.job_id, worker_id, POOL_REFRESH_SIZE, start, now)
            with p.cache.lock:
                if len(pool) > 4 * POOL_REFRESH_SIZE:
                    pool.clear()
                pool.update({item.item_id: item for item in fresh})
            if not fresh:
                p.cache.nothing_for.put((worker_id, job.job_id), None, now)
                return None
        with p.cache.lock:
            snapshot = list(pool.values())
        # After a refresh, what it read comes first: the pool's other entries may show slots
        # taken (or items counted complete) elsewhere since and, ranked by answers, would use
        # up the tries; they are tried only when the refresh holds nothing to take.
        plans = _plans(p, job, fresh, worker_id, now, gold) if refreshed else []
        plans = plans or _plans(p, job, snapshot, worker_id, now, gold)
        # Gold and regular tasks take the same single write: gold slots are paid up front.
        for listed in plans:
            plan = _looked(p, job, pool, listed, worker_id, now)
            if plan is None:
                continue
            lease = leasing.new_lease(job, plan.item_id, now)
            outcome = p.items.try_lease(job.job_id, plan.item_id, worker_id, lease,
                                        plan.reclaim_from, now)
            _keep(p, pool, plan.item_id, outcome.item)
            if outcome.ok and outcome.item is not None:
                return Assignment(lease.assignment_id, job, outcome.item, lease)
    return None


def _looked(p: Platform, job: Job, pool: dict[str, ItemState], plan: leasing.LeasePlan,
            worker_id: str, now: float) -> leasing.LeasePlan | None:
    """The plan itself, or for an item listed without its leases whose newest lease has
    ended, the plan the item read now allows (the slot of an expired lease, or none)."""
    if not plan.look:
        return plan
    item = p.items.get_item(job.job_id, plan.item_id)
    _keep(p, pool, plan.item_id, item)
    return None if item is None else leasing.plan_for(item, worker_id, now)


def _keep(p: Platform, pool: dict[str, ItemState], item_id: str, item: ItemState | None
          ) -> None:
    """Keep an item as this container last saw it in its job's pool: its slots, or nothing
    once it is gone or complete."""
    with p.cache.lock:
        if item is None or item.complete:
            pool.pop(item_id, None)
        else:
            pool[item_id] = _slots_only(item)


def _worker_item(p: Platform, assignment_id: str) -> tuple[Job, str, float, int]:
    job_id, item_id, leased_at, version = parse_assignment_id(assignment_id)
    job = cached_job(p, job_id)
    if job is None:
        raise NotFound("no such assignment", code="assignment_not_found")
    return job, item_id, leased_at, version


def _receipt(job: Job, item: ItemState, worker_id: str, duplicate: bool) -> SubmitReceipt:
    stored = item.answers[worker_id]
    # Only the answer that filled the item's last slot announces it complete, on the first
    # submit and on every retry alike, so counting closes each item exactly once. A gold
    # item is never part of a round's count (its answer is known).
    completes = item.gold is None and stored.ordinal is not None \
        and stored.ordinal + 1 == item.redundancy
    return SubmitReceipt(stored.assignment_id, job.job_id, stored.submitted_at, job.reward_cents,
                         completes, duplicate)


def submit_answer(p: Platform, worker: Principal, assignment_id: str, body: Any
                  ) -> SubmitReceipt:
    """Accept an answer for a live lease exactly once; a retry returns the first receipt."""
    receipt, message = _store_answer(p, worker, assignment_id, body)
    # Sent on every accepted submit, retries included: counting is idempotent on the
    # assignment, and a retry repairs a message lost after the first write.
    p.results_queue.send(message)
    return receipt


def _store_answer(p: Platform, worker: Principal, assignment_id: str, body: Any
           ) -> tuple[SubmitReceipt, dict[str, Any]]:
    """Store an answer for a live lease exactly once; its receipt (the first one on a
    retry) and the counting message to send for it (the caller sends it)."""
    job, item_id, leased_at, version = _worker_item(p, assignment_id)
    answer = validate_answer(job, body)
    now = p.now()
    worker_id = worker.account_id
    # The version of the instructions the worker was shown when leasing (it is in the id).
    stored = StoredAnswer(assignment_id, answer, now, leased_at, instruction_version=version)
    outcome = p.items.try_submit(job.job_id, item_id, worker_id, stored, now)
    item = outcome.item
    fate = "accepted" if outcome.ok and item else _fate(item, worker_id, assignment_id)
    if fate == "leased":
        raise Conflict("the lease on this assignment has expired; the answer was not counted",
                       code="lease_expired")
    if fate not in ("accepted", "submitted") or item is None:
        _raise_gone(item, worker_id, assignment_id)
    receipt = _receipt(job, item, worker_id, duplicate=fate == "submitted")
    message = {"job_id": job.job_id, "item_id": item_id, "worker_id": worker_id,
               "assignment_id": assignment_id, "item_complete": receipt.item_complete,
               "ordinal": item.answers[worker_id].ordinal}
    if item.gold is not None:
        # Scored by the counting consumer, so a gold submit makes the same writes as any other.
        message["gold_correct"] = matches_gold(job, item.answers[worker_id].answer, item.gold)
    return receipt, message


# What a suite submit reports for an answer refused with one of these errors (by its code);
# any other refusal of the answer's content is "invalid_answer".
REFUSALS = ("lease_expired", "assignment_not_active", "assignment_not_found")


@dataclass(frozen=True)
class SuiteResult:
    """One answer of a suite submit: its receipt when stored (now or before), or why not."""

    assignment_id: str
    receipt: SubmitReceipt | None = None
    error: InvalidRequest | NotFound | Conflict | None = None

    @property
    def status(self) -> str:
        """accepted, duplicate, one of REFUSALS, or invalid_answer."""
        if self.receipt is not None:
            return "duplicate" if self.receipt.duplicate else "accepted"
        assert self.error is not None
        return self.error.code if self.error.code in REFUSALS else "invalid_answer"


@dataclass(frozen=True)
class SuiteSubmit:
    """What a suite submit did: each answer's result, in the order sent, and the next suite
    when one was asked for (None: not asked; next_error: why it could not be leased)."""

    results: list[SuiteResult]
    next: list[Assignment] | None = None
    next_error: Forbidden | NotFound | None = None


def submit_suite(p: Platform, worker: Principal, answers: Sequence[SuiteAnswer],
                 following: NextSuite | None = None) -> SuiteSubmit:
    """Judge each answer on its own, with the single submit's rules (an expired lease refuses
    its answer alone), send the counting messages of the stored ones together, then lease
    the next suite if asked. A retry stores nothing again: its answers are duplicates, whose
    messages go again as the single submit's retry does."""
    results: list[SuiteResult] = []
    messages: list[dict[str, Any]] = []
    try:
        for answer in answers:
            try:
                receipt, message = _store_answer(p, worker, answer.assignment_id, answer.body)
            except (InvalidRequest, NotFound, Conflict) as error:
                results.append(SuiteResult(answer.assignment_id, error=error))
                continue
            results.append(SuiteResult(answer.assignment_id, receipt=receipt))
            messages.append(message)
    except TransientError:
        # The request fails and may never be retried: the answers already stored are still
        # counted (a retry finds them duplicates and sends their messages again).
        if messages:
            p.results_queue.send_many(messages)
        raise
    if messages:
        p.results_queue.send_many(messages)
    if following is None:
        return SuiteSubmit(results)
    try:
        suite = lease_suite(p, worker, following.count, following.job_id)
    except (Forbidden, NotFound) as error:
        return SuiteSubmit(results, [], error)
    return SuiteSubmit(results, suite)


def release_assignment(p: Platform, worker: Principal, assignment_id: str) -> None:
    """Give a leased task back so another worker can take the slot."""
    job, item_id, _, _ = _worker_item(p, assignment_id)
    outcome = p.items.try_release(job.job_id, item_id, worker.account_id, assignment_id)
    if outcome.ok:
        # The slot is free again: this container's pool shows it, and a worker told here
        # that the job had nothing for them asks again.
        p.cache.nothing_for.drop_where(lambda key: key[1] == job.job_id)
        _keep(p, p.cache.pool(job.job_id), item_id, outcome.item)
        return
    if _fate(outcome.item, worker.account_id, assignment_id) == "submitted":
        raise Conflict("this assignment was already submitted", code="already_submitted")
    _raise_gone(outcome.item, worker.account_id, assignment_id)


def _fate(item: ItemState | None, worker_id: str, assignment_id: str) -> str:
    """What became of an assignment: 'submitted', 'leased', 'gone' or 'unknown'.

    A worker leases an item at most once, so if they hold a lease or an answer under
    another id, or never saw the item, this id was never theirs.
    """
    if item is None:
        return "unknown"
    answer = item.answers.get(worker_id)
    lease = item.leases.get(worker_id)
    if answer is not None:
        return "submitted" if answer.assignment_id == assignment_id else "unknown"
    if lease is not None:
        return "leased" if lease.assignment_id == assignment_id else "unknown"
    return "gone" if worker_id in item.seen else "unknown"


def _raise_gone(item: ItemState | None, worker_id: str, assignment_id: str) -> NoReturn:
    if _fate(item, worker_id, assignment_id) == "gone":
        raise Conflict("this assignment is no longer yours (expired or released)",
                       code="assignment_not_active")
    raise NotFound("no such assignment", code="assignment_not_found")
