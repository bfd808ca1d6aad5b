"""Plain data the domain works on; adapters translate storage records to and from these."""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

# Account roles.
CLIENT, WORKER, OPERATOR = "client", "worker", "operator"

TEXT_TASK_TYPES = ("translation", "transcription", "collection")
TASK_TYPES = ("categorical", "numeric") + TEXT_TASK_TYPES

# Job states, in the order a job moves through them.
INGESTING = "ingesting"
ACTIVE = "active"
CANCELLED = "cancelled"
AGGREGATING = "aggregating"
# After a pilot round is published: waiting for the client (or a rule) to promote or stop it.
PAUSED = "paused"
# A pilot closed early by its client: no new leases, then its round is aggregated.
CLOSING = "closing"
DONE = "done"
FAILED = "failed"
TAKES_ANSWERS = (ACTIVE, CANCELLED, CLOSING)

# Phases: a pilot on a sample, calibration (the pilot's report is read), then production.
PILOT = "pilot"
CALIBRATION = "calibration"
PRODUCTION = "production"


NA_ALLOWED = "allowed_with_reason"
NA_NOT_ALLOWED = "not_allowed"


def answer_kind(task_type: str) -> str:
    """'categorical', 'numeric' or 'text': translation, transcription and collection share text answers."""
    return task_type if task_type in ("categorical", "numeric") else "text"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a client account, a worker or an operator."""

    account_id: str
    role: str
    name: str = ""
    skills: frozenset[str] = frozenset()
    # (skill, score) from passed qualification tests.
    scores: tuple[tuple[str, float], ...] = ()
    # Where a worker said they are: an ISO 3166-1 alpha-2 country and an ISO 3166-2
    # subdivision suffix (MTurk's Worker_Locale); None when not given.
    country: str | None = None
    subdivision: str | None = None


@dataclass(frozen=True)
class LineItem:
    """One priced line of a quote."""

    name: str
    quantity: int
    unit_cents: int
    amount_cents: int


@dataclass(frozen=True)
class Quote:
    """A firm price for a job spec, valid until expires_at."""

    quote_id: str
    client_id: str
    task_type: str
    items: int
    redundancy: int
    reward_cents: int
    cohort: str | None
    line_items: tuple[LineItem, ...]
    total_cents: int
    created_at: float
    expires_at: float
    job_id: str | None = None
    gold_rate: float = 0.1
    # The cohort's skills: the job's required skills unless it names its own.
    skills: tuple[str, ...] = ()
    # Adaptive redundancy {"min", "max", "target_confidence"}; redundancy is then max.
    adaptive: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """A client's job and its progress counters."""

    job_id: str
    client_id: str
    quote_id: str
    title: str
    task_type: str
    instructions: str
    answer_schema: dict[str, Any]
    not_applicable: str
    redundancy: int
    reward_cents: int
    budget_cents: int
    item_count: int
    chunk_count: int
    lease_seconds: int
    deadline: float
    created_at: float
    state: str = INGESTING
    # Tasks a worker may lease (and submit) together in one request (GET /tasks/next?count=).
    suite_size: int = 1
    required_skills: tuple[str, ...] = ()
    # Lowest qualification score a worker needs, per required skill.
    min_skill_scores: dict[str, float] = field(default_factory=dict)
    # Adaptive redundancy {"min", "max", "target_confidence"}: items start with min slots.
    adaptive: dict[str, Any] = field(default_factory=dict)
    # What the quality report adds: "expected_distribution" (label -> share) and
    # "attributes" (keys of item data to break agreement and labels down by).
    report_settings: dict[str, Any] = field(default_factory=dict)
    phase: str = PRODUCTION
    # Regular (not gold) items answered in the pilot (the rest are held until production).
    pilot_items: int = 0
    gold_items: int = 0
    # Gold and worker-quality rules: gold_rate, block_after, block_below, min_seconds.
    quality: dict[str, float] = field(default_factory=dict)
    # Reward money not yet committed to any slot (replacement answers beyond the held money,
    # adaptive answers, bonuses); every answer drawn from it is reserved when its slot opens,
    # so it cannot be overdrawn.
    pool_cents: int = 0
    # Rewards of answers rejected while the job may still take answers, held for their
    # replacement slots (a bonus cannot take them); what is left goes to the pool at the end.
    held_cents: int = 0
    # Gold answers the quote paid for, set aside at posting as slots on the gold items.
    gold_slots: int = 0
    # Accepted answers nobody reviewed are approved this long after they were submitted.
    auto_approve_seconds: int = 3 * 24 * 3600
    paid_cents: int = 0
    bonus_cents: int = 0
    approved_answers: int = 0
    rejected_answers: int = 0
    instruction_version: int = 1
    # Report thresholds that promote the job by themselves, e.g. {"gold_accuracy": 0.85}.
    promotion: dict[str, float] = field(default_factory=dict)
    # Every change of state or phase: {"at", "from", "to", "by", "reason"}, oldest first.
    transitions: tuple[dict[str, Any], ...] = ()
    # Transitions whose webhook events are published; events_due_at is set (by the same write)
    # while some are not (chalicelib.domain.webhooks).
    events_sent: int = 0
    # SHA-256 of the POST /jobs body, so a retry of a creation that crashed half-way resumes it.
    request_digest: str = ""
    # Items from an uploaded file: {"key", "format", "bytes", "etag", "skip_bad_lines",
    # "pilot"} (the pilot asked for; pilot_items is what the ranges picked once all are in).
    # Empty: the items were posted inline.
    upload: dict[str, Any] = field(default_factory=dict)
    events_due_at: float | None = None
    # A HIT made through the MTurk-compatible API (a job of one item): {"hit_type_id",
    # "requirements": its QualificationRequirements, "question": "external" | "html" | "form",
    # "frame_height"}. Empty for every other job.
    mturk: dict[str, Any] = field(default_factory=dict)
    budget_alerted: bool = False
    budget_alert_at: float | None = None
    # Ingest chunks written whole (each counted with its last item, once every item is in).
    chunks_written: int = 0
    answered: int = 0
    items_done: int = 0
    round: int = 1
    finalize_at: float | None = None
    cancelled_at: float | None = None
    aggregating_at: float | None = None
    results_key: str | None = None
    result_count: int | None = None
    done_at: float | None = None
    error: str | None = None

    @property
    def kind(self) -> str:
        """The answer kind of this job's task type."""
        return answer_kind(self.task_type)

    @property
    def id_space(self) -> int:
        """The numbers its item ids are drawn from, 0 up to this: the item numbers of items
        posted inline, the byte offsets of an uploaded file's lines (chalicelib.handlers
        .uploads), so a random start, a range to open or a result partition covers every
        item either way."""
        return int(self.upload["bytes"]) if self.upload else self.item_count

    @property
    def spent_cents(self) -> int:
        """Rewards of the accepted answers counted so far, less the rejected ones (whose
        rewards went back to the job)."""
        return max(0, self.answered - self.rejected_answers) * self.reward_cents

    @property
    def round_items(self) -> int:
        """How many items must be complete before this phase's round is aggregated."""
        return self.pilot_items if self.phase == PILOT else self.item_count - self.gold_items

    def takes_leases(self, now: float) -> bool:
        """True while workers may lease new tasks."""
        return self.state == ACTIVE and now < self.deadline



