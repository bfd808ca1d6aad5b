"""In-memory fakes of every port in chalicelib/domain/ports.py, with the adapters' semantics.

Each fake mirrors its adapter in chalicelib/adapters/ (dynamo/, messaging.py, storage.py):
the same conditions on writes, the same "item as it was" on a failed conditional write, the
same sparse indexes (open items, jobs by state) and the same idempotency keys. One lock per
platform stands in for DynamoDB's single-item atomicity and its transactions.

Known, deliberate differences: no eventual consistency on indexes, no throttling
(TransientError), and writes the adapters would make to records that do not exist (DynamoDB
creates a stub item) raise KeyError here instead.
"""
from __future__ import annotations

import copy
import hashlib
from bisect import bisect_left, bisect_right, insort
import json
import random
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from chalicelib.adapters.cursors import (
    CursorCodec, decode_cursor, decode_position, encode_cursor, encode_position,
)
from chalicelib.domain.model import (
    ACTIVE, INGESTING, CountedAnswer, ItemState, Job, Lease, LedgerEntry, NewItem, Offer, Principal,
    Quote, StoredAnswer,
)
from chalicelib.domain import payouts, result_rows
from chalicelib.domain.payouts import Accrual
from chalicelib.domain.ports import (
    ApprovalRequest, LeaseCount, MTurkRecord, Page, SlotOutcome, WorkerRecord,
)
from chalicelib.domain.progress import spread
from chalicelib.domain.webhooks import record_has_events
from chalicelib.errors import Conflict, NotFound
from chalicelib.domain.cache import ContainerCache
from chalicelib.handlers import jobs, rounds
from chalicelib.handlers.platform import Platform

START = 1_800_000_000.0


class ConditionFailed(Exception):
    """A conditional write the real adapter does not translate (it would raise pynamodb's error)."""


class FakeClock:
    """A settable clock: call it for the time; advance or set it from a test."""

    def __init__(self, now: float = START) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward; return the new time."""
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        """Put the clock at an absolute time."""
        self.now = float(now)


# The fakes seal their cursors like the adapters do (the same codec and checks), with a
# secret of their own in place of the stage's.
CURSORS = CursorCodec(b"fakes' cursor secret, not a stage's")
JOB_PAGE_KEY = {"job_id": "S", "client_id": "S", "created_at": "S"}


def _encode_cursor(key: dict[str, str]) -> str | None:
    return encode_cursor({name: {"S": value} for name, value in key.items()}, CURSORS)


def _decode_cursor(cursor: str | None, key: dict[str, str], fixed: dict[str, str]
                   ) -> dict[str, str] | None:
    start = decode_cursor(cursor, key, fixed, sealer=CURSORS)
    return None if start is None else {name: value["S"] for name, value in start.items()}


def _json_copy(value: Any) -> Any:
    """A copy as it would come back from a JSON attribute or an SQS body."""
    return json.loads(json.dumps(value))


# --- accounts and quotes ------------------------------------------------------------------

class FakeAccounts:
    """Accounts and credentials; an account and its credential are stored together."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.accounts: dict[str, dict[str, Any]] = {}
        self.credentials: dict[str, dict[str, Any]] = {}

    def create_account(self, account_id: str, role: str, name: str, skills: Sequence[str],
                       token_hash: str, now: float, country: str | None = None,
                       subdivision: str | None = None) -> None:
        """Store both records, or neither if either exists."""
        with self._lock:
            if account_id in self.accounts or token_hash in self.credentials:
                raise ConditionFailed("account or credential exists")
            record = {"account_id": account_id, "role": role, "name": name,
                      "skills": frozenset(skills), "created_at": now, "country": country,
                      "subdivision": subdivision}
            self.accounts[account_id] = dict(record)
            self.credentials[token_hash] = dict(record, revoked=False)

    def principal_for(self, token_hash: str) -> Principal | None:
        """The principal of a credential; None if unknown or revoked."""
        with self._lock:
            record = self.credentials.get(token_hash)
            if record is None or record["revoked"]:
                return None
            return Principal(record["account_id"], record["role"], record["name"],
                             record["skills"], tuple(sorted(record.get("scores", {}).items())),
                             record.get("country"), record.get("subdivision"))

    def rotate(self, account_id: str, old_hash: str, new_hash: str, now: float) -> bool:
        """A new credential for the account; the old one revoked."""
        with self._lock:
            old = self.credentials.get(old_hash)
            if old is None or old["revoked"] or old["account_id"] != account_id \
                    or new_hash in self.credentials:
                return False
            old["revoked"] = True
            self.credentials[new_hash] = {**old, "revoked": False, "created_at": now}
            return True

    def revoke(self, account_id: str) -> bool:
        """Revoke every live credential of the account."""
        with self._lock:
            if account_id not in self.accounts:
                return False
            for record in self.credentials.values():
                if record["account_id"] == account_id:
                    record["revoked"] = True
            return True

    def grant_skill(self, account_id: str, skill: str, score: float) -> None:
        """Add the skill and score to the account and its credentials."""
        with self._lock:
            for record in [self.accounts[account_id], *(c for c in self.credentials.values()
                                                         if c["account_id"] == account_id)]:
                record["skills"] = record["skills"] | {skill}
                record["scores"] = {**record.get("scores", {}), skill: score}

    def set_locale(self, account_id: str, country: str | None, subdivision: str | None
                   ) -> bool:
        """Set the country and subdivision on the account and its credentials."""
        with self._lock:
            if account_id not in self.accounts:
                return False
            for record in [self.accounts[account_id], *(c for c in self.credentials.values()
                                                         if c["account_id"] == account_id)]:
                record["country"], record["subdivision"] = country, subdivision
            return True


