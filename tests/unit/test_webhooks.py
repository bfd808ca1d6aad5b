"""Webhook events, the outbox, the retry schedule and the URL rules, on in-memory fakes."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain import phases, webhooks
from chalicelib.domain.model import Principal
from chalicelib.errors import InvalidRequest
from crowd_client import verify_signature
from tests.fakes import FakeBus, FakeQueue, FakeWebhooks, make_platform
from tests.unit.test_handlers import _active_job, _client

CLIENT = Principal("acct_1", "client", "Client")


def _hooks(send=None, **config) -> webhooks.Webhooks:
    calls = []

    def default_send(url, body, headers, timeout):
        calls.append((url, body, dict(headers)))
        return 200, None

    hooks = webhooks.Webhooks(store=FakeWebhooks(), queue=FakeQueue(), dead_letters=FakeQueue(),
                              send=send or default_send, bus=FakeBus(),
                              config=webhooks.WebhookConfig(allow_insecure=True, **config))
    hooks.calls = calls
    return hooks


def _event(n: int = 1, event_type: str = webhooks.COMPLETED) -> webhooks.Event:
    return webhooks.Event(event_id=f"evt_{n}", event_type=event_type, account_id="acct_1",
                          created_at=1000.0, data={"n": n}, job_id="job_1")


def test_signatures_verify_with_the_client_helper_and_nothing_else():
    body = _event().body()
    header = webhooks.sign("whsec_x", body, 1_000_000)
    assert verify_signature(body, header, "whsec_x", now=1_000_100)
    assert not verify_signature(body, header, "whsec_y", now=1_000_100)
    assert not verify_signature(body.replace("1", "2"), header, "whsec_x", now=1_000_100)
    assert not verify_signature(body, header, "whsec_x", now=1_000_000 + 301)
    assert not verify_signature(body, "v1=abc", "whsec_x", now=1_000_000)
    assert not verify_signature(body, None, "whsec_x")


def test_publishing_twice_delivers_once_per_endpoint_that_wants_the_event():
    hooks = _hooks()
    everything = webhooks.register(hooks, CLIENT, {"url": "https://a.test/h"}, 1.0)
    webhooks.register(hooks, CLIENT, {"url": "https://b.test/h", "events": ["job.failed"]}, 2.0)
    other_job = webhooks.register(hooks, CLIENT, {"url": "https://c.test/h"}, 3.0,
                                  job_id="job_2")
    first = webhooks.publish(hooks, _event())
    again = webhooks.publish(hooks, _event())
    assert len(first) == 1 and again == first  # a pending, unattempted one is queued again
    (only,) = hooks.store.by_id.values()
    assert only.endpoint_id == everything.endpoint_id != other_job.endpoint_id
    webhooks.deliver(hooks, hooks.queue.sent[0])
    assert webhooks.publish(hooks, _event()) == []  # delivered: nothing is queued
    assert len(hooks.bus.events) == 3  # the bus gets each publish (consumers dedupe on id)


def test_a_failing_endpoint_backs_off_doubling_until_the_window_then_dead_letters():
    answers = iter([(500, None), (None, "URLError: refused"), (503, None)] + [(500, None)] * 50)
    clock = [1000.0]
    hooks = _hooks(send=lambda *a: next(answers), retry_base_seconds=30,
                   retry_max_seconds=3600, window_seconds=24 * 3600)
    dead = webhooks.register(hooks, CLIENT, {"url": "https://a.test/h",
                                             "events": ["job.completed"]}, 1.0)
    webhooks.register(hooks, CLIENT, {"url": "https://b.test/h",
                                      "events": ["webhook.delivery_failed"]}, 2.0)
    webhooks.publish(hooks, _event())
    message = hooks.queue.take()[0]
    waits = []
    outcome = None
    while outcome != "failed":
        outcome = webhooks.deliver(hooks, message, now=lambda: clock[0])
        if outcome == "retrying":
            waits.append(hooks.queue.delays[-1])
            message = hooks.queue.take()[-1]
            delivery = hooks.store.get_delivery("acct_1", message["delivery_id"])
            clock[0] = delivery.next_attempt_at
    # 30 s doubling to the one-hour cap; SQS delays stop at 15 minutes (re-queued until due)
    assert waits[:6] == [30, 60, 120, 240, 480, 900]
    delivery = hooks.store.get_delivery("acct_1", message["delivery_id"])
    assert delivery.status == "failed"
    assert clock[0] - 1000 <= 24 * 3600 and len(delivery.attempts) == delivery.attempt_count
    assert [a["status_code"] for a in delivery.attempts[:3]] == [500, None, 503]
    assert delivery.attempts[1]["error"] == "URLError: refused"
    (letter,) = hooks.dead_letters.sent
    assert letter["delivery_id"] == delivery.delivery_id and letter["last_status"] == 500
    # the failure is published to the other endpoint only, and never about itself
    notices = [d for d in hooks.store.by_id.values() if d.event_type == "webhook.delivery_failed"]
    assert len(notices) == 1 and notices[0].endpoint_id != dead.endpoint_id
    assert json.loads(notices[0].body)["data"]["delivery_id"] == delivery.delivery_id


def test_a_long_back_off_waits_again_and_a_duplicate_message_attempts_nothing():
    sent = []
    hooks = _hooks(send=lambda *a: sent.append(a) or (500, None), retry_base_seconds=3000)
    webhooks.register(hooks, CLIENT, {"url": "https://a.test/h"}, 1.0)
    webhooks.publish(hooks, _event())
    message = hooks.queue.take()[0]
    assert webhooks.deliver(hooks, message, now=lambda: 1000.0) == "retrying"
    assert hooks.queue.delays == [900]
    assert webhooks.deliver(hooks, message, now=lambda: 1900.0) == "not due"
    assert len(sent) == 1
    # two copies of a due message: the claim lets one attempt through and holds the
    # delivery while it runs, so the other copy waits
    store = hooks.store
    delivery = store.get_delivery("acct_1", message["delivery_id"])
    assert store.claim_attempt("acct_1", delivery.delivery_id, delivery.attempt_count, 5020)
    assert not store.claim_attempt("acct_1", delivery.delivery_id, delivery.attempt_count, 5020)
    assert webhooks.deliver(hooks, message, now=lambda: 5000.0) == "not due"
    assert len(sent) == 1
    # a claim whose attempt crashed is taken over once its hold ends
    assert webhooks.deliver(hooks, message, now=lambda: 5021.0) == "retrying"
    assert len(sent) == 2


def test_job_transitions_become_events_through_the_outbox_once():
    p = make_platform()
    p.webhooks = _hooks()
    client = _client(p)
    webhooks.register(p.webhooks, client, {"url": "https://a.test/h"}, 0)
    job = _active_job(p, client)
    for record in [
        phases.record(10, "active", "pilot", "aggregating", "pilot", "system", "r1"),
        phases.record(11, "aggregating", "pilot", "paused", "calibration", "rule", "ok", 1),
        phases.record(12, "paused", "calibration", "active", "production", "rule", "met"),
        phases.record(13, "active", "production", "aggregating", "production", "system", "r2"),
        phases.record(14, "aggregating", "production", "done", "production", "system", "p", 2),
    ]:
        assert p.jobs.transition(job.job_id, (p.jobs.get_job(job.job_id).state,),
                                 record["to"]["state"], record=record)
    assert p.jobs.jobs_with_events_due() == [job.job_id]
    # a crash after publishing but before the mark: publishing again delivers nothing new
    for event in webhooks.job_events(p.jobs.get_job(job.job_id)):
        webhooks.publish(p.webhooks, event)
    assert webhooks.publish_due_job_events(p) == 5
    assert p.jobs.jobs_with_events_due() == []
    assert webhooks.publish_job_events(p, job.job_id) == 0
    kinds = sorted((d.event_type, json.loads(d.body)["data"].get("round"))
                   for d in p.webhooks.store.by_id.values())
    assert kinds == [("job.completed", None), ("job.phase_changed", None),
                     ("job.phase_changed", None), ("job.report_ready", 1),
                     ("job.report_ready", 2)]


def test_the_budget_alert_is_published_once_at_ninety_percent():
    p = make_platform()
    p.webhooks = _hooks()
    client = _client(p)
    webhooks.register(p.webhooks, client, {"url": "https://a.test/h"}, 0)
    job = _active_job(p, client, items=20, redundancy=3)  # 60 slots; gold priced at 10%
    slots = job.item_count * job.redundancy
    # GIVEN 50 of its 60 answers counted: 75% of the workers' money (rewards and gold)
    p.jobs.jobs[job.job_id].answered = 50
    assert not webhooks.check_budget(p, p.jobs.get_job(job.job_id))
    # WHEN a bonus takes it over 90% THEN the alert goes out once, timed by its claim
    p.jobs.jobs[job.job_id].bonus_cents = 60
    assert webhooks.check_budget(p, p.jobs.get_job(job.job_id))
    assert not webhooks.check_budget(p, p.jobs.get_job(job.job_id))
    (alert,) = p.webhooks.store.by_id.values()
    assert alert.event_type == "job.budget_nearly_spent"
    data = json.loads(alert.body)["data"]
    assert data["for_workers_cents"] < job.budget_cents  # the fee is not the workers'
    assert data["share"] >= 0.9 and data["spent_cents"] == 50 * job.reward_cents + 60
    assert slots == 60


def test_a_crash_between_claim_and_publish_repeats_the_same_alert():
    p = make_platform()
    p.webhooks = _hooks()
    client = _client(p)
    webhooks.register(p.webhooks, client, {"url": "https://a.test/h"}, 0)
    job = _active_job(p, client, items=20, redundancy=3)
    p.jobs.jobs[job.job_id].answered = job.item_count * job.redundancy
    p.jobs.jobs[job.job_id].bonus_cents = 40
    p.jobs.claim_budget_alert(job.job_id, 123.0)  # claimed, then the process died
    assert webhooks.check_budget(p, p.jobs.get_job(job.job_id))
    p.jobs.jobs[job.job_id].budget_alerted = False  # as if the mark was lost too
    assert webhooks.check_budget(p, p.jobs.get_job(job.job_id))
    (alert,) = p.webhooks.store.by_id.values()  # one delivery, from the claimed time
    assert alert.created_at == 123.0


@pytest.mark.parametrize("url", ["http://example.com/h", "https://127.0.0.1/h",
                                 "https://10.0.0.8/h", "https://localhost/h",
                                 "https://user:pw@example.com/h", "https:///h", 12])
def test_only_public_https_urls_are_accepted_when_not_local(url):
    with pytest.raises(InvalidRequest):
        webhooks.check_url(url, webhooks.WebhookConfig())


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/h",
                                 "https://10.0.0.1/h", "http://192.168.1.5/h",
                                 "https://[fd00::1]/h", "http://[fe80::1]/h",
                                 "http://example.com/h", "http://0.0.0.0/h",
                                 "https://169.254.169.254/h", "http://metadata.localhost/h"])
def test_the_local_flag_adds_only_this_machines_loopback(url):
    # WHEN a stage allows insecure endpoints (the local stack) THEN private, link-local and
    # metadata addresses, and plain http anywhere else, are still refused
    with pytest.raises(InvalidRequest) as caught:
        webhooks.check_url(url, webhooks.WebhookConfig(allow_insecure=True))
    assert caught.value.code == "invalid_url"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/h", "http://localhost/h",
                                 "http://[::1]:9/h", "https://127.0.0.1/h",
                                 "https://hooks.example.com/h"])
def test_the_local_flag_takes_loopback_over_http_and_public_https(url):
    assert webhooks.check_url(url, webhooks.WebhookConfig(allow_insecure=True)) == url


def test_the_sender_with_the_local_flag_still_refuses_private_addresses_at_send_time():
    from chalicelib.adapters.webhooks import post_json, sender

    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/h",
                "https://10.0.0.1/h"):
        status, error = post_json(url, b"{}", {}, 1.0, allow_loopback=True)
        assert status is None and "private" in error, url
        status, error = sender(allow_loopback=True)(url, b"{}", {}, 1.0)
        assert status is None and "private" in error, url
    # loopback is called (nothing listens on port 9 here: the attempt fails to connect)
    status, error = post_json("http://127.0.0.1:9/h", b"{}", {}, 1.0, allow_loopback=True)
    assert status is None and "private" not in error and "resolve" not in error


def test_a_public_https_url_is_accepted():
    assert webhooks.check_url("https://hooks.example.com/x?y=1", webhooks.WebhookConfig())



def test_a_deleted_endpoints_deliveries_end_quietly():
    hooks = _hooks(send=lambda *a: (500, None))
    endpoint = webhooks.register(hooks, CLIENT, {"url": "https://a.test/h"}, 1.0)
    webhooks.publish(hooks, _event())
    message = hooks.queue.take()[0]
    webhooks.remove(hooks, CLIENT, endpoint.endpoint_id)
    assert webhooks.deliver(hooks, message, now=lambda: 1000.0) == "endpoint deleted"
    delivery = hooks.store.get_delivery("acct_1", message["delivery_id"])
    assert delivery.status == "failed" and delivery.attempts[0]["error"]
    assert hooks.dead_letters.sent == [] and hooks.queue.sent == []


def test_an_attempt_finishing_after_a_newer_one_changes_nothing():
    hooks = _hooks(send=lambda *a: (500, None))
    webhooks.register(hooks, CLIENT, {"url": "https://a.test/h"}, 1.0)
    webhooks.publish(hooks, _event())
    message = hooks.queue.take()[0]
    store = hooks.store
    delivery = store.get_delivery("acct_1", message["delivery_id"])
    assert store.claim_attempt("acct_1", delivery.delivery_id, 0, 10.0)  # a slow attempt 1
    assert store.claim_attempt("acct_1", delivery.delivery_id, 1, 20.0)  # a duplicate's 2
    assert store.finish_attempt("acct_1", delivery.delivery_id,
                                {"attempt": 2, "at": 11.0, "status_code": 200}, "delivered", 11)
    assert not store.finish_attempt("acct_1", delivery.delivery_id,
                                    {"attempt": 1, "at": 12.0, "status_code": 500}, "pending", 40)
    assert store.get_delivery("acct_1", delivery.delivery_id).status == "delivered"


def test_odd_signature_headers_are_false_not_errors():
    body = _event().body()
    assert not verify_signature(body, "t=1000000,v1=ü", "whsec_x", now=1_000_000)
    assert not verify_signature(body, "t=abc,v1=00", "whsec_x")


def test_the_sender_refuses_hosts_that_resolve_to_private_addresses():
    from chalicelib.adapters.webhooks import post_json

    status, error = post_json("http://localhost:9/h", b"{}", {}, 1.0)
    assert status is None and "private" in error
    status, error = post_json("http://2130706433:9/h", b"{}", {}, 1.0)  # 127.0.0.1 in disguise
    assert status is None and "private" in error