# Jobs that require no skill are listed in the open-jobs index under this many keys
# ("any#0" ...), so no single key holds every such job of the platform.
OPEN_SHARDS = 4


# The characters of a job's instructions its open-jobs entry (a worker's job list) holds.
OFFER_INSTRUCTIONS = 1000


@dataclass(frozen=True)
class Offer:
    """An active job as the open-jobs index keeps it: what a worker's job list and the choice
    of a job to lease from need, without the job's counters, money, history or workers."""

    job_id: str
    created_at: float
    title: str
    task_type: str
    instructions: str
    instruction_version: int
    answer_schema: dict[str, Any]
    not_applicable: str
    reward_cents: int
    lease_seconds: int
    deadline: float
    required_skills: tuple[str, ...] = ()
    min_skill_scores: dict[str, float] = field(default_factory=dict)
    # instructions holds their first OFFER_INSTRUCTIONS characters; the whole text comes
    # with each task.
    instructions_truncated: bool = False
    suite_size: int = 1
    # A HIT's MTurk settings (Job.mturk): its requirements decide who may preview and accept.
    mturk: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, job: Job) -> Offer:
        """The index entry of a job (its instructions cut to OFFER_INSTRUCTIONS characters,
        so the entry stays small however long they are)."""
        shared = {f.name: getattr(job, f.name) for f in fields(cls)
                  if f.name != "instructions_truncated"}
        return cls(**{**shared, "required_skills": tuple(job.required_skills),
                      "min_skill_scores": dict(job.min_skill_scores),
                      "mturk": dict(job.mturk),
                      "instructions": job.instructions[:OFFER_INSTRUCTIONS],
                      "instructions_truncated": len(job.instructions) > OFFER_INSTRUCTIONS})

    @property
    def key(self) -> str:
        """Where the index lists it: under one skill it requires (a worker must hold them all,
        so any one will do), or under one of the OPEN_SHARDS keys of jobs requiring none."""
        if self.required_skills:
            return min(self.required_skills)
        return f"any#{zlib.crc32(self.job_id.encode()) % OPEN_SHARDS}"


