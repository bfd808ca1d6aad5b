"""The storage, messaging and workflow interfaces the domain needs (adapters implement them)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain.model import (
    CountedAnswer, ItemState, Job, Lease, LedgerEntry, NewItem, Offer, Principal, Quote,
    StoredAnswer,
)
from chalicelib.domain.payouts import Accrual

if TYPE_CHECKING:  # annotations only: the webhooks package imports this module
    from chalicelib.domain.webhooks.types import Delivery, Endpoint, Event


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor of the next, if any."""

    entries: list[dict[str, Any]]
    cursor: str | None


@dataclass(frozen=True)
class SlotOutcome:
    """The result of a conditional write on an item, with the item as it now stands."""

    ok: bool
    item: ItemState | None


@dataclass(frozen=True)
class LeaseCount:
    """Live leases among a bounded listing of a job's open items (ItemStore.live_leases)."""

    # Leases counted: a gold item's from the listing, a regular item's read; scaled up by
    # the share read when only some of the regular items that may hold one were read.
    leased: float
    # Open items listed.
    entries: int
    # The listing reached the job's last open item (from its first, if start was None).
    complete: bool
    # From the first open item to the last, every lease that may be live read.
    exact: bool


@dataclass(frozen=True)
class WorkerRecord:
    """A worker's gold record in one job (scope = the job id) or overall (scope = "*")."""

    worker_id: str
    scope: str
    gold_answers: int = 0
    gold_correct: int = 0
    shown_gold_answers: int | None = None
    shown_gold_correct: int | None = None
    blocked_at: float | None = None
    blocked_reason: str | None = None


@dataclass(frozen=True)
class ApprovalRequest:
    """A client's bulk approval of a job: the pay windows ending by `before` (None: all),
    asked at requested_at by `by`, continued from cursor."""

    job_id: str
    requested_at: float
    before: float | None
    by: str
    cursor: str | None = None


class WorkerStatsStore(Protocol):
    """Workers' gold records and blocks."""

    def record_gold(self, worker_id: str, job_id: str, assignment_id: str, correct: bool
                    ) -> tuple[int, int] | None:
        """Score one gold answer once (per assignment) in the job and overall; return the
        job's (answers, correct) after it, or None if it was scored before."""
    def mark_blocked(self, worker_id: str, scope: str, reason: str, now: float,
                     starts_at: float | None = None) -> None:
        """Record a block in a job (scope = job id) or everywhere (scope = "*") refusing
        leases from starts_at (default now); a repeat keeps the first block, except that a
        block at once replaces one that starts later."""
    def unblock(self, worker_id: str, scope: str) -> None: """Lift a block."""
    def of_job(self, job_id: str, limit: int, cursor: str | None
               ) -> tuple[list[WorkerRecord], str | None]:
        """A page of at most limit of a job's workers' records, by worker id, and the cursor
        of the next (None on the last)."""
    def blocks_page(self, cursor: str | None, limit: int
                    ) -> tuple[list[WorkerRecord], str | None]:
        """A page of a walk over every worker's records (at most limit read), those with a
        block kept (in a job or everywhere); the cursor of the next (None at the end)."""
    def list_block(self, worker_id: str, scope: str) -> None:
        """List a block in scope (a job id or "*") beside it, as mark_blocked does; a repeat
        changes nothing."""
    def record(self, worker_id: str, scope: str) -> WorkerRecord | None:
        """A worker's record in a job (scope = job id) or overall ("*"), or None."""
    def of_worker(self, worker_id: str) -> list[WorkerRecord]: """One worker's records."""
    def blocks_in_job(self, job_id: str, worker_ids: Iterable[str] | None = None,
                      limit: int | None = None) -> dict[str, float]:
        """Worker id -> when their block from the job starts refusing their leases, for the
        given workers or (None) every worker blocked from the job (with limit, the first
        limit listed by worker id); blocked workers' answers
        are left out from the moment of the block, whatever its start."""
    def publish_shown(self, job_id: str) -> None:
        """Copy the job's live gold counts to what its workers see (at a round's publication)."""
    def blocked_everywhere(self, worker_ids: Iterable[str]) -> set[str]:
        """Those of the workers an operator has blocked everywhere."""
    def blocked_everywhere_ids(self, limit: int) -> list[str]:
        """Workers an operator has blocked everywhere, at most limit + 1 of them (more than
        limit: there may be more), from a record of each block kept apart for this listing."""
    def start_attempt(self, worker_id: str, qual_id: str, attempt_id: str, now: float,
                      retake_seconds: int) -> bool:
        """Open an attempt unless the test was passed or the last attempt is too recent."""
    def finish_attempt(self, worker_id: str, qual_id: str, attempt_id: str, score: float,
                       passed: bool) -> bool:
        """Score the open attempt once; False if it is not the open one or was scored."""
    def attempt(self, worker_id: str, qual_id: str) -> dict[str, Any] | None:
        """The worker's open or last attempt: attempt_id, attempt_at, score, passed."""


