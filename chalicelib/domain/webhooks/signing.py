"""How a receiver knows a webhook came from us: an HMAC-SHA256 of the timestamp and body
with the endpoint's secret (crowd_client.verify_signature checks it)."""
from __future__ import annotations

import hashlib
import hmac

from chalicelib.domain.webhooks.types import Delivery

SIGNATURE_HEADER = "Crowd-Signature"


def sign(secret: str, body: str, timestamp: int) -> str:
    """The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.{body}".encode("utf-8"),
                   hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signed_headers(delivery: Delivery, secret: str, timestamp: int) -> dict[str, str]:
    """The headers of one attempt at a delivery: its signature, event and ids."""
    return {"Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, delivery.body, timestamp),
            "Crowd-Event": delivery.event_type, "Crowd-Delivery": delivery.delivery_id,
            "Crowd-Event-Id": delivery.event_id, "User-Agent": "crowd-webhooks/1"}
