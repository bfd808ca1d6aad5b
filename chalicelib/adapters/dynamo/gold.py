"""Gold items' servings: one small record per (gold item, worker), so no record grows with the
workers a gold item is served to.

A gold item may be served to thousands of workers (its slots are the gold answers the quote
paid for). Its own record keeps its data, its known answer and its slot counters only: `free`,
`answer_count`, and `out`, the leases out counted per minute they expire by (at most about
lease_seconds / 60 + 1 live entries). Each serving is a GoldServingModel record under the key
"<job id>#<item id>", created by a conditional put in the same transaction that takes the
slot: it exists, so the worker had the item, and never gets it again. The serving holds the
worker's lease, then their answer, its counting mark and its review.

A lease whose minute has passed is expired as a whole: the next lease on the item folds every
expired minute's count back into `free` (and drops the minutes counted down to zero), so an
abandoned lease's slot is offered again, as a regular item's expired lease is, and the map
keeps only live minutes. A submit or a release of a live lease counts its minute down.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.writes import (
    cancellation_reasons, cancelled_by_condition, conditional_update, raise_transient,
)
from chalicelib.adapters.models import GoldServingModel, ItemModel, JobModel
from chalicelib.domain.model import Lease, StoredAnswer
from chalicelib.errors import TransientError

# Leases are counted per minute they expire by.
MINUTE = 60
# The name of a lease out on a gold item, as the domain sees it (never a worker id).
PENDING = "@"
# Tries of a submit's transaction when other writes on the gold item keep cancelling it.
SUBMIT_TRIES = 4
PAGE_SIZE = 200
# Expired leases released per transaction (with the gold item and the job: 100 at most).
RELEASE_CHUNK = 98


def serving_key(job_id: str, item_id: str) -> str:
    """The partition key of a gold item's servings."""
    return f"{job_id}#{item_id}"


def minute_of(expires_at: float) -> str:
    """The minute (its end, in whole seconds) a lease expiring at expires_at is counted under."""
    return str(int(math.ceil(expires_at / MINUTE) * MINUTE))


def pending_leases(out: dict[str, Any] | None) -> dict[str, Lease]:
    """A gold item's leases out, one per lease, named "@<minute>#<n>" and expiring at their
    minute's end: what picking a slot, counting live leases and releasing unused slots need."""
    return {f"{PENDING}{minute}#{n}": Lease("", float(minute), 0.0)
            for minute, count in sorted((out or {}).items()) for n in range(int(count))}


def get_serving(job_id: str, item_id: str, worker_id: str) -> GoldServingModel | None:
    """A worker's serving of a gold item, strongly consistent; None if they never had it."""
    try:
        return GoldServingModel.get(serving_key(job_id, item_id), worker_id, consistent_read=True)
    except GoldServingModel.DoesNotExist:
        return None


def servings(job_id: str, item_id: str) -> Iterator[GoldServingModel]:
    """Every serving of a gold item, read in pages."""
    try:
        yield from GoldServingModel.query(serving_key(job_id, item_id), consistent_read=True,
                                          page_size=PAGE_SIZE)
    except PynamoDBException as error:
        raise_transient(error)
        raise


def serve(record: ItemModel, worker_id: str, lease: Lease, now: float) -> tuple[bool, bool]:
    """Take a slot of the gold item as `record` shows it and create the worker's serving, in
    one transaction; fold the expired minutes into free on the way. Returns (leased, the
    worker had the item before). Not leased when no slot is free, the record changed since,
    or other writes on the item got there first (the caller tries another task)."""
    out = {minute: int(count) for minute, count in (record.out.as_dict() if record.out else {}
                                                     ).items()}
    minute = minute_of(lease.expires_at)
    stale = {m: c for m, c in out.items() if m != minute and (c == 0 or float(m) <= now)}
    folded = sum(stale.values())
    if int(record.free) + folded < 1:
        return False, False
    count = ItemModel.out[minute]
    actions = [ItemModel.free.add(folded - 1), ItemModel.served.add(1),
               count.set(count + 1) if minute in out else count.set(1),
               *(ItemModel.out[m].remove() for m in stale)]
    condition = ItemModel.open_job.exists() & (ItemModel.free >= 1 - folded) \
        & (count.exists() if minute in out else count.does_not_exist())
    for m, c in stale.items():
        condition &= ItemModel.out[m] == c
    serving = GoldServingModel(serving_key(record.job_id, record.item_id), worker_id, lease={
        "aid": lease.assignment_id, "exp": lease.expires_at, "at": lease.leased_at,
        "b": minute})
    try:
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            tx.update(ItemModel(record.job_id, record.item_id), actions=actions,
                      condition=condition)
            tx.save(serving, condition=GoldServingModel.worker_id.does_not_exist())
    except TransactWriteError as error:
        try:
            if not cancelled_by_condition(error):
                raise
        except TransientError:
            return False, False  # racing leases on the item: another task will do
        reasons = cancellation_reasons(error)
        return False, len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed"
    return True, False


