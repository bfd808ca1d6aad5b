"""Client API: quotes, jobs, progress, results, cancellation."""
from __future__ import annotations

from collections.abc import Mapping

from chalice import Blueprint, Response

from chalicelib.api.common import client_secret, idempotent, json_body, json_errors
from chalicelib.api.report_page import render
from chalicelib.api.views import (
    cohort_view, endpoint_view, entry_view, job_view, quote_view, review_view,
)
from chalicelib.deps import platform
from chalicelib.domain.model import APPROVED, CLIENT, Principal, REJECTED
from chalicelib.errors import Conflict
from chalicelib.handlers import (
    accounts, jobs, payments, qualifications, quality, requester_keys, uploads,
)
from chalicelib.handlers.platform import client_job

bp = Blueprint(__name__)


def _client() -> Principal:
    return accounts.authenticate(platform(), client_secret(bp.current_request), CLIENT)


@bp.route("/quotes", methods=["POST"])
@json_errors
def create_quote() -> Response:
    """Price a job spec; the quote is firm until it expires."""
    client = _client()
    request = bp.current_request
    return idempotent(bp, client.account_id, lambda: (201, quote_view(
        jobs.create_quote(platform(), client, json_body(request)))))


@bp.route("/uploads", methods=["POST"])
@json_errors
def create_upload() -> Response:
    """An upload target for an item file: {"format": "jsonl"|"csv", "bytes": N} gets a
    presigned PUT url, or above 64 MiB (or with "multipart": true) a multipart upload: its
    part size and presigned part URLs; a job names the upload with {"items_from":
    {"upload_id"}}."""
    client = _client()
    request = bp.current_request
    return idempotent(bp, client.account_id, lambda: (201, uploads.create_upload(
        platform(), client, json_body(request))))


@bp.route("/uploads/{upload_id}", methods=["GET"])
@json_errors
def get_upload(upload_id: str) -> dict:
    """Where an upload stands: a multipart upload's parts S3 holds (number, ETag, size) and
    those missing, so a client resumes with the rest; or that it is complete."""
    return uploads.upload_status(platform(), _client(), upload_id)


@bp.route("/uploads/{upload_id}/parts", methods=["POST"])
@json_errors
def upload_part_urls(upload_id: str) -> Response:
    """Presigned URLs for the parts of a multipart upload named in {"parts": [1, 2, ...]}
    (at most 100 a request)."""
    client = _client()
    request = bp.current_request
    return idempotent(bp, client.account_id, lambda: (200, uploads.part_urls(
        platform(), client, upload_id, json_body(request))))


@bp.route("/uploads/{upload_id}/complete", methods=["POST"])
@json_errors
def complete_upload(upload_id: str) -> Response:
    """Join a multipart upload's parts into the file a job names: every part must be there
    (ETags from {"parts": [{"part_number", "etag"}]}, or those S3 holds)."""
    client = _client()
    request = bp.current_request
    body = json_body(request) if request.raw_body else None
    return idempotent(bp, client.account_id, lambda: (200, uploads.complete_upload(
        platform(), client, upload_id, body)))


@bp.route("/uploads/{upload_id}", methods=["DELETE"])
@json_errors
def abort_upload(upload_id: str) -> dict:
    """Abort a multipart upload in progress; its parts are dropped."""
    return uploads.abort_upload(platform(), _client(), upload_id)


@bp.route("/jobs", methods=["POST"])
@json_errors
def create_job() -> Response:
    """Post a job from a quote; its items are ingested in the background."""
    client = _client()
    request = bp.current_request

    body = json_body(request)

    def create() -> tuple[int, dict]:
        job, callback = jobs.post_job_with_callback(platform(), client, body)
        view = job_view(job, blocked=[])
        if callback is not None:
            view["callback"] = endpoint_view(callback, with_secret=True)
        return 202, view

    if isinstance(body, dict) and "callback_url" in body:
        # Not kept for Idempotency-Key replays (the answer holds the callback's secret); a
        # repeat of the same body while the job ingests resumes it anyway.
        status, view = create()
        return Response(body=view, status_code=status)
    return idempotent(bp, client.account_id, create)


