"""A job's progress from its counters and a bounded look at its task pool: how many leases
are out, exact for a job whose open items fit in one listing, else estimated from a few
samples of the pool scaled up to the open items its counters give."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from chalicelib.domain.model import Job

T = TypeVar("T")

# A job with at most this many open items has its live leases counted from one listing.
EXACT_ENTRIES = 1000
# A larger job's are estimated from this many samples of the pool, each this many open
# items from a random item id on.
SAMPLES = 3
SAMPLE_ENTRIES = 100
# At most this many items have their leases read per listing (one batch read of 100).
LEASE_READS = 100


def spread(values: Sequence[T], count: int) -> list[T]:
    """At most count of the values, evenly spread over them (all of them if no more)."""
    if len(values) <= count:
        return list(values)
    if count <= 0:
        return []
    step = len(values) / count
    return [values[int(k * step)] for k in range(count)]


def open_items(job: Job) -> int:
    """How many items the job's counters say are open: the round's items not yet counted
    done, and its gold items (those with slots are in the pool until answered)."""
    return max(0, job.round_items - job.items_done) + job.gold_items


def scaled(leased: float, entries: int, open_count: int) -> int:
    """Leases of the whole pool from those counted in `entries` sampled open items."""
    if entries <= 0:
        return 0
    return round(leased / entries * max(open_count, entries))
