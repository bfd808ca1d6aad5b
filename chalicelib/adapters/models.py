"""pynamodb models: one per table. Table names are bound from settings at first use."""
from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute, BooleanAttribute, JSONAttribute, ListAttribute, MapAttribute, NumberAttribute,
    UnicodeAttribute, UnicodeSetAttribute,
)
from pynamodb.indexes import (
    AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import Model

from chalicelib.settings import Settings


class AccountModel(Model):
    """A client, worker or operator account."""

    class Meta:
        table_name = "accounts"

    account_id = UnicodeAttribute(hash_key=True)
    role = UnicodeAttribute()
    name = UnicodeAttribute()
    skills = UnicodeSetAttribute(null=True)
    created_at = NumberAttribute()
    balance_cents = NumberAttribute(default=0)
    # Skill -> score from passed qualification tests.
    scores = JSONAttribute(null=True)
    # Where a worker said they are (ISO 3166-1 alpha-2, ISO 3166-2 suffix).
    country = UnicodeAttribute(null=True)
    subdivision = UnicodeAttribute(null=True)
    # The account's credential, so a granted skill reaches what authentication reads.
    token_hash = UnicodeAttribute(null=True)
    # A client's requester access key ids (the MTurk-compatible API), at most two.
    requester_keys = UnicodeSetAttribute(null=True)


class CredentialModel(Model):
    """A hashed bearer secret, with what authentication needs copied in (one read per call)."""

    class Meta:
        table_name = "credentials"

    token_hash = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    role = UnicodeAttribute()
    name = UnicodeAttribute()
    skills = UnicodeSetAttribute(null=True)
    scores = JSONAttribute(null=True)
    country = UnicodeAttribute(null=True)
    subdivision = UnicodeAttribute(null=True)
    created_at = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    # A requester access key ("rk#<key id>"): its secret as KMS ciphertext, bound to the key
    # id and account by the encryption context.
    sealed_secret = BinaryAttribute(null=True, legacy_encoding=False)


class QuoteModel(Model):
    """A firm quote; expires_ttl lets DynamoDB delete it some time after it expires."""

    class Meta:
        table_name = "quotes"

    quote_id = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute()
    task_type = UnicodeAttribute()
    items = NumberAttribute()
    redundancy = NumberAttribute()
    reward_cents = NumberAttribute()
    cohort = UnicodeAttribute(null=True)
    line_items = JSONAttribute()
    total_cents = NumberAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    expires_ttl = NumberAttribute()
    job_id = UnicodeAttribute(null=True)
    gold_rate = NumberAttribute(default=0.1)
    skills = UnicodeSetAttribute(null=True)
    adaptive = JSONAttribute(null=True)


class JobsByState(GlobalSecondaryIndex):
    """Jobs by state, ordered by when they are due to be finalised."""

    class Meta:
        index_name = "by_state"
        projection = AllProjection()

    state = UnicodeAttribute(hash_key=True)
    finalize_at = NumberAttribute(range_key=True)


class JobsByClient(GlobalSecondaryIndex):
    """A client's jobs by creation time."""

    class Meta:
        index_name = "by_client"
        projection = AllProjection()

    client_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class JobsByReviewDue(GlobalSecondaryIndex):
    """Sparse: jobs whose client asked for a bulk approval not finished yet."""

    class Meta:
        index_name = "reviews_due"
        projection = KeysOnlyProjection()

    review_queue = UnicodeAttribute(hash_key=True)
    review_due_at = NumberAttribute(range_key=True)


class JobsByEventsDue(GlobalSecondaryIndex):
    """Sparse: jobs with transitions whose webhook events are not all published yet."""

    class Meta:
        index_name = "events_due"
        projection = KeysOnlyProjection()

    events_queue = UnicodeAttribute(hash_key=True)
    events_due_at = NumberAttribute(range_key=True)


class JobModel(Model):
    """A job: its spec, state and history (its counting counters are JobCountsModel, its
    money JobMoneyModel, its instructions JobInstructionsModel)."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    client_id = UnicodeAttribute()
    quote_id = UnicodeAttribute()
    title = UnicodeAttribute()
    task_type = UnicodeAttribute()
    # Only on jobs created before the instructions got a record of their own
    # (JobInstructionsModel): read when that record is missing, removed when they are revised.
    instructions = UnicodeAttribute(null=True)
    answer_schema = JSONAttribute()
    not_applicable = UnicodeAttribute()
    redundancy = NumberAttribute()
    reward_cents = NumberAttribute()
    budget_cents = NumberAttribute()
    item_count = NumberAttribute()
    chunk_count = NumberAttribute()
    lease_seconds = NumberAttribute()
    # Only on jobs whose suites hold more than one task.
    suite_size = NumberAttribute(null=True)
    deadline = NumberAttribute()
    created_at = UnicodeAttribute()
    state = UnicodeAttribute()
    finalize_at = NumberAttribute()
    required_skills = UnicodeSetAttribute(null=True)
    min_skill_scores = JSONAttribute(null=True)
    adaptive = JSONAttribute(null=True)
    report_settings = JSONAttribute(null=True)
    phase = UnicodeAttribute(default="production")
    pilot_items = NumberAttribute(default=0)
    instruction_version = NumberAttribute(default=1)
    promotion = JSONAttribute(null=True)
    gold_items = NumberAttribute(default=0)
    quality = JSONAttribute(null=True)
    gold_slots = NumberAttribute(null=True)
    auto_approve_seconds = NumberAttribute(default=259200)
    # A client's bulk approval: queued (review_queue "due") at review_due_at, for the pay
    # windows ending by approve_before (-1: every window), continued from approve_cursor.
    review_queue = UnicodeAttribute(null=True)
    review_due_at = NumberAttribute(null=True)
    approve_before = NumberAttribute(null=True)
    approve_cursor = UnicodeAttribute(null=True)
    approve_by = UnicodeAttribute(null=True)
    # The online model's last refit, in multiples of its refit interval.
    refit_mark = NumberAttribute(null=True)
    # JSON texts, oldest first; appended to by every transition.
    transitions = ListAttribute(of=UnicodeAttribute, default=list)
    events_sent = NumberAttribute(default=0)
    request_digest = UnicodeAttribute(null=True)
    upload = JSONAttribute(null=True)
    # Only on HITs made through the MTurk-compatible API (Job.mturk).
    mturk = JSONAttribute(null=True)
    events_queue = UnicodeAttribute(null=True)
    events_due_at = NumberAttribute(null=True)
    budget_alerted = BooleanAttribute(null=True)
    budget_alert_at = NumberAttribute(null=True)
    round = NumberAttribute(default=1)
    cancelled_at = NumberAttribute(null=True)
    aggregating_at = NumberAttribute(null=True)
    results_key = UnicodeAttribute(null=True)
    result_count = NumberAttribute(null=True)
    done_at = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)

    by_state = JobsByState()
    by_client = JobsByClient()
    reviews_due = JobsByReviewDue()
    events_due = JobsByEventsDue()


class JobCountsModel(Model):
    """The counters every counting batch and every ingest chunk changes, in a record of
    their own in the jobs table (key "<job_id>#counts", see counts_key): ~100 bytes in none
    of the table's indexes, so neither rewrites the job record and its index copies."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    answered = NumberAttribute(default=0)
    items_done = NumberAttribute(default=0)
    # Ingest chunks written whole (items.put_chunk): the job goes active at its chunk_count.
    chunks_written = NumberAttribute(default=0)


class IngestRangeModel(Model):
    """What one byte range of an uploaded item file held (key "<job_id>#range#<n>", see
    range_key): its lines, the items written from them, its bad lines and the pilot items it
    picked. Written once, in the transaction that counts the range on the counters record."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    lines = NumberAttribute()
    items = NumberAttribute()
    bad = NumberAttribute()
    pilot = NumberAttribute()


def range_key(job_id: str, index: int) -> str:
    """The key of one ingest range's record (a job id holds no '#')."""
    return f"{job_id}#range#{index}"


def counts_key(job_id: str) -> str:
    """The key of a job's counters record (a job id holds no '#')."""
    return f"{job_id}#counts"


class JobMoneyModel(Model):
    """The job's money and review counts, in a record of their own in the jobs table (key
    "<job_id>#money", see money_key): ~150 bytes in none of the table's indexes, written with
    the job and then by every rejection, settlement, bonus, reservation and refund, so none
    of them rewrites the job record and its index copies. Apart from the counters record:
    counting batches write that one in their transactions, and money written there would
    conflict with them."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    pool_cents = NumberAttribute(default=0)
    held_cents = NumberAttribute(null=True)
    paid_cents = NumberAttribute(default=0)
    bonus_cents = NumberAttribute(default=0)
    approved_answers = NumberAttribute(default=0)
    rejected_answers = NumberAttribute(default=0)


def money_key(job_id: str) -> str:
    """The key of a job's money record (a job id holds no '#')."""
    return f"{job_id}#money"


class JobPassModel(Model):
    """The pass over a job's items that runs before its round closes (replacement slots for
    left-out answers), in a record of its own in the jobs table (key "<job_id>#pass", see
    pass_key), in none of the table's indexes: which pass holds the job and when a page of it
    last ran and which page it is at, so one pass at a time runs, a page delivered again after
    the pass moved on does not, and a pass whose pages stopped is taken over."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    pass_id = UnicodeAttribute()
    at = NumberAttribute()
    # The item id the pass's current page starts after ("" before the first item).
    after = UnicodeAttribute()


def pass_key(job_id: str) -> str:
    """The key of a job's pass record (a job id holds no '#')."""
    return f"{job_id}#pass"


class JobInstructionsModel(Model):
    """A job's instructions and their version, in a record of their own in the jobs table
    (key "<job_id>#instructions", see instructions_key), in none of the table's indexes:
    written with the job and again only when the client revises them, in the same transaction
    as the job's instruction_version, so the job record stays small however long they are
    (up to MAX_INSTRUCTIONS characters) and the text and its version are always read
    together."""

    class Meta:
        table_name = "jobs"

    job_id = UnicodeAttribute(hash_key=True)
    instructions = UnicodeAttribute()
    version = NumberAttribute()


def instructions_key(job_id: str) -> str:
    """The key of a job's instructions record (a job id holds no '#')."""
    return f"{job_id}#instructions"


# What the open_slots index holds beside the keys.
OPEN_SLOT_FIELDS = ["redundancy", "free", "seen", "last_exp", "gold", "out", "ls", "served"]


class OpenSlots(GlobalSecondaryIndex):
    """Sparse index of items that still take answers (open_job is removed when complete),
    holding only what picking a slot needs and only what a lease changes: a submit, a count
    or a review writes no entry."""

    class Meta:
        index_name = "open_slots"
        projection = IncludeProjection(OPEN_SLOT_FIELDS)

    open_job = UnicodeAttribute(hash_key=True)
    item_id = UnicodeAttribute(range_key=True)


class ItemModel(Model):
    """An item with its slots: free count, leases and answers keyed by worker id."""

    class Meta:
        table_name = "items"

    job_id = UnicodeAttribute(hash_key=True)
    item_id = UnicodeAttribute(range_key=True)
    data = JSONAttribute(null=True)
    external_id = UnicodeAttribute(null=True)
    gold = JSONAttribute(null=True)
    held = BooleanAttribute(null=True)
    replaced = NumberAttribute(default=0)
    extended = NumberAttribute(default=0)
    redundancy = NumberAttribute()
    free = NumberAttribute()
    answer_count = NumberAttribute(default=0)
    leases: MapAttribute[str, Any] = MapAttribute(default=dict)
    answers: MapAttribute[str, Any] = MapAttribute(default=dict)
    # worker id -> {"s": "approved" | "rejected", "r": reason, "at": time, "by": who}
    reviews: MapAttribute[str, Any] = MapAttribute(default=dict)
    counted: MapAttribute[str, Any] = MapAttribute(default=dict)
    ordinals: MapAttribute[str, Any] = MapAttribute(default=dict)
    seen = UnicodeSetAttribute(null=True)
    # Set while the item is in the task pool's index: from ingest (or production, for an item
    # held from the pilot) until its last slot is answered.
    open_job = UnicodeAttribute(null=True)
    # Set once counting has counted the item complete (its answer that filled the last slot).
    done = BooleanAttribute(null=True)
    # A gold item's leases out, counted per minute they were taken in (the minute's end, in
    # seconds -> leases): its servings are GoldServingModel records, so nothing here grows
    # with the workers served it.
    out: MapAttribute[str, Any] = MapAttribute(null=True)
    # How many workers a gold item was served to (0: it has no serving records to read).
    served = NumberAttribute(null=True)
    # How long a lease of a gold item lasts at most, in seconds (set by its first lease).
    ls = NumberAttribute(null=True)
    # When the item's newest lease ends (set by every lease; leases are taken in time order,
    # so no lease of the item ends later): a listing without the leases knows from it
    # whether one of them may have ended.
    last_exp = NumberAttribute(null=True)

    open_items = OpenSlots()


class GoldServingModel(Model):
    """One worker's serving of one gold item, in the items table under the partition key
    "<job id>#<item id>": created once per (item, worker) by a conditional put, so a worker
    never gets a gold item twice, and holding their lease, then their answer, its counting
    mark and its review. A gold item's servings spread over its own key, not the job's."""

    class Meta:
        table_name = "items"

    serving_key = UnicodeAttribute(hash_key=True, attr_name="job_id")
    worker_id = UnicodeAttribute(range_key=True, attr_name="item_id")
    # {"aid", "exp", "at", "b": the minute end under which the gold item counts it}
    lease: MapAttribute[str, Any] = MapAttribute(null=True)
    # {"aid", "ans", "at", "lat", "iv"}, as ItemModel.answers[worker]
    answer: MapAttribute[str, Any] = MapAttribute(null=True)
    counted = UnicodeAttribute(null=True)
    # The assignment whose gold answer was scored in the worker's records (once).
    scored = UnicodeAttribute(null=True)
    # {"s", "r", "at", "by"}, as ItemModel.reviews[worker]
    review: MapAttribute[str, Any] = MapAttribute(null=True)


class GoldListingModel(Model):
    """A job's gold item listed apart, in the items table under the partition key
    "<job id>#gold" (item ids are digits, so no serving's key is this one): a job's gold items
    are one query of their own, read without walking the job. Key only; written before its
    item, so every gold item written is listed."""

    class Meta:
        table_name = "items"

    listing_key = UnicodeAttribute(hash_key=True, attr_name="job_id")
    item_id = UnicodeAttribute(range_key=True)


class ResultModel(Model):
    """The aggregated result of one item, as the JSON line clients download: compressed (a
    line with its lineage is about 1.2 KB, two write units; compressed it takes one), or in
    body as rows written before were.

    The partition is one bucket of the job's items, `<job_id>#<bucket>`
    (chalicelib.domain.result_rows), or the bare job id for rows written before the buckets.
    It is stored in the table's key attribute `job_id`: the table's key schema is unchanged,
    so the layout needed no new table."""

    class Meta:
        table_name = "results"
        # botocore's retries of a throttled call (standard mode: exponential back-off with
        # jitter): a shard's writes ride out a burst rather than fail the round's stage.
        max_retry_attempts = 5

    partition = UnicodeAttribute(hash_key=True, attr_name="job_id")
    item_id = UnicodeAttribute(range_key=True)
    body = JSONAttribute(null=True)
    packed = BinaryAttribute(null=True, legacy_encoding=False)


class StatsByScope(GlobalSecondaryIndex):
    """A job's workers (scope = job id)."""

    class Meta:
        index_name = "by_scope"
        projection = AllProjection()

    scope = UnicodeAttribute(hash_key=True)
    worker_id = UnicodeAttribute(range_key=True)


class WorkerStatsModel(Model):
    """A worker's gold record in one job (scope = job id) or overall (scope = "*"), and their
    block from that job (or everywhere): blocked_at is when it starts refusing leases.

    gold_answers/gold_correct are live (they drive blocking); shown_* are what the worker
    sees, copied when a round is published, so no answer tells them which items were gold.
    """

    class Meta:
        table_name = "worker_stats"

    worker_id = UnicodeAttribute(hash_key=True)
    scope = UnicodeAttribute(range_key=True)
    gold_answers = NumberAttribute(default=0)
    gold_correct = NumberAttribute(default=0)
    shown_gold_answers = NumberAttribute(null=True)
    shown_gold_correct = NumberAttribute(null=True)
    blocked_at = NumberAttribute(null=True)
    blocked_reason = UnicodeAttribute(null=True)
    # Assignment ids scored here by the layout before (a gold answer's scoring mark is now on
    # its serving, so this record does not grow with the worker's gold answers).
    scored = UnicodeSetAttribute(null=True)
    # Qualification attempts (scope "qual#<id>"): the open or last attempt and its outcome.
    attempt_id = UnicodeAttribute(null=True)
    attempt_at = NumberAttribute(null=True)
    score = NumberAttribute(null=True)
    passed = BooleanAttribute(null=True)

    by_scope = StatsByScope()


class LedgerByTime(LocalSecondaryIndex):
    """An account's entries by time."""

    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class LedgerModel(Model):
    """One credit or debit of an account; entry_id makes a repeat a no-op (e.g. 'pay#<asg>')."""

    class Meta:
        table_name = "ledger"

    account_id = UnicodeAttribute(hash_key=True)
    entry_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    amount_cents = NumberAttribute()
    created_at = NumberAttribute()
    job_id = UnicodeAttribute(null=True)
    assignment_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    by = UnicodeAttribute(null=True)
    # A settlement's number of answers paid.
    answers = NumberAttribute(null=True)

    by_time = LedgerByTime()


class AccrualsDue(GlobalSecondaryIndex):
    """Sparse: accruals with answers not paid yet, by when they are due, over a few shards."""

    class Meta:
        index_name = "accruals_due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = NumberAttribute(range_key=True)


class AccrualsByJob(GlobalSecondaryIndex):
    """A job's accruals, by pay window (for a client's bulk approval)."""

    class Meta:
        index_name = "accruals_by_job"
        projection = KeysOnlyProjection()

    accrual_job = UnicodeAttribute(hash_key=True)
    entry_id = UnicodeAttribute(range_key=True)


class AccrualModel(Model):
    """What a worker earned in one job in one pay window, in the ledger table beside the
    worker's entries (entry_id "accrual#<job id>#<window>"; no created_at, so the entries'
    by_time index leaves it out): answers accrued, rejected and paid."""

    class Meta:
        table_name = "ledger"

    account_id = UnicodeAttribute(hash_key=True)
    entry_id = UnicodeAttribute(range_key=True)
    accrual_job = UnicodeAttribute(null=True)
    window = NumberAttribute(null=True)
    accrued = NumberAttribute(null=True)
    rejected = NumberAttribute(null=True)
    paid = NumberAttribute(null=True)
    # Set while some answers are unpaid (the due index), removed when settled.
    due_shard = UnicodeAttribute(null=True)
    due_at = NumberAttribute(null=True)
    settled_at = NumberAttribute(null=True)
    settled_by = UnicodeAttribute(null=True)

    accruals_due = AccrualsDue()
    accruals_by_job = AccrualsByJob()


class TextJSONAttribute(JSONAttribute):
    """JSON kept as UTF-8 text, not ASCII-escaped: a qualification test in Japanese takes the
    bytes its limit counts (pynamodb's escapes would triple them towards DynamoDB's 400 KB)."""

    def serialize(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)


class CatalogModel(Model):
    """A cohort or a qualification test, as published by an operator."""

    class Meta:
        table_name = "catalog"

    kind = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)
    body = TextJSONAttribute()
    created_at = NumberAttribute()