class FakeQuotes:
    """Quotes; a quote is written once."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.quotes: dict[str, Quote] = {}

    def put_quote(self, quote: Quote) -> None:
        """Store a new quote (fails if the id exists, like the conditional put)."""
        with self._lock:
            if quote.quote_id in self.quotes:
                raise ConditionFailed(f"quote {quote.quote_id} exists")
            self.quotes[quote.quote_id] = replace(quote, job_id=None)

    def get_quote(self, quote_id: str) -> Quote | None:
        """A quote by id."""
        with self._lock:
            return self.quotes.get(quote_id)


# --- items ---------------------------------------------------------------------------------

@dataclass
class _ItemRecord:
    """What the items table holds for one item: its state, counting marks and index key."""

    state: ItemState
    counted: dict[str, str] = field(default_factory=dict)
    open_job: str | None = None
    done: bool = False


class FakeItems:
    """Items and their slots, with the conditional writes of DynamoItems."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.records: dict[tuple[str, str], _ItemRecord] = {}
        # Item ids per job in item order, and those of open items: the sparse open_items index.
        self._ids: dict[str, list[str]] = defaultdict(list)
        # Each job's gold listing (DynamoItems keeps it apart: <job_id>#gold).
        self._gold_ids: dict[str, list[str]] = defaultdict(list)
        self._open: dict[str, list[str]] = defaultdict(list)
        # Index entries open_items has read, matching or not (a filtered query reads them all).
        self.index_reads = 0
        # Listings of the open_items index live_leases made (one query each), its batch reads
        # of leases (one per 100 items), and items read whole or for their leases.
        self.lease_listings = 0
        self.lease_batches = 0
        self.item_reads = 0
        # The jobs and the ledger a review or a slot change writes together with the item
        # (set by FakeJobs and make_platform).
        self.jobs_ref: Any = None
        self.ledger_ref: Any = None

    def _of_job(self, job_id: str) -> list[_ItemRecord]:
        return [self.records[(job_id, item_id)] for item_id in self._ids.get(job_id, ())]

    def _set_open(self, record: _ItemRecord, open_job: str | None) -> None:
        """Set the record's open_job, keeping the open_items index in step (None: not open)."""
        ids = self._open[record.state.job_id]
        item_id = record.state.item_id
        if record.open_job is not None:
            at = bisect_left(ids, item_id)
            if at < len(ids) and ids[at] == item_id:
                del ids[at]
        record.open_job = open_job
        if open_job is not None:
            insort(ids, item_id)

    @staticmethod
    def _full(record: _ItemRecord) -> ItemState:
        # A deep copy without deepcopy's cost: leases are frozen and hold no containers, so
        # they are shared; every field that can change in place is copied.
        s = record.state
        full = copy.copy(s)
        full.data = copy.deepcopy(s.data)
        full.leases = dict(s.leases)
        full.answers = {worker: replace(answer, answer=copy.deepcopy(answer.answer),
                                        review=copy.deepcopy(answer.review))
                        for worker, answer in s.answers.items()}
        full.gold = copy.deepcopy(s.gold)
        return full

    @staticmethod
    def _slots(record: _ItemRecord) -> ItemState:
        # The open_slots index holds what a lease changes: a regular item's slot counts, seen
        # workers and newest lease's end, not its data, leases or answers (a gold item's
        # leases out are there).
        s = record.state
        gold = s.gold is not None
        return ItemState(job_id=s.job_id, item_id=s.item_id, data={}, redundancy=s.redundancy,
                         free=s.free, external_id=None, leases=dict(s.leases) if gold else {},
                         answers={}, seen=s.seen, answer_count=s.answer_count if gold else 0,
                         gold=copy.deepcopy(s.gold), last_expiry=s.last_expiry, listed=True)

    def put_chunk(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> bool:
        """Each item but the last written unless it exists, then the last one and the job's
        chunk count together, if that item is new and the job exists (whatever its state)."""
        if not items:
            raise ValueError("an ingest chunk has at least one item")
        *others, last = items
        with self._lock:
            for item in others:
                self.put_items(job_id, redundancy, [item])
            job = self.jobs_ref.jobs.get(job_id)
            if job is None or (job_id, last.item_id) in self.records:
                return False
            self.put_items(job_id, redundancy, [last])
            job.chunks_written += 1
            return True

    def put_range(self, job_id: str, redundancy: int, items: Sequence[NewItem], index: int,
                  summary: Mapping[str, int]) -> bool:
        """Each item written unless it exists, then the range's summary and the job's chunk
        count together, if the range was not counted and the job exists."""
        with self._lock:
            for item in items:
                self.put_items(job_id, redundancy, [item])
            job = self.jobs_ref.jobs.get(job_id)
            if job is None or (job_id, index) in self.jobs_ref.ranges:
                return False
            self.jobs_ref.ranges[(job_id, index)] = dict(summary)
            job.chunks_written += 1
            return True

    def put_items(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> None:
        """All or nothing: no item is written if any of them exists already."""
        with self._lock:
            if any((job_id, item.item_id) in self.records for item in items):
                return
            for item in items:
                slots = redundancy if item.slots is None else item.slots
                state = ItemState(job_id=job_id, item_id=item.item_id,
                                  data=_json_copy(item.data), redundancy=slots,
                                  free=slots, external_id=item.external_id,
                                  gold=_json_copy(item.gold) if item.gold else None,
                                  held=item.held)
                record = _ItemRecord(state, {})
                self.records[(job_id, item.item_id)] = record
                insort(self._ids[job_id], item.item_id)
                if item.gold:
                    insort(self._gold_ids[job_id], item.item_id)
                self._set_open(record, None if item.held or not slots else job_id)

    def held_item_ids(self, job_id: str, after: str | None, before: str | None, limit: int
                      ) -> tuple[list[str], str | None]:
        """A page of held item ids between after and before, from at most limit items read
        (as DynamoItems: the cursor is the last id read when the page was full)."""
        with self._lock:
            ids = self._ids.get(job_id, [])
            at = 0 if after is None else bisect_right(ids, after)
            read = [item_id for item_id in ids[at:at + limit] if before is None or item_id < before]
            self.item_reads += len(read)
            held = [item_id for item_id in read if self.records[(job_id, item_id)].state.held]
            return held, read[-1] if len(read) == limit else None

    def review(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
               review: dict[str, Any], entry: LedgerEntry, refund_cents: int = 0,
               refund_to: str = "pool") -> bool:
        """A rejection, its ledger entry, its accrual (never settled) and the money, together
        and once (as DynamoItems)."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            answer = record.state.answers.get(worker_id) if record else None
            ledger = self.ledger_ref
            key = (worker_id, job_id, payouts.window_of(assignment_id))
            if record is None or answer is None or answer.assignment_id != assignment_id \
                    or answer.review \
                    or (entry.account_id, entry.entry_id) in ledger.rows \
                    or ledger.accruals.get(key, {}).get("settled_at") is not None:
                return False
            record.state.answers[worker_id] = replace(answer, review=_json_copy(review))
            ledger.rows[(entry.account_id, entry.entry_id)] = entry
            accrual = ledger.accruals.setdefault(key, {})
            accrual["rejected"] = accrual.get("rejected", 0) + 1
            job = self.jobs_ref.jobs[job_id]
            if refund_to == "held":
                job.held_cents += refund_cents
            else:
                job.pool_cents += refund_cents
            job.rejected_answers += 1
            return True

    def approve(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                review: dict[str, Any], gold: bool = False) -> bool:
        """A client's approval on the answer, once (as DynamoItems)."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            answer = record.state.answers.get(worker_id) if record else None
            if record is None or answer is None or answer.assignment_id != assignment_id \
                    or answer.review:
                return False
            record.state.answers[worker_id] = replace(answer, review=_json_copy(review))
            return True

    def approve_rejected(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                         review: dict[str, Any], entry: LedgerEntry,
                         billed_cents: int | None = None) -> bool | None:
        """A rejected answer approved and paid at once, with its money, together and once (as
        DynamoItems)."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            answer = record.state.answers.get(worker_id) if record else None
            ledger = self.ledger_ref
            if record is None or answer is None or answer.assignment_id != assignment_id \
                    or (answer.review or {}).get("status") != "rejected" \
                    or (entry.account_id, entry.entry_id) in ledger.rows:
                return False
            job = self.jobs_ref.jobs[job_id]
            if billed_cents is None and job.pool_cents < entry.amount_cents:
                return None
            if billed_cents is None:
                job.pool_cents -= entry.amount_cents
            else:
                job.budget_cents += billed_cents
            record.state.answers[worker_id] = replace(answer, review=_json_copy(review))
            ledger.rows[(entry.account_id, entry.entry_id)] = entry
            ledger.balances[worker_id] = ledger.balances.get(worker_id, 0) + entry.amount_cents
            job.paid_cents += entry.amount_cents
            job.approved_answers += 1
            job.rejected_answers -= 1
            return True

    def release_gold_slots(self, job_id: str, item_id: str, free: int, expired: Sequence[str],
                           now: float, reward_cents: int) -> int:
        """Take free slots and expired leases' slots away, paying them into the pool, together."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None or record.state.free != free or any(
                    worker not in record.state.leases
                    or record.state.leases[worker].expires_at > now for worker in expired):
                return 0
            s = record.state
            for worker in expired:
                del s.leases[worker]
            slots = free + len(expired)
            s.redundancy -= slots
            s.free -= free
            self.jobs_ref.jobs[job_id].pool_cents += slots * reward_cents
            return slots * reward_cents

    def extend(self, job_id: str, item_id: str, redundancy_now: int,
               cents: int = 0) -> bool | None:
        """One more slot for an open item still at redundancy_now, paid from the pool."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None or record.done or record.state.held \
                    or record.state.redundancy != redundancy_now:
                return False
            if cents and not self.jobs_ref.reserve(job_id, cents, "pool"):
                return None
            record.state.redundancy += 1
            record.state.free += 1
            record.state.extended += 1
            self._set_open(record, job_id)
            return True

    def add_slots(self, job_id: str, item_id: str, count: int, replaced_before: int,
                  cents: int = 0, source: str = "pool") -> bool | None:
        """Reopen a counted-complete item with more slots and uncount it, paid from the
        job's money, together."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None or not record.done or record.state.replaced != replaced_before:
                return False
            if cents and not self.jobs_ref.reserve(job_id, cents, source):
                return None
            record.done = False
            s = record.state
            s.redundancy += count
            s.free += count
            s.replaced += count
            self._set_open(record, job_id)
            self.jobs_ref.jobs[job_id].items_done -= 1
            return True

    def open_held(self, job_id: str, item_ids: Sequence[str]) -> None:
        """Open held items (an item opened before is left alone)."""
        with self._lock:
            for item_id in item_ids:
                record = self.records.get((job_id, item_id))
                if record is not None and record.state.held:
                    record.state.held = False
                    self._set_open(record, job_id)

    def open_items(self, job_id: str, worker_id: str | None, limit: int | None,
                   start: str | None = None, now: float | None = None) -> list[ItemState]:
        """Items not yet counted complete, in item order from start (wrapping around); for
        worker_id, only those unseen by them, and with now, only those with a slot to take
        by then (one free, or the newest lease ended)."""
        with self._lock:
            found = []
            ids = self._open.get(job_id, [])
            at = 0 if start is None else bisect_left(ids, start)
            for item_id in (ids[(at + k) % len(ids)] for k in range(len(ids))):
                record = self.records[(job_id, item_id)]
                self.index_reads += 1
                s = record.state
                if worker_id is not None and (worker_id in s.seen or now is not None and not (
                        s.free > 0 or s.last_expiry is None or s.last_expiry <= now)):
                    continue
                found.append(self._slots(record))
                if limit is not None and len(found) >= limit:
                    break
            return found

    def live_leases(self, job_id: str, now: float, limit: int, start: str | None = None,
                    reads: int = 100) -> LeaseCount:
        """Live leases among up to limit open items from start on (as DynamoItems: a gold
        item's counted from the listing, at most `reads` regular items whose newest lease
        has not ended read, an even spread scaled up to all)."""
        with self._lock:
            self.lease_listings += 1
            ids = self._open.get(job_id, [])
            at = 0 if start is None else bisect_left(ids, start)
            listed = ids[at:at + limit + 1]
            self.index_reads += len(listed)
            gold, candidates = 0, []
            for item_id in listed[:limit]:
                s = self.records[(job_id, item_id)].state
                if s.gold is not None:
                    gold += sum(1 for lease in s.leases.values() if lease.expires_at > now)
                elif s.taken > 0 and (s.last_expiry is None or s.last_expiry > now):
                    candidates.append(item_id)
            chosen = spread(candidates, reads)
            self.lease_batches += -(-len(chosen) // 100)
            self.item_reads += len(chosen)
            live = sum(1 for item_id in chosen
                       for lease in self.records[(job_id, item_id)].state.leases.values()
                       if lease.expires_at > now)
            complete = len(listed) <= limit
            scaled = live * len(candidates) / len(chosen) if chosen else 0
            return LeaseCount(gold + scaled, min(len(listed), limit), complete,
                              complete and start is None and len(chosen) == len(candidates))

    def get_item(self, job_id: str, item_id: str) -> ItemState | None:
        """One item with everything on it."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            return None if record is None else self._full(record)

    def try_lease(self, job_id: str, item_id: str, worker_id: str, lease: Lease,
                  reclaim_from: str | None, now: float) -> SlotOutcome:
        """Take a free slot, or reclaim_from's expired lease, if the item is open and unseen."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None:
                return SlotOutcome(False, None)
            s = record.state
            ok = record.open_job is not None and worker_id not in s.seen
            if reclaim_from is None:
                ok = ok and s.free > 0
            else:
                held = s.leases.get(reclaim_from)
                ok = ok and held is not None and held.expires_at <= now
            if not ok:
                # A repeat of a lease already written (a retried call) is the worker's.
                mine = s.leases.get(worker_id)
                return SlotOutcome(mine is not None and mine.assignment_id == lease.assignment_id,
                                   self._full(record))
            s.leases[worker_id] = lease
            s.seen = s.seen | {worker_id}
            s.last_expiry = lease.expires_at
            if reclaim_from is None:
                s.free -= 1
            else:
                del s.leases[reclaim_from]
            return SlotOutcome(True, self._full(record))

    def try_submit(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                   now: float) -> SlotOutcome:
        """Turn worker_id's live lease with this assignment id into an accepted answer."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None:
                return SlotOutcome(False, None)
            s = record.state
            lease = s.leases.get(worker_id)
            if lease is None or lease.assignment_id != answer.assignment_id \
                    or not lease.expires_at > now:
                return SlotOutcome(False, self._full(record))
            del s.leases[worker_id]
            s.answers[worker_id] = replace(answer, answer=_json_copy(answer.answer),
                                           ordinal=s.answer_count)
            s.answer_count += 1
            if s.gold is None and s.complete:
                self._set_open(record, None)  # out of the pool's index until counted
            return SlotOutcome(True, self._full(record))

    def try_release(self, job_id: str, item_id: str, worker_id: str, assignment_id: str
                    ) -> SlotOutcome:
        """Give the slot back (expired or not); the worker stays in seen."""
        with self._lock:
            record = self.records.get((job_id, item_id))
            if record is None:
                return SlotOutcome(False, None)
            s = record.state
            lease = s.leases.get(worker_id)
            if lease is None or lease.assignment_id != assignment_id:
                return SlotOutcome(False, self._full(record))
            del s.leases[worker_id]
            s.free += 1
            return SlotOutcome(True, self._full(record))

    def item_page(self, job_id: str, after: str | None, limit: int
                  ) -> tuple[list[ItemState], str | None]:
        """At most limit items after `after`; the last id when the page is full."""
        with self._lock:
            ids = self._ids.get(job_id, [])
            at = 0 if after is None else bisect_right(ids, after)
            items = [self._full(self.records[(job_id, item_id)]) for item_id in ids[at:at + limit]]
            self.item_reads += len(items)
            return items, items[-1].item_id if len(items) >= limit else None

    def gold_items(self, job_id: str, after: str | None, limit: int
                   ) -> tuple[list[ItemState], str | None]:
        """At most limit gold items after `after`, from the gold listing; the last id listed
        when the page is full."""
        with self._lock:
            ids = self._gold_ids.get(job_id, [])
            at = 0 if after is None else bisect_right(ids, after)
            listed = ids[at:at + limit]
            items = [self._full(self.records[(job_id, item_id)]) for item_id in listed]
            self.item_reads += len(items)
            return items, listed[-1] if len(listed) >= limit else None

    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item of a job in item order, or those after the item id `after`."""
        with self._lock:
            snapshot = [self._full(record) for record in self._of_job(job_id)
                        if after is None or record.state.item_id > after]
            self.item_reads += len(snapshot)
        yield from snapshot

    def counted(self, job_id: str, item_id: str) -> dict[str, str]:
        """Test helper: the counting marks of an item (worker id -> assignment id)."""
        with self._lock:
            return dict(self.records[(job_id, item_id)].counted)

    def is_open(self, job_id: str, item_id: str) -> bool:
        """Test helper: True while the item is in the open-items index."""
        with self._lock:
            return self.records[(job_id, item_id)].open_job is not None


# --- jobs ----------------------------------------------------------------------------------

def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="microseconds")


class FakeJobs:
    """Jobs, with DynamoJobs' transaction on create and on counting."""

    def __init__(self, lock: threading.RLock, quotes: FakeQuotes, items: FakeItems) -> None:
        self._lock = lock
        self._quotes = quotes
        self._items = items
        items.jobs_ref = self
        self.jobs: dict[str, Job] = {}
        self.review_due: dict[str, ApprovalRequest] = {}
        self.refit_marks: dict[str, int] = {}
        # job id -> (pass id, when a page of it last ran, the item id its page starts after):
        # the pass over its items (claim_pass).
        self.passes: dict[str, tuple[str, float, str | None]] = {}
        # Ingest ranges' summaries by (job_id, range).
        self.ranges: dict[tuple[str, int], dict[str, int]] = {}

    def create_job(self, job: Job) -> None:
        """Store the job and mark its quote used, together; Conflict quote_used otherwise."""
        with self._lock:
            quote = self._quotes.quotes.get(job.quote_id)
            if job.job_id in self.jobs or (quote is not None and quote.job_id is not None):
                raise Conflict("this quote was already used for a job", field="quote_id",
                               code="quote_used")
            if quote is None:
                raise KeyError(f"no quote {job.quote_id}")
            # Only what DynamoJobs.create_job writes survives the round trip.
            self.jobs[job.job_id] = replace(
                copy.deepcopy(job), required_skills=tuple(sorted(job.required_skills)),
                chunks_written=0, answered=0, items_done=0, cancelled_at=None,
                results_key=None, result_count=None, done_at=None, error=None)
            self._quotes.quotes[job.quote_id] = replace(quote, job_id=job.job_id)

    def abandon_job(self, job_id: str, quote_id: str) -> None:
        """Delete a job still ingesting and free its quote, together."""
        with self._lock:
            job = self.jobs.get(job_id)
            quote = self._quotes.quotes.get(quote_id)
            if job is None or job.state != INGESTING or quote is None or quote.job_id != job_id:
                raise Conflict("the job is not ingesting", code="job_not_ingesting")
            del self.jobs[job_id]
            self._quotes.quotes[quote_id] = replace(quote, job_id=None)

    def ingest_ranges(self, job_id: str, count: int, start: int = 0
                      ) -> list[dict[str, int] | None]:
        """The ranges' summaries in order (None: not counted)."""
        with self._lock:
            return [copy.deepcopy(self.ranges.get((job_id, index)))
                    for index in range(start, start + count)]

    def get_job(self, job_id: str, consistent: bool = True) -> Job | None:
        """A job by id (always as it stands)."""
        with self._lock:
            job = self.jobs.get(job_id)
            return None if job is None else copy.deepcopy(job)

    def open_jobs(self, key: str) -> list[Offer]:
        """The active jobs listed under key, oldest first (the index DynamoJobs keeps in step
        with every transition is, here, read off the jobs themselves)."""
        with self._lock:
            offers = [Offer.of(job) for job in self.jobs.values() if job.state == ACTIVE]
            return sorted((o for o in offers if o.key == key),
                          key=lambda o: (o.created_at, o.job_id))

    def jobs_in_state(self, state: str, finalize_before: float | None = None,
                      limit: int | None = None) -> list[Job]:
        """Jobs in a state ordered by finalize_at (a sparse index: no finalize_at, not listed),
        at most limit."""
        with self._lock:
            found = [job for job in self.jobs.values()
                     if job.state == state and job.finalize_at is not None
                     and (finalize_before is None or job.finalize_at <= finalize_before)]
            found.sort(key=lambda job: (job.finalize_at, job.job_id))
            return copy.deepcopy(found if limit is None else found[:limit])

    def jobs_of_client(self, client_id: str, limit: int, cursor: str | None
                       ) -> tuple[list[Job], str | None]:
        """A page of a client's jobs, newest first; a full page carries a cursor (as DynamoDB)."""
        start = _decode_cursor(cursor, JOB_PAGE_KEY, {"client_id": client_id})
        with self._lock:
            ordered = sorted((job for job in self.jobs.values() if job.client_id == client_id),
                             key=lambda job: (_iso(job.created_at), job.job_id), reverse=True)
            if start is not None:
                after = (start.get("created_at"), start.get("job_id"))
                ordered = [job for job in ordered if (_iso(job.created_at), job.job_id) < after]
            page = copy.deepcopy(ordered[:limit])
        next_cursor = None
        if page and len(page) == limit:
            last = page[-1]
            next_cursor = _encode_cursor({"created_at": _iso(last.created_at),
                                          "job_id": last.job_id, "client_id": client_id})
        return page, next_cursor

    def transition(self, job_id: str, from_states: Sequence[str], to_state: str,
                   record: dict[str, Any] | None = None, expect_round: int | None = None,
                   expect_items_done: int | None = None, **changes: Any) -> bool:
        """Move the job if it is in one of from_states (and the expected round, at least
        expect_items_done done), setting changes (None removes) and appending the record."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.state not in from_states:
                return False
            if expect_round is not None and job.round != expect_round:
                return False
            if expect_items_done is not None and job.items_done < expect_items_done:
                return False
            for name in changes:
                if name not in Job.__dataclass_fields__:
                    raise AttributeError(name)  # the adapter looks the attribute up on the model
            if {"instructions", "instruction_version"} & set(changes) and (
                    changes.get("instructions") is None
                    or changes.get("instruction_version") is None):
                raise ValueError("instructions and instruction_version change together")
            if changes.get("instruction_version", job.instruction_version + 1) \
                    <= job.instruction_version:
                return False  # a version is written once
            job.state = to_state
            for name, value in changes.items():
                setattr(job, name, value)
            if record is not None:
                job.transitions = job.transitions + (_json_copy(record),)
                if record_has_events(record):
                    job.events_due_at = float(record.get("at") or 0) + len(job.transitions) / 1e6
            return True

    def mark_events_sent(self, job_id: str, sent_before: int, sent_now: int,
                         due_at_seen: float | None) -> None:
        """Move the mark (only from sent_before); off the outbox unless a transition came."""
        with self._lock:
            job = self.jobs[job_id]
            if job.events_sent != sent_before:
                return
            job.events_sent = sent_now
            if due_at_seen is not None and job.events_due_at == due_at_seen:
                job.events_due_at = None

    def jobs_with_events_due(self) -> list[str]:
        """Jobs with unpublished transition events."""
        with self._lock:
            return sorted(j for j, job in self.jobs.items() if job.events_due_at is not None)

    def claim_budget_alert(self, job_id: str, now: float) -> float:
        """The alert's time: now unless claimed before."""
        with self._lock:
            job = self.jobs[job_id]
            if job.budget_alert_at is None:
                job.budget_alert_at = now
            return job.budget_alert_at

    def mark_budget_alerted(self, job_id: str) -> None:
        """Record the budget alert."""
        with self._lock:
            self.jobs[job_id].budget_alerted = True

    def record_counted(self, job_id: str, answers: Sequence[CountedAnswer],
                       pay_delay: float | None = None) -> int:
        """All together if none was counted before; otherwise one by one (as DynamoJobs);
        with pay_delay each counted answer accrues to its worker's accrual."""
        with self._lock:
            counted = self._count_together(job_id, answers)
            if counted is not None:
                if pay_delay is not None:
                    self._accrue(job_id, answers, pay_delay)
                return counted
            if len(answers) == 1:
                return 0
            return sum(self.record_counted(job_id, [answer], pay_delay) for answer in answers)

    def _accrue(self, job_id: str, answers: Sequence[CountedAnswer], pay_delay: float) -> None:
        accruals = self._items.ledger_ref.accruals
        for answer in answers:
            window = payouts.window_of(answer.assignment_id)
            accrual = accruals.setdefault((answer.worker_id, job_id, window), {})
            accrual["accrued"] = accrual.get("accrued", 0) + 1
            if accrual.get("due_at") is None:
                accrual["due_at"] = payouts.window_end(window) + pay_delay

    def claim_pass(self, job_id: str, pass_id: str, after: str | None, now: float,
                   stale_before: float) -> bool:
        """Hold the job for pass_id at its page after `after` (as DynamoJobs)."""
        with self._lock:
            held = self.passes.get(job_id)
            if held is not None and held[1] >= stale_before and held[::2] != (pass_id, after):
                return False
            self.passes[job_id] = (pass_id, now, after)
            return True

    def advance_pass(self, job_id: str, pass_id: str, after: str | None, cursor: str) -> None:
        """Move pass_id from after to cursor."""
        with self._lock:
            held = self.passes.get(job_id)
            if held is not None and held[::2] == (pass_id, after):
                self.passes[job_id] = (pass_id, held[1], cursor)

    def end_pass(self, job_id: str, pass_id: str) -> None:
        """Let go of the job if pass_id holds it."""
        with self._lock:
            if self.passes.get(job_id, ("",))[0] == pass_id:
                del self.passes[job_id]

    def claim_refit(self, job_id: str, mark: int) -> bool:
        """Once per mark above the last."""
        with self._lock:
            if self.refit_marks.get(job_id, -1) >= mark:
                return False
            self.refit_marks[job_id] = mark
            return True

    def request_approval(self, job_id: str, before: float | None, by: str, now: float) -> None:
        """Queue a bulk approval from the first window."""
        with self._lock:
            self.review_due[job_id] = ApprovalRequest(job_id, now, before, by)

    def approvals_requested(self, now: float) -> list[ApprovalRequest]:
        """Bulk approvals queued by now."""
        with self._lock:
            return [r for _, r in sorted(self.review_due.items()) if r.requested_at <= now]

    def advance_approval(self, request: ApprovalRequest, cursor: str | None) -> None:
        """The cursor, or off the queue; only while the request is the one read."""
        with self._lock:
            current = self.review_due.get(request.job_id)
            if current is None or current.requested_at != request.requested_at:
                return
            if cursor is None:
                del self.review_due[request.job_id]
            else:
                self.review_due[request.job_id] = replace(current, cursor=cursor)

    def reserve(self, job_id: str, cents: int, source: str = "pool") -> bool:
        """Take cents from the pool (or the held money) if it holds that much."""
        with self._lock:
            job = self.jobs[job_id]
            attribute = "held_cents" if source == "held" else "pool_cents"
            if getattr(job, attribute) < cents:
                return False
            setattr(job, attribute, getattr(job, attribute) - cents)
            return True

    def refund(self, job_id: str, cents: int, source: str = "pool") -> None:
        """Give cents back to the pool (or the held money)."""
        with self._lock:
            job = self.jobs[job_id]
            attribute = "held_cents" if source == "held" else "pool_cents"
            setattr(job, attribute, getattr(job, attribute) + cents)

    def buy(self, job_id: str, rewards_cents: int, fee_cents: int) -> bool:
        """Grow the budget by rewards and fee and the pool by the rewards."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return False
            job.budget_cents += rewards_cents + fee_cents
            job.pool_cents += rewards_cents
            return True

    def release_held(self, job_id: str) -> int:
        """Move the held money into the pool."""
        with self._lock:
            job = self.jobs[job_id]
            held, job.held_cents = job.held_cents, 0
            job.pool_cents += held
            return held

    def _count_together(self, job_id: str, answers: Sequence[CountedAnswer]) -> int | None:
        by_item: dict[str, list[CountedAnswer]] = defaultdict(list)
        for answer in answers:
            by_item[answer.item_id].append(answer)
        job = self.jobs[job_id]
        records = {item_id: self._items.records[(job_id, item_id)] for item_id in by_item}
        # The transaction's conditions: no (item, worker) counted before.
        for item_id, entries in by_item.items():
            if any(entry.worker_id in records[item_id].counted for entry in entries):
                return None
        completed = 0
        for item_id, entries in by_item.items():
            record = records[item_id]
            for entry in entries:
                record.counted[entry.worker_id] = entry.assignment_id
            if any(entry.item_complete for entry in entries):
                self._items._set_open(record, None)
                record.done = True
                completed += 1
        job.answered += len(answers)
        job.items_done += completed
        return len(answers)


# --- results, blobs, queues and the workflow ---------------------------------------------

class FakeResults:
    """Result lines in partitions as DynamoResults lays them out (chalicelib.domain.result_rows):
    rows[partition key][item id]; a page walks them with the same walk and cursors."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]],
                    id_space: int = 0) -> None:
        """Write (or overwrite) one row per item, in its bucket's partition."""
        with self._lock:
            for line in results:
                partition = result_rows.partition_key(
                    job_id, result_rows.bucket_of(line["item_id"], id_space))
                self.rows.setdefault(partition, {})[line["item_id"]] = _json_copy(line)

    def page(self, job_id: str, limit: int, cursor: str | None, id_space: int) -> Page:
        """A page in item order: a query stopped by its limit carries on from its last row
        (as DynamoDB's LastEvaluatedKey), partitions walked as DynamoResults walks them."""
        buckets = result_rows.bucket_count(id_space)
        start = decode_position(cursor, job_id, buckets, sealer=CURSORS)

        def query(partition: str, size: int, after: str | None
                  ) -> tuple[list[dict[str, Any]], str | None]:
            rows = self.rows.get(partition, {})
            keys = [key for key in sorted(rows) if after is None or key > after][:size]
            return [_json_copy(rows[key]) for key in keys], \
                keys[-1] if len(keys) == size else None

        with self._lock:
            entries, position = result_rows.walk(job_id, buckets, limit, start, query)
        return Page(entries, encode_position(job_id, position, CURSORS))


