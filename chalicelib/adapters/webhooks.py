"""Webhook endpoints and deliveries on DynamoDB, the EventBridge bus, and the HTTP sender."""
from __future__ import annotations

import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.writes import conditional_update
from chalicelib.adapters.models import WebhookModel
from chalicelib.domain.webhooks import DELIVERED, PENDING, Delivery, Endpoint, Event

ENDPOINT, DELIVERY = "endpoint#", "delivery#"
KEEP_DELIVERIES_SECONDS = 30 * 24 * 3600
_STATIC = ("delivery_id", "account_id", "endpoint_id", "url", "event_id", "event_type", "body",
           "created_at", "job_id", "replay_of")


def _delivery(r: WebhookModel) -> Delivery:
    return Delivery(**{k: r.body.get(k) for k in _STATIC}, status=r.status or PENDING,
                    attempts=tuple(json.loads(a) for a in (r.attempts or ())),
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


class EventBridgeBus:
    """Puts every event on the stage's EventBridge bus (source `crowd`, detail-type = type)."""

    def __init__(self, events: Any, bus_name: str, source: str = "crowd") -> None:
        self._events = events
        self._bus = bus_name
        self._source = source

    def put(self, event: Event) -> None:
        """One PutEvents entry; a refused entry raises (the caller's retry repeats it)."""
        response = self._events.put_events(Entries=[{
            "Source": self._source, "DetailType": event.event_type, "Detail": event.body(),
            "EventBusName": self._bus, "Resources": []}])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused event {event.event_id}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer (recorded as its status), never followed: the URL
    was checked, where it points to was not."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float,
              allow_loopback: bool = False) -> tuple[int | None, str | None]:
    """POST body; (status code, None) for any HTTP answer, (None, reason) when none came.

    The host must resolve now (a name that pointed elsewhere when it was registered is
    checked again at every send) only to public addresses, or with allow_loopback (local
    stacks, tests) only to this machine's loopback; plain http only to the loopback.
    """
    parsed = urllib.parse.urlsplit(url)
    refused = _refused_address(parsed.hostname or "", allow_loopback, parsed.scheme != "https")
    if refused:
        return None, refused
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, None
    except Exception as error:  # noqa: BLE001 (whatever the receiver did is this attempt's error)
        reason = getattr(error, "reason", error)
        return None, f"{type(error).__name__}: {reason}"[:300]


def _refused_address(host: str, allow_loopback: bool, plain_http: bool) -> str | None:
    """Why host may not be called, or None: it must resolve, and only to global addresses,
    or (allow_loopback) only to loopback ones; plain http only to loopback ones."""
    try:
        addresses = {ipaddress.ip_address(info[4][0].split("%", 1)[0])
                     for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError, ValueError) as error:
        return f"the host does not resolve: {type(error).__name__}"
    if allow_loopback and all(address.is_loopback for address in addresses):
        return None
    if not all(address.is_global for address in addresses):
        return "the host resolves to a private address"
    if plain_http:
        return "plain http is sent only to this machine's loopback, on a local stack"
    return None


def sender(allow_loopback: bool) -> Any:
    """post_json with the address rule of the stage."""
    return lambda url, body, headers, timeout: post_json(url, body, headers, timeout,
                                                         allow_loopback)
