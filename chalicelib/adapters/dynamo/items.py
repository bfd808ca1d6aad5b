"""Items and their slots: a lease, an answer or a release is one conditional write on the
item; a rejection moves the item, the ledger, the answer's accrual and the job's money record
in one transaction, and so does a replacement or adaptive slot with the money it takes; a
client's approval is one conditional write on the item. A gold item's
leases and answers are on its servings, one record per worker (see gold.py)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pynamodb.exceptions import PutError, PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo import gold as servings
from chalicelib.adapters.dynamo.jobs import money_attribute
from chalicelib.adapters.dynamo.ledger import accrual_key, ledger_record
from chalicelib.adapters.dynamo.writes import (
    cancellation_reasons, cancelled_by_condition, conditional_update, raise_transient,
    transact_once,
)
from chalicelib.adapters.models import (
    OPEN_SLOT_FIELDS, AccountModel, AccrualModel, GoldListingModel, GoldServingModel,
    IngestRangeModel, ItemModel, JobCountsModel, JobModel, JobMoneyModel, LedgerModel,
    counts_key, money_key, range_key,
)
from chalicelib.domain import payouts
from chalicelib.domain.model import ItemState, Lease, LedgerEntry, NewItem, StoredAnswer
from chalicelib.domain.progress import spread
from chalicelib.domain.ports import LeaseCount, SlotOutcome


def _lease_from(raw: dict[str, Any]) -> Lease:
    return Lease(raw["aid"], float(raw["exp"]), float(raw["at"]))


def _answer_from(raw: dict[str, Any], ordinal: Any, review: Any = None) -> StoredAnswer:
    return StoredAnswer(raw["aid"], json.loads(raw["ans"]), float(raw["at"]), float(raw["lat"]),
                        None if ordinal is None else int(ordinal), int(raw.get("iv", 1)),
                        None if review is None else {
                            "status": review["s"], "reason": review.get("r"),
                            "at": float(review["at"]), "by": review.get("by")})


def item_from_model(r: ItemModel) -> ItemState:
    """A domain item from its record (a gold item's answers are on its servings: none here,
    and its leases are those it counts out, named by servings.pending_leases)."""
    leases = {w: _lease_from(dict(v)) for w, v in (r.leases.as_dict() if r.leases else {}).items()}
    if r.gold is not None:
        leases.update(servings.pending_leases(r))
    ordinals = r.ordinals.as_dict() if r.ordinals else {}
    reviews = r.reviews.as_dict() if r.reviews else {}
    answers = {w: _answer_from(dict(v), ordinals.get(w), reviews.get(w))
               for w, v in (r.answers.as_dict() if r.answers else {}).items()}
    return ItemState(
        job_id=r.job_id, item_id=r.item_id, data=r.data or {}, redundancy=int(r.redundancy),
        free=int(r.free), external_id=r.external_id, leases=leases, answers=answers,
        seen=frozenset(r.seen or ()), answer_count=int(r.answer_count or 0), gold=r.gold,
        held=bool(r.held), replaced=int(r.replaced or 0), extended=int(r.extended or 0),
        last_expiry=None if r.last_exp is None else float(r.last_exp),
    )


# The condition of every fresh item's write: a delivery of its chunk again must not overwrite
# it (a worker may have leased it since).
_IS_NEW = ItemModel.item_id.does_not_exist()


def _new_record(job_id: str, redundancy: int, item: NewItem) -> ItemModel:
    """A fresh item's record, its slots all free. A held item stays out of the open_slots
    index until production, and a gold item without slots never enters it."""
    slots = redundancy if item.slots is None else item.slots
    return ItemModel(
        job_id, item.item_id, data=item.data, external_id=item.external_id,
        gold=item.gold, held=True if item.held else None,
        redundancy=slots, free=slots, answer_count=0, leases={},
        answers={}, reviews={}, counted={}, ordinals={},
        out={} if item.gold is not None else None,
        open_job=None if item.held or not slots else job_id,
    )


def gold_listing_key(job_id: str) -> str:
    """The partition key of a job's gold listing."""
    return f"{job_id}#gold"


