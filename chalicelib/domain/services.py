"""Command handlers: plain functions over the ports in a Platform.

Hot paths are written for cost: a lease is one conditional write (candidate items come
from a per-container pool refreshed by one query), a submit is one conditional write and
one SQS message, and counting is one transaction per SQS batch.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from chalicelib.domain import leasing, phases, webhooks
from chalicelib.domain import validation as v
from chalicelib.domain.cache import MISSING, ContainerCache
from chalicelib.domain.answers import matches_gold, smoothed_accuracy, validate_answer
from chalicelib.domain.ids import hash_secret, is_job_id, new_id, new_secret, parse_assignment_id
from chalicelib.domain.jobs import JOB_FIELDS, MAX_INSTRUCTIONS, build_job
from chalicelib.domain.keys import online_model_key, report_key
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CALIBRATION, CANCELLED, CLOSING, DONE, FAILED, INGESTING, PAUSED, PILOT,
    PRODUCTION, REJECTED, TAKES_ANSWERS, Assignment, CountedAnswer, ItemState, Job, NewItem, Principal,
    Quote, StoredAnswer, SubmitReceipt,
)
from chalicelib.domain.ports import (
    AccountStore, BlobStore, CatalogStore, ItemStore, JobStore, LedgerStore, MessageQueue, Page,
    QuoteStore, ResultStore, WorkerRecord, WorkerStatsStore, Workflow,
)
from chalicelib.domain.pricing import price_quote
from chalicelib.domain.redundancy import AdaptiveRedundancy, wants_more
from chalicelib.domain.reviews import settle
from chalicelib.domain.webhooks import Webhooks
from chalicelib.observability import logger
from chalicelib.errors import (
    Conflict, Forbidden, InvalidRequest, NotFound, TransientError, Unauthorized,
)

CLIENT, WORKER, OPERATOR = "client", "worker", "operator"
POOL_REFRESH_SIZE = 100
OPEN_BATCH = 25
PRINCIPAL_CACHE_SECONDS = 60.0
DOWNLOAD_LINK_SECONDS = 900
# An aggregating job is looked at again this long after its execution was started: if the
# start was lost the sweeper starts it (the execution name makes a repeat harmless).
AGGREGATION_CHECK_SECONDS = 900
# A block by the gold rule starts refusing leases this long (uniformly drawn, seconds) after
# the answer that decided it: several tasks later, so it tells no task apart.
BLOCK_DELAY_SECONDS = (60.0, 600.0)
RULE = "rule"
BLOCKED_BY_RULE = "your accuracy on this job's checked tasks is below the job's threshold"


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
    # Idempotency-Key store (chalicelib.adapters.idempotency); None runs every request.
    idempotency: Any = None
    # Webhook endpoints, deliveries and the event bus; None publishes no events.
    webhooks: Webhooks | None = None
    # Client keys in the API Gateway usage plan (chalicelib.adapters.rate_limits); None: not
    # registered anywhere but here (the local stack).
    client_keys: Any = None

    def now(self) -> float:
        """The current time in epoch seconds."""
        return self.clock()


# --- accounts -------------------------------------------------------------------------

def authenticate(p: Platform, secret: str | None, role: str) -> Principal:
    """The principal behind a bearer secret, cached per container; 401/403 otherwise."""
    if not secret:
        raise Unauthorized("missing credentials", code="missing_credentials")
    digest = hash_secret(secret)
    now = p.now()
    principal = p.cache.principals.get(digest, now, PRINCIPAL_CACHE_SECONDS)
    if principal is MISSING:
        principal = p.accounts.principal_for(digest)
        if principal is None:
            raise Unauthorized("unknown or revoked credentials", code="invalid_credentials")
        p.cache.principals.put(digest, principal, now)
    if principal.role != role:
        raise Forbidden(f"this endpoint needs {role} credentials", code="wrong_role")
    return principal


def create_account(p: Platform, role: str, name: str, skills: Iterable[str] = ()
                   ) -> tuple[Principal, str]:
    """A new account and its bearer secret (shown once; only its hash is kept)."""
    prefix = {CLIENT: "ck", WORKER: "wt", OPERATOR: "ok"}[role]
    account_id = new_id({CLIENT: "cli", WORKER: "wrk", OPERATOR: "opr"}[role])
    secret = new_secret(prefix)
    skills = sorted(set(skills))
    p.accounts.create_account(account_id, role, name, skills, hash_secret(secret), p.now())
    if role == CLIENT and p.client_keys is not None:
        p.client_keys.register(account_id, secret)
    return Principal(account_id, role, name, frozenset(skills)), secret


def open_account(p: Platform, body: Any) -> dict[str, Any]:
    """An operator opens a client or operator account; its key is in the answer, once."""
    body = v.require_object(body)
    v.reject_unknown(body, ("role", "name"))
    role = v.choice(body, "role", (CLIENT, OPERATOR))
    name = v.text(body, "name", max_length=200)
    principal, secret = create_account(p, role, name)
    return {"account_id": principal.account_id, "role": role, "name": name, "api_key": secret}


def rotate_credentials(p: Platform, principal: Principal, secret: str) -> str:
    """A new secret for the caller's account; the one they called with stops working at once
    on this container and within a minute on the others (their credential cache)."""
    prefix = {CLIENT: "ck", WORKER: "wt", OPERATOR: "ok"}[principal.role]
    new = new_secret(prefix)
    # A client's new key joins the usage plan before the old one is revoked, so a failure on
    # the way leaves the old key working (and the new one unknown), never neither.
    gateway_key = None
    if principal.role == CLIENT and p.client_keys is not None:
        gateway_key = p.client_keys.register(principal.account_id, new)
    if not p.accounts.rotate(principal.account_id, hash_secret(secret), hash_secret(new), p.now()):
        if gateway_key is not None:
            p.client_keys.remove(gateway_key)
        raise Conflict("this credential was rotated or revoked meanwhile", code="credential_changed")
    p.cache.principals.forget(hash_secret(secret))
    if gateway_key is not None:
        try:
            p.client_keys.remove_others(principal.account_id, keep=gateway_key)
        except Exception:  # noqa: BLE001 (the old key is revoked here: the app refuses it)
            logger.exception("the old key stays in the usage plan",
                             extra={"account_id": principal.account_id})
    return new


def revoke_account(p: Platform, operator: Principal, account_id: str) -> dict[str, Any]:
    """An operator revokes an account's credential (effective within a minute everywhere)."""
    if not p.accounts.revoke(account_id):
        raise NotFound("no such account", code="account_not_found")
    p.cache.principals.clear()
    if p.client_keys is not None:
        p.client_keys.unregister(account_id)
    return {"account_id": account_id, "revoked": True}


