"""Signed webhooks over HTTP: a real local receiver, the delivery queue with back-off, the
dead-letter queue, the attempt log, replays, a job's callback_url and EventBridge."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import boto3

from chalicelib.deps import platform
from crowd_client import verify_signature
from tests.functional.marketplace import Api
from tests.functional.receiver import Receiver


def _finish(stack, api: Api, items: int = 3, **extra) -> dict:
    """A job answered by one worker until done."""
    job = api.job(items=items, redundancy=1, **extra)
    token = api.worker("hooked")
    while True:
        status, task = api.lease(token, job["job_id"])
        if status == 204:
            break
        assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done", final
    return job


def _settle(stack, until, timeout: float = 30.0) -> None:
    """Pump the queues (delayed messages included) until until() holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        stack.drain()
        time.sleep(0.2)


def _fast_retries(**changes) -> None:
    hooks = platform().webhooks
    hooks.config = replace(hooks.config, retry_base_seconds=0, **changes)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_receiver_failing_three_times_gets_each_event_exactly_once_signed(stack):
    # GIVEN an endpoint whose receiver answers 500 to the first three tries of each delivery
    api = Api(stack)
    _fast_retries()
    with Receiver(fail_first=3) as receiver:
        status, endpoint = api.as_client("POST", "/webhooks/endpoints", {"url": receiver.url})
        assert status == 201 and endpoint["secret"].startswith("whsec_"), endpoint
        # WHEN a job runs to the end
        job = _finish(stack, api)
        expected = {"job.report_ready", "job.completed"}
        _settle(stack, lambda: {e["type"] for e in receiver.events()} >= expected)
        stack.drain()
        # THEN each event reached it once with a 2xx, after three 500s
        events = receiver.events()
        assert sorted(e["type"] for e in events) == sorted(expected), events
        assert all(e["job_id"] == job["job_id"] for e in events)
        # with its time in ISO 8601, as every time in the API
        assert all(_iso(e["created_at"]) for e in events)
        assert all(_iso(e["data"]["at"]) for e in events if "at" in e["data"])
        assert len(receiver.requests) == 4 * len(events)
        # AND every request carries a signature the client helper verifies
        for request in receiver.requests:
            header = request["headers"]["Crowd-Signature"]
            assert verify_signature(request["raw"], header, endpoint["secret"])
            assert not verify_signature(request["raw"] + b" ", header, endpoint["secret"])
            assert not verify_signature(request["raw"], header, "whsec_wrong")
            assert not verify_signature(request["raw"], header, endpoint["secret"],
                                        now=time.time() + 3600)  # a replay an hour later
        # AND the log shows the four attempts of each delivery with status and latency
        status, page = api.as_client("GET", f"/webhooks/deliveries?job_id={job['job_id']}")
        deliveries = page["deliveries"]
        assert {d["event_type"] for d in deliveries} == expected
        for delivery in deliveries:
            assert delivery["status"] == "delivered", delivery
            assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
            assert all(a["latency_ms"] >= 0 and _iso(a["at"]) for a in delivery["attempts"])
            assert _iso(delivery["created_at"]) and _iso(delivery["delivered_at"])
            assert delivery["next_attempt_at"] is None
            assert delivery["payload"]["created_at"] == delivery["created_at"]
        status, listed = api.as_client("GET", "/webhooks/endpoints")
        assert _iso(listed["endpoints"][0]["created_at"]) and _iso(endpoint["created_at"])
        # AND duplicate queue messages for delivered deliveries send nothing more
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName="crowd-dev-webhooks")["QueueUrl"]
        account_id = _account(api)
        for delivery in deliveries:
            for _ in range(2):
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
                    {"account_id": account_id, "delivery_id": delivery["delivery_id"]}))
        stack.drain()
        assert len(receiver.requests) == 4 * len(events)


def _iso(value: object) -> bool:
    """True for an ISO 8601 UTC time as the API writes them (2026-12-01T08:06:54Z)."""
    from datetime import datetime

    return isinstance(value, str) and value.endswith("Z") and \
        datetime.fromisoformat(value).tzinfo is not None


def _account(api: Api) -> str:
    from chalicelib.domain.model import CLIENT
    from chalicelib.handlers import accounts

    return accounts.authenticate(platform(), api.key, CLIENT).account_id


def test_a_dead_receiver_ends_in_the_dead_letter_queue_and_is_reported(stack):
    # GIVEN an endpoint nobody listens on, and a second one that works
    api = Api(stack)
    _fast_retries(window_seconds=2)
    with Receiver() as watcher:
        dead_url = f"http://127.0.0.1:{_free_port()}/gone"
        status, dead = api.as_client("POST", "/webhooks/endpoints",
                                     {"url": dead_url, "events": ["job.completed"]})
        assert status == 201
        status, _ = api.as_client("POST", "/webhooks/endpoints",
                                  {"url": watcher.url, "events": ["webhook.delivery_failed"]})
        assert status == 201
        # WHEN a job completes
        job = _finish(stack, api)

        def completed() -> list[dict]:
            page = api.as_client("GET", "/webhooks/deliveries")[1]["deliveries"]
            return [d for d in page if d["event_type"] == "job.completed"]

        _settle(stack, completed)  # published by MarkDone just after the job shows done
        assert len(completed()) == 1
        delivery_id = completed()[0]["delivery_id"]

        def failed() -> bool:
            return api.as_client("GET", f"/webhooks/deliveries/{delivery_id}")[1]["status"] \
                == "failed"

        _settle(stack, failed)
        _settle(stack, lambda: watcher.events())
        # THEN the delivery failed after several attempts, none answered
        status, delivery = api.as_client("GET", f"/webhooks/deliveries/{delivery_id}")
        assert len(delivery["attempts"]) >= 2
        assert all(a["status_code"] is None and "error" in a for a in delivery["attempts"])
        # AND it is on the dead-letter queue
        sqs = boto3.client("sqs")
        dlq = sqs.get_queue_url(QueueName="crowd-dev-webhooks-dlq")["QueueUrl"]
        bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])]
        assert [b["delivery_id"] for b in bodies] == [delivery_id]
        assert bodies[0]["event_type"] == "job.completed"
        # AND the working endpoint was told, once
        (notice,) = watcher.events()
        assert notice["type"] == "webhook.delivery_failed"
        assert notice["data"]["delivery_id"] == delivery_id
        assert notice["data"]["endpoint_id"] == dead["endpoint_id"]
        assert notice["job_id"] == job["job_id"]