@bp.route("/jobs", methods=["GET"])
@json_errors
def list_jobs() -> dict:
    """The client's jobs, newest first."""
    client = _client()
    query: Mapping[str, str] = bp.current_request.query_params or {}
    page, cursor = jobs.client_jobs(platform(), client, query)
    return {"jobs": [job_view(job) for job in page], "next_cursor": cursor}


@bp.route("/jobs/{job_id}", methods=["GET"])
@json_errors
def get_job(job_id: str) -> dict:
    """A job's state, counts and spend against its budget."""
    client = _client()
    p = platform()
    job = client_job(p, client, job_id)
    return job_view(job, jobs.job_progress(p, job), quality.blocked_workers(p, job.job_id))


@bp.route("/jobs/{job_id}/ingest", methods=["GET"])
@json_errors
def job_ingest(job_id: str) -> dict:
    """How the job's items went in: for an uploaded file, its lines, items and bad lines by
    line number (the first 100 listed, all counted)."""
    return uploads.ingest_report(platform(), _client(), job_id)


@bp.route("/jobs/{job_id}/stop", methods=["POST"])
@json_errors
def stop_job(job_id: str) -> dict:
    """End the job: no new leases; leased work may still be submitted, then what was
    answered is aggregated. A job paused in calibration ends at once."""
    client = _client()
    p = platform()
    job = jobs.stop_job(p, client, job_id)
    return job_view(job, jobs.job_progress(p, job), quality.blocked_workers(p, job.job_id))


@bp.route("/jobs/{job_id}/cancel", methods=["POST"])
@json_errors
def cancel_job(job_id: str) -> dict:
    """The earlier name of /stop, kept for existing clients."""
    return stop_job(job_id)


@bp.route("/jobs/{job_id}/promote", methods=["POST"])
@json_errors
def promote_job(job_id: str) -> dict:
    """Pilot -> calibration (closes a running pilot now) -> production (optionally with
    revised instructions: {"instructions": "...", "reason": "..."})."""
    client = _client()
    p = platform()
    request = bp.current_request
    body = json_body(request) if (request.raw_body or b"").strip() else {}
    job = jobs.promote_job(p, client, job_id, body)
    return job_view(job, jobs.job_progress(p, job), quality.blocked_workers(p, job.job_id))


@bp.route("/jobs/{job_id}/results", methods=["GET"])
@json_errors
def get_results(job_id: str) -> dict:
    """A page of per-item results with confidence and lineage."""
    client = _client()
    query: Mapping[str, str] = bp.current_request.query_params or {}
    job, page = jobs.result_page(platform(), client, job_id, query)
    return {"job_id": job.job_id, "state": job.state, "results": page.entries,
            "next_cursor": page.cursor}