def _count_ingested(tx: TransactWrite, job_id: str) -> None:
    """One more chunk (or range) written, on the job's counters record, which must be there."""
    tx.update(JobCountsModel(counts_key(job_id)), actions=[JobCountsModel.chunks_written.add(1)],
              condition=JobCountsModel.job_id.exists())


def _list_gold(job_id: str, items: Sequence[NewItem]) -> None:
    """List the gold ones of the items apart (a put of a key, the same on a repeat), before
    the items themselves are written: a crash between leaves a listed item not written, which
    the listing's reader skips and the redelivery writes."""
    for item in items:
        if item.gold is None:
            continue
        try:
            GoldListingModel(gold_listing_key(job_id), item.item_id).save()
        except PutError as error:
            raise_transient(error)
            raise


def _put_new(record: ItemModel) -> bool:
    """Write a fresh item by a conditional PutItem: False (nothing written) if it is there
    already; throttling is a TransientError."""
    try:
        record.save(condition=_IS_NEW)
    except PutError as error:
        raise_transient(error)
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _holds(item: ItemState | None, worker_id: str, lease: Lease) -> bool:
    """Whether a refused lease is the worker's after all: the item holds this very lease, so
    the write was applied by a try whose reply was lost and the refusal is its repeat (the
    client retries a call that timed out), not a lost race; the slot would otherwise stay
    held by nobody's task until the lease ran out."""
    held = None if item is None else item.leases.get(worker_id)
    return held is not None and held.assignment_id == lease.assignment_id


def _review_value(review: dict[str, Any]) -> dict[str, Any]:
    return {"s": review["status"], "r": review.get("reason"), "at": review["at"],
            "by": review.get("by")}


# What the task pool's listing reads: what picking a slot needs and a lease changes (a
# regular item's leases and answers are not there; a gold item's leases out are).
_SLOT_FIELDS = ["job_id", "item_id", *OPEN_SLOT_FIELDS]
# Gold items a container has met (an item never stops or starts being gold), so a gold
# item's lease, submit or release goes straight to its servings; forgotten when this large.
_GOLD_MEMORY = 100_000


def _with_servings(item: ItemState, records: list[GoldServingModel], out: dict[str, Any]
                   ) -> ItemState:
    """A gold item with what its servings hold: the leases it still counts out (by worker,
    not by minute), the answers, and every worker served as seen (with those a record written
    before servings were records of their own holds itself)."""
    answers = dict(item.answers)
    leases = {w: lease for w, lease in item.leases.items() if not w.startswith(servings.PENDING)}
    for record in records:
        if record.answer is not None:
            answers[record.worker_id] = _answer_from(
                dict(record.answer.as_dict()), None,
                None if record.review is None else record.review.as_dict())
        lease = record.lease.as_dict() if record.lease is not None else None
        if lease is not None and str(lease["b"]) in out:  # else taken back with its minute
            leases[record.worker_id] = _lease_from(dict(lease))
    item.answers, item.leases = answers, leases
    item.seen = item.seen | frozenset(record.worker_id for record in records)
    return item


def _with_serving(item: ItemState, record: GoldServingModel | None) -> ItemState:
    """A gold item as one worker's serving shows it to them: their lease or answer."""
    if record is None:
        return item
    if record.answer is not None:
        item.answers = {record.worker_id: _answer_from(
            dict(record.answer.as_dict()), None,
            None if record.review is None else record.review.as_dict())}
    if record.lease is not None:
        item.leases[record.worker_id] = _lease_from(dict(record.lease.as_dict()))
    item.seen = frozenset({record.worker_id})
    return item


