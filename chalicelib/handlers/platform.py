"""The Platform every handler takes (its ports and this container's caches), and the reads
all handlers share: a client's job, and a job as this container saw it moments ago."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.domain.cache import MISSING, ContainerCache
from chalicelib.domain.ids import is_job_id
from chalicelib.domain.model import Job, Principal
from chalicelib.domain.mturk_notifications import Notifier
from chalicelib.domain.ports import (
    AccountStore, BlobStore, CatalogStore, ClientKeys, IdempotencyStore, ItemStore, JobStore,
    LedgerStore, MessageQueue, MTurkRecords, QuoteStore, RequesterKeyStore, ResultStore, WorkerStatsStore,
    Workflow,
)
from chalicelib.domain.webhooks import Webhooks
from chalicelib.errors import NotFound

# Credentials and operator blocks are cached this long per container.
PRINCIPAL_CACHE_SECONDS = 60.0


@dataclass
class Platform:
    """The ports the handlers use, plus this container's small read caches."""

    accounts: AccountStore
    quotes: QuoteStore
    jobs: JobStore
    items: ItemStore
    results: ResultStore
    blobs: BlobStore
    ingest_queue: MessageQueue
    results_queue: MessageQueue
    workflow: Workflow
    stats: WorkerStatsStore
    ledger: LedgerStore
    catalog: CatalogStore
    clock: Callable[[], float] = time.time
    cache_seconds: float = 2.0
    open_registration: bool = False
    rng: random.Random = field(default_factory=random.Random)
    # This container's read caches (principals, jobs, task pools, ...).
    cache: ContainerCache = field(default_factory=ContainerCache)
    # Idempotency-Key store; None runs every request.
    idempotency: IdempotencyStore | None = None
    # Webhook endpoints, deliveries and the event bus; None publishes no events.
    webhooks: Webhooks | None = None
    # Client keys in the API Gateway usage plan (chalicelib.adapters.rate_limits); None: not
    # registered anywhere but here (the local stack).
    client_keys: ClientKeys | None = None
    # Requester access keys of the MTurk-compatible API; None: not configured on this stage.
    requester_keys: RequesterKeyStore | None = None
    # The MTurk-compatible API's records (HIT types, tokens, qualifications, blocks, ...).
    mturk: MTurkRecords | None = None
    # Where MTurk notifications are queued and sent (SNS, SQS); None sends none.
    mturk_notifier: Notifier | None = None

    def now(self) -> float:
        """The current time in epoch seconds."""
        return self.clock()


def client_job(p: Platform, client: Principal, job_id: str, cached: bool = False) -> Job:
    """A job of this client (strongly consistent, or with cached the container's copy: for
    what never changes, as its owner and reward); other clients' jobs are 404."""
    job = None
    if is_job_id(job_id):
        job = cached_job(p, job_id) if cached else p.jobs.get_job(job_id)
    if job is None or job.client_id != client.account_id:
        raise NotFound("no such job", code="job_not_found")
    return job


def cached_job(p: Platform, job_id: str) -> Job | None:
    """A job as this container read it at most cache_seconds ago (None if there is none).

    An entry that expired is read again eventually consistent (half the read units: the
    cache accepts seconds-old state anyway); one this container dropped after writing the
    job is read strongly consistent, so the container acts on its own write at once."""
    now = p.now()
    job = p.cache.jobs.get(job_id, now, p.cache_seconds)
    if job is not MISSING:
        return job
    job = p.jobs.get_job(job_id, consistent=p.cache.jobs.forgotten(job_id))
    if job is not None:
        p.cache.jobs.put(job_id, job, now)
    return job
