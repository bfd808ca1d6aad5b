"""A client's jobs: quotes, posting (and ingesting the items), progress, stopping,
promotion from calibration to production, results and reports."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chalicelib.domain import phases, progress, webhooks
from chalicelib.domain import validation as v
from chalicelib.domain.cache import MISSING
from chalicelib.domain.ids import random_item_id
from chalicelib.domain.jobs import JOB_FIELDS, MAX_INSTRUCTIONS, build_job, parse_items_from
from chalicelib.domain.keys import report_key, results_csv_key
from chalicelib.domain.model import (
    ACTIVE, CALIBRATION, CANCELLED, CLOSING, DONE, INGESTING, PAUSED, PILOT,
    TAKES_ANSWERS, Job, NewItem, Principal, Quote,
)
from chalicelib.domain.ports import Page
from chalicelib.domain.pricing import price_quote
from chalicelib.errors import Conflict, InvalidRequest, NotFound, TransientError
from chalicelib.handlers import uploads
from chalicelib.handlers.platform import Platform, client_job
from chalicelib.handlers.rounds import (
    left_out_page, open_held_page, start_aggregation, to_production,
)

DOWNLOAD_LINK_SECONDS = 900
DOWNLOAD_FORMATS = ("jsonl", "csv")


def create_quote(p: Platform, client: Principal, body: Any) -> Quote:
    """Price a spec and keep the quote firm until it expires."""
    quote = price_quote(client.account_id, body, p.now(), p.catalog.get_cohort)
    p.quotes.put_quote(quote)
    return quote


def post_job(p: Platform, client: Principal, body: Any) -> Job:
    """Create a job from a quote and fan its items out through the ingest queue (items from
    an upload: one planner message, which queues the file's byte ranges)."""
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
    upload_id = parse_items_from(body)
    upload = None if upload_id is None else uploads.find_upload(p, client, upload_id)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    # The same request again after a crash between writing the job and queueing its items:
    # carry on with the job it wrote (any other use of the quote stays a 409).
    resumed = _resumable_job(p, client, quote, digest)
    if resumed is not None:
        quote = replace(quote, job_id=None)
    job, chunks = build_job(quote, client.account_id, body, p.now(), upload)
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
        p.ingest_queue.send_many([uploads.plan_message(job)] if job.upload else [
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


def client_jobs(p: Platform, client: Principal, query: Mapping[str, str]
                ) -> tuple[list[Job], str | None]:
    """A page of the client's jobs, newest first."""
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    return p.jobs.jobs_of_client(client.account_id, v.page_limit(query, 100), query.get("cursor"))


def live_leases(p: Platform, job: Job, max_age: float | None = None) -> tuple[int, bool]:
    """Leases of the job that have not ended, and whether that is an estimate: counted from
    one listing of the task pool when its open items fit in one (progress.EXACT_ENTRIES),
    else estimated from a few samples of it (each a listing from a random item id on)
    scaled up to the open items its counters give. A handful of reads at any size.

    With max_age, a count that old or newer from this container is reused, so a
    client polling progress does not list the pool on every call.
    """
    if job.state not in TAKES_ANSWERS:
        return 0, False
    now = p.now()
    cached = p.cache.leased.get(job.job_id, now, max_age) if max_age is not None else MISSING
    if cached is not MISSING:
        return cached
    return p.cache.leased.put(job.job_id, _count_leases(p, job, now), now)


def _count_leases(p: Platform, job: Job, now: float) -> tuple[int, bool]:
    open_count = progress.open_items(job)
    leased, entries = 0.0, 0
    if open_count <= progress.EXACT_ENTRIES:
        whole = p.items.live_leases(job.job_id, now, progress.EXACT_ENTRIES,
                                    reads=progress.LEASE_READS)
        if whole.complete:
            return round(whole.leased), not whole.exact
        leased, entries = whole.leased, whole.entries  # more than the counters said
    for _ in range(progress.SAMPLES):
        start = random_item_id(p.rng, job.id_space)
        sample = p.items.live_leases(job.job_id, now, progress.SAMPLE_ENTRIES, start,
                                     reads=progress.LEASE_READS)
        leased, entries = leased + sample.leased, entries + sample.entries
    return progress.scaled(leased, entries, open_count), True


def job_progress(p: Platform, job: Job) -> dict[str, Any]:
    """Counts for a job: items, live leases (`leased_estimated` when estimated from samples
    of a large pool), answers counted, items done. Gold items count as done from the
    start: their result is their known answer."""
    leased, estimated = live_leases(p, job, max_age=p.cache_seconds)
    return {"items": job.item_count, "leased": leased, "leased_estimated": estimated,
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
    leased, estimated = live_leases(p, job)
    # Unless no lease is surely out, wait for them to end; other containers may hand out
    # leases for cache_seconds more, so wait that long too.
    live = leased > 0 or estimated
    finalize_at = now if not live else min(now + job.lease_seconds + p.cache_seconds,
                                            job.deadline)
    if not p.jobs.transition(job.job_id, (job.state,), to_state, finalize_at=finalize_at,
                             record=phases.record(now, job.state, job.phase, to_state, job.phase,
                                                  client.account_id, reason), **changes):
        raise Conflict("the job changed state meanwhile; read it again", code="job_not_active")
    p.cache.forget_job(job.job_id)
    job = client_job(p, client, job.job_id)
    if not live and job.state == to_state:
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


def result_page(p: Platform, client: Principal, job_id: str, query: Mapping[str, str]
                ) -> tuple[Job, Page]:
    """A page of a job's results."""
    job = client_job(p, client, job_id)
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    return job, p.results.page(job.job_id, v.page_limit(query, 100), query.get("cursor"),
                               job.id_space)


def result_download(p: Platform, client: Principal, job_id: str,
                    query: Mapping[str, str] | None = None) -> tuple[Job, str, str]:
    """A time-limited link to the whole result set as JSON Lines (`?format=jsonl`, the
    default) or CSV (`?format=csv`): (job, format, link)."""
    job = client_job(p, client, job_id)
    query = query or {}
    v.reject_unknown(query, ("format",), "query.")
    fmt = v.choice(query, "format", DOWNLOAD_FORMATS, default="jsonl")
    if not job.results_key:
        raise Conflict("results are not published yet", code="results_not_ready")
    key = job.results_key
    if fmt == "csv":
        key = results_csv_key(job.job_id)
        if not p.blobs.exists(key):
            raise Conflict("this job's results were published before CSV downloads were made; "
                           "download them as JSON Lines (format=jsonl)", field="format",
                           code="csv_not_published")
    return job, fmt, p.blobs.download_url(key, DOWNLOAD_LINK_SECONDS)


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


def ingest_chunk(p: Platform, message: Mapping[str, Any]) -> None:
    """Write one chunk of a job's items, open a page of held items for production, or run a
    page of the pass that replaces left-out answers before a round closes; a repeated
    message changes nothing twice."""
    if "open_range" in message:
        open_held_page(p, message)
        return
    if "left_out" in message:
        left_out_page(p, message)
        return
    if "open" in message:  # queued before held items were opened a page at a time
        p.items.open_held(message["job_id"], message["open"])
        return
    if "plan" in message:
        uploads.plan_ranges(p, message)
        return
    if "range" in message:
        uploads.ingest_range(p, message)
        return
    job = p.jobs.get_job(message["job_id"])
    if job is None or job.state != INGESTING:
        return  # abandoned (its quote was freed), or every chunk is in already
    items = [NewItem(i["item_id"], i["data"], i.get("external_id"), i.get("gold"),
                     bool(i.get("held")), i.get("slots"))
             for i in message["items"]]
    if p.items.put_chunk(job.job_id, job.redundancy, items):
        job = p.jobs.get_job(job.job_id) or job
    # Also on a repeat: a crash after the last chunk was counted left the job ingesting.
    if job.chunks_written >= job.chunk_count and job.state == INGESTING:
        p.jobs.transition(job.job_id, (INGESTING,), ACTIVE, record=phases.record(
            p.now(), INGESTING, job.phase, ACTIVE, job.phase, "system", "every item ingested"))
