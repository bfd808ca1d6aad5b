"""Webhook endpoints and deliveries on DynamoDB (one table, an account's rows together).

The HTTP sender lives in webhook_sender.py and the EventBridge bus in events.py; their names
are importable from here as well, where the platform's wiring finds them.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.writes import conditional_update
from chalicelib.adapters.events import EventBridgeBus
from chalicelib.adapters.models import WebhookModel
from chalicelib.adapters.webhook_sender import post_json, sender
from chalicelib.domain.webhooks import DELIVERED, PENDING, Delivery, Endpoint

__all__ = ["DynamoWebhooks", "EventBridgeBus", "post_json", "sender"]

ENDPOINT, DELIVERY = "endpoint#", "delivery#"
KEEP_DELIVERIES_SECONDS = 30 * 24 * 3600
_STATIC = ("delivery_id", "account_id", "endpoint_id", "url", "event_id", "event_type", "body",
           "created_at", "job_id", "replay_of")


def _delivery(r: WebhookModel) -> Delivery:
    return Delivery(**{k: r.body.get(k) for k in _STATIC}, status=r.status or PENDING,
                    attempts=tuple(json.loads(str(a)) for a in (r.attempts or ())),
                    attempt_count=int(r.attempt_count or 0),
                    next_attempt_at=float(r.next_attempt_at or 0), delivered_at=r.delivered_at)


def _endpoint(r: WebhookModel) -> Endpoint:
    body = dict(r.body)
    body["events"] = tuple(body.get("events") or ())
    return Endpoint(**body)


class DynamoWebhooks:
    """One table: an account's endpoints and its deliveries, newest first."""

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store a new endpoint."""
        body = asdict(endpoint)
        body["events"] = list(endpoint.events)
        WebhookModel(endpoint.account_id, ENDPOINT + endpoint.endpoint_id, body=body,
                     created_at=endpoint.created_at).save(
            condition=WebhookModel.key.does_not_exist())

    def endpoints(self, account_id: str) -> list[Endpoint]:
        """The account's endpoints (at most a few: one query)."""
        return [_endpoint(r) for r in WebhookModel.query(
            account_id, WebhookModel.key.startswith(ENDPOINT))]

    def delete_endpoint(self, account_id: str, endpoint_id: str) -> bool:
        """Delete one; False if there was none."""
        connection = WebhookModel._get_connection()
        response = connection.connection.delete_item(
            connection.table_name, account_id, ENDPOINT + endpoint_id, return_values="ALL_OLD")
        return bool(response.get("Attributes"))

    def create_delivery(self, delivery: Delivery) -> bool:
        """Store a delivery unless its id exists; True if written."""
        body = {k: getattr(delivery, k) for k in _STATIC}
        record = WebhookModel(delivery.account_id, DELIVERY + delivery.delivery_id, body=body,
                              created_at=delivery.created_at, status=delivery.status,
                              attempts=[], attempt_count=0,
                              next_attempt_at=delivery.next_attempt_at,
                              expires_at=int(delivery.created_at) + KEEP_DELIVERIES_SECONDS)
        ok, _ = _put_new(record)
        return ok

    def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None:
        """One delivery (strongly consistent)."""
        record = _get(account_id, DELIVERY + delivery_id)
        return None if record is None else _delivery(record)

    def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        """One endpoint (strongly consistent)."""
        record = _get(account_id, ENDPOINT + endpoint_id)
        return None if record is None else _endpoint(record)

    def deliveries(self, account_id: str, limit: int, cursor: str | None
                   ) -> tuple[list[Delivery], str | None]:
        """A page of the account's deliveries, newest first."""
        start = decode_cursor(cursor, {"account_id": "S", "key": "S"}, {"account_id": account_id})
        result = WebhookModel.query(account_id, WebhookModel.key.startswith(DELIVERY),
                                    scan_index_forward=False, limit=limit,
                                    last_evaluated_key=start)
        rows = [_delivery(r) for r in result]
        return rows, encode_cursor(result.last_evaluated_key)

    def claim_attempt(self, account_id: str, delivery_id: str, attempt_count: int,
                      lease_until: float) -> bool:
        """Start the next attempt if no other started since (a duplicate message loses),
        holding the delivery until lease_until."""
        ok, _ = conditional_update(WebhookModel, account_id, DELIVERY + delivery_id,
                                   [WebhookModel.attempt_count.set(attempt_count + 1),
                                    WebhookModel.next_attempt_at.set(lease_until)],
                                   (WebhookModel.attempt_count == attempt_count)
                                   & (WebhookModel.status == PENDING))
        return ok

    def finish_attempt(self, account_id: str, delivery_id: str, attempt: dict[str, Any],
                       status: str, next_attempt_at: float) -> bool:
        """Append the attempt to the log and set status and the next attempt's time."""
        actions = [WebhookModel.attempts.set(
                       WebhookModel.attempts.append([json.dumps(attempt)])),
                   WebhookModel.status.set(status),
                   WebhookModel.next_attempt_at.set(next_attempt_at)]
        if status == DELIVERED:
            actions.append(WebhookModel.delivered_at.set(attempt["at"]))
        # Only the latest claimed attempt of a pending delivery sets its outcome.
        ok, _ = conditional_update(WebhookModel, account_id, DELIVERY + delivery_id, actions,
                                   (WebhookModel.attempt_count == attempt["attempt"])
                                   & (WebhookModel.status == PENDING))
        return ok


def _get(account_id: str, key: str) -> WebhookModel | None:
    try:
        return WebhookModel.get(account_id, key, consistent_read=True)
    except WebhookModel.DoesNotExist:
        return None


def _put_new(record: WebhookModel) -> tuple[bool, None]:
    try:
        record.save(condition=WebhookModel.key.does_not_exist())
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False, None
        raise
    return True, None