class FakeBlobs:
    """Objects in a dict: key -> (body, content type)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, str]] = {}
        self.raw: dict[str, bytes] = {}
        self._etags: dict[str, str] = {}
        # Multipart uploads in progress: upload id -> (key, {part: (ETag, bytes)}).
        self.multipart: dict[str, tuple[str, dict[int, tuple[str, bytes]]]] = {}
        self.min_part_bytes = 5 * 1024 * 1024

    def put_text(self, key: str, body: str, content_type: str) -> None:
        """Write an object."""
        self.objects[key] = (body, content_type)
        self._etags.pop(key, None)

    def get_text(self, key: str) -> str:
        """Read an object; NotFound if missing (as S3Blobs)."""
        if key not in self.objects:
            raise NotFound(f"no object {key}")
        return self.objects[key][0]

    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        """Write an object from text chunks."""
        self.objects[key] = ("".join(chunks), content_type)
        self._etags.pop(key, None)

    def exists(self, key: str) -> bool:
        """Whether an object is there."""
        return key in self.objects

    def download_url(self, key: str, seconds: int) -> str:
        """A fake link naming the key and its lifetime."""
        return f"https://blobs.example.test/{key}?expires_in={seconds}"

    def put_bytes(self, key: str, body: bytes) -> None:
        """Write an object of raw bytes (what an upload through upload_url leaves)."""
        self.raw[key] = body
        self._etags.pop(key, None)

    def _bytes(self, key: str) -> bytes | None:
        if key in self.raw:
            return self.raw[key]
        return self.objects[key][0].encode("utf-8") if key in self.objects else None

    def head(self, key: str) -> tuple[int, str] | None:
        """An object's size and ETag (an MD5 of it, as S3's for a single PUT); None if
        missing."""
        body = self._bytes(key)
        if body is None:
            return None
        if key not in self._etags:  # an MD5 of a big file takes a while: once per version
            self._etags[key] = f'"{hashlib.md5(body).hexdigest()}"'
        return len(body), self._etags[key]

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        """An object's bytes [start, end); NotFound if missing, Conflict if etag is not its."""
        body = self._bytes(key)
        if body is None:
            raise NotFound(f"no object {key}")
        if etag is not None and self.head(key) != (len(body), etag):
            raise Conflict(f"the object {key} was replaced", code="upload_changed")
        return body[start:end]

    def upload_url(self, key: str, seconds: int, content_type: str) -> str:
        """A fake PUT link naming the key, its lifetime and content type."""
        return f"https://blobs.example.test/{key}?expires_in={seconds}&put={content_type}"

    def start_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload: its parts are kept in `multipart` until completed."""
        upload = f"mpu-{len(self.multipart) + 1}"
        self.multipart[upload] = (key, {})
        return upload

    def part_url(self, key: str, upload: str, number: int, seconds: int) -> str:
        """A fake part link naming the key, upload, part and lifetime."""
        return (f"https://blobs.example.test/{key}?uploadId={upload}&partNumber={number}"
                f"&expires_in={seconds}")

    def put_part(self, key: str, upload: str, number: int, body: bytes) -> str:
        """Store a part (what a PUT to part_url does); its ETag."""
        if self.multipart.get(upload, (None,))[0] != key:
            raise NotFound(f"no multipart upload of {key}")
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.multipart[upload][1][number] = (etag, body)
        return etag

    def list_parts(self, key: str, upload: str) -> list[tuple[int, str, int]]:
        """The parts held, in number order; NotFound if the upload is not there (as S3)."""
        if self.multipart.get(upload, (None,))[0] != key:
            raise NotFound(f"no multipart upload of {key}")
        parts = self.multipart[upload][1]
        return [(number, parts[number][0], len(parts[number][1])) for number in sorted(parts)]

    def complete_multipart(self, key: str, upload: str, parts: list[tuple[int, str]]) -> None:
        """Join the named parts into the object (S3's rules: each held with that ETag, in
        order, all but the last at least 5 MiB unless min_part_bytes says otherwise)."""
        if self.multipart.get(upload, (None,))[0] != key:
            raise NotFound(f"no multipart upload of {key}")
        held = self.multipart[upload][1]
        numbers = [number for number, _ in parts]
        if (numbers != sorted(set(numbers))
                or any(held.get(number, ("",))[0] != etag for number, etag in parts)
                or any(len(held[number][1]) < self.min_part_bytes for number in numbers[:-1])):
            raise Conflict("S3 refused the parts", code="part_mismatch", field="parts")
        self.put_bytes(key, b"".join(held[number][1] for number in numbers))
        del self.multipart[upload]

    def abort_multipart(self, key: str, upload: str) -> None:
        """Drop the upload and its parts."""
        if self.multipart.get(upload, (None,))[0] == key:
            del self.multipart[upload]


class FakeQueue:
    """Records what is sent, as the JSON a consumer would receive."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.delays: list[int] = []

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        """Record one message (and its delay, if any, in delays)."""
        self.sent.append(_json_copy(message))
        self.delays.append(delay_seconds)

    def send_many(self, messages: Sequence[dict[str, Any]]) -> None:
        """Record messages in order."""
        for message in messages:
            self.send(message)

    def take(self) -> list[dict[str, Any]]:
        """Test helper: the messages sent so far, emptying the queue."""
        messages, self.sent, self.delays = self.sent, [], []
        return messages