class CatalogStore(Protocol):
    """What operators publish: cohorts and qualification tests."""

    def put_cohort(self, cohort: Any) -> None: """Create or replace a cohort."""
    def get_cohort(self, name: str) -> Any | None: """A cohort by name."""
    def cohorts(self) -> list[Any]: """Every cohort."""
    def put_qualification(self, qualification: Any) -> None: """Store a new test."""
    def get_qualification(self, qual_id: str) -> Any | None: """A test by id."""
    def qualifications(self) -> list[Any]: """Every test."""


class LedgerStore(Protocol):
    """Accounts' money: entries and balances, each credit exactly once."""

    def bonus(self, entry: LedgerEntry, job_id: str, billed_cents: int | None = None) -> bool:
        """Pay a bonus from the job's pool with its entry, together; False if the entry exists
        already (nothing paid again). Raises Conflict insufficient_budget if the pool is short.
        With billed_cents the pool is not used: the job's budget grows by billed_cents (the
        client is billed for the bonus) in the same write."""
    def get_entry(self, account_id: str, entry_id: str) -> LedgerEntry | None: """One entry."""
    def entries(self, account_id: str, limit: int, cursor: str | None
                ) -> tuple[list[LedgerEntry], str | None]:
        """An account's entries, newest first."""
    def balance(self, account_id: str) -> int: """An account's balance in cents."""
    def accrual(self, job_id: str, worker_id: str, window: int) -> Accrual | None:
        """A worker's accrual in one job and pay window (strongly consistent)."""
    def accruals_due(self, now: float, limit: int) -> list[Accrual]:
        """Up to limit accruals with unpaid answers due by now, soonest first per shard of
        the due index (settled ones leave it, so the next call continues with the rest)."""
    def accruals_of_job(self, job_id: str, before_window: int | None, cursor: str | None,
                        limit: int) -> tuple[list[Accrual], str | None]:
        """A page of the job's accruals (of windows before before_window, when given), in
        window order, and the cursor of the next page."""
    def workers_in_job(self, job_id: str, worker_ids: Iterable[str]) -> set[str]:
        """Those of the workers with an accrual in the job (an answer of theirs counted):
        one read of each worker's accruals, at most one record each."""
    def settle(self, accrual: Accrual, entry: LedgerEntry | None, answers: int, now: float,
               by: str) -> bool:
        """Pay an accrual's payable answers as read: the entry (only if new), the worker's
        balance, the accrual's paid count (only if its counts are still those read; off the
        due index) and the job's paid total and approved count, together. With answers 0 and
        no entry (None) only the accrual is closed. False (nothing written) if the accrual
        changed since it was read or the entry exists."""


class AccountStore(Protocol):
    """Accounts and their hashed bearer credentials."""

    def create_account(self, account_id: str, role: str, name: str, skills: Sequence[str],
                       token_hash: str, now: float, country: str | None = None,
                       subdivision: str | None = None) -> None:
        """Store an account and its credential together."""
    def principal_for(self, token_hash: str) -> Principal | None: """The account a credential belongs to."""
    def grant_skill(self, account_id: str, skill: str, score: float) -> None:
        """Give an account a skill with its score (on the account and its credential)."""
    def set_locale(self, account_id: str, country: str | None, subdivision: str | None
                   ) -> bool:
        """Set (None: clear) an account's country and subdivision, on the account and its
        credential together; False if there is no such account."""
    def rotate(self, account_id: str, old_hash: str, new_hash: str, now: float) -> bool:
        """Store a new credential and revoke the old one, together."""
    def revoke(self, account_id: str) -> bool:
        """Revoke the account's live credential; False if there is no such account."""