def register_worker(p: Platform, body: Any) -> tuple[Principal, str]:
    """Open self-registration of a worker with a name and skills (e.g. languages)."""
    if not p.open_registration:
        raise Forbidden("worker registration is closed on this stage",
                        code="registration_closed")
    body = v.require_object(body)
    v.reject_unknown(body, ("name", "skills"))
    name = v.text(body, "name", max_length=100)
    skills = v.string_list(body, "skills", max_items=50, max_length=64)
    return create_account(p, WORKER, name.strip(), skills)


# --- quotes and jobs --------------------------------------------------------------------

def create_quote(p: Platform, client: Principal, body: Any) -> Quote:
    """Price a spec and keep the quote firm until it expires."""
    quote = price_quote(client.account_id, body, p.now(), p.catalog.get_cohort)
    p.quotes.put_quote(quote)
    return quote


def post_job(p: Platform, client: Principal, body: Any) -> Job:
    """Create a job from a quote and fan its items out through the ingest queue."""
    return post_job_with_callback(p, client, body)[0]


def post_job_with_callback(p: Platform, client: Principal, body: Any
                           ) -> tuple[Job, webhooks.Endpoint | None]:
    """post_job, and with `callback_url` a webhook endpoint for this job's events (its
    signing secret is in the endpoint, to be shown to the client once)."""
    body = v.require_object(body)
    v.reject_unknown(body, JOB_FIELDS + ("callback_url",))
    callback = None
    if "callback_url" in body:
        if p.webhooks is None:
            raise InvalidRequest("webhooks are not available here", field="callback_url")
        callback = webhooks.check_url(body["callback_url"], p.webhooks.config, "callback_url")
        body = {k: value for k, value in body.items() if k != "callback_url"}
    quote_id = v.text(body, "quote_id", max_length=64)
    quote = p.quotes.get_quote(quote_id)
    if quote is None or quote.client_id != client.account_id:
        raise NotFound("no such quote", field="quote_id", code="quote_not_found")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    # The same request again after a crash between writing the job and queueing its items:
    # carry on with the job it wrote (any other use of the quote stays a 409).
    resumed = _resumable_job(p, client, quote, digest)
    if resumed is not None:
        quote = replace(quote, job_id=None)
    job, chunks = build_job(quote, client.account_id, body, p.now())
    job = replace(job, request_digest=digest)
    if resumed is not None:
        job = resumed
    else:
        p.jobs.create_job(job)
    endpoint = None
    if callback is not None and p.webhooks is not None:
        endpoint = webhooks.register(p.webhooks, client, {"url": callback}, p.now(),
                                     job_id=job.job_id)
    try:
        p.ingest_queue.send_many([
            {"job_id": job.job_id, "chunk": index,
             "items": [{"item_id": i.item_id, "data": i.data, "external_id": i.external_id,
                        **({"gold": i.gold, "slots": i.slots} if i.gold else {}),
                        **({"held": True} if i.held else {})}
                       for i in chunk]}
            for index, chunk in enumerate(chunks)
        ])
    except Exception as error:
        # Without all its items the job could never start: undo it and free the quote, so
        # the same request can simply be sent again. Chunks already sent find no job.
        p.jobs.abandon_job(job.job_id, job.quote_id)
        raise TransientError("the items could not be queued; nothing was created, "
                             "send the same request again") from error
    return job, endpoint


def _resumable_job(p: Platform, client: Principal, quote: Quote, digest: str) -> Job | None:
    job = p.jobs.get_job(quote.job_id) if quote.job_id else None
    if job is not None and job.client_id == client.account_id and job.state == INGESTING \
            and job.request_digest == digest:
        return job
    return None


def client_job(p: Platform, client: Principal, job_id: str) -> Job:
    """A job of this client (strongly consistent); other clients' jobs are 404."""
    job = p.jobs.get_job(job_id) if is_job_id(job_id) else None
    if job is None or job.client_id != client.account_id:
        raise NotFound("no such job", code="job_not_found")
    return job


def client_jobs(p: Platform, client: Principal, query: Mapping[str, str]
                ) -> tuple[list[Job], str | None]:
    """A page of the client's jobs, newest first."""
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    return p.jobs.jobs_of_client(client.account_id, _limit(query), query.get("cursor"))


def _limit(query: Mapping[str, str], default: int = 100) -> int:
    return v.page_limit(query, default)


def live_leases(p: Platform, job: Job, max_age: float | None = None) -> int:
    """Leases of the job that have not expired (reads every open item).

    With max_age, a count that old or newer from this container is reused, so a
    client polling progress does not read the items on every call.
    """
    if job.state not in TAKES_ANSWERS:
        return 0
    now = p.now()
    cached = p.cache.leased.get(job.job_id, now, max_age) if max_age is not None else MISSING
    if cached is not MISSING:
        return cached
    return p.cache.leased.put(job.job_id, sum(
        1 for item in p.items.open_items(job.job_id, None, None)
        for lease in item.leases.values() if lease.expires_at > now), now)