class FakeWorkerStats:
    """Workers' gold records and blocks, as DynamoWorkerStats."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.records: dict[tuple[str, str], WorkerRecord] = {}
        self._scored: set[tuple[str, str, str]] = set()
        self.attempts: dict[tuple[str, str], dict[str, Any]] = {}
        # The listing of blocks everywhere (DynamoWorkerStats keeps a record of each apart).
        self._everywhere: set[str] = set()
        # The listings of blocks from a job (DynamoWorkerStats: records "blocked#<job id>").
        self._job_listed: set[tuple[str, str]] = set()

    def _get(self, worker_id: str, scope: str) -> WorkerRecord:
        return self.records.get((worker_id, scope), WorkerRecord(worker_id, scope))

    def record_gold(self, worker_id: str, job_id: str, assignment_id: str, correct: bool
                    ) -> tuple[int, int] | None:
        """Score once per assignment, in the job and overall."""
        with self._lock:
            if (worker_id, job_id, assignment_id) in self._scored:
                return None
            self._scored.add((worker_id, job_id, assignment_id))
            for scope in (job_id, "*"):
                r = self._get(worker_id, scope)
                self.records[(worker_id, scope)] = replace(
                    r, gold_answers=r.gold_answers + 1, gold_correct=r.gold_correct + int(correct))
            r = self.records[(worker_id, job_id)]
            return r.gold_answers, r.gold_correct

    def mark_blocked(self, worker_id: str, scope: str, reason: str, now: float,
                     starts_at: float | None = None) -> None:
        """Record a block (the first is kept, but a block at once replaces a later start)."""
        with self._lock:
            if scope == "*":
                self._everywhere.add(worker_id)
            else:
                self._job_listed.add((worker_id, scope))
            r = self._get(worker_id, scope)
            if r.blocked_at is None or (starts_at is None and r.blocked_at > now):
                self.records[(worker_id, scope)] = replace(
                    r, blocked_at=now if starts_at is None else starts_at, blocked_reason=reason)

    def blocks_in_job(self, job_id: str, worker_ids: Iterable[str] | None = None,
                      limit: int | None = None) -> dict[str, float]:
        """When each (given, or listed as blocked from the job: the first limit by worker
        id) worker's block starts."""
        with self._lock:
            wanted = set(sorted(w for (w, scope) in self._job_listed if scope == job_id)[:limit]) \
                if worker_ids is None else set(worker_ids)
            return {w: r.blocked_at for (w, scope), r in self.records.items()
                    if scope == job_id and r.blocked_at is not None and w in wanted}

    def unblock(self, worker_id: str, scope: str) -> None:
        """Lift a block."""
        with self._lock:
            r = self._get(worker_id, scope)
            self.records[(worker_id, scope)] = replace(r, blocked_at=None, blocked_reason=None)
            if scope == "*":
                self._everywhere.discard(worker_id)
            else:
                self._job_listed.discard((worker_id, scope))

    def blocked_everywhere_ids(self, limit: int) -> list[str]:
        """Workers blocked everywhere, at most limit + 1."""
        with self._lock:
            return sorted(self._everywhere)[:limit + 1]

    def of_job(self, job_id: str, limit: int, cursor: str | None
               ) -> tuple[list[WorkerRecord], str | None]:
        """A page of a job's workers' records by worker id; a full page carries a cursor
        (as DynamoDB)."""
        start = _decode_cursor(cursor, {"worker_id": "S", "scope": "S"}, {"scope": job_id})
        with self._lock:
            records = [r for key, r in sorted(self.records.items()) if key[1] == job_id
                       and (start is None or key[0] > start["worker_id"])][:limit]
        last = records[-1].worker_id if len(records) >= limit else None
        return records, None if last is None else _encode_cursor(
            {"worker_id": last, "scope": job_id})

    def blocks_page(self, cursor: str | None, limit: int
                    ) -> tuple[list[WorkerRecord], str | None]:
        """At most limit records read in key order, those with a block kept; a cursor when
        the read was full (as a Scan's)."""
        start = _decode_cursor(cursor, {"worker_id": "S", "scope": "S"}, {})
        with self._lock:
            keys = [key for key in sorted(self.records)
                    if start is None or key > (start["worker_id"], start["scope"])][:limit]
            records = [self.records[key] for key in keys
                       if self.records[key].blocked_at is not None]
        if len(keys) < limit:
            return records, None
        return records, _encode_cursor({"worker_id": keys[-1][0], "scope": keys[-1][1]})

    def list_block(self, worker_id: str, scope: str) -> None:
        """List a block beside it."""
        with self._lock:
            if scope == "*":
                self._everywhere.add(worker_id)
            else:
                self._job_listed.add((worker_id, scope))

    def unlist_blocks(self) -> None:
        """Test helper: forget every block's listing, as blocks made before listings were."""
        with self._lock:
            self._everywhere.clear()
            self._job_listed.clear()

    def record(self, worker_id: str, scope: str) -> WorkerRecord | None:
        """One record, or None."""
        with self._lock:
            return self.records.get((worker_id, scope))

    def of_worker(self, worker_id: str) -> list[WorkerRecord]:
        """One worker's records."""
        with self._lock:
            return [r for key, r in sorted(self.records.items()) if key[0] == worker_id]

    def publish_shown(self, job_id: str) -> None:
        """Copy live counts to shown ones."""
        with self._lock:
            for key, r in list(self.records.items()):
                if key[1] == job_id:
                    self.records[key] = replace(r, shown_gold_answers=r.gold_answers,
                                                shown_gold_correct=r.gold_correct)

    def start_attempt(self, worker_id: str, qual_id: str, attempt_id: str, now: float,
                      retake_seconds: int) -> bool:
        """Open an attempt unless passed or too soon after the last."""
        with self._lock:
            last = self.attempts.get((worker_id, qual_id))
            if last and (last["passed"] or last["attempt_at"] > now - retake_seconds):
                return False
            self.attempts[(worker_id, qual_id)] = {"attempt_id": attempt_id, "attempt_at": now,
                                                   "score": None, "passed": False}
            return True

    def finish_attempt(self, worker_id: str, qual_id: str, attempt_id: str, score: float,
                       passed: bool) -> bool:
        """Score the open attempt once."""
        with self._lock:
            last = self.attempts.get((worker_id, qual_id))
            if not last or last["attempt_id"] != attempt_id or last["score"] is not None:
                return False
            last.update(score=score, passed=passed)
            return True

    def attempt(self, worker_id: str, qual_id: str) -> dict[str, Any] | None:
        """The open or last attempt."""
        with self._lock:
            last = self.attempts.get((worker_id, qual_id))
            return dict(last) if last else None

    def blocked_everywhere(self, worker_ids: Iterable[str]) -> set[str]:
        """Those blocked by an operator."""
        with self._lock:
            return {w for w in worker_ids if self._get(w, "*").blocked_at is not None}


