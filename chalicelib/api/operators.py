"""Operator API: platform-wide actions on accounts."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.common import client_secret, json_body, json_errors
from chalicelib.api.views import cohort_view, qualification_view
from chalicelib.deps import platform
from chalicelib.domain.model import OPERATOR, Principal
from chalicelib.handlers import accounts, qualifications, quality

bp = Blueprint(__name__)


def _operator() -> Principal:
    return accounts.authenticate(platform(), client_secret(bp.current_request), OPERATOR)


@bp.route("/operator/workers/{worker_id}/block", methods=["POST"])
@json_errors
def block_worker(worker_id: str) -> dict:
    """Block a worker everywhere: {"reason": "..."}."""
    operator = _operator()
    return quality.operator_block(platform(), operator, worker_id,
                                   json_body(bp.current_request))


@bp.route("/operator/workers/{worker_id}/unblock", methods=["POST"])
@json_errors
def unblock_worker(worker_id: str) -> dict:
    """Lift a worker's block everywhere."""
    operator = _operator()
    return quality.operator_block(platform(), operator, worker_id, None, blocked=False)


@bp.route("/operator/keys/rotate", methods=["POST"])
@json_errors
def rotate_key() -> dict:
    """A new key for this operator account; the key used for this call stops working."""
    operator = _operator()
    secret = accounts.rotate_credentials(platform(), operator, client_secret(bp.current_request))
    return {"account_id": operator.account_id, "api_key": secret}


@bp.route("/operator/cohorts", methods=["PUT"])
@json_errors
def put_cohort() -> dict:
    """Create or replace a cohort: {"name", "skills", "unit_cents": {task_type: cents}}."""
    operator = _operator()
    return cohort_view(qualifications.put_cohort(platform(), operator,
                                                 json_body(bp.current_request)))


@bp.route("/operator/qualifications", methods=["POST"])
@json_errors
def create_qualification() -> Response:
    """Publish a qualification test: gold items for one skill."""
    operator = _operator()
    qual = qualifications.create_qualification(platform(), operator, json_body(bp.current_request))
    return Response(body=qualification_view(qual), status_code=201)


@bp.route("/operator/accounts/{account_id}/revoke", methods=["POST"])
@json_errors
def revoke_account(account_id: str) -> dict:
    """Revoke an account's credential (a client key, worker token or operator key)."""
    operator = _operator()
    return accounts.revoke_account(platform(), operator, account_id)


@bp.route("/operator/accounts", methods=["POST"])
@json_errors
def create_account() -> Response:
    """Open a client or operator account: {"role", "name"}; its key is shown this once."""
    _operator()
    # Not kept for Idempotency-Key replays: the answer holds the new key in the clear.
    return Response(body=accounts.open_account(platform(), json_body(bp.current_request)),
                    status_code=201)