def job_progress(p: Platform, job: Job) -> dict[str, int]:
    """Counts for a job: items, live leases, answers counted, items done. Gold items count
    as done from the start: their result is their known answer."""
    return {"items": job.item_count, "leased": live_leases(p, job, max_age=p.cache_seconds),
            "answered": job.answered, "done": job.items_done + job.gold_items,
            "gold": job.gold_items}


def stop_job(p: Platform, client: Principal, job_id: str) -> Job:
    """End a job: no new leases; leased work may still be submitted until its lease ends, then
    what was answered is aggregated. A job paused in calibration ends at once (its pilot
    results stay published)."""
    job = client_job(p, client, job_id)
    now = p.now()
    if job.state == PAUSED:
        if not p.jobs.transition(job.job_id, (PAUSED,), DONE, done_at=now, cancelled_at=now,
                                 record=phases.record(now, job.state, job.phase, DONE, job.phase,
                                                      client.account_id, "stopped by the client")):
            raise Conflict("the job changed state meanwhile; read it again", code="job_not_active")
        webhooks.publish_job_events_safely(p, job.job_id)
        return client_job(p, client, job_id)
    if job.state not in (INGESTING, ACTIVE, CLOSING):
        raise Conflict(f"a job in state '{job.state}' cannot be stopped", code="job_not_active")
    return _close_answering(p, client, job, CANCELLED, "stopped by the client", cancelled_at=now)


def _close_answering(p: Platform, client: Principal, job: Job, to_state: str, reason: str,
                     **changes: Any) -> Job:
    """Stop new leases and aggregate once the live leases have had their time."""
    now = p.now()
    live = live_leases(p, job)
    # Other containers may hand out leases for cache_seconds more, so wait that long too.
    finalize_at = now if live == 0 else min(now + job.lease_seconds + p.cache_seconds,
                                            job.deadline)
    if not p.jobs.transition(job.job_id, (job.state,), to_state, finalize_at=finalize_at,
                             record=phases.record(now, job.state, job.phase, to_state, job.phase,
                                                  client.account_id, reason), **changes):
        raise Conflict("the job changed state meanwhile; read it again", code="job_not_active")
    p.cache.forget_job(job.job_id)
    job = client_job(p, client, job.job_id)
    if live == 0 and job.state == to_state:
        start_aggregation(p, job)
        job = client_job(p, client, job.job_id)
    return job


def promote_job(p: Platform, client: Principal, job_id: str, body: Any) -> Job:
    """Move a job on: a running pilot is closed now (its report follows, then calibration);
    a job in calibration goes to production, with revised instructions if given."""
    job = client_job(p, client, job_id)  # another client's job is 404 whatever the body
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("instructions", "reason"))
    reason = v.text(body, "reason", max_length=500, required=False)
    instructions = v.text(body, "instructions", max_length=MAX_INSTRUCTIONS, required=False)
    if job.phase == PILOT and job.state == ACTIVE:
        if instructions is not None:
            raise Conflict("revise the instructions when promoting from calibration to "
                           "production; this promotion only closes the pilot",
                           field="instructions", code="instructions_too_early")
        return _close_answering(p, client, job, CLOSING,
                                reason or "pilot closed early by the client")
    if job.state != PAUSED or job.phase != CALIBRATION:
        raise Conflict(f"a job in state '{job.state}' (phase '{job.phase}') cannot be promoted",
                       code="job_not_promotable")
    if not to_production(p, job, client.account_id,
                         reason or "promoted by the client after calibration", instructions):
        raise Conflict("the job changed state meanwhile; read it again", code="job_not_promotable")
    return client_job(p, client, job_id)


def to_production(p: Platform, job: Job, by: str, reason: str,
                  instructions: str | None = None) -> bool:
    """Promote a job paused in calibration to production; False if it was no longer there.

    The held items are opened through the ingest queue first (a repeat opens nothing new),
    then the job moves: its next round aggregates every item, the pilot's answers included.
    """
    now = p.now()
    held = p.items.held_item_ids(job.job_id)
    p.ingest_queue.send_many([{"job_id": job.job_id, "open": held[start:start + OPEN_BATCH]}
                              for start in range(0, len(held), OPEN_BATCH)])
    changes: dict[str, Any] = {}
    if instructions is not None and instructions != job.instructions:
        changes = {"instructions": instructions, "instruction_version": job.instruction_version + 1}
        reason += f"; instructions revised to version {job.instruction_version + 1}"
    moved = p.jobs.transition(
        job.job_id, (PAUSED,), ACTIVE, phase=PRODUCTION, round=job.round + 1,
        finalize_at=job.deadline, aggregating_at=None,
        record=phases.record(now, PAUSED, job.phase, ACTIVE, PRODUCTION, by, reason), **changes)
    if not moved:
        return False
    p.cache.forget_job(job.job_id)
    webhooks.publish_job_events_safely(p, job.job_id)
    promoted = p.jobs.get_job(job.job_id)
    if promoted is not None and promoted.items_done >= promoted.round_items:
        start_aggregation(p, promoted)  # nothing was held back: the round is already answered
    return True


def result_page(p: Platform, client: Principal, job_id: str, query: Mapping[str, str]
                ) -> tuple[Job, Page]:
    """A page of a job's results."""
    job = client_job(p, client, job_id)
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    return job, p.results.page(job.job_id, _limit(query), query.get("cursor"))


def result_download(p: Platform, client: Principal, job_id: str) -> tuple[Job, str]:
    """A time-limited link to the whole result set as JSON Lines."""
    job = client_job(p, client, job_id)
    if not job.results_key:
        raise Conflict("results are not published yet", code="results_not_ready")
    return job, p.blobs.download_url(job.results_key, DOWNLOAD_LINK_SECONDS)