class FakeLedger:
    """Ledger entries and balances, as DynamoLedger."""

    def __init__(self, lock: threading.RLock, jobs: "FakeJobs") -> None:
        self._lock = lock
        self._jobs = jobs
        self.rows: dict[tuple[str, str], LedgerEntry] = {}
        self.balances: dict[str, int] = {}
        # (worker id, job id, window) -> accrued, rejected, paid, due_at, settled_at/_by
        self.accruals: dict[tuple[str, str, int], dict[str, Any]] = {}

    def bonus(self, entry: LedgerEntry, job_id: str, billed_cents: int | None = None) -> bool:
        """The entry, the balance and the job's pool (or, billed, its budget), together."""
        with self._lock:
            if (entry.account_id, entry.entry_id) in self.rows:
                return False
            job = self._jobs.jobs[job_id]
            if billed_cents is not None:
                job.budget_cents += billed_cents
            elif job.pool_cents < entry.amount_cents:
                raise Conflict("the job's budget has not that much left for bonuses",
                               code="insufficient_budget")
            else:
                job.pool_cents -= entry.amount_cents
            job.bonus_cents += entry.amount_cents
            self.rows[(entry.account_id, entry.entry_id)] = entry
            self.balances[entry.account_id] = self.balances.get(entry.account_id, 0) \
                + entry.amount_cents
            return True

    def get_entry(self, account_id: str, entry_id: str) -> LedgerEntry | None:
        """One entry."""
        with self._lock:
            return self.rows.get((account_id, entry_id))

    def entries(self, account_id: str, limit: int, cursor: str | None
                ) -> tuple[list[LedgerEntry], str | None]:
        """Newest first; the cursor is the position."""
        with self._lock:
            rows = sorted((e for (a, _), e in self.rows.items() if a == account_id),
                          key=lambda e: e.created_at, reverse=True)
        start = int(cursor or 0)
        page = rows[start:start + limit]
        return page, str(start + limit) if start + limit < len(rows) else None

    def balance(self, account_id: str) -> int:
        """The balance."""
        with self._lock:
            return self.balances.get(account_id, 0)

    @staticmethod
    def _accrual(key: tuple[str, str, int], row: dict[str, Any]) -> Accrual:
        worker_id, job_id, window = key
        return Accrual(job_id, worker_id, window, row.get("accrued", 0), row.get("rejected", 0),
                       row.get("paid", 0), row.get("due_at"), row.get("settled_at"),
                       row.get("settled_by"))

    def accrual(self, job_id: str, worker_id: str, window: int) -> Accrual | None:
        """One accrual."""
        with self._lock:
            row = self.accruals.get((worker_id, job_id, window))
            return None if row is None else self._accrual((worker_id, job_id, window), row)

    def accruals_due(self, now: float, limit: int) -> list[Accrual]:
        """Due accruals, soonest first (the due index)."""
        with self._lock:
            due = sorted((row["due_at"], key) for key, row in self.accruals.items()
                         if row.get("due_at") is not None and row["due_at"] <= now)
            return [self._accrual(key, self.accruals[key]) for _, key in due[:limit]]

    def accruals_of_job(self, job_id: str, before_window: int | None, cursor: str | None,
                        limit: int) -> tuple[list[Accrual], str | None]:
        """A page of the job's accruals in window order; the cursor is the position."""
        with self._lock:
            keys = sorted((key for key in self.accruals if key[1] == job_id
                           and (before_window is None or key[2] < before_window)),
                          key=lambda k: (k[2], k[0]))
            start = int(cursor or 0)
            page = [self._accrual(key, self.accruals[key]) for key in keys[start:start + limit]]
            more = start + limit < len(keys)
            return page, str(start + limit) if more else None

    def workers_in_job(self, job_id: str, worker_ids: Iterable[str]) -> set[str]:
        """Those of the workers with an accrual in the job."""
        with self._lock:
            return {worker for (worker, job, _) in self.accruals
                    if job == job_id and worker in set(worker_ids)}

    def settle(self, accrual: Accrual, entry: LedgerEntry | None, answers: int, now: float,
               by: str) -> bool:
        """Entry, balance, accrual (as read) and the job's totals together (as DynamoLedger)."""
        with self._lock:
            key = (accrual.worker_id, accrual.job_id, accrual.window)
            row = self.accruals.get(key)
            if row is None or self._accrual(key, row) != replace(
                    accrual, due_at=row.get("due_at"), settled_at=row.get("settled_at"),
                    settled_by=row.get("settled_by")):
                return False
            if entry is not None and answers > 0:
                if (entry.account_id, entry.entry_id) in self.rows:
                    return False
                self.rows[(entry.account_id, entry.entry_id)] = entry
                self.balances[entry.account_id] = self.balances.get(entry.account_id, 0) \
                    + entry.amount_cents
                job = self._jobs.jobs[accrual.job_id]
                job.paid_cents += entry.amount_cents
                job.approved_answers += answers
            row["paid"] = accrual.paid + answers
            row.setdefault("settled_at", now)
            row.setdefault("settled_by", by)
            row["due_at"] = None
            return True