def test_a_delivery_can_be_replayed_and_a_job_callback_url_gets_that_jobs_events(stack):
    # GIVEN a job posted with a callback_url
    api = Api(stack)
    _fast_retries()
    with Receiver() as receiver:
        job = _finish(stack, api, callback_url=receiver.url)
        _settle(stack, lambda: any(e["type"] == "job.completed" for e in receiver.events()))
        # THEN its events reach the callback, signed with the secret given at creation
        status, endpoints = api.as_client("GET", "/webhooks/endpoints")
        (callback,) = endpoints["endpoints"]
        assert callback["job_id"] == job["job_id"] and "secret" not in callback
        secret = api.posted["callback"]["secret"]
        assert api.posted["callback"]["url"] == receiver.url
        assert all(verify_signature(r["raw"], r["headers"]["Crowd-Signature"], secret)
                   for r in receiver.requests)
        first = len(receiver.requests)
        # WHEN a delivery is replayed
        status, page = api.as_client("GET", "/webhooks/deliveries")
        original = next(d for d in page["deliveries"] if d["event_type"] == "job.completed")
        replay = f"/webhooks/deliveries/{original['delivery_id']}/replay"
        keyed = {"X-Api-Key": api.key, "Idempotency-Key": "replay-1"}
        status, copy = api.call("POST", replay, None, keyed)
        assert status == 202 and copy["replay_of"] == original["delivery_id"]
        # a retried replay with the same key replays the answer and sends nothing more
        assert api.call("POST", replay, None, keyed) == (202, copy)
        _settle(stack, lambda: len(receiver.requests) > first)
        # THEN the same event arrives again under a new delivery id
        stack.drain()
        assert len(receiver.requests) == first + 1
        again = json.loads(receiver.requests[-1]["raw"])
        assert again["id"] == original["event_id"]
        assert receiver.requests[-1]["headers"]["Crowd-Delivery"] == copy["delivery_id"]
        status, replayed = api.as_client("GET", f"/webhooks/deliveries/{copy['delivery_id']}")
        assert replayed["status"] == "delivered"


def test_events_also_go_to_eventbridge(stack):
    # GIVEN a rule on the stage's bus that forwards job events to a queue
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="tap", EventBusName="crowd-dev-events",
                    EventPattern=json.dumps({"source": ["crowd"]}))
    events.put_targets(Rule="tap", EventBusName="crowd-dev-events",
                       Targets=[{"Id": "q", "Arn": arn}])
    api = Api(stack)
    # WHEN a job completes (with no webhook endpoint at all)
    job = _finish(stack, api)
    # THEN its events are on the bus, with the webhook payload as detail
    seen: list[dict] = []

    def tapped() -> bool:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        seen.extend(json.loads(m["Body"]) for m in messages.get("Messages", []))
        return {"job.report_ready", "job.completed"} <= {e["detail-type"] for e in seen}

    _settle(stack, tapped)
    assert all(e["source"] == "crowd" and e["detail"]["job_id"] == job["job_id"] for e in seen)


def test_endpoints_are_validated_listed_and_deleted(stack):
    api = Api(stack)
    bad = [({"url": "ftp://example.com/x"}, "url"), ({"url": "x" * 3000}, "url"),
           ({"url": "https://example.com", "events": ["job.nope"]}, "events"),
           ({"url": "https://example.com", "extra": 1}, "extra"), ([], "body"),
           # the stack allows insecure endpoints (as the local stack does): loopback only
           ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
           ({"url": "http://10.0.0.1/h"}, "url"), ({"url": "https://192.168.0.1/h"}, "url"),
           ({"url": "http://example.com/h"}, "url")]
    for body, field in bad:
        status, error = api.as_client("POST", "/webhooks/endpoints", body)
        assert status == 400 and error["field"].endswith(field), (body, error)
    status, endpoint = api.as_client("POST", "/webhooks/endpoints",
                                     {"url": "https://example.com/hook",
                                      "events": ["job.completed"]})
    assert status == 201
    status, listed = api.as_client("GET", "/webhooks/endpoints")
    assert [e["endpoint_id"] for e in listed["endpoints"]] == [endpoint["endpoint_id"]]
    assert "secret" not in listed["endpoints"][0]
    assert api.as_client("DELETE", f"/webhooks/endpoints/{endpoint['endpoint_id']}")[0] == 204
    status, error = api.as_client("DELETE", f"/webhooks/endpoints/{endpoint['endpoint_id']}")
    assert status == 404 and error["error"] == "webhook_not_found"
    status, error = api.as_client("GET", "/webhooks/deliveries/whd_nope")
    assert status == 404 and error["error"] == "delivery_not_found"