class RequesterKeyStore(Protocol):
    """A client's requester access keys (the MTurk-compatible API's SigV4 credentials): the
    secret is kept sealed and given back only to verify a signature."""

    def create(self, account_id: str, key_id: str, secret: str, now: float, limit: int
               ) -> bool:
        """Store a key of the account; False (nothing stored) when it already has limit."""
    def keys(self, account_id: str) -> list[tuple[str, float]]:
        """The account's key ids with their creation times, oldest first."""
    def delete(self, account_id: str, key_id: str) -> bool:
        """Delete a key of the account; False if it has no such key."""
    def lookup(self, key_id: str) -> tuple[Principal, str] | None:
        """The live account a key belongs to and the key's secret; None if the key is
        unknown, deleted or its account revoked."""


class QuoteStore(Protocol):
    """Firm quotes."""

    def put_quote(self, quote: Quote) -> None: """Store a new quote."""
    def get_quote(self, quote_id: str) -> Quote | None: """A quote by id."""


class JobStore(Protocol):
    """Jobs, their counters and state transitions."""

    def create_job(self, job: Job) -> None:
        """Store a new job and mark its quote used, together (fails if the quote was used)."""
    def abandon_job(self, job_id: str, quote_id: str) -> None:
        """Delete a job still ingesting and free its quote, together."""
    def ingest_ranges(self, job_id: str, count: int, start: int = 0
                      ) -> list[dict[str, int] | None]:
        """The summaries ItemStore.put_range counted for ranges start..start+count-1 of an
        uploaded job's file, in order (None: not counted yet)."""
    def get_job(self, job_id: str, consistent: bool = True) -> Job | None:
        """A job by id, strongly consistent (or, consistent=False, as of a moment ago for
        half the read units)."""
    def jobs_in_state(self, state: str, finalize_before: float | None = None,
                      limit: int | None = None) -> list[Job]:
        """Jobs in a state, soonest due first, optionally only those due to finalise before a
        time and at most limit of them."""
    def jobs_of_client(self, client_id: str, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
        """A client's jobs, newest first."""
    def open_jobs(self, key: str) -> list[Offer]:
        """The open-jobs index under one key (Offer.key), oldest job first. A job is listed
        exactly while it is active, with its current instructions: every transition into or
        out of active changes the index in the same transaction."""
    def transition(self, job_id: str, from_states: Sequence[str], to_state: str,
                   record: dict[str, Any] | None = None, expect_round: int | None = None,
                   expect_items_done: int | None = None, **changes: Any) -> bool:
        """Move a job between states if it is in one of from_states (and, when given, in round
        expect_round with at least expect_items_done items done), appending record to its
        history; False if it was not. New instructions come with their instruction_version
        (ValueError otherwise), above the job's (False otherwise: a version's text never
        changes), and the two change together."""
    def claim_refit(self, job_id: str, mark: int) -> bool:
        """True once per mark above the last: the caller refits the online model."""
    def claim_pass(self, job_id: str, pass_id: str, after: str | None, now: float,
                   stale_before: float) -> bool:
        """Let the page of pass pass_id over the job's items that starts after the item id
        `after` run (at now): True if no pass holds the job, or one that last ran before
        stale_before (pass_id then holds it from this page), or pass_id holds it at this
        very page (not done yet: a page delivered again after it moved on does not run);
        False (nothing changed) otherwise."""
    def advance_pass(self, job_id: str, pass_id: str, after: str | None, cursor: str) -> None:
        """Move pass_id from its page after `after` to the page after `cursor` (only from
        there: a repeat changes nothing)."""
    def end_pass(self, job_id: str, pass_id: str) -> None:
        """Let go of the job if pass_id holds it (idempotent)."""
    def mark_events_sent(self, job_id: str, sent_before: int, sent_now: int,
                         due_at_seen: float | None) -> None:
        """Move the published-events mark from sent_before to sent_now (only from there);
        off the outbox unless a transition came after due_at_seen was read."""
    def jobs_with_events_due(self) -> list[str]:
        """Jobs with transitions whose events are not all published."""
    def claim_budget_alert(self, job_id: str, now: float) -> float:
        """The time of the job's budget alert: now, unless an earlier claim set one."""
    def mark_budget_alerted(self, job_id: str) -> None:
        """Record that the job's budget alert was published."""
    def record_counted(self, job_id: str, answers: Sequence[CountedAnswer],
                       pay_delay: float | None = None) -> int:
        """Count answers not counted before (idempotent per assignment) and, with pay_delay
        (the job's lease time and review period), add them to their workers' accruals in the
        same write, due pay_delay after their pay window ends; return how many were new."""
    def reserve(self, job_id: str, cents: int, source: str = "pool") -> bool:
        """Take cents from the job's pool (source "pool") or the money it holds for
        replacements ("held") if that holds as much; False (nothing taken) if not."""
    def refund(self, job_id: str, cents: int, source: str = "pool") -> None:
        """Give cents back to the job's pool (or to its held money)."""
    def buy(self, job_id: str, rewards_cents: int, fee_cents: int) -> bool:
        """The client buys more answers for the job: its budget grows by the rewards and
        their fee, its pool by the rewards, together (adding to what is there, so concurrent
        purchases and bonuses all count); False if there is no such job."""
    def release_held(self, job_id: str) -> int:
        """Move the money held for replacements into the pool, at once; return how much."""
    def request_approval(self, job_id: str, before: float | None, by: str, now: float) -> None:
        """Queue a bulk approval of the job's pay windows ending by `before` (None: all), from
        their start (a new request replaces one not finished)."""
    def approvals_requested(self, now: float) -> list[ApprovalRequest]:
        """Bulk approvals queued and not finished."""
    def advance_approval(self, request: ApprovalRequest, cursor: str | None) -> None:
        """Continue a bulk approval from cursor next time, or (None) finish it unless another
        request came since it was read."""


class ItemStore(Protocol):
    """Items and their slots: the conditional writes that keep leases and answers exact."""

    def put_items(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> None:
        """Write fresh items, all or none (none if any of them exists already)."""
    def put_chunk(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> bool:
        """Write an ingest chunk's items (at least one) and count the chunk on its job
        (chunks_written) once every item of it is in: an item there already (from an earlier
        delivery of the chunk, perhaps leased since) is left as it is, and the chunk counts
        once however often it comes. True if this call counted it; False if it was counted
        before, or the job is gone (its items but the last may then be written). The job's
        state is not checked: the caller writes chunks of ingesting jobs only."""
    def put_range(self, job_id: str, redundancy: int, items: Sequence[NewItem], index: int,
                  summary: Mapping[str, int]) -> bool:
        """Write an ingest range's items (perhaps none) and count the range on its job
        (chunks_written) with its summary ({"lines", "items", "bad", "pilot"}) once every
        item is in: an item there already is left as it is, and the range counts once
        however often it comes. True if this call counted it; False if it was counted
        before, or the job is gone."""
    def open_items(self, job_id: str, worker_id: str | None, limit: int | None,
                   start: str | None = None, now: float | None = None) -> list[ItemState]:
        """Items not yet counted complete, in item order, listed (listed=True): slot counts,
        the workers seen and the newest lease's end, without data or answers, a regular
        item's leases and answer count unknown. For worker_id, only those they have not
        seen; with now too, only those with a slot to take by then (free > 0, or the newest
        lease ended). With start, those from the item id start on, then from the first
        (wrapping around)."""
    def live_leases(self, job_id: str, now: float, limit: int, start: str | None = None,
                    reads: int = 100) -> LeaseCount:
        """Leases not ended by now among up to `limit` of the job's open items, in item order
        from the item id start on (not wrapping): one listing of at most limit + 1 index
        entries, then the leases of at most `reads` of the regular items whose newest lease
        has not ended (an even spread of them, the count scaled up to all of them)."""
    def get_item(self, job_id: str, item_id: str) -> ItemState | None: """One item."""
    def held_item_ids(self, job_id: str, after: str | None, before: str | None, limit: int
                      ) -> tuple[list[str], str | None]:
        """A page of the ids of the job's items held back from the pilot, in item order,
        among at most `limit` items with ids after `after` and before `before` (None: from
        the first, to the last); the cursor is the last item id read when more may follow
        (the next page's after), else None."""
    def review(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
               review: dict[str, Any], entry: LedgerEntry, refund_cents: int = 0,
               refund_to: str = "pool") -> bool:
        """Record the rejection of an accepted answer with its ledger entry, exactly once: one
        more rejected on the answer's accrual (only while that was never settled), and the
        reward back to the job's pool, or to its money held for replacements (refund_to
        "held"). False (nothing written) if it was reviewed before or its accrual settled."""
    def approve(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                review: dict[str, Any], gold: bool = False) -> bool:
        """Record a client's approval on the answer, once (its pay comes with its accrual's
        settlement); False if it was reviewed before. gold: the item is gold (the caller
        has read it)."""
    def approve_rejected(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
                         review: dict[str, Any], entry: LedgerEntry,
                         billed_cents: int | None = None) -> bool | None:
        """Approve a rejected (regular) answer and pay it at once with its entry, together
        and once: its reward from the job's pool, or with billed_cents billed on the job's
        budget (which grows by them). None if the pool is short, False if the answer is not
        rejected any more or the entry exists (nothing written)."""
    def release_gold_slots(self, job_id: str, item_id: str, free: int, expired: Sequence[str],
                           now: float, reward_cents: int) -> int:
        """Take a gold item's `free` free slots and the slots of the workers' expired leases
        away and pay their rewards into the job's pool, together and once (nothing if the
        item changed since); return the cents."""
    def extend(self, job_id: str, item_id: str, redundancy_now: int,
               cents: int = 0) -> bool | None:
        """Add one slot to an item still open whose redundancy is redundancy_now and take
        cents for it from the job's pool, together; False if the item is not so, None if the
        pool does not hold cents (nothing changed)."""
    def add_slots(self, job_id: str, item_id: str, count: int, replaced_before: int,
                  cents: int = 0, source: str = "pool") -> bool | None:
        """Reopen an item counted complete with `count` more slots that replace answers left
        out, take it off the job's done count and take cents for the slots from the job's
        pool or held money (source), together; False if the item was not complete or its
        replacements changed meanwhile, None if the money does not hold cents (nothing
        changed)."""
    def open_held(self, job_id: str, item_ids: Sequence[str]) -> None:
        """Open held items for leasing (idempotent)."""
    def try_lease(self, job_id: str, item_id: str, worker_id: str, lease: Lease,
                  reclaim_from: str | None, now: float) -> SlotOutcome:
        """Take a free slot (or an expired lease's slot) for worker_id if still possible."""
    def try_submit(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                   now: float) -> SlotOutcome:
        """Turn worker_id's live lease into an accepted answer; ok False shows the item as it is."""
    def try_release(self, job_id: str, item_id: str, worker_id: str, assignment_id: str
                    ) -> SlotOutcome:
        """Give a leased slot back."""
    def gold_items(self, job_id: str, after: str | None, limit: int
                   ) -> tuple[list[ItemState], str | None]:
        """A page of at most limit of the job's gold items after the item id `after`, whole
        (leases and answers), from the job's gold listing, no other item read; and the
        cursor (the last id listed) when there may be more. A job ingested before the
        listing existed lists none."""
    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item of a job in item order, or those after the item id `after`."""
    def item_page(self, job_id: str, after: str | None, limit: int
                  ) -> tuple[list[ItemState], str | None]:
        """At most limit items of the job after the item id `after` (None: from the first),
        in item order, with everything on them (strongly consistent); the cursor is the
        last one's id when the page is full (more may follow), else None."""


class ResultStore(Protocol):
    """Aggregated results per item."""

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]],
                    id_space: int = 0) -> None:
        """Write result lines of a job with that id space (Job.id_space; a repeat writes the
        same); TransientError while throttled."""
    def page(self, job_id: str, limit: int, cursor: str | None, id_space: int) -> Page:
        """A page of results in item order, over a job with that id space (Job.id_space); a
        page may be short (or empty) and still have a cursor: only the last has none."""