def job_report(p: Platform, client: Principal, job_id: str,
               query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The quality report of the job's latest published round, or of `?round=N` (the pilot's
    calibration report stays readable as round 1 after production is published)."""
    job = client_job(p, client, job_id)
    query = query or {}
    v.reject_unknown(query, ("round", "format"), "query.")
    if not job.results_key:
        raise Conflict("the report is made with the results, which are not published yet",
                       code="results_not_ready")
    if "round" not in query:
        return json.loads(p.blobs.get_text(report_key(job.job_id)))
    text = query["round"]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= job.round:
        raise InvalidRequest(f"'round' must be a round of this job (1 to {job.round})",
                             field="round")
    try:
        return json.loads(p.blobs.get_text(report_key(job.job_id, int(text))))
    except NotFound:
        raise NotFound(f"round {text} has no published report", code="report_not_found") from None


# --- worker quality ------------------------------------------------------------------------

def _quality_view(answers: int, correct: int) -> dict[str, Any]:
    return {"gold_answers": answers, "gold_correct": correct,
            "gold_accuracy": round(smoothed_accuracy(correct, answers), 4) if answers else None}


def worker_quality(p: Platform, worker: Principal) -> dict[str, Any]:
    """What a worker sees of their own quality: gold accuracy per job and overall as of each
    job's last published round (so no single answer reveals a gold item), and their blocks."""
    records = p.stats.of_worker(worker.account_id)
    now = p.now()
    # A job appears once a round of it is published (or the worker's block from it has
    # started): listing it at the first gold answer would tell which task was gold.
    jobs = [r for r in records if is_job_id(r.scope)
            and (r.shown_gold_answers is not None or _block_started(r, now))]
    everywhere = next((r for r in records if r.scope == "*"), None)
    shown = [(r.shown_gold_answers or 0, r.shown_gold_correct or 0) for r in jobs]
    return {
        **_quality_view(sum(a for a, _ in shown), sum(c for _, c in shown)),
        "jobs": [{"job_id": r.scope, **_quality_view(r.shown_gold_answers or 0,
                                                      r.shown_gold_correct or 0),
                  "blocked": _block_started(r, now),
                  "blocked_reason": _reason_for_worker(r) if _block_started(r, now) else None}
                 for r in jobs],
        "blocked_everywhere": everywhere is not None and everywhere.blocked_at is not None,
    }


def _block_started(r: WorkerRecord, now: float) -> bool:
    return r.blocked_at is not None and r.blocked_at <= now


def _reason_for_worker(r: WorkerRecord) -> str | None:
    """A block's reason as its worker reads it: a block by the gold rule says which rule, not
    the live figures (those would be feedback on single gold answers)."""
    if r.blocked_reason and r.blocked_reason.endswith(f"(by {RULE})"):
        return BLOCKED_BY_RULE
    return r.blocked_reason


def job_workers(p: Platform, client: Principal, job_id: str) -> list[dict[str, Any]]:
    """Each worker of a job with their live gold record and whether they are blocked."""
    job = client_job(p, client, job_id)
    return [_worker_line(r, job) for r in p.stats.of_job(job.job_id)]


def _worker_line(r: WorkerRecord, job: Job) -> dict[str, Any]:
    return {"worker_id": r.worker_id, **_quality_view(r.gold_answers, r.gold_correct),
            "blocked": r.worker_id in job.blocked_workers, "blocked_reason": r.blocked_reason}


def client_blocks_worker(p: Platform, client: Principal, job_id: str, worker_id: str,
                         body: Any) -> dict[str, Any]:
    """A client blocks a worker from their job by hand (their answers are left out too)."""
    job = client_job(p, client, job_id)
    reason = _reason(body)
    if job.state in (DONE, FAILED):
        raise Conflict("the job has ended", code="job_not_active")
    if worker_id not in {r.worker_id for r in p.stats.of_job(job.job_id)} and \
            not _answered_in(p, job, worker_id):
        raise NotFound("no such worker in this job", code="worker_not_found")
    block_in_job(p, job, worker_id, client.account_id, reason)
    job = client_job(p, client, job_id)
    record = next((r for r in p.stats.of_job(job.job_id) if r.worker_id == worker_id),
                  WorkerRecord(worker_id, job.job_id))
    return _worker_line(record, job)


def _answered_in(p: Platform, job: Job, worker_id: str) -> bool:
    return any(worker_id in item.seen for item in p.items.iter_items(job.job_id))


def _reason(body: Any) -> str:
    body = v.require_object(body if body is not None else {}, "body")
    v.reject_unknown(body, ("reason",))
    return v.text(body, "reason", max_length=500).strip()


def operator_block(p: Platform, operator: Principal, worker_id: str, body: Any,
                   blocked: bool = True) -> dict[str, Any]:
    """An operator blocks a worker everywhere (no tasks from any job; their answers are left
    out of every round aggregated from now on), or lifts the block. Takes effect within a
    minute on every API container."""
    if not blocked:
        p.stats.unblock(worker_id, "*")
    else:
        reason = _reason(body)
        p.stats.mark_blocked(worker_id, "*", f"{reason} (by {operator.account_id})", p.now())
    p.cache.blocked.forget(worker_id)
    record = next((r for r in p.stats.of_worker(worker_id) if r.scope == "*"), None)
    return {"worker_id": worker_id,
            "blocked_everywhere": record is not None and record.blocked_at is not None,
            "blocked_reason": record.blocked_reason if record else None}


# --- ingest -----------------------------------------------------------------------------

def ingest_chunk(p: Platform, message: Mapping[str, Any]) -> None:
    """Write one chunk of a job's items, or open held items for production; a repeated
    message changes nothing."""
    if "open" in message:
        p.items.open_held(message["job_id"], message["open"])
        return
    job = p.jobs.get_job(message["job_id"])
    if job is None:
        return
    if message["chunk"] not in job.ingested_chunks:
        if job.state == INGESTING:
            items = [NewItem(i["item_id"], i["data"], i.get("external_id"), i.get("gold"),
                             bool(i.get("held")), i.get("slots"))
                     for i in message["items"]]
            p.items.put_items(job.job_id, job.redundancy, items)
        job = p.jobs.mark_chunk_ingested(job.job_id, message["chunk"])
        if job is None:  # abandoned meanwhile: its quote was freed and it will never start
            return
    # Also on a repeat: a crash after the last chunk was recorded left the job ingesting.
    if len(job.ingested_chunks) >= job.chunk_count and job.state == INGESTING:
        p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, record=phases.record(
            p.now(), INGESTING, job.phase, ACTIVE, job.phase, "system", "every item ingested"))