class FakeCatalog:
    """Cohorts and qualification tests."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Any] = {}

    def put_cohort(self, cohort: Any) -> None:
        """Create or replace."""
        self.entries[("cohort", cohort.name)] = cohort

    def get_cohort(self, name: str) -> Any | None:
        """By name."""
        return self.entries.get(("cohort", name))

    def cohorts(self) -> list[Any]:
        """Every cohort."""
        return [v for (kind, _), v in sorted(self.entries.items()) if kind == "cohort"]

    def put_qualification(self, qualification: Any) -> None:
        """Store a test."""
        self.entries[("qualification", qualification.qual_id)] = qualification

    def get_qualification(self, qual_id: str) -> Any | None:
        """By id."""
        return self.entries.get(("qualification", qual_id))

    def qualifications(self) -> list[Any]:
        """Every test."""
        return [v for (kind, _), v in sorted(self.entries.items()) if kind == "qualification"]


class FakeMTurkRecords:
    """The MTurk-compatible API's records in memory, with DynamoMTurkRecords' conditions."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self.records: dict[tuple[str, str], MTurkRecord] = {}

    def get(self, kind: str, name: str) -> MTurkRecord | None:
        with self._lock:
            found = self.records.get((kind, name))
            return None if found is None else replace(found, body=_json_copy(found.body))

    def put_new(self, kind: str, name: str, body: dict[str, Any], now: float) -> bool:
        with self._lock:
            if (kind, name) in self.records:
                return False
            self.records[(kind, name)] = MTurkRecord(kind, name, _json_copy(body), now, 1)
            return True

    def replace(self, record: MTurkRecord, body: dict[str, Any]) -> bool:
        with self._lock:
            stored = self.records.get((record.kind, record.name))
            if stored is None or stored.version != record.version:
                return False
            self.records[(record.kind, record.name)] = replace(
                stored, body=_json_copy(body), version=stored.version + 1)
            return True

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            return self.records.pop((kind, name), None) is not None

    def page(self, kind: str, limit: int, cursor: str | None
             ) -> tuple[list[MTurkRecord], str | None]:
        with self._lock:
            names = sorted(name for k, name in self.records if k == kind and
                           (cursor is None or name > cursor))
            chosen = names[:limit]
            more = len(names) > limit
            return ([replace(self.records[(kind, n)], body=_json_copy(self.records[(kind, n)].body))
                     for n in chosen], chosen[-1] if more and chosen else None)