class BlobStore(Protocol):
    """Objects in the results bucket."""

    def put_text(self, key: str, body: str, content_type: str) -> None: """Write an object."""
    def get_text(self, key: str) -> str: """Read an object."""
    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        """Write an object from text chunks without holding all of it in memory."""
    def download_url(self, key: str, seconds: int) -> str: """A time-limited download link."""
    def exists(self, key: str) -> bool: """Whether an object is there."""
    def head(self, key: str) -> tuple[int, str] | None:
        """An object's size and version tag (ETag); None if it is missing."""
    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        """An object's bytes [start, end) (fewer at its end), of the version tagged etag if
        given; NotFound if it is missing, Conflict if it was replaced."""
    def upload_url(self, key: str, seconds: int, content_type: str) -> str:
        """A time-limited link to PUT the object with a body of that content type."""
    def start_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload of the object; its upload id."""
    def part_url(self, key: str, upload: str, number: int, seconds: int) -> str:
        """A time-limited link to PUT part `number` of a multipart upload."""
    def list_parts(self, key: str, upload: str) -> list[tuple[int, str, int]]:
        """The parts a multipart upload holds: (number, ETag, size) in number order;
        NotFound if the upload is not there (aborted, completed or expired)."""
    def complete_multipart(self, key: str, upload: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts (number, ETag) into the object; NotFound if the upload is not
        there, Conflict (part_mismatch) if a part is not as named or too small."""
    def abort_multipart(self, key: str, upload: str) -> None:
        """Drop a multipart upload and its parts (none there: nothing to do)."""


