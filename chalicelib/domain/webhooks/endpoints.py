"""An account's webhook endpoints: registered with a signing secret, listed, deleted."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.ids import new_id, new_secret
from chalicelib.domain.model import Principal
from chalicelib.domain.webhooks.types import EVENT_TYPES, Endpoint, Webhooks
from chalicelib.domain.webhooks.urls import check_url
from chalicelib.errors import InvalidRequest, NotFound

MAX_ENDPOINTS = 10


def register(w: Webhooks, client: Principal, body: Any, now: float,
             job_id: str | None = None) -> Endpoint:
    """A new endpoint from {url, events?, description?}; its secret is returned this once."""
    body = v.require_object(body, "body")
    v.reject_unknown(body, ("url", "events", "description"))
    url = check_url(body.get("url"), w.config)
    events = body.get("events", [])
    if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
        raise InvalidRequest(f"'events' must be a list of: {', '.join(EVENT_TYPES)}",
                             field="events")
    description = v.text(body, "description", max_length=200, required=False) or ""
    if job_id is not None:
        # A job's callback endpoint has an id derived from the job: registering it again (a
        # retried job creation) finds the one already there.
        endpoint_id = f"whe_{job_id[4:]}"
        existing = w.store.get_endpoint(client.account_id, endpoint_id)
        if existing is not None:
            return existing
    else:
        endpoint_id = new_id("whe")
        if sum(e.job_id is None for e in w.store.endpoints(client.account_id)) >= MAX_ENDPOINTS:
            raise InvalidRequest(f"an account has at most {MAX_ENDPOINTS} endpoints; delete "
                                 "one first", field="url", code="too_many_endpoints")
    endpoint = Endpoint(endpoint_id=endpoint_id, account_id=client.account_id, url=url,
                        secret=new_secret("whsec"), created_at=now,
                        events=tuple(dict.fromkeys(events)), job_id=job_id,
                        description=description)
    w.store.put_endpoint(endpoint)
    return endpoint


def remove(w: Webhooks, client: Principal, endpoint_id: str) -> None:
    """Delete an endpoint; deliveries already made stay in the log."""
    if not w.store.delete_endpoint(client.account_id, endpoint_id):
        raise NotFound("no such webhook endpoint", code="webhook_not_found")


def endpoints_of(w: Webhooks, client: Principal) -> Sequence[Endpoint]:
    """The client's endpoints, oldest first."""
    return sorted(w.store.endpoints(client.account_id), key=lambda e: e.created_at)
