"""Worker API: registration, leasing, submitting and releasing tasks."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.common import idempotent, json_body, json_errors, worker_secret
from chalicelib.api.mturk_worker import public_base
from chalicelib.api.views import (
    assignment_view, attempt_view, earnings_view, offer_view, qualification_list_view, receipt_view,
    questions_view, suite_submit_view, suite_view, worker_view,
)
from chalicelib.deps import platform
from chalicelib.domain.model import WORKER, Principal
from chalicelib.domain.suites import parse_suite_submit
from chalicelib.errors import Conflict
from chalicelib.handlers import accounts, mturk_quals, mturk_worker, payments, quality, tasks
from chalicelib.handlers import qualifications as skill_tests
from chalicelib.observability import count, logger

bp = Blueprint(__name__)


def _worker() -> Principal:
    return accounts.authenticate(platform(), worker_secret(bp.current_request), WORKER)


@bp.route("/workers", methods=["POST"])
@json_errors
def register_worker() -> Response:
    """Register a worker with a name and skills; the token is shown once."""
    worker, token = accounts.register_worker(platform(), json_body(bp.current_request))
    return Response(body=worker_view(worker, token), status_code=201)


@bp.route("/workers/me", methods=["GET"])
@json_errors
def whoami() -> dict:
    """The calling worker's profile, with their gold accuracy per job and overall."""
    worker = _worker()
    return {**worker_view(worker), "quality": quality.worker_quality(platform(), worker)}


@bp.route("/workers/me", methods=["PATCH"])
@json_errors
def change_profile() -> dict:
    """Change the calling worker's country and subdivision ({"country", "subdivision"}; null
    clears): what Worker_Locale requirements of HITs are judged against."""
    request = bp.current_request
    worker = accounts.change_profile(platform(), _worker(), worker_secret(request),
                                     json_body(request))
    return worker_view(worker)


@bp.route("/workers/me/token/rotate", methods=["POST"])
@json_errors
def rotate_token() -> dict:
    """A new token for this worker; the token used for this call stops working."""
    worker = _worker()
    token = accounts.rotate_credentials(platform(), worker, worker_secret(bp.current_request))
    return {"worker_id": worker.account_id, "token": token}


@bp.route("/workers/me/jobs", methods=["GET"])
@json_errors
def available_jobs() -> dict:
    """Jobs the worker can take tasks from now: reward, instructions and time limit."""
    jobs = tasks.available_jobs(platform(), _worker())
    return {"jobs": [offer_view(job) for job in jobs]}


@bp.route("/workers/me/earnings", methods=["GET"])
@json_errors
def earnings() -> dict:
    """The worker's balance and history: approvals, rejections with reasons, bonuses."""
    return earnings_view(payments.earnings(platform(), _worker(),
                                           bp.current_request.query_params or {}))


@bp.route("/workers/me/messages", methods=["GET"])
@json_errors
def messages() -> dict:
    """Messages requesters sent the worker (MTurk's NotifyWorkers), newest first, paged."""
    return mturk_quals.inbox(platform(), _worker(), bp.current_request.query_params or {})


@bp.route("/qualifications", methods=["GET"])
@json_errors
def qualifications() -> dict:
    """Every qualification test, with the worker's last attempt at each."""
    worker = _worker()
    return {"qualifications": [qualification_list_view(qual, attempt, worker) for qual, attempt
                               in skill_tests.list_qualifications(platform(), worker)]}


@bp.route("/qualifications/{qual_id}/start", methods=["POST"])
@json_errors
def start_qualification(qual_id: str) -> dict:
    """Open an attempt: the test's questions, without their answers."""
    try:
        qual, attempt_id = skill_tests.start_qualification(platform(), _worker(), qual_id)
    except skill_tests.RetakeTooSoon as error:
        # The attempt that stands in the way goes with the 409.
        raise Conflict(error.message, code=error.code,
                       details={"attempt": attempt_view(error.attempt)}) from None
    return questions_view(qual, attempt_id)


@bp.route("/qualifications/{qual_id}/submit", methods=["POST"])
@json_errors
def submit_qualification(qual_id: str) -> dict:
    """Answer every question of the open attempt: {"attempt_id", "answers": {item_id: answer}}."""
    return skill_tests.submit_qualification(platform(), _worker(), qual_id,
                                               json_body(bp.current_request))


@bp.route("/tasks/next", methods=["GET"])
@json_errors
def next_task() -> Response:
    """Lease one task the worker qualifies for, or with ?count= a suite of one job's tasks;
    204 when there is none."""
    worker = _worker()
    job_id, wanted = tasks.lease_query(bp.current_request.query_params or {})
    if wanted is not None:
        suite = tasks.lease_suite(platform(), worker, wanted, job_id)
        if not suite:
            count("NoTask")
            return Response(body="", status_code=204)
        count("Leases", len(suite))
        mturk_worker.accepted(platform(), suite)
        return Response(body=suite_view(suite, worker.account_id,
                                        public_base(bp.current_request)), status_code=200)
    assignment = tasks.lease_next_task(platform(), worker, job_id)
    if assignment is None:
        count("NoTask")
        return Response(body="", status_code=204)
    count("Leases")
    mturk_worker.accepted(platform(), [assignment])
    logger.debug("task leased", extra={"job_id": assignment.job.job_id,
                                      "assignment_id": assignment.assignment_id})
    return Response(body=assignment_view(assignment, worker.account_id,
                                         public_base(bp.current_request)), status_code=200)


@bp.route("/assignments/{assignment_id}/submit", methods=["POST"])
@json_errors
def submit(assignment_id: str) -> Response:
    """Submit an answer (or not_applicable with a reason) for a leased task."""
    worker = _worker()
    request = bp.current_request

    def run() -> tuple[int, dict]:
        receipt = tasks.submit_answer(platform(), worker, assignment_id, json_body(request))
        mturk_worker.submitted(platform(), [receipt])
        count("Submissions")
        logger.debug("answer accepted", extra={"duplicate": receipt.duplicate})
        return 200, receipt_view(receipt)

    return idempotent(bp, worker.account_id, run)


@bp.route("/assignments/submit", methods=["POST"])
@json_errors
def submit_suite() -> Response:
    """Submit a suite's answers, each judged on its own, and lease the next suite if asked."""
    worker = _worker()
    request = bp.current_request

    def run() -> tuple[int, dict]:
        answers, following = parse_suite_submit(json_body(request))
        outcome = tasks.submit_suite(platform(), worker, answers, following)
        receipts = [result.receipt for result in outcome.results if result.receipt is not None]
        mturk_worker.submitted(platform(), receipts)
        count("Submissions", len(receipts))
        if outcome.next:
            count("Leases", len(outcome.next))
            mturk_worker.accepted(platform(), outcome.next)
        return 200, suite_submit_view(outcome)

    return idempotent(bp, worker.account_id, run)


@bp.route("/assignments/{assignment_id}/release", methods=["POST"])
@json_errors
def release(assignment_id: str) -> dict:
    """Give a leased task back (skip); you will not be offered that item again."""
    worker = _worker()
    tasks.release_assignment(platform(), worker, assignment_id)
    mturk_worker.returned(platform(), assignment_id)
    count("Releases")
    return {"assignment_id": assignment_id, "status": "released"}
