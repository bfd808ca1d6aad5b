"""Gold items' servings: one small record per (gold item, worker), so no record grows with the
workers a gold item is served to.

A gold item may be served to thousands of workers (its slots are the gold answers the quote
paid for). Its own record keeps its data, its known answer and its slot counters only: `free`,
`answer_count`, `ls` (the longest a lease of it lasts: its first lease's length, as later
leases end at the same time or at the job's deadline) and `out`, the leases out counted per
minute they were taken in (the minute's end, in seconds). Each serving is a GoldServingModel
record under the key "<job id>#<item id>", created by a conditional put in the same
transaction that takes the slot: it exists, so the worker had the item and never gets it
again. The serving holds the worker's lease, then their answer, its counting mark and review.

A lease, a submit and a release are each one transaction and no read, as a regular item's
are one write: the minute a lease is counted under follows from its assignment id, and a
lease works from the item as this container last saw it (a stale view is refused like a
lost race, with the item as it stands). Every lease of a minute m has ended by m + ls, so the
next lease after that folds the minute's count back into `free` (and drops minutes counted
down to zero): an abandoned lease's slot is offered again, and `out` keeps only the minutes
of the last ls seconds (at most 61). A submit or a release counts its minute down.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.writes import (
    cancelled_by_condition, conditional_update, raise_transient,
)
from chalicelib.adapters.models import (
    GoldServingModel, ItemModel, JobModel, JobMoneyModel, money_key,
)
from chalicelib.domain.ids import parse_assignment_id
from chalicelib.domain.model import Lease, StoredAnswer
from chalicelib.errors import TransientError

# Leases are counted per minute they were taken in.
MINUTE = 60
# The name of a lease out on a gold item, as the domain sees it (never a worker id).
PENDING = "@"
# Tries of a transaction when other writes on the same records keep cancelling it.
SUBMIT_TRIES = 4
PAGE_SIZE = 200
# Expired leases released per transaction (with the gold item and the job: 100 at most).
RELEASE_CHUNK = 98


def serving_key(job_id: str, item_id: str) -> str:
    """The partition key of a gold item's servings."""
    return f"{job_id}#{item_id}"