class DynamoItems:
    """Items and their slots."""

    def __init__(self) -> None:
        # Gold items as this container last saw them (their data kept once read): a gold
        # lease works from it, and a gold submit or release answers with its data and known
        # answer, so none of them reads the item first. Forgotten when it grows this large.
        self._gold: dict[tuple[str, str], ItemModel] = {}
        self._gold_ids: set[tuple[str, str]] = set()

    def _remember(self, record: ItemModel) -> ItemModel:
        """Keep a gold item's record (a listing's, without data, keeps the data seen before)."""
        if record.gold is None:
            return record
        key = (record.job_id, record.item_id)
        known = self._gold.get(key)
        if record.data is None and known is not None:
            record.data, record.external_id = known.data, known.external_id
        if len(self._gold) >= _GOLD_MEMORY:
            self._gold.clear()
            self._gold_ids.clear()
        self._gold[key] = record
        self._gold_ids.add(key)
        return record

    def _is_gold(self, job_id: str, item_id: str) -> bool:
        """Whether an item is gold: remembered, or read (its gold field only)."""
        if (job_id, item_id) in self._gold_ids:
            return True
        try:
            record = ItemModel.get(job_id, item_id, attributes_to_get=["gold"])
        except ItemModel.DoesNotExist:
            return False
        if record.gold is not None:
            self._gold_ids.add((job_id, item_id))
        return record.gold is not None

    def _gold_record(self, job_id: str, item_id: str) -> ItemModel | None:
        """A gold item's record as last seen here with its data, or read."""
        known = self._gold.get((job_id, item_id))
        if known is not None and known.data is not None:
            return known
        try:
            return self._remember(ItemModel.get(job_id, item_id, consistent_read=True))
        except ItemModel.DoesNotExist:
            return None

    def _gold_state(self, job_id: str, item_id: str) -> ItemState | None:
        record = self._gold_record(job_id, item_id)
        return None if record is None else item_from_model(record)

    def _outcome(self, raw: dict[str, Any] | None) -> ItemState | None:
        """An item returned by a write (remembered if gold)."""
        return None if raw is None else item_from_model(
            self._remember(ItemModel.from_raw_data(raw)))

    def _full(self, record: ItemModel) -> ItemState:
        """An item with everything on it, a gold item's servings included."""
        item = item_from_model(self._remember(record))
        if item.gold is not None:
            _with_servings(item, list(servings.servings(item.job_id, item.item_id))
                           if record.served else [], servings.out_counts(record))
        return item

    @staticmethod
    def _save_new(tx: TransactWrite, job_id: str, redundancy: int, items: Sequence[NewItem]
                  ) -> None:
        """Each item written only if it does not exist: a chunk delivered twice at once must
        not overwrite items a worker has leased since."""
        for item in items:
            tx.save(_new_record(job_id, redundancy, item), condition=_IS_NEW)
            if item.gold is not None:
                tx.save(GoldListingModel(gold_listing_key(job_id), item.item_id))

    def put_items(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> None:
        """Write fresh items in one transaction, whole or not at all."""
        transact_once(lambda tx: self._save_new(tx, job_id, redundancy, items))

    def put_chunk(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> bool:
        """Write a chunk's items and count it on the job's counters record, without the job
        record: each item but the last by a conditional PutItem of its own (one there
        already, written by an earlier delivery of the chunk and perhaps leased since, is
        left as it is), then the last item and one more chunks_written in a transaction of
        two writes that needs that item new and the counters record there. A chunk is so
        counted once, and only once every item of it is in; a delivery that died before the
        transaction leaves the chunk to be counted by the next. True if this call counted it;
        False if the chunk was counted before or the job is gone (its items but the last may
        then be written)."""
        if not items:
            raise ValueError("an ingest chunk has at least one item")
        *others, last = items
        _list_gold(job_id, items)
        for item in others:
            _put_new(_new_record(job_id, redundancy, item))

        def write(tx: TransactWrite) -> None:
            tx.save(_new_record(job_id, redundancy, last), condition=_IS_NEW)
            _count_ingested(tx, job_id)

        return transact_once(write)

    def put_range(self, job_id: str, redundancy: int, items: Sequence[NewItem], index: int,
                  summary: Mapping[str, int]) -> bool:
        """Write an ingest range's items and count the range: each item by a conditional
        PutItem of its own (one there already, from an earlier delivery and perhaps leased
        since, is left as it is), then the range's record (its summary) if it is new and one
        more chunks_written, in a transaction of two writes. A range so counts once, after
        all its items are in, and one without items counts too. True if this call counted
        it; False if it was counted before or the job is gone. The gold items are listed
        first (see _list_gold)."""
        _list_gold(job_id, items)
        for item in items:
            _put_new(_new_record(job_id, redundancy, item))

        def write(tx: TransactWrite) -> None:
            tx.save(IngestRangeModel(range_key(job_id, index), lines=summary["lines"],
                                     items=summary["items"], bad=summary["bad"],
                                     pilot=summary["pilot"]),
                    condition=IngestRangeModel.job_id.does_not_exist())
            _count_ingested(tx, job_id)

        return transact_once(write)

    def open_items(self, job_id: str, worker_id: str | None, limit: int | None,
                   start: str | None = None, now: float | None = None) -> list[ItemState]:
        """Items from the sparse open_slots index (open until their last slot is answered),
        listed: slot counts, the workers seen and the newest lease's end, without a regular
        item's leases and answers. For a worker, only those they have not seen that have a
        slot to take by now (one free, or every one taken and the newest lease ended), so
        items answered or leased in full do not fill the limit; with start, from that item
        id on and then from the first (two range queries)."""
        condition = None
        if worker_id is not None:
            condition = ~ItemModel.seen.contains(worker_id)
            if now is not None:
                condition &= (ItemModel.free > 0) | (ItemModel.last_exp <= now) \
                    | ItemModel.last_exp.does_not_exist()
        ranges = [None] if start is None else [ItemModel.item_id >= start,
                                               ItemModel.item_id < start]
        found: list[ItemState] = []
        for key_range in ranges:
            for record in ItemModel.open_items.query(job_id, key_range, filter_condition=condition,
                                                     page_size=200,
                                                     attributes_to_get=_SLOT_FIELDS):
                found.append(replace(item_from_model(self._remember(record)), listed=True))
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def live_leases(self, job_id: str, now: float, limit: int, start: str | None = None,
                    reads: int = 100) -> LeaseCount:
        """Leases not ended among up to `limit` open items from start on: one query of the
        open_slots index (limit + 1 entries, to know whether it reached the last), a gold
        item's leases from the listing, and a regular item's read (its leases only,
        eventually consistent, as the listing is) when its newest lease has not ended, at
        most `reads` of those in batch reads of 100, an even spread scaled up to all."""
        condition = None if start is None else ItemModel.item_id >= start
        gold, keys, entries = 0, [], 0
        try:
            for record in ItemModel.open_items.query(job_id, condition, limit=limit + 1,
                                                     page_size=limit + 1,
                                                     attributes_to_get=_SLOT_FIELDS):
                entries += 1
                if entries > limit:
                    break
                item = item_from_model(self._remember(record))
                if item.gold is not None:
                    gold += sum(1 for lease in item.leases.values() if lease.expires_at > now)
                elif item.taken > 0 and (item.last_expiry is None or item.last_expiry > now):
                    keys.append((job_id, item.item_id))
            chosen = spread(keys, reads)
            live = 0
            for record in ItemModel.batch_get(chosen, consistent_read=False,
                                              attributes_to_get=["job_id", "item_id", "leases"]):
                leases = record.leases.as_dict() if record.leases else {}
                live += sum(1 for lease in leases.values() if float(lease["exp"]) > now)
        except PynamoDBException as error:
            raise_transient(error)
            raise
        complete = entries <= limit
        scaled = live * len(keys) / len(chosen) if chosen else 0
        return LeaseCount(gold + scaled, min(entries, limit), complete,
                          complete and start is None and len(chosen) == len(keys))

    def held_item_ids(self, job_id: str, after: str | None, before: str | None, limit: int
                      ) -> tuple[list[str], str | None]:
        """A page of held item ids between after and before (exclusive): one query request
        reading at most limit items (limit + 1 with both bounds, as the key condition's range
        holds after itself), the held ones kept by a filter."""
        key_range: Any = None
        if after is not None and before is not None:
            key_range = ItemModel.item_id.between(after, before)
            limit += 1
        elif after is not None:
            key_range = ItemModel.item_id > after
        elif before is not None:
            key_range = ItemModel.item_id < before
        query = ItemModel.query(job_id, key_range, filter_condition=ItemModel.held.exists(),
                                consistent_read=True, attributes_to_get=["job_id", "item_id"],
                                page_size=limit)
        try:
            page = next(query.page_iter)  # one request: its Limit counts the items read
        except PynamoDBException as error:
            raise_transient(error)
            raise
        ids = [raw["item_id"]["S"] for raw in page.get("Items", ())]
        ids = [item_id for item_id in ids if item_id != after and item_id != before]
        last = page.get("LastEvaluatedKey")
        cursor = last["item_id"]["S"] if last else None
        return ids, None if cursor is None or cursor == before else cursor

    def review(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
               review: dict[str, Any], entry: LedgerEntry, refund_cents: int = 0,
               refund_to: str = "pool") -> bool:
        """A rejection, in one transaction: the review on the item (only if it has none and
        the answer is this assignment's; a gold answer's on its serving), the ledger entry
        (only if new), one more rejected on the answer's accrual (only if that was never
        settled: its answers are approved then), and the reward back to the job's pool, or
        held for a replacement slot (refund_to "held"), on the job's money record."""
        value = _review_value(review)
        window = payouts.window_of(assignment_id)

        def write(tx: TransactWrite, on_serving: bool) -> None:
            if on_serving:
                servings.review_on_serving(tx, job_id, item_id, worker_id, assignment_id, value)
            else:
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
            tx.update(JobMoneyModel(money_key(job_id)),
                      actions=[money_attribute(refund_to).add(refund_cents),
                               JobMoneyModel.rejected_answers.add(1)])

        gold = self._is_gold(job_id, item_id)
        if transact_once(lambda tx: write(tx, gold)):
            return True
        # A gold answer given before servings were records of their own is on the item (the
        # ledger entry's condition still pays it once).
        return gold and transact_once(lambda tx: write(tx, False))

    def approve(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                review: dict[str, Any], gold: bool = False) -> bool:
        """A client's approval: the review on the item (a gold answer's on its serving),
        once, in one conditional write (the answer is paid with its accrual). The caller has
        read the item, so it says whether it is gold: no read here."""
        value = _review_value(review)
        if gold:
            ok, _ = conditional_update(
                GoldServingModel, servings.serving_key(job_id, item_id), worker_id,
                [GoldServingModel.review.set(value)],
                GoldServingModel.review.does_not_exist()
                & (GoldServingModel.answer["aid"] == assignment_id))
            if ok:
                return True
            # A gold answer given before servings were records of their own is on the item.
        ok, _ = conditional_update(ItemModel, job_id, item_id,
                                   [ItemModel.reviews[worker_id].set(value)],
                                   ItemModel.reviews[worker_id].does_not_exist()
                                   & (ItemModel.answers[worker_id]["aid"] == assignment_id))
        return ok

    def approve_rejected(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                         review: dict[str, Any], entry: LedgerEntry,
                         billed_cents: int | None = None) -> bool | None:
        """A rejected answer approved after all, paid at once, in one transaction: the
        approval on the item (only if the answer is this assignment's and still rejected),
        the entry (only if new), the worker's balance, and on the job's money record the
        reward paid (one approved answer more, one rejected less) and taken from the pool
        (only if it holds it); with billed_cents the reward is not taken from the pool but
        billed: the job's budget grows by billed_cents. The answer's accrual still counts it
        rejected, so no settlement pays it again. None if the pool is short, False if the
        answer is not rejected any more or the entry exists (nothing written)."""
        value = _review_value(review)
        amount = entry.amount_cents

        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id),
                      actions=[ItemModel.reviews[worker_id].set(value)],
                      condition=(ItemModel.reviews[worker_id]["s"] == "rejected")
                      & (ItemModel.answers[worker_id]["aid"] == assignment_id))
            tx.save(ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
            tx.update(AccountModel(worker_id), actions=[AccountModel.balance_cents.add(amount)])
            paid: list[Action] = [JobMoneyModel.paid_cents.add(amount),
                                  JobMoneyModel.approved_answers.add(1),
                                  JobMoneyModel.rejected_answers.add(-1)]
            if billed_cents is not None:
                tx.update(JobModel(job_id), actions=[JobModel.budget_cents.add(billed_cents)],
                          condition=JobModel.job_id.exists())
                tx.update(JobMoneyModel(money_key(job_id)), actions=paid)
            else:
                tx.update(JobMoneyModel(money_key(job_id)),
                          actions=[*paid, JobMoneyModel.pool_cents.add(-amount)],
                          condition=JobMoneyModel.pool_cents >= amount)

        return _paid_write(write)

    def add_slots(self, job_id: str, item_id: str, count: int, replaced_before: int,
                  cents: int = 0, source: str = "pool") -> bool | None:
        """Reopen a counted-complete item with more slots and uncount it, and take their
        rewards (cents) from the job's money record (its pool, or what it holds for
        replacements), in one transaction, so a crash never takes the money without the
        slots. None if the money record does not hold cents (nothing written)."""
        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id), actions=[
                ItemModel.redundancy.add(count), ItemModel.free.add(count),
                ItemModel.replaced.add(count), ItemModel.open_job.set(job_id),
                ItemModel.done.remove()],
                condition=ItemModel.done.exists() & (ItemModel.replaced == replaced_before))
            tx.update(JobCountsModel(counts_key(job_id)),
                      actions=[JobCountsModel.items_done.add(-1)])
            if cents:
                _take_money(tx, job_id, cents, source)

        return _paid_write(write)

    def extend(self, job_id: str, item_id: str, redundancy_now: int,
               cents: int = 0) -> bool | None:
        """One more slot for an item not yet counted complete whose redundancy is still
        redundancy_now (so two deciders cannot both add one for the same answer), back in the
        task pool's index (its last answer took it out), with its reward (cents) taken from the
        job's pool in the same transaction. None if the pool does not hold cents (nothing
        written)."""
        actions: list[Action] = [ItemModel.redundancy.add(1), ItemModel.free.add(1),
                                 ItemModel.extended.add(1), ItemModel.open_job.set(job_id)]
        condition = ItemModel.done.does_not_exist() & ItemModel.held.does_not_exist() \
            & (ItemModel.redundancy == redundancy_now)
        if not cents:
            ok, _ = conditional_update(ItemModel, job_id, item_id, actions, condition)
            return ok

        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id), actions=actions, condition=condition)
            _take_money(tx, job_id, cents, "pool")

        return _paid_write(write)

    def release_gold_slots(self, job_id: str, item_id: str, free: int, expired: Sequence[str],
                           now: float, reward_cents: int) -> int:
        """Take a gold item's free slots (still `free`) and the slots of the expired leases
        away, and give their rewards to the job's pool, together and once; return the cents.
        The leases are on the workers' servings (an expired one taken back by a later lease
        is no longer counted out, and not released again)."""
        leases = {}
        for worker in expired:
            serving = servings.get_serving(job_id, item_id, worker)
            if serving is None or serving.lease is None:
                return 0
            leases[worker] = serving.lease.as_dict()
            if float(leases[worker]["exp"]) > now:
                return 0
        return servings.release_slots(job_id, item_id, free, leases, now, reward_cents)

    def open_held(self, job_id: str, item_ids: Sequence[str]) -> None:
        """Put held items into the open-items index (an item opened before is left alone)."""
        for item_id in item_ids:
            conditional_update(ItemModel, job_id, item_id,
                               [ItemModel.open_job.set(job_id), ItemModel.held.remove()],
                               ItemModel.held.exists())

    def get_item(self, job_id: str, item_id: str) -> ItemState | None:
        """One item, strongly consistent."""
        try:
            return self._full(ItemModel.get(job_id, item_id, consistent_read=True))
        except ItemModel.DoesNotExist:
            return None

    def try_lease(self, job_id: str, item_id: str, worker_id: str, lease: Lease,
                  reclaim_from: str | None, now: float) -> SlotOutcome:
        """Take a free slot, or the slot of reclaim_from's expired lease, in one write (a
        gold item's: in one transaction with the worker's serving, see gold.py)."""
        if (job_id, item_id) in self._gold_ids:
            return self._lease_gold(job_id, item_id, worker_id, lease, now)
        value = {"aid": lease.assignment_id, "exp": lease.expires_at, "at": lease.leased_at}
        actions = [ItemModel.leases[worker_id].set(value), ItemModel.seen.add({worker_id}),
                   ItemModel.last_exp.set(lease.expires_at)]
        condition = ItemModel.open_job.exists() & ~ItemModel.seen.contains(worker_id) \
            & ItemModel.gold.does_not_exist()
        if reclaim_from is None:
            actions.append(ItemModel.free.add(-1))
            condition &= ItemModel.free > 0
        else:
            actions.append(ItemModel.leases[reclaim_from].remove())
            condition &= ItemModel.leases[reclaim_from]["exp"] <= now
        ok, raw = conditional_update(ItemModel, job_id, item_id, actions, condition)
        item = self._outcome(raw)
        if not ok and item is not None and item.gold is not None:
            return self._lease_gold(job_id, item_id, worker_id, lease, now)
        return SlotOutcome(ok or _holds(item, worker_id, lease), item)

    def _lease_gold(self, job_id: str, item_id: str, worker_id: str, lease: Lease, now: float
                    ) -> SlotOutcome:
        """A gold item's slot (free, or one whose lease has ended) and the worker's serving,
        together, from the item as last seen here; the item as it then stands (as far as
        this container knows), with the worker's serving if they have one."""
        record = self._gold_record(job_id, item_id)
        if record is None:
            return SlotOutcome(False, None)
        leased, had, raw = servings.serve(record, worker_id, lease, now)
        if raw is not None:
            record = self._remember(ItemModel.from_raw_data(raw))
        elif not leased and not had:
            self._gold.pop((job_id, item_id), None)  # stale or raced: read it next time
        item = item_from_model(record)
        if leased:
            item.leases[worker_id] = lease
        if leased or had:
            item.seen = frozenset({worker_id})
        return SlotOutcome(leased, item)

    def try_submit(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                   now: float) -> SlotOutcome:
        """Turn a live lease into an accepted answer: one conditional write, exactly once (a
        gold item's: one transaction on the serving and the item's counts)."""
        if (job_id, item_id) in self._gold_ids:
            return self._submit_gold(job_id, item_id, worker_id, answer, now, None)
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
        item = self._outcome(raw)
        if not ok and item is not None and item.gold is not None:
            return self._submit_gold(job_id, item_id, worker_id, answer, now, item)
        if ok and item is not None and item.complete:
            self._close(job_id, item_id)
        return SlotOutcome(ok, item)

    @staticmethod
    def _close(job_id: str, item_id: str) -> None:
        """Take an item whose last slot was just answered out of the task pool's index, so
        the pool does not list it while counting catches up (counting does it too, when it
        counts the item complete: this write may be lost)."""
        conditional_update(ItemModel, job_id, item_id, [ItemModel.open_job.remove()],
                           ItemModel.open_job.exists()
                           & (ItemModel.answer_count >= ItemModel.redundancy))

    def _submit_gold(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                     now: float, item: ItemState | None) -> SlotOutcome:
        """A gold answer onto the worker's serving, counted on the item, together; the item
        (as last seen here) with the worker's serving as it now stands. A gold answer has no
        ordinal: no gold item completes a round's count."""
        ok, raw = servings.submit(job_id, item_id, worker_id, answer, now)
        item = item or self._gold_state(job_id, item_id)
        if item is None:
            return SlotOutcome(False, None)
        if ok:
            item.answers = {worker_id: replace(answer, ordinal=None)}
            item.answer_count += 1
            item.seen = frozenset({worker_id})
            return SlotOutcome(True, item)
        return SlotOutcome(False, _with_serving(item, self._serving(job_id, item_id, worker_id,
                                                                    raw)))

    @staticmethod
    def _serving(job_id: str, item_id: str, worker_id: str, raw: dict[str, Any] | None
                 ) -> GoldServingModel | None:
        """A serving as a refused write returned it, or read."""
        if raw is not None:
            return GoldServingModel.from_raw_data(raw)
        return servings.get_serving(job_id, item_id, worker_id)

    def try_release(self, job_id: str, item_id: str, worker_id: str, assignment_id: str
                    ) -> SlotOutcome:
        """Give a slot back; the worker stays in 'seen', so they are not offered it again."""
        if (job_id, item_id) in self._gold_ids:
            return self._release_gold(job_id, item_id, worker_id, assignment_id, None)
        lease = ItemModel.leases[worker_id]
        ok, raw = conditional_update(ItemModel, job_id, item_id,
                                     [lease.remove(), ItemModel.free.add(1)],
                                     lease["aid"] == assignment_id)
        item = self._outcome(raw)
        if not ok and item is not None and item.gold is not None:
            return self._release_gold(job_id, item_id, worker_id, assignment_id, item)
        return SlotOutcome(ok, item)

    def _release_gold(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                      item: ItemState | None) -> SlotOutcome:
        """A gold lease ended and its slot given back; the worker keeps their serving."""
        ok, raw = servings.give_back(job_id, item_id, worker_id, assignment_id)
        item = item or self._gold_state(job_id, item_id)
        if item is None:
            return SlotOutcome(False, None)
        if ok:
            item.seen = frozenset({worker_id})
            return SlotOutcome(True, item)
        return SlotOutcome(False, _with_serving(item, self._serving(job_id, item_id, worker_id,
                                                                    raw)))

    def item_page(self, job_id: str, after: str | None, limit: int
                  ) -> tuple[list[ItemState], str | None]:
        """At most limit items after `after`: one strongly consistent query of at most limit
        items (DynamoDB may end it early at 1 MB; it then goes on from there), a gold item's
        servings read with it."""
        condition = None if after is None else ItemModel.item_id > after
        try:
            items = [self._full(record) for record in ItemModel.query(
                job_id, condition, consistent_read=True, limit=limit, page_size=limit)]
        except PynamoDBException as error:
            raise_transient(error)
            raise
        return items, items[-1].item_id if len(items) >= limit else None

    def gold_items(self, job_id: str, after: str | None, limit: int
                   ) -> tuple[list[ItemState], str | None]:
        """A page of the job's gold items after the item id `after`, whole (with their
        servings): one query of the job's gold listing (at most limit keys), one strongly
        consistent batch read of those items; a listed item not written is skipped. The
        cursor is the last id listed when the page was full."""
        try:
            query = GoldListingModel.query(
                gold_listing_key(job_id),
                None if after is None else GoldListingModel.item_id > after,
                limit=limit, page_size=limit)
            ids = [record.item_id for record in query]
            read = {r.item_id: r for r in ItemModel.batch_get(
                [(job_id, item_id) for item_id in ids], consistent_read=True)} if ids else {}
        except PynamoDBException as error:
            raise_transient(error)
            raise
        items = [self._full(read[item_id]) for item_id in ids if item_id in read]
        return items, (ids[-1] if len(ids) >= limit else None)

    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item of a job in item order, or those after the item id `after`."""
        condition = None if after is None else ItemModel.item_id > after
        try:
            for record in ItemModel.query(job_id, condition, consistent_read=True):
                yield self._full(record)
        except PynamoDBException as error:
            raise_transient(error)
            raise


def _take_money(tx: TransactWrite, job_id: str, cents: int, source: str) -> None:
    """Take cents from the job's money record in a transaction, only if it holds them; it
    must be the transaction's last write (_paid_write reads its refusal from there)."""
    money = money_attribute(source)
    tx.update(JobMoneyModel(money_key(job_id)), actions=[money.add(-cents)],
              condition=money >= cents)


def _paid_write(write: Callable[[TransactWrite], None]) -> bool | None:
    """Run write(tx), whose last write takes money (_take_money), in one transaction: True
    if it went through, None if the money was short, False if another condition refused."""
    try:
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            write(tx)
    except TransactWriteError as error:
        if not cancelled_by_condition(error):
            raise
        reasons = cancellation_reasons(error)
        if reasons and reasons[-1] == "ConditionalCheckFailed" \
                and reasons.count("ConditionalCheckFailed") == 1:
            return None
        return False
    return True
