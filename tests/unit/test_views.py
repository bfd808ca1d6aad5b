"""The wire shapes of reviews, ledger entries, earnings, webhook endpoints and deliveries:
the exact JSON text (keys in order), which clients and receivers already parse."""
from __future__ import annotations

import json

from chalicelib.api import views
from chalicelib.domain.model import LedgerEntry
from chalicelib.domain.webhooks import Delivery, Endpoint
from chalicelib.handlers.payments import Earnings, Review

AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _text(view: dict) -> str:
    return json.dumps(view)


def test_a_review_as_the_client_sees_it():
    approved = Review("job_x_1_wrk_v1", "wrk_1",
                      {"status": "approved", "reason": "fine", "at": AT + 0.4, "by": "cli_1"}, 5)
    assert _text(views.review_view(approved)) == (
        '{"assignment_id": "job_x_1_wrk_v1", "worker_id": "wrk_1", "status": "approved", '
        '"reason": "fine", "reviewed_at": "2023-11-14T22:13:20Z", "reviewed_by": "cli_1", '
        '"paid_cents": 5}')
    rejected = Review("job_x_1_wrk_v1", "wrk_1",
                      {"status": "rejected", "reason": "spam", "at": AT, "by": "cli_1"}, 5)
    assert views.review_view(rejected)["paid_cents"] == 0
    assert _text(views.review_view(Review("job_x_1_wrk_v1", "wrk_1", None, 5))) == (
        '{"assignment_id": "job_x_1_wrk_v1", "worker_id": "wrk_1", "status": "pending", '
        '"reason": null, "reviewed_at": null, "reviewed_by": null, "paid_cents": 0}')


def test_a_ledger_entry_and_a_page_of_earnings():
    entry = LedgerEntry("wrk_1", "bonus#job_x#b1", "bonus", 3, AT, "job_x", None, "thanks",
                        "cli_1")
    expected = ('{"entry_id": "bonus#job_x#b1", "kind": "bonus", "amount_cents": 3, '
                '"created_at": "2023-11-14T22:13:20Z", "job_id": "job_x", "assignment_id": null, '
                '"reason": "thanks", "answers": null, "worker_id": "wrk_1"}')
    assert _text(views.entry_view(entry)) == expected
    settlement = LedgerEntry("wrk_1", "settlement#job_x#490000#4", "settlement", 20, AT,
                             "job_x", None, "4 answers approved", "auto", 4)
    assert views.entry_view(settlement)["answers"] == 4
    assert _text(views.earnings_view(Earnings("wrk_1", 3, [entry], "c2"))) == (
        '{"worker_id": "wrk_1", "balance_cents": 3, "currency": "USD", '
        f'"entries": [{expected}], "next_cursor": "c2"}}')


def test_a_webhook_endpoint_shows_its_secret_only_when_asked():
    endpoint = Endpoint("whe_1", "cli_1", "https://a.test/h", "whsec_s", AT, ("job.failed",),
                        "job_x", "mine")
    shown = ('{"endpoint_id": "whe_1", "url": "https://a.test/h", "events": ["job.failed"], '
             '"job_id": "job_x", "description": "mine", "created_at": "2023-11-14T22:13:20Z"')
    assert _text(views.endpoint_view(endpoint)) == shown + "}"
    assert _text(views.endpoint_view(endpoint, with_secret=True)) == \
        shown + ', "secret": "whsec_s"}'
    every = views.endpoint_view(Endpoint("whe_2", "cli_1", "https://a.test/h", "whsec_s", AT))
    assert every["events"] == ["job.phase_changed", "job.report_ready", "job.completed",
                               "job.failed", "job.budget_nearly_spent",
                               "webhook.delivery_failed"]


def test_a_webhook_delivery_with_its_attempts_and_payload():
    delivery = Delivery("whd_1", "cli_1", "whe_1", "https://a.test/h", "evt_1", "job.completed",
                        '{"data":{},"id":"evt_1"}', AT, "job_x", "pending",
                        ({"attempt": 1, "at": AT + 1, "status_code": 500, "latency_ms": 3.2},),
                        1, AT + 31)
    assert _text(views.delivery_view(delivery)) == (
        '{"delivery_id": "whd_1", "endpoint_id": "whe_1", "url": "https://a.test/h", '
        '"event_id": "evt_1", "event_type": "job.completed", "job_id": "job_x", '
        '"status": "pending", "created_at": "2023-11-14T22:13:20Z", '
        '"next_attempt_at": "2023-11-14T22:13:51Z", "delivered_at": null, "replay_of": null, '
        '"attempts": [{"attempt": 1, "at": "2023-11-14T22:13:21Z", "status_code": 500, '
        '"latency_ms": 3.2}], "payload": {"data": {}, "id": "evt_1"}}')
    done = views.delivery_view(Delivery("whd_1", "cli_1", "whe_1", "https://a.test/h", "evt_1",
                                        "job.completed", "{}", AT, status="delivered",
                                        delivered_at=AT + 40))
    assert (done["next_attempt_at"], done["delivered_at"]) == (None, "2023-11-14T22:14:00Z")
