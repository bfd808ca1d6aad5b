"""Client API: webhook endpoints, the delivery log, and replays."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.common import client_secret, idempotent, json_body, json_errors
from chalicelib.api.views import delivery_view, endpoint_view
from chalicelib.deps import platform
from chalicelib.domain import webhooks
from chalicelib.domain.model import CLIENT, Principal
from chalicelib.errors import InvalidRequest
from chalicelib.handlers import accounts

bp = Blueprint(__name__)


def _client() -> Principal:
    return accounts.authenticate(platform(), client_secret(bp.current_request), CLIENT)


def _hooks() -> webhooks.Webhooks:
    hooks = platform().webhooks
    if hooks is None:
        raise InvalidRequest("webhooks are not available here", code="webhooks_unavailable")
    return hooks


@bp.route("/webhooks/endpoints", methods=["POST"])
@json_errors
def create_endpoint() -> Response:
    """Register an endpoint for the account's events; its signing secret is shown once."""
    client = _client()
    # Not kept for Idempotency-Key replays: the answer holds the secret, which is stored
    # nowhere else in the clear but the endpoint itself.
    endpoint = webhooks.register(_hooks(), client, json_body(bp.current_request),
                                 platform().now())
    return Response(body=endpoint_view(endpoint, with_secret=True), status_code=201)


@bp.route("/webhooks/endpoints", methods=["GET"])
@json_errors
def list_endpoints() -> dict:
    """The account's endpoints (without their secrets)."""
    client = _client()
    return {"endpoints": [endpoint_view(e)
                          for e in webhooks.endpoints_of(_hooks(), client)]}


@bp.route("/webhooks/endpoints/{endpoint_id}", methods=["DELETE"])
@json_errors
def delete_endpoint(endpoint_id: str) -> Response:
    """Stop sending events to an endpoint; its deliveries stay in the log."""
    client = _client()
    webhooks.remove(_hooks(), client, endpoint_id)
    return Response(body="", status_code=204)


@bp.route("/webhooks/deliveries", methods=["GET"])
@json_errors
def list_deliveries() -> dict:
    """The account's deliveries, newest first, each with its attempts (time, status code,
    latency); `job_id` keeps one job's."""
    client = _client()
    deliveries, cursor = webhooks.page_of(_hooks(), client,
                                          bp.current_request.query_params or {})
    return {"deliveries": [delivery_view(d) for d in deliveries], "next_cursor": cursor}


@bp.route("/webhooks/deliveries/{delivery_id}", methods=["GET"])
@json_errors
def get_delivery(delivery_id: str) -> dict:
    """One delivery with its attempts and payload."""
    client = _client()
    return delivery_view(webhooks.delivery_of(_hooks(), client, delivery_id))


@bp.route("/webhooks/deliveries/{delivery_id}/replay", methods=["POST"])
@json_errors
def replay_delivery(delivery_id: str) -> Response:
    """Send a delivery's event again, as a new delivery with a log of its own."""
    client = _client()
    return idempotent(bp, client.account_id, lambda: (202, delivery_view(
        webhooks.replay(_hooks(), client, delivery_id, platform().now()))))