class FakeWorkflow:
    """Records executions by name; a repeated name starts nothing and returns False."""

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution unless one with that name exists."""
        if name in self.executions:
            return False
        self.executions[name] = _json_copy(payload)
        return True

    @property
    def started(self) -> list[str]:
        """Names of the executions started, in order."""
        return list(self.executions)


def make_platform(clock: FakeClock | None = None, **overrides: Any) -> Platform:
    """A Platform on fresh fakes with a FakeClock and a seeded rng; overrides replace fields."""
    lock = threading.RLock()
    quotes = FakeQuotes(lock)
    items = FakeItems(lock)
    jobs = FakeJobs(lock, quotes, items)
    ledger = FakeLedger(lock, jobs)
    items.ledger_ref = ledger
    settings: dict[str, Any] = dict(
        accounts=FakeAccounts(lock), quotes=quotes, jobs=jobs, ledger=ledger, catalog=FakeCatalog(),
        items=items, results=FakeResults(lock), blobs=FakeBlobs(), stats=FakeWorkerStats(lock),
        ingest_queue=FakeQueue(), results_queue=FakeQueue(), workflow=FakeWorkflow(),
        clock=clock if clock is not None else FakeClock(), rng=random.Random(7),
        mturk=FakeMTurkRecords(lock),
    )
    settings.update(overrides)
    return Platform(**settings)


def another_container(p: Platform, seed: int) -> Platform:
    """Another API container on p's fakes: the same stores and queues, caches and rng of its own."""
    return replace(p, cache=ContainerCache(), rng=random.Random(seed))