@bp.route("/jobs/{job_id}/report", methods=["GET"])
@json_errors
def job_report(job_id: str) -> dict | Response:
    """The quality report of the job's published round: JSON, or HTML with charts when asked
    (`?format=html`, or a browser's `Accept: text/html`)."""
    request = bp.current_request
    query: Mapping[str, str] = request.query_params or {}
    report = jobs.job_report(platform(), _client(), job_id, query)
    wants_html = query.get("format") == "html" or \
        "text/html" in (request.headers.get("accept") or "")
    if not wants_html:
        return report
    return Response(body=render(report), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8"})


@bp.route("/jobs/{job_id}/results/download", methods=["GET"])
@json_errors
def download_results(job_id: str) -> dict:
    """A time-limited link to every result as JSON Lines, or as CSV with `?format=csv`."""
    client = _client()
    query: Mapping[str, str] = bp.current_request.query_params or {}
    job, fmt, url = jobs.result_download(platform(), client, job_id, query)
    return {"job_id": job.job_id, "format": fmt, "url": url,
            "expires_in_seconds": jobs.DOWNLOAD_LINK_SECONDS,
            "result_count": job.result_count}


@bp.route("/jobs/{job_id}/workers", methods=["GET"])
@json_errors
def job_workers(job_id: str) -> dict:
    """A page of the job's workers with their live gold accuracy and whether they are
    blocked: `?limit=` (1-1000, default 100), `?cursor=`."""
    query: Mapping[str, str] = bp.current_request.query_params or {}
    workers, cursor = quality.job_workers(platform(), _client(), job_id, query)
    return {"job_id": job_id, "workers": workers, "next_cursor": cursor}


@bp.route("/jobs/{job_id}/workers/{worker_id}/block", methods=["POST"])
@json_errors
def block_worker(job_id: str, worker_id: str) -> dict:
    """Block a worker from this job: {"reason": "..."}; their answers are left out."""
    request = bp.current_request
    return quality.client_blocks_worker(platform(), _client(), job_id, worker_id,
                                         json_body(request))


def _review(assignment_id: str, status: str) -> Response:
    request = bp.current_request
    client = _client()
    # An approval may come without a body; a rejection needs its reason.
    body = json_body(request) if (request.raw_body or b"").strip() else None

    def review() -> tuple[int, dict]:
        try:
            decided = payments.review_assignment(platform(), client, assignment_id, body, status)
        except payments.AlreadyReviewed as error:
            # The decision that stands goes with the 409.
            raise Conflict(error.message, code=error.code,
                           details={"review": review_view(error.review)}) from None
        return 200, review_view(decided)

    return idempotent(bp, client.account_id, review)


@bp.route("/assignments/{assignment_id}/approve", methods=["POST"])
@json_errors
def approve_assignment(assignment_id: str) -> Response:
    """Approve an accepted answer (optional {"reason": ...}): it is paid, once, with the other
    answers of its worker's pay window when that is settled."""
    return _review(assignment_id, APPROVED)


@bp.route("/assignments/{assignment_id}/reject", methods=["POST"])
@json_errors
def reject_assignment(assignment_id: str) -> Response:
    """Reject an accepted answer with {"reason": ...}: not paid, left out, slot offered again."""
    return _review(assignment_id, REJECTED)


@bp.route("/jobs/{job_id}/approve", methods=["POST"])
@json_errors
def approve_job(job_id: str) -> Response:
    """Approve the job's answers in bulk (optional {"submitted_before": ISO time}: only the pay
    windows that ended by then): the sweeper pays every worker's answers not rejected, one
    settlement per worker and pay window, within minutes."""
    request = bp.current_request
    client = _client()
    body = json_body(request) if (request.raw_body or b"").strip() else None

    def run() -> tuple[int, dict]:
        return 202, payments.approve_job(platform(), client, job_id, body)

    return idempotent(bp, client.account_id, run)


@bp.route("/jobs/{job_id}/bonuses", methods=["POST"])
@json_errors
def pay_bonus(job_id: str) -> Response:
    """Pay a worker of the job a bonus: {"worker_id", "amount_cents", "reason", "bonus_id"}."""
    request = bp.current_request
    client = _client()

    def run() -> tuple[int, dict]:
        entry, new = payments.pay_bonus(platform(), client, job_id, json_body(request))
        return 201 if new else 200, entry_view(entry)

    return idempotent(bp, client.account_id, run)


@bp.route("/cohorts", methods=["GET"])
@json_errors
def list_cohorts() -> dict:
    """Every cohort with its skills and unit prices (quotes name one with "cohort")."""
    _client()
    return {"cohorts": [cohort_view(c) for c in qualifications.list_cohorts(platform())]}


@bp.route("/keys/rotate", methods=["POST"])
@json_errors
def rotate_key() -> dict:
    """A new API key for this client account; the key used for this call stops working."""
    client = _client()
    secret = accounts.rotate_credentials(platform(), client, client_secret(bp.current_request))
    return {"account_id": client.account_id, "api_key": secret}


@bp.route("/requester-keys", methods=["POST"])
@json_errors
def create_requester_key() -> Response:
    """A requester access key pair for the MTurk-compatible API (`POST /mturk`, SigV4): the
    secret is in this answer only. At most two at a time."""
    return Response(body=requester_keys.create_key(platform(), _client()), status_code=201)


@bp.route("/requester-keys", methods=["GET"])
@json_errors
def list_requester_keys() -> dict:
    """The client's requester access key ids and when each was made (no secrets)."""
    return requester_keys.list_keys(platform(), _client())


@bp.route("/requester-keys/{key_id}", methods=["DELETE"])
@json_errors
def delete_requester_key(key_id: str) -> dict:
    """Delete a requester access key: requests it signs are refused (within a minute)."""
    return requester_keys.delete_key(platform(), _client(), key_id)