# --- leasing ----------------------------------------------------------------------------

def _cached_job(p: Platform, job_id: str) -> Job | None:
    now = p.now()
    job = p.cache.jobs.get(job_id, now, p.cache_seconds)
    if job is not MISSING:
        return job
    job = p.jobs.get_job(job_id)
    if job is not None:
        p.cache.jobs.put(job_id, job, now)
    return job


def _active_jobs(p: Platform) -> list[Job]:
    now = p.now()
    jobs = p.cache.active.get(ACTIVE, now, p.cache_seconds)
    if jobs is not MISSING:
        return jobs
    jobs = p.cache.active.put(ACTIVE, sorted(p.jobs.jobs_in_state(ACTIVE),
                                             key=lambda job: job.created_at), now)
    for job in jobs:
        p.cache.jobs.put(job.job_id, job, now)
    p.cache.keep_pools(job.job_id for job in jobs)
    return jobs


def available_jobs(p: Platform, worker: Principal) -> list[Job]:
    """Active jobs the worker qualifies for and is not blocked from, oldest first."""
    if blocked_everywhere(p, worker.account_id):
        return []
    now = p.now()
    return [job for job in _active_jobs(p) if job.takes_leases(now)
            and leasing.qualifies(worker, job) and not job.refuses(worker.account_id, now)]


def lease_query(query: Mapping[str, str]) -> str | None:
    """The job id a worker asked for, if any; unknown parameters are refused."""
    v.reject_unknown(query, ("job_id",))
    return query.get("job_id")


def blocked_everywhere(p: Platform, worker_id: str) -> bool:
    """Whether an operator has blocked the worker (cached per container like credentials)."""
    now = p.now()
    blocked = p.cache.blocked.get(worker_id, now, PRINCIPAL_CACHE_SECONDS)
    if blocked is MISSING:
        blocked = p.cache.blocked.put(
            worker_id, worker_id in p.stats.blocked_everywhere([worker_id]), now)
    return blocked


def lease_next_task(p: Platform, worker: Principal, job_id: str | None = None
                    ) -> Assignment | None:
    """Lease one task the worker qualifies for and has not seen; None when there is none."""
    now = p.now()
    if blocked_everywhere(p, worker.account_id):
        raise Forbidden("your account is blocked from taking tasks; contact the operator",
                        code="worker_blocked")
    if job_id is not None:
        job = _cached_job(p, job_id) if is_job_id(job_id) else None
        if job is None:
            raise NotFound("no such job", field="job_id", code="job_not_found")
        if not leasing.qualifies(worker, job):
            raise Forbidden("you do not hold the skills (or scores) this job requires",
                            code="not_qualified",
                            details={"required_skills": list(job.required_skills),
                                     "min_skill_scores": job.min_skill_scores})
        if job.refuses(worker.account_id, now):
            raise Forbidden("you are blocked from this job", code="blocked_from_job")
        candidates = [job]
    else:
        candidates = [job for job in _active_jobs(p) if leasing.qualifies(worker, job)
                      and not job.refuses(worker.account_id, now)]
    for job in candidates:
        if job.takes_leases(now):
            assignment = _lease_in_job(p, job, worker.account_id, now)
            if assignment is not None:
                return assignment
    return None


def _slots_only(item: ItemState) -> ItemState:
    """What the pool keeps of an item: its slots (and whether it is gold), not its data or answers."""
    return replace(item, data={}, answers={})


def _plans(p: Platform, job: Job, snapshot: list[ItemState], worker_id: str, now: float
           ) -> list[leasing.LeasePlan]:
    """Plans to try, in order.

    Gold is tried first on a gold_rate share of leases, and only while the worker still has
    regular work: a worker is never served gold alone. Otherwise the order is leasing's.
    """
    regular = leasing.candidate_plans([i for i in snapshot if i.gold is None], worker_id, now, p.rng)
    if not regular:
        return []
    if p.rng.random() < job.quality.get("gold_rate", 0.0):
        gold = leasing.candidate_plans([i for i in snapshot if i.gold is not None], worker_id,
                                       now, p.rng, limit=2)
        return gold + regular
    return regular


def _lease_in_job(p: Platform, job: Job, worker_id: str, now: float) -> Assignment | None:
    pool = p.cache.pool(job.job_id)
    if p.cache.nothing_for.get((worker_id, job.job_id), now, p.cache_seconds) is not MISSING:
        return None  # a worker polling an exhausted job does not re-read its items each time
    for refreshed in (False, True):
        if refreshed:
            fresh = p.items.open_items(job.job_id, worker_id, POOL_REFRESH_SIZE)
            with p.cache.lock:
                if len(pool) > 4 * POOL_REFRESH_SIZE:
                    pool.clear()
                pool.update({item.item_id: item for item in fresh})
            if not fresh:
                p.cache.nothing_for.put((worker_id, job.job_id), None, now)
                return None
        with p.cache.lock:
            snapshot = list(pool.values())
        # Gold and regular tasks take the same single write: gold slots are paid up front.
        for plan in _plans(p, job, snapshot, worker_id, now):
            lease = leasing.new_lease(job, plan.item_id, now)
            outcome = p.items.try_lease(job.job_id, plan.item_id, worker_id, lease,
                                        plan.reclaim_from, now)
            with p.cache.lock:
                if outcome.item is None or outcome.item.complete:
                    pool.pop(plan.item_id, None)
                else:
                    pool[plan.item_id] = _slots_only(outcome.item)
            if outcome.ok and outcome.item is not None:
                return Assignment(lease.assignment_id, job, outcome.item, lease)
    return None