class MTurkModel(Model):
    """One record of the MTurk-compatible API, in the catalog table: kind (a record type and
    its owner, e.g. `mturk#qual#<client>`), name (its id within), a JSON body and a version
    each replacement raises (chalicelib.adapters.mturk_records)."""

    class Meta:
        table_name = "catalog"

    kind = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)
    body = TextJSONAttribute()
    created_at = NumberAttribute()
    version = NumberAttribute(default=1)


class WebhookModel(Model):
    """An account's webhook endpoint (key `endpoint#<id>`) or delivery (`delivery#<id>`,
    time-ordered); what never changes is in body, what attempts change has attributes."""

    class Meta:
        table_name = "webhooks"

    account_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute(range_key=True)
    body = JSONAttribute()
    created_at = NumberAttribute()
    status = UnicodeAttribute(null=True)
    # JSON texts, oldest first: {attempt, at, status_code, latency_ms, error?}.
    attempts = ListAttribute(of=UnicodeAttribute, null=True)
    attempt_count = NumberAttribute(null=True)
    next_attempt_at = NumberAttribute(null=True)
    delivered_at = NumberAttribute(null=True)
    # TTL: deliveries are kept 30 days.
    expires_at = NumberAttribute(null=True)


ALL_MODELS = (AccountModel, CredentialModel, QuoteModel, JobModel, JobCountsModel,
              JobMoneyModel, JobInstructionsModel, JobPassModel, IngestRangeModel, ItemModel,
              ResultModel, WorkerStatsModel, LedgerModel, AccrualModel, CatalogModel,
              WebhookModel, MTurkModel)


def bind_models(settings: Settings) -> None:
    """Point every model at its stage's table; pynamodb caches one connection per model."""
    names = {
        AccountModel: settings.accounts_table,
        CredentialModel: settings.credentials_table,
        QuoteModel: settings.quotes_table,
        JobModel: settings.jobs_table,
        JobCountsModel: settings.jobs_table,
        JobMoneyModel: settings.jobs_table,
        JobInstructionsModel: settings.jobs_table,
        JobPassModel: settings.jobs_table,
        IngestRangeModel: settings.jobs_table,
        ItemModel: settings.items_table,
        ResultModel: settings.results_table,
        WorkerStatsModel: settings.worker_stats_table,
        LedgerModel: settings.ledger_table,
        AccrualModel: settings.ledger_table,
        CatalogModel: settings.catalog_table,
        MTurkModel: settings.catalog_table,
        WebhookModel: settings.webhooks_table,
    }
    # A gold item's servings live beside it, in the items table.
    names[GoldServingModel] = settings.items_table
    names[GoldListingModel] = settings.items_table
    for model, table in names.items():
        if model.Meta.table_name != table or getattr(model.Meta, "region", None) != settings.region:
            model.Meta.table_name = table
            model.Meta.region = settings.region
            model._connection = None