class MessageQueue(Protocol):
    """A queue that takes JSON messages."""

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        """Send one message, visible after delay_seconds (at most 900)."""
    def send_many(self, messages: Sequence[dict[str, Any]]) -> None: """Send in batches."""


class Workflow(Protocol):
    """The aggregation state machine."""

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution; False when one with that name already exists."""


class WebhookStore(Protocol):
    """Webhook endpoints and deliveries of each account."""

    def put_endpoint(self, endpoint: Endpoint) -> None: """Store a new endpoint."""
    def endpoints(self, account_id: str) -> list[Endpoint]: """The account's endpoints."""
    def delete_endpoint(self, account_id: str, endpoint_id: str) -> bool:
        """Delete one; False if there was none."""
    def create_delivery(self, delivery: Delivery) -> bool:
        """Store a delivery unless one with its id exists; True if written."""
    def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None:
        """One delivery."""
    def deliveries(self, account_id: str, limit: int, cursor: str | None
                   ) -> tuple[list[Delivery], str | None]:
        """The account's deliveries, newest first."""
    def claim_attempt(self, account_id: str, delivery_id: str, attempt_count: int,
                      lease_until: float) -> bool:
        """Start attempt attempt_count + 1 if no other has started since, holding it until
        lease_until (a copy of the message waits till then); True if claimed."""
    def finish_attempt(self, account_id: str, delivery_id: str, attempt: dict[str, Any],
                       status: str, next_attempt_at: float) -> bool:
        """Append a finished attempt and set the delivery's status and next attempt, if it is
        still the delivery's latest claimed attempt and the delivery is pending."""
    def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        """One endpoint."""