# --- submit and release -------------------------------------------------------------------

def _worker_item(p: Platform, assignment_id: str) -> tuple[Job, str, float, int]:
    job_id, item_id, leased_at, version = parse_assignment_id(assignment_id)
    job = _cached_job(p, job_id)
    if job is None:
        raise NotFound("no such assignment", code="assignment_not_found")
    return job, item_id, leased_at, version


def _receipt(job: Job, item: ItemState, worker_id: str, duplicate: bool) -> SubmitReceipt:
    stored = item.answers[worker_id]
    # Only the answer that filled the item's last slot announces it complete, on the first
    # submit and on every retry alike, so counting closes each item exactly once. A gold
    # item is never part of a round's count (its answer is known).
    completes = item.gold is None and stored.ordinal is not None \
        and stored.ordinal + 1 == item.redundancy
    return SubmitReceipt(stored.assignment_id, job.job_id, stored.submitted_at, job.reward_cents,
                         completes, duplicate)


def submit_answer(p: Platform, worker: Principal, assignment_id: str, body: Any
                  ) -> SubmitReceipt:
    """Accept an answer for a live lease exactly once; a retry returns the first receipt."""
    job, item_id, leased_at, version = _worker_item(p, assignment_id)
    answer = validate_answer(job, body)
    now = p.now()
    worker_id = worker.account_id
    # The version of the instructions the worker was shown when leasing (it is in the id).
    stored = StoredAnswer(assignment_id, answer, now, leased_at, instruction_version=version)
    outcome = p.items.try_submit(job.job_id, item_id, worker_id, stored, now)
    item = outcome.item
    fate = "accepted" if outcome.ok and item else _fate(item, worker_id, assignment_id)
    if fate == "leased":
        raise Conflict("the lease on this assignment has expired; the answer was not counted",
                       code="lease_expired")
    if fate not in ("accepted", "submitted") or item is None:
        _raise_gone(item, worker_id, assignment_id)
    receipt = _receipt(job, item, worker_id, duplicate=fate == "submitted")
    message = {"job_id": job.job_id, "item_id": item_id, "worker_id": worker_id,
               "assignment_id": assignment_id, "item_complete": receipt.item_complete,
               "ordinal": item.answers[worker_id].ordinal}
    if item.gold is not None:
        # Scored by the counting consumer, so a gold submit makes the same writes as any other.
        message["gold_correct"] = matches_gold(job, item.answers[worker_id].answer, item.gold)
    # Sent on every accepted submit, retries included: counting is idempotent on the
    # assignment, and a retry repairs a message lost after the first write.
    p.results_queue.send(message)
    return receipt


def score_gold(p: Platform, job: Job, worker_id: str, assignment_id: str, correct: bool
               ) -> None:
    """Score a gold answer once per assignment (the counting consumer does it, with what the
    submit judged) and apply the job's rule: at least block_after gold answers with smoothed
    accuracy below block_below blocks the worker from the job. The block starts refusing
    their leases after a random delay, so its moment does not point at the gold task that
    decided it. A redelivered message applies the rule again (it may have been lost)."""
    totals = p.stats.record_gold(worker_id, job.job_id, assignment_id, correct)
    if totals is None:
        record = next((r for r in p.stats.of_worker(worker_id) if r.scope == job.job_id), None)
        if record is None:
            return
        totals = record.gold_answers, record.gold_correct
    answers, correct_answers = totals
    after, below = int(job.quality.get("block_after", 0)), job.quality.get("block_below", 0.0)
    accuracy = smoothed_accuracy(correct_answers, answers)
    if after and answers >= after and accuracy < below and worker_id not in job.blocked_workers:
        delay = p.rng.uniform(BLOCK_DELAY_SECONDS[0], BLOCK_DELAY_SECONDS[1])
        block_in_job(p, job, worker_id, RULE,
                     f"gold accuracy {accuracy:.2f} after {answers} gold answers is below {below}",
                     starts_at=p.now() + delay)


def block_in_job(p: Platform, job: Job, worker_id: str, by: str, reason: str,
                 starts_at: float | None = None) -> None:
    """Block a worker from a job: their answers are left out of its aggregation (their items
    get replacement slots before the round closes) and, from starts_at (default now), they
    get no more of its tasks."""
    now = p.now()
    p.jobs.block_worker(job.job_id, worker_id, starts_at)
    p.stats.mark_blocked(worker_id, job.job_id, f"{reason} (by {by})",
                         now if starts_at is None else max(now, starts_at))
    p.cache.forget_job(job.job_id)


def release_assignment(p: Platform, worker: Principal, assignment_id: str) -> None:
    """Give a leased task back so another worker can take the slot."""
    job, item_id, _, _ = _worker_item(p, assignment_id)
    outcome = p.items.try_release(job.job_id, item_id, worker.account_id, assignment_id)
    if outcome.ok:
        return
    if _fate(outcome.item, worker.account_id, assignment_id) == "submitted":
        raise Conflict("this assignment was already submitted", code="already_submitted")
    _raise_gone(outcome.item, worker.account_id, assignment_id)


def _fate(item: ItemState | None, worker_id: str, assignment_id: str) -> str:
    """What became of an assignment: 'submitted', 'leased', 'gone' or 'unknown'.

    A worker leases an item at most once, so if they hold a lease or an answer under
    another id, or never saw the item, this id was never theirs.
    """
    if item is None:
        return "unknown"
    answer = item.answers.get(worker_id)
    lease = item.leases.get(worker_id)
    if answer is not None:
        return "submitted" if answer.assignment_id == assignment_id else "unknown"
    if lease is not None:
        return "leased" if lease.assignment_id == assignment_id else "unknown"
    return "gone" if worker_id in item.seen else "unknown"


def _raise_gone(item: ItemState | None, worker_id: str, assignment_id: str) -> NoReturn:
    if _fate(item, worker_id, assignment_id) == "gone":
        raise Conflict("this assignment is no longer yours (expired or released)",
                       code="assignment_not_active")
    raise NotFound("no such assignment", code="assignment_not_found")


