"""Items and their slots: a lease, an answer or a release is one conditional write on the
item; a rejection moves the item, the ledger, the answer's accrual and the money in one
transaction; a client's approval is one conditional write on the item."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.jobs import money_attribute
from chalicelib.adapters.dynamo.ledger import accrual_key, ledger_record
from chalicelib.adapters.dynamo.writes import conditional_update, raise_transient, transact_once
from chalicelib.adapters.models import (
    AccrualModel, ItemModel, JobCountsModel, JobModel, LedgerModel, counts_key,
)
from chalicelib.domain import payouts
from chalicelib.domain.model import (
    INGESTING, ItemState, Lease, LedgerEntry, NewItem, StoredAnswer,
)
from chalicelib.domain.ports import SlotOutcome


def _lease_from(raw: dict[str, Any]) -> Lease:
    return Lease(raw["aid"], float(raw["exp"]), float(raw["at"]))


def _answer_from(raw: dict[str, Any], ordinal: Any, review: Any = None) -> StoredAnswer:
    return StoredAnswer(raw["aid"], json.loads(raw["ans"]), float(raw["at"]), float(raw["lat"]),
                        None if ordinal is None else int(ordinal), int(raw.get("iv", 1)),
                        None if review is None else {
                            "status": review["s"], "reason": review.get("r"),
                            "at": float(review["at"]), "by": review.get("by")})


def item_from_model(r: ItemModel) -> ItemState:
    """A domain item from its record."""
    leases = {w: _lease_from(dict(v)) for w, v in (r.leases.as_dict() if r.leases else {}).items()}
    ordinals = r.ordinals.as_dict() if r.ordinals else {}
    reviews = r.reviews.as_dict() if r.reviews else {}
    answers = {w: _answer_from(dict(v), ordinals.get(w), reviews.get(w))
               for w, v in (r.answers.as_dict() if r.answers else {}).items()}
    return ItemState(
        job_id=r.job_id, item_id=r.item_id, data=r.data or {}, redundancy=int(r.redundancy),
        free=int(r.free), external_id=r.external_id, leases=leases, answers=answers,
        seen=frozenset(r.seen or ()), answer_count=int(r.answer_count or 0), gold=r.gold,
        held=bool(r.held), replaced=int(r.replaced or 0), extended=int(r.extended or 0),
    )


def _review_value(review: dict[str, Any]) -> dict[str, Any]:
    return {"s": review["status"], "r": review.get("reason"), "at": review["at"],
            "by": review.get("by")}


def _item_from_raw(raw: dict[str, Any] | None) -> ItemState | None:
    return None if raw is None else item_from_model(ItemModel.from_raw_data(raw))


# What picking a slot needs: not the item's data, answers or counting marks.
_SLOT_FIELDS = ["job_id", "item_id", "redundancy", "free", "answer_count", "leases", "seen", "gold"]


class DynamoItems:
    """Items and their slots."""

    @staticmethod
    def _save_new(tx: TransactWrite, job_id: str, redundancy: int, items: Sequence[NewItem]
                  ) -> None:
        """Each item written only if it does not exist: a chunk delivered twice at once must
        not overwrite items a worker has leased since."""
        for item in items:
            slots = redundancy if item.slots is None else item.slots
            # A held item stays out of the open-items index until production, and a gold item
            # without slots never enters it.
            tx.save(ItemModel(
                job_id, item.item_id, data=item.data, external_id=item.external_id,
                gold=item.gold, held=True if item.held else None,
                redundancy=slots, free=slots, answer_count=0, leases={},
                answers={}, reviews={}, counted={}, ordinals={},
                open_job=None if item.held or not slots else job_id,
            ), condition=ItemModel.item_id.does_not_exist())

    def put_items(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> None:
        """Write fresh items in one transaction, whole or not at all."""
        transact_once(lambda tx: self._save_new(tx, job_id, redundancy, items))

    def put_chunk(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> bool:
        """Write a chunk's fresh items and add one to the job's chunks_written, in one
        transaction that needs every item new and the job ingesting: a chunk counts once."""
        def write(tx: TransactWrite) -> None:
            self._save_new(tx, job_id, redundancy, items)
            tx.update(JobModel(job_id), actions=[JobModel.chunks_written.add(1)],
                      condition=JobModel.state == INGESTING)

        return transact_once(write)

    def open_items(self, job_id: str, worker_id: str | None, limit: int | None,
                   start: str | None = None) -> list[ItemState]:
        """Incomplete items from the sparse open_items index, optionally unseen by a worker;
        with start, from that item id on and then from the first (two range queries)."""
        condition = None if worker_id is None else ~ItemModel.seen.contains(worker_id)
        ranges = [None] if start is None else [ItemModel.item_id >= start,
                                               ItemModel.item_id < start]
        found: list[ItemState] = []
        for key_range in ranges:
            for record in ItemModel.open_items.query(job_id, key_range, filter_condition=condition,
                                                     page_size=200,
                                                     attributes_to_get=_SLOT_FIELDS):
                found.append(item_from_model(record))
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def held_item_ids(self, job_id: str) -> list[str]:
        """Ids of the job's items held back from its pilot."""
        return [record.item_id for record in ItemModel.query(
            job_id, filter_condition=ItemModel.held.exists(), consistent_read=True,
            attributes_to_get=["item_id"])]

    def review(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
               review: dict[str, Any], entry: LedgerEntry, refund_cents: int = 0,
               refund_to: str = "pool") -> bool:
        """A rejection, in one transaction: the review on the item (only if it has none and
        the answer is this assignment's), the ledger entry (only if new), one more rejected
        on the answer's accrual (only if that was never settled: its answers are approved
        then), and the reward back to the job's pool, or held for a replacement slot
        (refund_to "held")."""
        value = _review_value(review)
        window = payouts.window_of(assignment_id)

        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id),
                      actions=[ItemModel.reviews[worker_id].set(value)],
                      condition=ItemModel.reviews[worker_id].does_not_exist()
                      & (ItemModel.answers[worker_id]["aid"] == assignment_id))
            tx.save(ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
            tx.update(AccrualModel(worker_id, accrual_key(job_id, window)),
                      actions=[AccrualModel.rejected.add(1),
                               AccrualModel.accrual_job.set(job_id),
                               AccrualModel.window.set(window)],
                      condition=AccrualModel.settled_at.does_not_exist())
            tx.update(JobModel(job_id), actions=[money_attribute(refund_to).add(refund_cents),
                                                 JobModel.rejected_answers.add(1)])

        return transact_once(write)

    def approve(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                review: dict[str, Any]) -> bool:
        """A client's approval: the review on the item, once, in one conditional write (the
        answer is paid with its accrual)."""
        ok, _ = conditional_update(ItemModel, job_id, item_id,
                                   [ItemModel.reviews[worker_id].set(_review_value(review))],
                                   ItemModel.reviews[worker_id].does_not_exist()
                                   & (ItemModel.answers[worker_id]["aid"] == assignment_id))
        return ok

    def add_slots(self, job_id: str, item_id: str, count: int, replaced_before: int) -> bool:
        """Reopen a counted-complete item with more slots and uncount it, in one transaction."""
        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id), actions=[
                ItemModel.redundancy.add(count), ItemModel.free.add(count),
                ItemModel.replaced.add(count), ItemModel.open_job.set(job_id)],
                condition=ItemModel.open_job.does_not_exist()
                & (ItemModel.replaced == replaced_before))
            tx.update(JobCountsModel(counts_key(job_id)),
                      actions=[JobCountsModel.items_done.add(-1)])

        return transact_once(write)

    def extend(self, job_id: str, item_id: str, redundancy_now: int) -> bool:
        """One more slot for an item not yet counted complete whose redundancy is still
        redundancy_now (so two deciders cannot both add one for the same answer)."""
        ok, _ = conditional_update(ItemModel, job_id, item_id,
                                   [ItemModel.redundancy.add(1), ItemModel.free.add(1),
                                    ItemModel.extended.add(1)],
                                   ItemModel.open_job.exists()
                                   & (ItemModel.redundancy == redundancy_now))
        return ok

    def release_gold_slots(self, job_id: str, item_id: str, free: int, expired: Sequence[str],
                           now: float, reward_cents: int) -> int:
        """Take a gold item's free slots (still `free`) and the slots of the expired leases
        away, and give their rewards to the job's pool, together and once; return the cents."""
        slots = free + len(expired)

        def write(tx: TransactWrite) -> None:
            condition = ItemModel.free == free
            for worker in expired:
                condition &= ItemModel.leases[worker]["exp"] <= now
            tx.update(ItemModel(job_id, item_id),
                      actions=[ItemModel.redundancy.add(-slots), ItemModel.free.add(-free),
                               *(ItemModel.leases[worker].remove() for worker in expired)],
                      condition=condition)
            tx.update(JobModel(job_id), actions=[JobModel.pool_cents.add(slots * reward_cents)])

        return slots * reward_cents if transact_once(write) else 0

    def open_held(self, job_id: str, item_ids: Sequence[str]) -> None:
        """Put held items into the open-items index (an item opened before is left alone)."""
        for item_id in item_ids:
            conditional_update(ItemModel, job_id, item_id,
                               [ItemModel.open_job.set(job_id), ItemModel.held.remove()],
                               ItemModel.held.exists())

    def get_item(self, job_id: str, item_id: str) -> ItemState | None:
        """One item, strongly consistent."""
        try:
            return item_from_model(ItemModel.get(job_id, item_id, consistent_read=True))
        except ItemModel.DoesNotExist:
            return None

    def try_lease(self, job_id: str, item_id: str, worker_id: str, lease: Lease,
                  reclaim_from: str | None, now: float) -> SlotOutcome:
        """Take a free slot, or the slot of reclaim_from's expired lease, in one write."""
        value = {"aid": lease.assignment_id, "exp": lease.expires_at, "at": lease.leased_at}
        actions = [ItemModel.leases[worker_id].set(value), ItemModel.seen.add({worker_id})]
        condition = ItemModel.open_job.exists() & ~ItemModel.seen.contains(worker_id)
        if reclaim_from is None:
            actions.append(ItemModel.free.add(-1))
            condition &= ItemModel.free > 0
        else:
            actions.append(ItemModel.leases[reclaim_from].remove())
            condition &= ItemModel.leases[reclaim_from]["exp"] <= now
        ok, raw = conditional_update(ItemModel, job_id, item_id, actions, condition)
        return SlotOutcome(ok, _item_from_raw(raw))

    def try_submit(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                   now: float) -> SlotOutcome:
        """Turn a live lease into an accepted answer: one conditional write, exactly once."""
        value = {"aid": answer.assignment_id, "ans": json.dumps(answer.answer),
                 "at": answer.submitted_at, "lat": answer.leased_at,
                 "iv": answer.instruction_version}
        lease = ItemModel.leases[worker_id]
        # The answer's ordinal is the count before this write: DynamoDB orders the writes.
        actions = [lease.remove(), ItemModel.answers[worker_id].set(value),
                   ItemModel.ordinals[worker_id].set(ItemModel.answer_count),
                   ItemModel.answer_count.add(1)]
        condition = (lease["aid"] == answer.assignment_id) & (lease["exp"] > now)
        ok, raw = conditional_update(ItemModel, job_id, item_id, actions, condition)
        return SlotOutcome(ok, _item_from_raw(raw))

    def try_release(self, job_id: str, item_id: str, worker_id: str, assignment_id: str
                    ) -> SlotOutcome:
        """Give a slot back; the worker stays in 'seen', so they are not offered it again."""
        lease = ItemModel.leases[worker_id]
        ok, raw = conditional_update(ItemModel, job_id, item_id,
                                     [lease.remove(), ItemModel.free.add(1)],
                                     lease["aid"] == assignment_id)
        return SlotOutcome(ok, _item_from_raw(raw))

    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item of a job in item order, or those after the item id `after`."""
        condition = None if after is None else ItemModel.item_id > after
        try:
            for record in ItemModel.query(job_id, condition, consistent_read=True):
                yield item_from_model(record)
        except PynamoDBException as error:
            raise_transient(error)
            raise
