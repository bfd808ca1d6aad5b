"""A container's small read caches: what one Lambda container remembers between requests.

Each entry keeps the time it was read; a reader says how old an entry it accepts. Nothing here
is shared between containers: every guarantee still comes from conditional writes, a cache only
saves reads (and may be up to its age behind another container's writes).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from chalicelib.domain.model import ACTIVE

V = TypeVar("V")
MISSING: Any = object()


class Timed(Generic[V]):
    """Values by key, each with the time it was read."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[V, float]] = {}
        self._forgotten: set[Hashable] = set()

    def get(self, key: Hashable, now: float, max_age: float) -> V:
        """The value if it was read less than max_age ago, else MISSING."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None and now - entry[1] < max_age else MISSING

    def put(self, key: Hashable, value: V, now: float) -> V:
        """Remember value as read now; return it."""
        self._entries[key] = (value, now)
        self._forgotten.discard(key)
        return value

    def values(self) -> list[V]:
        """Every value held, however old."""
        return [value for value, _ in self._entries.values()]

    def forget(self, key: Hashable) -> None:
        """Drop one entry (the next reader reads again)."""
        self._entries.pop(key, None)
        self._forgotten.add(key)

    def forgotten(self, key: Hashable) -> bool:
        """True if the entry was dropped by forget (after a write this container made) and
        not read since: its next read must see that write."""
        return key in self._forgotten

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def drop_where(self, keep_out: Callable[[Any], bool]) -> None:
        """Drop the entries whose key keep_out is true of."""
        for key in [key for key in self._entries if keep_out(key)]:
            self._entries.pop(key, None)


class ContainerCache:
    """The caches the command handlers keep per container, by name:

    - principals: credential hash -> Principal (authentication);
    - requester_keys: requester access key id -> (Principal, secret) or None (SigV4);
    - jobs: job id -> Job, and open: open-jobs index key -> its Offers (leasing, the job list);
    - leased: job id -> live lease count and whether it is an estimate (progress);
    - blocked: worker id -> whether an operator blocked them everywhere, and job_blocks:
      (worker id, job id) -> when the worker's block from the job starts (None: no block);
    - models: job id -> its online model (adaptive redundancy);
    - pools: job id -> {item id: slot state}, the task pool leases are tried from, and
      nothing_for: (worker id, job id) -> when the job last had nothing for the worker;
    - mturk_notify: (client id, HITTypeId) -> the HIT type's notification specification.
    - mturk: (record kind, name) -> an MTurk record's body or None, and the figures derived
      for a worker (the MTurk API's grants, worker blocks and system values on the lease path).
    """

    def __init__(self) -> None:
        self.principals: Timed[Any] = Timed()
        self.requester_keys: Timed[Any] = Timed()
        self.jobs: Timed[Any] = Timed()
        self.open: Timed[list[Any]] = Timed()
        self.leased: Timed[tuple[int, bool]] = Timed()
        self.blocked: Timed[bool] = Timed()
        self.job_blocks: Timed[float | None] = Timed()
        self.models: Timed[Any] = Timed()
        self.nothing_for: Timed[None] = Timed()
        self.mturk_notify: Timed[Any] = Timed()
        self.mturk: Timed[Any] = Timed()
        self._pools: dict[str, dict[str, Any]] = {}
        # Guards the task pools, which concurrent requests of one container share.
        self.lock = threading.Lock()

    def forget_job(self, job_id: str) -> None:
        """After a write that changes a job: this container reads it (and the open-jobs index)
        again on next use."""
        self.jobs.forget(job_id)
        self.open.clear()

    def pool(self, job_id: str) -> dict[str, Any]:
        """The job's task pool (item id -> slot state), made empty on first use."""
        return self._pools.setdefault(job_id, {})

    def keep_pools(self) -> None:
        """Drop the task pools of jobs no longer active: listed in no open-jobs index this
        container has read, and not read as active."""
        keep = {offer.job_id for offers in self.open.values() for offer in offers}
        keep |= {job.job_id for job in self.jobs.values() if job is not None
                 and job.state == ACTIVE}
        with self.lock:
            for job_id in [job_id for job_id in self._pools if job_id not in keep]:
                del self._pools[job_id]