# --- counting and the aggregation trigger -------------------------------------------------

def count_answers(p: Platform, messages: Iterable[Mapping[str, Any]]) -> None:
    """Count announced answers per job (idempotent) and start aggregation when a job is done."""
    by_job: dict[str, dict[str, CountedAnswer]] = {}
    ordinals: dict[str, int | None] = {}
    gold: dict[str, bool] = {}  # assignment id -> whether the gold answer was right
    repeats = set()
    for m in messages:
        if "gold_correct" in m:
            gold[m["assignment_id"]] = bool(m["gold_correct"])
        answer = CountedAnswer(m["job_id"], m["item_id"], m["worker_id"], m["assignment_id"],
                               bool(m["item_complete"]))
        batch = by_job.setdefault(answer.job_id, {})
        if answer.assignment_id in batch:
            repeats.add(answer.job_id)
        batch[answer.assignment_id] = answer
        ordinals[answer.assignment_id] = m.get("ordinal")
    for job_id, unique in by_job.items():
        answers = list(unique.values())
        cached = _cached_job(p, job_id)
        if cached is not None and cached.adaptive:
            answers = [adapt(p, cached, a, ordinals[a.assignment_id]) if a.item_complete else a
                       for a in answers]
        due = None if cached is None else p.now() + cached.auto_approve_seconds
        new = p.jobs.record_counted(job_id, answers, review_due_at=due)
        for a in answers:
            if a.assignment_id in gold and cached is not None:
                score_gold(p, cached, a.worker_id, a.assignment_id, gold[a.assignment_id])
        if cached is not None and cached.adaptive and new:
            refit_online_model(p, job_id, new)
        if cached is not None and p.webhooks is not None and not cached.budget_alerted and \
                webhooks.budget_nearly_spent(replace(cached, answered=cached.answered + new)):
            fresh = p.jobs.get_job(job_id)
            if fresh is not None:
                webhooks.check_budget(p, fresh)
        if job_id in repeats or new < len(answers) or any(a.item_complete for a in answers):
            job = p.jobs.get_job(job_id)
            if job is not None and job.state in TAKES_ANSWERS and job.items_done >= job.round_items:
                if replace_left_out(p, job) == 0:
                    # Only if every item is still done: another consumer may have reopened one.
                    start_aggregation(p, job, require_done=True)


# --- adaptive redundancy -----------------------------------------------------------------

def _online_model(p: Platform, job: Job) -> Any:
    """The job's last online model, or None before its first refit (cached per container
    until the next refit is due)."""
    # numpy: loaded only when an adaptive job's answer is counted, never by the API routes.
    from chalicelib.domain.adaptive import OnlineModel

    model = p.cache.models.get(job.job_id, p.now(), p.cache_seconds)
    if model is not MISSING:
        return model
    try:
        model = OnlineModel.from_dict(json.loads(p.blobs.get_text(online_model_key(job.job_id))))
    except NotFound:
        model = None
    return p.cache.models.put(job.job_id, model, p.now())


def adapt(p: Platform, job: Job, answer: CountedAnswer, ordinal: int | None) -> CountedAnswer:
    """For an answer that filled its item's last slot: if the item's confidence is still below
    the job's target (and it has fewer than max answers), open one more slot, paid from the
    pool, before the answer is counted, so the item is not counted complete. Idempotent: a
    redelivered answer finds the slot already added and is counted as not completing."""
    from chalicelib.domain.aggregation import vote

    item = p.items.get_item(job.job_id, answer.item_id)
    if item is None or ordinal is None or item.gold is not None:
        return answer
    if ordinal + 1 < item.redundancy:  # a slot was added for this answer before
        return replace(answer, item_complete=False)
    policy = AdaptiveRedundancy(**job.adaptive)
    left_out = left_out_workers(p, job, item.answers)
    votes = [(worker, vote(a.answer)) for worker, a in item.answers.items()
             if not is_left_out(a, worker, left_out)]
    model = _online_model(p, job)
    confidence = model.confidence(votes) if model is not None else None
    if not wants_more(policy, item.answer_count, confidence):
        return answer
    if not p.jobs.reserve(job.job_id, job.reward_cents):
        return answer  # the budget has no more: the item is done
    try:
        extended = p.items.extend(job.job_id, item.item_id, item.redundancy)
    except Exception:
        p.jobs.refund(job.job_id, job.reward_cents)
        raise
    if extended:
        return replace(answer, item_complete=False)
    p.jobs.refund(job.job_id, job.reward_cents)
    now = p.items.get_item(job.job_id, item.item_id)
    return replace(answer, item_complete=False) if now and ordinal + 1 < now.redundancy else answer


def refit_online_model(p: Platform, job_id: str, new: int) -> None:
    """Refit the job's online model when the answers just counted cross a multiple of
    refit_every(the job's most answers); the fit is the aggregation's default model on
    every answer so far (left-out answers excluded, gold clamped)."""
    # numpy: loaded only when an adaptive job's model is refitted, never by the API routes.
    from chalicelib.domain.adaptive import OnlineModel, refit_every
    from chalicelib.domain.aggregation.categorical import default_model
    from chalicelib.domain.aggregation import vote

    job = p.jobs.get_job(job_id)
    if job is None:
        return
    every = refit_every((job.item_count - job.gold_items) * int(job.adaptive["max"]))
    mark = job.answered // every
    if mark == 0 or not p.jobs.claim_refit(job_id, mark):
        return
    items: list[str] = []
    workers: list[str] = []
    labels: list[str] = []
    gold: dict[str, str] = {}
    everything = list(p.items.iter_items(job_id))
    left_out = left_out_workers(p, job, {w for item in everything for w in item.answers})
    for item in everything:
        if item.gold is not None:
            gold[item.item_id] = item.gold["label"]
        for worker, answer in item.answers.items():
            if not is_left_out(answer, worker, left_out):
                items.append(item.item_id)
                workers.append(worker)
                labels.append(vote(answer.answer))
    if not items:
        return
    model = default_model(label_order=job.answer_schema["labels"]).fit(items, workers, labels,
                                                                       gold=gold)
    p.blobs.put_text(online_model_key(job_id), json.dumps(OnlineModel.from_fit(model).to_dict()),
                     "application/json")
    p.cache.models.forget(job_id)