def submit(job_id: str, item_id: str, worker_id: str, lease: dict[str, Any],
           answer: StoredAnswer, now: float) -> bool:
    """Turn the worker's live lease (as read) into their answer and count the gold item's
    answer, together; False if the lease is not this assignment's or has expired."""
    value = {"aid": answer.assignment_id, "ans": json.dumps(answer.answer),
             "at": answer.submitted_at, "lat": answer.leased_at,
             "iv": answer.instruction_version}
    count = ItemModel.out[lease["b"]]

    def write(tx: TransactWrite) -> None:
        tx.update(GoldServingModel(serving_key(job_id, item_id), worker_id),
                  actions=[GoldServingModel.lease.remove(), GoldServingModel.answer.set(value)],
                  condition=(GoldServingModel.lease["aid"] == answer.assignment_id)
                  & (GoldServingModel.lease["exp"] > now))
        tx.update(ItemModel(job_id, item_id),
                  actions=[ItemModel.answer_count.add(1), count.set(count - 1)],
                  condition=count >= 1)

    return _transact(write, SUBMIT_TRIES)


def give_back(job_id: str, item_id: str, worker_id: str, lease: dict[str, Any]) -> bool:
    """End the worker's lease (as read) and give its slot back to free, together. If its
    minute was folded into free already (it expired and a later lease took it back), only
    the serving changes. The worker keeps their serving: never offered the item again."""
    key = serving_key(job_id, item_id)
    mine = GoldServingModel.lease["aid"] == lease["aid"]
    count = ItemModel.out[lease["b"]]

    def write(tx: TransactWrite) -> None:
        tx.update(GoldServingModel(key, worker_id), actions=[GoldServingModel.lease.remove()],
                  condition=mine)
        tx.update(ItemModel(job_id, item_id),
                  actions=[ItemModel.free.add(1), count.set(count - 1)], condition=count >= 1)

    for attempt in range(SUBMIT_TRIES):
        try:
            with TransactWrite(connection=JobModel._get_connection().connection) as tx:
                write(tx)
            return True
        except TransactWriteError as error:
            try:
                if not cancelled_by_condition(error):
                    raise
            except TransientError:
                if attempt == SUBMIT_TRIES - 1:
                    raise
                continue
            if cancellation_reasons(error)[0] is not None:
                return False  # not this assignment's lease (any more)
            ok, _ = conditional_update(GoldServingModel, key, worker_id,
                                       [GoldServingModel.lease.remove()], mine)
            return ok
    return False


def review_on_serving(tx: TransactWrite, job_id: str, item_id: str, worker_id: str,
                      assignment_id: str, value: dict[str, Any]) -> None:
    """A gold answer's review, on its serving: only if it has none and the answer is this
    assignment's."""
    tx.update(GoldServingModel(serving_key(job_id, item_id), worker_id),
              actions=[GoldServingModel.review.set(value)],
              condition=GoldServingModel.review.does_not_exist()
              & (GoldServingModel.answer["aid"] == assignment_id))


def count_on_serving(tx: TransactWrite, job_id: str, item_id: str, worker_id: str,
                     assignment_id: str) -> None:
    """A gold answer's counting mark, on its serving: only once."""
    tx.update(GoldServingModel(serving_key(job_id, item_id), worker_id),
              actions=[GoldServingModel.counted.set(assignment_id)],
              condition=GoldServingModel.counted.does_not_exist())


def release_slots(job_id: str, item_id: str, free: int, expired: dict[str, dict[str, Any]],
                  now: float, reward_cents: int) -> int:
    """Take a gold item's `free` free slots and the slots of the workers' expired leases (as
    read from their servings) away and pay their rewards into the job's pool, together and
    once: the free count must still be `free` and each lease still there and expired. More
    leases than a transaction holds go in several, each exact on its own; return the cents."""
    workers = sorted(expired)
    chunks = [workers[at:at + RELEASE_CHUNK] for at in range(0, len(workers), RELEASE_CHUNK)]
    paid = 0
    for number, chunk in enumerate(chunks or [[]]):
        taken = free if number == 0 else 0
        minutes = Counter(str(expired[worker]["b"]) for worker in chunk)
        slots = taken + len(chunk)
        if not slots:
            continue
        condition = ItemModel.free == taken if number == 0 else ItemModel.free >= 0
        actions = [ItemModel.redundancy.add(-slots), ItemModel.free.add(-taken)]
        for minute, count in minutes.items():
            actions.append(ItemModel.out[minute].set(ItemModel.out[minute] - count))
            condition &= ItemModel.out[minute] >= count

        def write(tx: TransactWrite, chunk: list[str] = chunk, actions: list = actions,
                  condition: Any = condition, slots: int = slots) -> None:
            tx.update(ItemModel(job_id, item_id), actions=actions, condition=condition)
            for worker in chunk:
                tx.update(GoldServingModel(serving_key(job_id, item_id), worker),
                          actions=[GoldServingModel.lease.remove()],
                          condition=(GoldServingModel.lease["aid"] == expired[worker]["aid"])
                          & (GoldServingModel.lease["exp"] <= now))
            tx.update(JobModel(job_id), actions=[JobModel.pool_cents.add(slots * reward_cents)])

        if _transact(write, SUBMIT_TRIES):
            paid += slots * reward_cents
    return paid


def _transact(write: Any, tries: int) -> bool:
    """Run write(tx) in one transaction, again while other writes on the same records cancel
    it (a condition cancelling it is False)."""
    for attempt in range(tries):
        try:
            with TransactWrite(connection=JobModel._get_connection().connection) as tx:
                write(tx)
            return True
        except TransactWriteError as error:
            try:
                if cancelled_by_condition(error):
                    return False
            except TransientError:
                if attempt == tries - 1:
                    raise
                continue
            raise
    return False