def open_keys(skills: Iterable[str]) -> list[str]:
    """The open-jobs index keys that can list a job for a worker with these skills."""
    return [f"any#{shard}" for shard in range(OPEN_SHARDS)] + sorted(set(skills))


@dataclass(frozen=True)
class NewItem:
    """An item as the client posted it, numbered by the platform."""

    item_id: str
    data: dict[str, Any]
    external_id: str | None = None
    # The known answer of a gold item, in stored answer form; never shown to workers.
    gold: dict[str, Any] | None = None
    # Held back from the pilot: leased only once the job reaches production.
    held: bool = False
    # A gold item's slots: its share of the gold answers the quote paid for (a regular item
    # takes the job's redundancy).
    slots: int | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one slot of an item."""

    assignment_id: str
    expires_at: float
    leased_at: float


@dataclass(frozen=True)
class StoredAnswer:
    """An accepted answer as kept on its item; ordinal is its place (0-based) among them."""

    assignment_id: str
    answer: dict[str, Any]
    submitted_at: float
    leased_at: float
    ordinal: int | None = None
    instruction_version: int = 1
    # {"status": "approved" | "rejected", "reason", "at", "by"} once reviewed.
    review: dict[str, Any] | None = None


@dataclass
class ItemState:
    """An item with its slots: free count, live leases and accepted answers by worker.

    answers may be left out (a listing that only picks slots does not need them);
    answer_count is always there.
    """

    job_id: str
    item_id: str
    data: dict[str, Any]
    redundancy: int
    free: int
    external_id: str | None = None
    leases: dict[str, Lease] = field(default_factory=dict)
    answers: dict[str, StoredAnswer] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    answer_count: int = 0
    gold: dict[str, Any] | None = None
    held: bool = False
    # Slots added to replace answers left out of aggregation (blocked workers, rejections).
    replaced: int = 0
    # Slots added by adaptive redundancy while the item's confidence was below the target.
    extended: int = 0
    # When the item's newest lease ends (None before its first lease).
    last_expiry: float | None = None
    # From the task pool's listing, which holds a regular item's slot counts but not its
    # leases or answers: answer_count and leases are not known then.
    listed: bool = False

    @property
    def taken(self) -> int:
        """Slots leased or answered (every slot not free)."""
        return self.redundancy - self.free

    @property
    def complete(self) -> bool:
        """True when the item has all the answers it takes."""
        return self.answer_count >= self.redundancy


@dataclass(frozen=True)
class Assignment:
    """A leased task as a worker sees it."""

    assignment_id: str
    job: Job
    item: ItemState
    lease: Lease


@dataclass(frozen=True)
class LedgerEntry:
    """One credit (or a zero-amount record, such as a rejection) on an account.

    entry_id is derived from what it pays for ("review#<assignment id>" for a rejection,
    "settlement#<job id>#<pay window>#<paid count>" for the answers of one pay window paid
    together, "bonus#<job id>#<bonus id>"), so writing it again pays nothing twice.
    """

    account_id: str
    entry_id: str
    kind: str
    amount_cents: int
    created_at: float
    job_id: str | None = None
    assignment_id: str | None = None
    reason: str | None = None
    by: str | None = None
    # A settlement's number of answers paid.
    answers: int | None = None


APPROVED = "approved"
REJECTED = "rejected"


@dataclass(frozen=True)
class SubmitReceipt:
    """What a worker gets back for an accepted answer (the same on every retry)."""

    assignment_id: str
    job_id: str
    submitted_at: float
    reward_cents: int
    item_complete: bool
    duplicate: bool = False


@dataclass(frozen=True)
class CountedAnswer:
    """One accepted answer announced on the results queue."""

    job_id: str
    item_id: str
    worker_id: str
    assignment_id: str
    item_complete: bool
    # A gold item's answer: its counting mark is on the worker's serving of the item.
    gold: bool = False


@dataclass(frozen=True)
class ItemResult:
    """The aggregated answer for one item, with its lineage."""

    item_id: str
    answer: dict[str, Any] | None
    # Label jobs: the calibrated probability of the answer (the round's calibration map
    # applied to the model's posterior); other jobs: the aggregator's own figure.
    confidence: float
    n_answers: int
    not_applicable: bool = False
    external_id: str | None = None
    na_reasons: tuple[str, ...] = ()
    lineage: tuple[dict[str, Any], ...] = ()
    # Categorical: the calibrated probability of every label, and of "not_applicable" when
    # any answer of the round was N/A.
    probabilities: dict[str, float] | None = None
    # How the answer was made; None for an item without answers.
    method: str | None = "majority_vote"
    # The model's own confidence, before calibration (None: the same as confidence).
    confidence_raw: float | None = None