def left_out_workers(p: Platform, job: Job, workers: Iterable[str]) -> set[str]:
    """Those of the workers whose answers the job leaves out: blocked from it, or everywhere."""
    workers = set(workers)
    return (workers & job.blocked_workers) | p.stats.blocked_everywhere(workers - job.blocked_workers)


def is_left_out(answer: StoredAnswer, worker_id: str, left_out: set[str]) -> bool:
    """Whether an accepted answer stays out of aggregation: rejected, or by a blocked worker."""
    return worker_id in left_out or (answer.review or {}).get("status") == REJECTED


def release_leftovers(p: Platform, job: Job) -> int:
    """When a job has ended: the money held for replacements and the gold slots nobody
    answered (free, or held by an expired lease) go back to the pool, where the client's
    figures show them unspent and bonuses may use them; return the cents released.
    A live gold lease keeps its slot: its answer may still come."""
    now = p.now()
    released = p.jobs.release_held(job.job_id)
    if job.gold_items:
        for item in p.items.iter_items(job.job_id):
            if item.gold is None:
                continue
            expired = [w for w, lease in item.leases.items() if lease.expires_at <= now]
            if item.free or expired:
                released += p.items.release_gold_slots(job.job_id, item.item_id, item.free,
                                                       expired, now, job.reward_cents)
    return released


def replace_left_out(p: Platform, job: Job, items: Iterable[ItemState] | None = None) -> int:
    """Before a round closes, give each item as many new slots as it has answers left out
    (rejected by the client, or by workers blocked from the job or everywhere), paid from the
    job's pool; return how many items were reopened.

    A blocked worker's answers nobody reviewed are rejected here with the block as the reason,
    which gives their rewards back to the pool for the replacements. When the pool runs dry,
    the rest are aggregated without replacements.
    """
    if job.state != ACTIVE:
        return 0  # a stopped or closing job takes no new leases: nobody could fill them
    items = [item for item in (p.items.iter_items(job.job_id) if items is None else items)
             if item.gold is None and not item.held]
    if not job.blocked_workers and not job.rejected_answers:
        candidates = {w for item in items for w in item.answers}
        if not p.stats.blocked_everywhere(candidates):
            return 0
    left_out = left_out_workers(p, job, {w for item in items for w in item.answers})
    reopened = 0
    for item in items:
        missing = 0
        for worker, answer in item.answers.items():
            if not is_left_out(answer, worker, left_out):
                continue
            missing += 1
            if answer.review is None:
                settle(p, job, item, worker, answer, REJECTED,
                       "left out: the worker was blocked", "rule")
        missing -= item.replaced
        if missing <= 0:
            continue
        cents = missing * job.reward_cents
        # The rejected answers' rewards were held for this; the pool makes up the rest.
        source = next((s for s in ("held", "pool") if p.jobs.reserve(job.job_id, cents, s)), None)
        if source is None:
            break
        if p.items.add_slots(job.job_id, item.item_id, missing, item.replaced):
            reopened += 1
        else:
            p.jobs.refund(job.job_id, cents, source)
    if reopened:
        p.cache.jobs.forget(job.job_id)
    return reopened


def start_aggregation(p: Platform, job: Job, require_done: bool = False) -> None:
    """Move the job to aggregating, then start its round's execution once.

    The state moves first so that stages always find the job aggregating; if the start
    is lost after that, the sweeper starts it again (the execution name makes a repeat
    harmless). With require_done the move also needs every item of the round done, so a
    round whose item was just reopened (a replacement slot) keeps taking answers.
    """
    now = p.now()
    moved = p.jobs.transition(
        job.job_id, TAKES_ANSWERS, AGGREGATING, aggregating_at=now,
        finalize_at=now + AGGREGATION_CHECK_SECONDS, expect_round=job.round,
        expect_items_done=job.round_items if require_done else None,
        record=phases.record(now, job.state, job.phase, AGGREGATING, job.phase,
                             "system", f"round {job.round} is being aggregated"))
    p.cache.jobs.forget(job.job_id)
    if not moved:
        current = p.jobs.get_job(job.job_id)
        if current is None or current.state != AGGREGATING or current.round != job.round:
            return
    p.workflow.start(f"{job.job_id}-r{job.round}", {"job_id": job.job_id, "round": job.round})


def finalize_due_jobs(p: Platform) -> list[str]:
    """The sweeper: start aggregation for jobs past their deadline or whose cancellation has
    run out, start again any whose start was lost, and fail jobs whose items never arrived."""
    now = p.now()
    started = []
    for state in (ACTIVE, CANCELLED, CLOSING):
        for job in p.jobs.jobs_in_state(state, finalize_before=now):
            start_aggregation(p, job)
            started.append(job.job_id)
    for job in p.jobs.jobs_in_state(AGGREGATING, finalize_before=now):
        p.jobs.transition(job.job_id, (AGGREGATING,), AGGREGATING,
                          finalize_at=now + AGGREGATION_CHECK_SECONDS)
        p.workflow.start(f"{job.job_id}-r{job.round}", {"job_id": job.job_id, "round": job.round})
        started.append(job.job_id)
    for job in p.jobs.jobs_in_state(INGESTING, finalize_before=now):
        p.jobs.transition(job.job_id, (INGESTING,), FAILED,
                          error="its items were not all ingested before the deadline",
                          record=phases.record(now, INGESTING, job.phase, FAILED, job.phase,
                                               "system", "items not ingested by the deadline"))
    return started