def ingest_all(p: Platform) -> None:
    """Deliver every queued ingest message once (the ingest consumer), and every one they
    queue in turn (pages of a pass), until none is left."""
    assert isinstance(p.ingest_queue, FakeQueue)
    while messages := p.ingest_queue.take():
        for message in messages:
            jobs.ingest_chunk(p, message)


def count_all(p: Platform, times: int = 1, batch: int = 1) -> None:
    """Deliver every queued result message `times` times, in batches of `batch` messages (the
    counting consumer)."""
    assert isinstance(p.results_queue, FakeQueue)
    messages = p.results_queue.take()
    for start in range(0, len(messages), batch):
        for _ in range(times):
            rounds.count_answers(p, messages[start:start + batch])


class FakeWebhooks:
    """Endpoints and deliveries, as DynamoWebhooks."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.endpoints_by_id: dict[tuple[str, str], Any] = {}
        self.by_id: dict[tuple[str, str], Any] = {}

    def put_endpoint(self, endpoint: Any) -> None:
        """Store an endpoint."""
        with self._lock:
            self.endpoints_by_id[(endpoint.account_id, endpoint.endpoint_id)] = endpoint

    def endpoints(self, account_id: str) -> list[Any]:
        """The account's endpoints."""
        with self._lock:
            return [e for (a, _), e in sorted(self.endpoints_by_id.items()) if a == account_id]

    def delete_endpoint(self, account_id: str, endpoint_id: str) -> bool:
        """Delete one; False if none."""
        with self._lock:
            return self.endpoints_by_id.pop((account_id, endpoint_id), None) is not None

    def create_delivery(self, delivery: Any) -> bool:
        """Store unless its id exists."""
        with self._lock:
            key = (delivery.account_id, delivery.delivery_id)
            if key in self.by_id:
                return False
            self.by_id[key] = delivery
            return True

    def get_delivery(self, account_id: str, delivery_id: str) -> Any:
        """One delivery."""
        with self._lock:
            return self.by_id.get((account_id, delivery_id))

    def deliveries(self, account_id: str, limit: int, cursor: str | None) -> tuple[list, None]:
        """Newest first (one page)."""
        with self._lock:
            rows = sorted((d for (a, _), d in self.by_id.items() if a == account_id),
                          key=lambda d: d.delivery_id, reverse=True)
            return rows[:limit], None

    def claim_attempt(self, account_id: str, delivery_id: str, attempt_count: int,
                      lease_until: float) -> bool:
        """Start the next attempt if none started since, held until lease_until."""
        with self._lock:
            d = self.by_id[(account_id, delivery_id)]
            if d.attempt_count != attempt_count or d.status != "pending":
                return False
            self.by_id[(account_id, delivery_id)] = replace(
                d, attempt_count=attempt_count + 1, next_attempt_at=lease_until)
            return True

    def get_endpoint(self, account_id: str, endpoint_id: str) -> Any:
        """One endpoint."""
        with self._lock:
            return self.endpoints_by_id.get((account_id, endpoint_id))

    def finish_attempt(self, account_id: str, delivery_id: str, attempt: dict, status: str,
                       next_attempt_at: float) -> bool:
        """Append the attempt and set status and next attempt, if it is the latest claimed
        attempt of a pending delivery."""
        with self._lock:
            d = self.by_id[(account_id, delivery_id)]
            if d.attempt_count != attempt["attempt"] or d.status != "pending":
                return False
            self.by_id[(account_id, delivery_id)] = replace(
                d, attempts=d.attempts + (_json_copy(attempt),), status=status,
                next_attempt_at=next_attempt_at,
                delivered_at=attempt["at"] if status == "delivered" else d.delivered_at)
            return True


class FakeClientKeys:
    """Client keys in a usage plan, in memory; records the calls in their order."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, str]] = {}  # gateway id -> (account, secret)
        self.calls: list[str] = []

    def register(self, account_id: str, secret: str) -> str:
        key_id = f"k{len(self.calls)}"
        self.calls.append("register")
        self.keys[key_id] = (account_id, secret)
        return key_id

    def remove(self, key_id: str) -> None:
        self.calls.append("remove")
        self.keys.pop(key_id, None)

    def remove_others(self, account_id: str, keep: str | None = None) -> None:
        self.calls.append("remove_others")
        for key_id in [k for k, (a, _) in self.keys.items() if a == account_id and k != keep]:
            del self.keys[key_id]

    def unregister(self, account_id: str) -> None:
        self.remove_others(account_id)


class FakeBus:
    """Records the events put on the bus."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        """Record one event."""
        self.events.append(event)


class FakeRequesterKeys:
    """Requester access keys in memory (the secret kept as given: there is no KMS here)."""

    def __init__(self, accounts: dict[str, Any] | None = None) -> None:
        self.items: dict[str, tuple[str, str, float]] = {}  # key id -> (account, secret, at)
        self.principals: dict[str, Any] = dict(accounts or {})  # account id -> Principal

    def create(self, account_id: str, key_id: str, secret: str, now: float, limit: int
               ) -> bool:
        if len(self.keys(account_id)) >= limit:
            return False
        self.items[key_id] = (account_id, secret, now)
        return True

    def keys(self, account_id: str) -> list[tuple[str, float]]:
        return sorted(((k, at) for k, (a, _, at) in self.items.items() if a == account_id),
                      key=lambda pair: (pair[1], pair[0]))

    def delete(self, account_id: str, key_id: str) -> bool:
        if self.items.get(key_id, ("",))[0] != account_id:
            return False
        del self.items[key_id]
        return True

    def lookup(self, key_id: str) -> Any:
        if key_id not in self.items:
            return None
        account_id, secret, _ = self.items[key_id]
        principal = self.principals.get(account_id)
        return None if principal is None else (principal, secret)
