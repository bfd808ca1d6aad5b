"""Operator API: platform-wide actions on accounts."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.common import client_secret, json_body, json_errors
from chalicelib.deps import platform
from chalicelib.domain import services
from chalicelib.domain.model import Principal

bp = Blueprint(__name__)


def _operator() -> Principal:
    return services.authenticate(platform(), client_secret(bp.current_request), services.OPERATOR)


@bp.route("/operator/workers/{worker_id}/block", methods=["POST"])
@json_errors
def block_worker(worker_id: str) -> dict:
    """Block a worker everywhere: {"reason": "..."}."""
    operator = _operator()
    return services.operator_block(platform(), operator, worker_id,
                                   json_body(bp.current_request))


@bp.route("/operator/workers/{worker_id}/unblock", methods=["POST"])
@json_errors
def unblock_worker(worker_id: str) -> dict:
    """Lift a worker's block everywhere."""
    operator = _operator()
    return services.operator_block(platform(), operator, worker_id, None, blocked=False)