def minute_of(assignment_id: str) -> str:
    """The minute (its end, in whole seconds) the lease of an assignment is counted under: the
    one its lease time, as the id names it, falls in."""
    millis = round(parse_assignment_id(assignment_id)[2] * 1000)
    return str(-(-millis // (MINUTE * 1000)) * MINUTE)


def out_counts(record: ItemModel) -> dict[str, int]:
    """A gold item's leases out per minute, as its record holds them."""
    value: Any = record.out
    if value is None:
        return {}
    raw = value if isinstance(value, dict) else value.as_dict()
    return {minute: int(count) for minute, count in raw.items()}


def lasts(record: ItemModel) -> float | None:
    """How long a lease of the gold item lasts at most (None before its first lease)."""
    return None if record.ls is None else float(record.ls)


def pending_leases(record: ItemModel) -> dict[str, Lease]:
    """A gold item's leases out, one per lease, named "@<minute>#<n>" and ending when every
    lease of their minute has: what picking a slot, counting live leases and releasing unused
    slots need."""
    longest = lasts(record) or 0.0
    out = out_counts(record)
    return {f"{PENDING}{minute}#{n}": Lease("", float(minute) + longest, 0.0)
            for minute, count in sorted(out.items()) for n in range(int(count))}


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


def serve(record: ItemModel, worker_id: str, lease: Lease, now: float
          ) -> tuple[bool, bool, dict[str, Any] | None]:
    """Take a slot of the gold item as `record` shows it and create the worker's serving, in
    one transaction, folding the minutes whose leases have all ended into free on the way
    (once leased, `record` is updated to what the write left).
    Returns (leased, the worker had the item before, the item as it stands when the record
    was stale, if DynamoDB returned it). Not leased when no slot is free, the record changed
    since, or other writes on the item got there first (the caller tries another task)."""
    out = out_counts(record)
    minute = minute_of(lease.assignment_id)
    longest = lasts(record)
    stale = {m: c for m, c in out.items() if m != minute and (
        c == 0 or (longest is not None and float(m) + longest <= now))}
    folded = sum(stale.values())
    if int(record.free) + folded < 1:
        return False, False, None
    count = ItemModel.out[minute]
    # A gold item written before its servings were records of their own has no `out` yet,
    # and its workers are in its `seen`: they do not get it again either.
    counted = count.set((count | 0) + 1) if record.out is not None \
        else ItemModel.out.set({minute: 1})
    actions = [ItemModel.free.add(folded - 1), ItemModel.served.add(1), counted,
               ItemModel.ls.set(ItemModel.ls | math.ceil(lease.expires_at - lease.leased_at)),
               *(ItemModel.out[m].remove() for m in stale)]
    condition = ItemModel.open_job.exists() & (ItemModel.free >= 1 - folded) \
        & ~ItemModel.seen.contains(worker_id) \
        & (ItemModel.out.exists() if record.out is not None else ItemModel.out.does_not_exist())
    for m, c in stale.items():
        condition &= ItemModel.out[m] == c
    serving = GoldServingModel(serving_key(record.job_id, record.item_id), worker_id, lease={
        "aid": lease.assignment_id, "exp": lease.expires_at, "at": lease.leased_at,
        "b": minute})
    try:
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            tx.update(ItemModel(record.job_id, record.item_id), actions=actions,
                      condition=condition, return_values="ALL_OLD")
            tx.save(serving, condition=GoldServingModel.worker_id.does_not_exist())
    except TransactWriteError as error:
        try:
            if not cancelled_by_condition(error):
                raise
        except TransientError:
            return False, False, None  # racing leases on the item: another task will do
        reasons = error.cancellation_reasons or []
        item = reasons[0] if reasons else None
        had = len(reasons) > 1 and reasons[1] is not None \
            and reasons[1].code == "ConditionalCheckFailed"
        return False, had, item.raw_item if item is not None and item.raw_item else None
    # The record as the write left it, for the next lease from this container.
    for m in stale:
        out.pop(m)
    out[minute] = out.get(minute, 0) + 1
    record.out = out
    record.free = int(record.free) + folded - 1
    record.served = int(record.served or 0) + 1
    if record.ls is None:
        record.ls = math.ceil(lease.expires_at - lease.leased_at)
    return True, False, None


def submit(job_id: str, item_id: str, worker_id: str, answer: StoredAnswer, now: float
           ) -> tuple[bool, dict[str, Any] | None]:
    """Turn the worker's live lease into their answer and count the gold item's answer,
    together. Returns (accepted, the serving as it stands when not, if DynamoDB returned it):
    not when the lease is not this assignment's or has expired."""
    value = {"aid": answer.assignment_id, "ans": json.dumps(answer.answer),
             "at": answer.submitted_at, "lat": answer.leased_at,
             "iv": answer.instruction_version}
    count = ItemModel.out[minute_of(answer.assignment_id)]

    def write(tx: TransactWrite) -> None:
        tx.update(GoldServingModel(serving_key(job_id, item_id), worker_id),
                  actions=[GoldServingModel.lease.remove(), GoldServingModel.answer.set(value)],
                  condition=(GoldServingModel.lease["aid"] == answer.assignment_id)
                  & (GoldServingModel.lease["exp"] > now), return_values="ALL_OLD")
        tx.update(ItemModel(job_id, item_id),
                  actions=[ItemModel.answer_count.add(1), count.set(count - 1)],
                  condition=count >= 1)

    return _transact(write, SUBMIT_TRIES)


def give_back(job_id: str, item_id: str, worker_id: str, assignment_id: str
              ) -> tuple[bool, dict[str, Any] | None]:
    """End the worker's lease of this assignment and give its slot back to free, together. If
    its minute was folded into free already (every lease of it had ended and a later lease
    took them back), only the serving changes. The worker keeps their serving: never offered
    the item again. Returns (released, the serving as it stands when not, if returned)."""
    key = serving_key(job_id, item_id)
    mine = GoldServingModel.lease["aid"] == assignment_id
    count = ItemModel.out[minute_of(assignment_id)]

    def write(tx: TransactWrite) -> None:
        tx.update(GoldServingModel(key, worker_id), actions=[GoldServingModel.lease.remove()],
                  condition=mine, return_values="ALL_OLD")
        tx.update(ItemModel(job_id, item_id),
                  actions=[ItemModel.free.add(1), count.set(count - 1)], condition=count >= 1)

    released, serving, item_refused = _transact_why(write, SUBMIT_TRIES)
    if released or not item_refused:
        return released, serving
    ok, raw = conditional_update(GoldServingModel, key, worker_id,
                                 [GoldServingModel.lease.remove()], mine)
    return ok, None if ok else raw


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
            tx.update(JobMoneyModel(money_key(job_id)),
                      actions=[JobMoneyModel.pool_cents.add(slots * reward_cents)])

        if _transact(write, SUBMIT_TRIES)[0]:
            paid += slots * reward_cents
    return paid


def _transact(write: Any, tries: int) -> tuple[bool, dict[str, Any] | None]:
    """Run write(tx) in one transaction, again while other writes on the same records cancel
    it: (True, None), or (False, the first record as it stands if DynamoDB returned it) when
    a condition cancelled it."""
    done, first, _ = _transact_why(write, tries)
    return done, first


def _transact_why(write: Any, tries: int) -> tuple[bool, dict[str, Any] | None, bool]:
    """_transact, also telling whether the second record's condition was the one refused
    while the first's held."""
    for attempt in range(tries):
        try:
            with TransactWrite(connection=JobModel._get_connection().connection) as tx:
                write(tx)
            return True, None, False
        except TransactWriteError as error:
            try:
                if not cancelled_by_condition(error):
                    raise
            except TransientError:
                if attempt == tries - 1:
                    raise
                continue
            reasons = error.cancellation_reasons or []
            first = reasons[0] if reasons else None
            second = reasons[1] if len(reasons) > 1 else None
            return False, first.raw_item if first is not None else None, \
                first is None and second is not None
    return False, None, False
