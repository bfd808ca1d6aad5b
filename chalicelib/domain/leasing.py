"""Lease policy: which slot of which item a worker may take, and until when."""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.domain.ids import new_assignment_id
from chalicelib.domain.model import ItemState, Job, Lease, Offer, Principal

MAX_TRIES_PER_POOL = 6


@dataclass(frozen=True)
class LeasePlan:
    """Take a free slot of an item, or the slot of an expired lease (reclaim_from); or, for
    an item listed without its leases, read it first (look): one of them may have ended."""

    item_id: str
    reclaim_from: str | None = None
    look: bool = False


def plan_for(item: ItemState, worker_id: str, now: float) -> LeasePlan | None:
    """How worker_id could lease item now, or None if they cannot."""
    if worker_id in item.seen or item.complete:
        return None
    if item.free > 0:
        return LeasePlan(item.item_id)
    for holder, lease in sorted(item.leases.items()):
        if lease.expires_at <= now:
            return LeasePlan(item.item_id, reclaim_from=holder)
    if item.listed and item.gold is None and not item.leases \
            and (item.last_expiry is None or item.last_expiry <= now):
        # Every slot is taken and the newest lease has ended (or the item was leased before
        # the listing held when): an older one has too, unless every slot was answered.
        return LeasePlan(item.item_id, look=True)
    return None


def candidate_plans(items: Iterable[ItemState], worker_id: str, now: float,
                    rng: random.Random | None = None, limit: int = MAX_TRIES_PER_POOL
                    ) -> list[LeasePlan]:
    """Plans to try in order: items with the fewest answers first, shuffled within a level.

    Shuffling spreads concurrent workers over different items so their conditional
    writes rarely collide; fewest-answers-first finishes items evenly.
    """
    rng = rng or random.Random()
    scored = []
    for item in items:
        plan = plan_for(item, worker_id, now)
        if plan is not None:
            scored.append((item.taken, rng.random(), plan))
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [plan for _, _, plan in scored[:limit]]


def new_lease(job: Job, item_id: str, now: float) -> Lease:
    """A lease for a slot of item_id that ends after the job's lease time or at its deadline."""
    return Lease(
        assignment_id=new_assignment_id(job.job_id, item_id, now, job.instruction_version),
        expires_at=min(now + job.lease_seconds, job.deadline),
        leased_at=now,
    )


def qualifies(worker: Principal, job: Job | Offer) -> bool:
    """True when the worker holds every skill the job requires, with the scores it asks for."""
    scores = dict(worker.scores)
    return set(job.required_skills) <= set(worker.skills) and all(
        scores.get(skill, -1.0) >= minimum for skill, minimum in job.min_skill_scores.items())


# The most tasks one request leases or submits (a job's suite_size, a count, a suite's answers).
MAX_SUITE_SIZE = 20


def suite_gold_draws(size: int, gold_rate: float, rng: random.Random) -> list[bool]:
    """For each task of a suite of `size`, whether gold is tried first: each at the job's gold
    rate on its own, except that a suite of two or more is never all gold (one draw, chosen
    at random, is then made regular). A suite of one follows the single lease's rule."""
    draws = [rng.random() < gold_rate for _ in range(size)]
    if size > 1 and all(draws):
        draws[rng.randrange(size)] = False
    return draws