class EventBus(Protocol):
    """Where every event also goes (EventBridge)."""

    def put(self, event: Event) -> None: """Publish one event."""


# How a webhook is sent: (url, body, headers, timeout) -> (status code or None, error text or
# None); the adapter POSTs without following redirects.
Sender = Callable[[str, bytes, Mapping[str, str], float], tuple[int | None, str | None]]


class IdempotencyStore(Protocol):
    """Runs a request's handler at most once per Idempotency-Key (powertools' idempotency on
    DynamoDB)."""

    def once(self, key: str, body: str, handler: Callable[[], dict[str, Any]],
             lambda_context: Any = None) -> dict[str, Any]:
        """handler()'s first result for this key, marked "replayed" when it was stored
        before; 422 when the key came with another body, 409 while the first still runs."""


class ClientKeys(Protocol):
    """Client API keys registered in the API Gateway usage plan (per-key rate caps)."""

    def register(self, account_id: str, secret: str) -> str:
        """Add the secret as the account's key in the plan; returns the gateway's key id."""
    def remove(self, key_id: str) -> None: """Remove one key from the plan."""
    def remove_others(self, account_id: str, keep: str | None = None) -> None:
        """Remove the account's keys but keep (the new one after a rotation)."""
    def unregister(self, account_id: str) -> None: """Remove every key of the account."""


@dataclass(frozen=True)
class MTurkRecord:
    """One record of the MTurk-compatible API: kind (a record type and its owner), name (its
    id within), its JSON body, when it was made and its version (raised by each replace)."""

    kind: str
    name: str
    body: dict[str, Any]
    created_at: float
    version: int = 1


class MTurkRecords(Protocol):
    """The MTurk-compatible API's records (chalicelib.adapters.mturk_records)."""

    def get(self, kind: str, name: str) -> MTurkRecord | None: """One record, or None."""
    def put_new(self, kind: str, name: str, body: dict[str, Any], now: float) -> bool:
        """Create a record; False when one with its key exists."""
    def replace(self, record: MTurkRecord, body: dict[str, Any]) -> bool:
        """Replace a record's body if still at the version read; False otherwise."""
    def delete(self, kind: str, name: str) -> bool: """Delete; False when there was none."""
    def page(self, kind: str, limit: int, cursor: str | None
             ) -> tuple[list[MTurkRecord], str | None]:
        """A page of one kind's records in name order, and the next page's cursor."""
