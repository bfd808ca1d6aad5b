"""MTurk notifications: boto3's own `mturk` client sets a HIT type's specification
(UpdateNotificationSettings) and sends test events (SendTestEventNotification); `emit` queues
a HIT's events and the webhook consumer delivers them to an SNS topic (read here through an SQS
queue subscribed to it, in the envelope SNS adds) or an SQS queue, all on moto."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.deps import platform
from chalicelib.domain.model import Job
from chalicelib.domain.mturk_ids import assignment_id, hit_id, job_of_hit
from chalicelib.handlers import mturk_events, rounds
from tests.functional.mturk_stack import (
    Requester, Served, external_question, requester, served_stack,
)

QUESTION = external_question("https://lab.example.org/rate", 0)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """The app on a moto stack, served over HTTP on 127.0.0.1 (one server per module)."""
    yield from served_stack()


@pytest.fixture(scope="module")
def lab(server: Served) -> Requester:
    return requester(server, "Notified lab")


@pytest.fixture
def topic() -> tuple[str, str]:
    """A fresh SNS topic and the URL of an SQS queue subscribed to it."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    name = f"lab-topic-{_counter()}"
    arn = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=f"{name}-reader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return arn, url


@pytest.fixture
def queue() -> str:
    """A fresh SQS queue, as a requester's destination."""
    return boto3.client("sqs").create_queue(QueueName=f"lab-queue-{_counter()}")["QueueUrl"]


_made = [0]


def _counter() -> int:
    _made[0] += 1
    return _made[0]


def _hit_type(lab: Requester, name: str = "1") -> str:
    """A HIT type of the lab's made with boto3's create_hit_type (a name of its own gives a
    type of its own); its HITTypeId."""
    return lab.mturk.create_hit_type(
        AssignmentDurationInSeconds=600, Reward="0.05", Title=f"Rate a sentence {name}",
        Description="Read a sentence and rate it")["HITTypeId"]


def _hit_job(server: Served, lab: Requester, type_id: str) -> Job:
    """A HIT of that type made with boto3's create_hit_with_hit_type; its job."""
    made = lab.mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=3600,
                                              Question=QUESTION)["HIT"]
    job = platform().jobs.get_job(str(job_of_hit(made["HITId"])))
    assert job is not None and job.mturk["hit_type_id"] == type_id
    return job


def _our_assignment(job: Job) -> str:
    return f"asg_{job.job_id[4:]}_000001_0badcafe_1700000000000_v1"


def _spec(destination: str, transport: str = "SNS", version: str = "2014-08-15",
          events: tuple[str, ...] = ("AssignmentSubmitted", "HITExpired", "HITReviewable")
          ) -> dict[str, Any]:
    return {"Destination": destination, "Transport": transport, "Version": version,
            "EventTypes": list(events)}


def _received(url: str) -> list[dict[str, Any]]:
    """Every message now on a queue, parsed (and deleted)."""
    sqs, found = boto3.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _request_error(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_an_assignment_submitted_reaches_the_sns_topic_in_the_envelope_dallinger_reads(
        server, lab, topic):
    # GIVEN a HIT whose type sends AssignmentSubmitted to the lab's SNS topic
    arn, reader = topic
    type_id = _hit_type(lab)
    job = _hit_job(server, lab, type_id)
    answer = lab.mturk.update_notification_settings(
        HITTypeId=type_id, Notification=_spec(arn), Active=True)
    assert list(answer) == ["ResponseMetadata"]
    # WHEN an assignment of the HIT is submitted and the webhook consumer runs
    ours = _our_assignment(job)
    mturk_events.emit(platform(), job, "AssignmentSubmitted", ours, at=1795000000.0)
    server.stack.drain()
    # THEN the topic published MTurk's document as the envelope's Message
    [envelope] = _received(reader)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == arn
    document = json.loads(envelope["Message"])
    assert document["EventDocVersion"] == "2014-08-15"
    assert document["CustomerId"] == "A" + lab.account_id.removeprefix("cli_").upper()
    assert len(document["EventDocId"]) >= 16
    assert document["Events"] == [{
        "EventType": "AssignmentSubmitted", "EventTimestamp": "2026-11-18T11:06:40Z",
        "HITTypeId": type_id, "HITId": hit_id(job.job_id),
        "AssignmentId": assignment_id(ours)}]


def test_an_sqs_destination_gets_the_document_as_the_body_with_each_id_unique(
        server, lab, queue):
    # GIVEN a HIT type whose events go to the lab's SQS queue, version 2006-05-05
    type_id = _hit_type(lab, "2")
    job = _hit_job(server, lab, type_id)
    lab.mturk.update_notification_settings(
        HITTypeId=type_id, Notification=_spec(queue, "SQS", "2006-05-05",
                                              ("HITCreated", "AssignmentAccepted")))
    # WHEN the HIT is created and an assignment accepted (an MTurk AssignmentId given)
    mturk_events.emit(platform(), job, "HITCreated")
    mturk_events.emit(platform(), job, "AssignmentAccepted", assignment_id(_our_assignment(job)))
    server.stack.drain()
    # THEN the queue holds the two documents as message bodies, each with its own id
    documents = _received(queue)
    assert [d["Events"][0]["EventType"] for d in documents] == ["HITCreated",
                                                                 "AssignmentAccepted"]
    assert {d["EventDocVersion"] for d in documents} == {"2006-05-05"}
    assert len({d["EventDocId"] for d in documents}) == 2
    assert "AssignmentId" not in documents[0]["Events"][0]
    assert documents[1]["Events"][0]["AssignmentId"] == assignment_id(_our_assignment(job))
    assert documents[0]["Events"][0]["EventTimestamp"].endswith("Z")


def test_active_alone_switches_the_specification_off_and_on(server, lab, queue):
    # GIVEN a HIT type with a specification, stored under the lab's notify records
    type_id = _hit_type(lab, "3")
    job = _hit_job(server, lab, type_id)
    lab.mturk.update_notification_settings(HITTypeId=type_id, Notification=_spec(queue, "SQS"))
    stored = platform().mturk.get(f"mturk#notify#{lab.account_id}", type_id)
    assert stored is not None and stored.body["active"] is True
    assert stored.body["destination"] == queue
    # WHEN Active alone switches it off, an event happens, then it is switched on again
    lab.mturk.update_notification_settings(HITTypeId=type_id, Active=False)
    mturk_events.emit(platform(), job, "HITExpired")
    server.stack.drain()
    switched_off = _received(queue)
    lab.mturk.update_notification_settings(HITTypeId=type_id, Active=True)
    mturk_events.emit(platform(), job, "HITExpired")
    server.stack.drain()
    # THEN nothing was sent while off, and the same specification sends once on again
    assert switched_off == []
    [document] = _received(queue)
    assert document["Events"][0]["EventType"] == "HITExpired"


def test_events_the_type_does_not_subscribe_to_and_ordinary_jobs_send_nothing(
        server, lab, queue):
    # GIVEN a HIT type subscribed to AssignmentSubmitted only
    type_id = _hit_type(lab, "4")
    job = _hit_job(server, lab, type_id)
    lab.mturk.update_notification_settings(
        HITTypeId=type_id, Notification=_spec(queue, "SQS", events=("AssignmentSubmitted",)))
    # WHEN another event type happens, and an ordinary job (no `mturk`) has the subscribed one
    mturk_events.emit(platform(), job, "AssignmentReturned", _our_assignment(job))
    mturk_events.emit(platform(), replace(job, mturk={}), "AssignmentSubmitted")
    server.stack.drain()
    # THEN the queue got nothing
    assert _received(queue) == []


def test_a_failing_destination_never_raises_into_the_caller(server, lab, monkeypatch):
    # GIVEN a HIT type whose queue does not exist (a well-formed URL)
    type_id = _hit_type(lab, "5")
    job = _hit_job(server, lab, type_id)
    missing = "https://sqs.us-east-1.amazonaws.com/123456789012/lab-queue-deleted"
    lab.mturk.update_notification_settings(HITTypeId=type_id,
                                           Notification=_spec(missing, "SQS"))
    p = platform()
    real, outcomes = mturk_events.deliver, []

    def recording(p_: Any, message: Any) -> str:
        outcomes.append(real(p_, message))
        return outcomes[-1]

    monkeypatch.setattr(mturk_events, "deliver", recording)
    # WHEN the event is emitted and the consumer runs
    mturk_events.emit(p, job, "AssignmentSubmitted", _our_assignment(job))
    server.stack.drain()
    # THEN the consumer gave it up as refused (nothing raised, nothing queued again)
    assert outcomes == ["refused"]
    # AND WHEN the queue itself fails while emitting, or the settings cannot be read
    monkeypatch.setattr(p.mturk_notifier.queue, "send",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("SQS down")))
    p.cache.mturk_notify.forget((lab.account_id, type_id))
    mturk_events.emit(p, job, "AssignmentSubmitted")
    monkeypatch.setattr(p.mturk, "get",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("table down")))
    p.cache.mturk_notify.forget((lab.account_id, type_id))
    # THEN emit still returns normally
    assert mturk_events.emit(p, job, "AssignmentSubmitted") is None


def test_a_failure_that_may_pass_is_queued_again_with_back_off_then_given_up(
        server, monkeypatch):
    # GIVEN a queued notice whose destination fails with a passing error
    p = platform()
    queued: list[tuple[dict, int]] = []
    monkeypatch.setattr(p.mturk_notifier, "send",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("throttled")))
    monkeypatch.setattr(p.mturk_notifier.queue, "send",
                        lambda message, delay_seconds=0: queued.append((message, delay_seconds)))
    now = p.now()
    message = {mturk_events.NOTICE: {"transport": "SQS", "destination": "q", "body": "{}",
                                     "first_at": now, "due_at": now, "attempt": 0}}
    # WHEN the consumer tries it
    assert mturk_events.deliver(p, message) == "retrying"
    # THEN it is queued again after the first back-off, as attempt 1
    again, delay = queued[-1]
    notifier = p.mturk_notifier
    first_wait = min(notifier.retry_base_seconds, notifier.retry_max_seconds)
    assert delay == min(900, int(first_wait + 0.999))
    assert again[mturk_events.NOTICE]["due_at"] == pytest.approx(p.now() + first_wait, abs=5)
    assert again[mturk_events.NOTICE]["attempt"] == 1
    # AND a copy that arrives before it is due is put back without an attempt
    early = {mturk_events.NOTICE: {**again[mturk_events.NOTICE], "due_at": now + 5000}}
    assert mturk_events.deliver(p, early) == "not due"
    # AND one past the retry window is given up on (logged, not queued)
    late = {mturk_events.NOTICE: {**again[mturk_events.NOTICE], "due_at": now,
                                  "first_at": now - p.mturk_notifier.window_seconds}}
    count = len(queued)
    assert mturk_events.deliver(p, late) == "failed"
    assert len(queued) == count


def _events_of(url: str) -> list[tuple[str, str]]:
    return sorted((d["Events"][0]["EventType"], d["Events"][0]["HITId"]) for d in _received(url))


def test_the_sweeper_sends_hit_expired_and_reviewable_for_a_hit_past_its_deadline(
        server, lab, queue, monkeypatch):
    # GIVEN a HIT subscribed to HITExpired and HITReviewable, nobody working on it
    type_id = _hit_type(lab, "6")
    job = _hit_job(server, lab, type_id)
    lab.mturk.update_notification_settings(
        HITTypeId=type_id, Notification=_spec(queue, "SQS", events=("HITExpired",
                                                                     "HITReviewable")))
    p = platform()
    # WHEN the sweeper runs before its deadline THEN nothing is announced
    rounds.finalize_due_jobs(p)
    server.stack.drain()
    assert _events_of(queue) == []
    # WHEN it runs once the deadline has passed
    later = job.deadline + 120
    monkeypatch.setattr(p, "clock", lambda: later)
    rounds.finalize_due_jobs(p)
    server.stack.drain()
    # THEN both events reached the queue, for that HIT
    assert _events_of(queue) == [("HITExpired", hit_id(job.job_id)),
                                 ("HITReviewable", hit_id(job.job_id))]


def test_a_hit_expired_by_its_requester_is_announced_expired_once(server, lab, queue):
    # GIVEN a subscribed HIT nobody works on
    type_id = _hit_type(lab, "8")
    job = _hit_job(server, lab, type_id)
    lab.mturk.update_notification_settings(
        HITTypeId=type_id, Notification=_spec(queue, "SQS", events=("HITExpired",
                                                                     "HITReviewable")))
    # WHEN the requester expires it (Dallinger's ExpireAt=0) and the sweeper then closes it
    lab.mturk.update_expiration_for_hit(HITId=hit_id(job.job_id), ExpireAt=0)
    server.stack.drain()
    assert _events_of(queue) == [("HITExpired", hit_id(job.job_id))]
    rounds.finalize_due_jobs(platform())
    server.stack.drain()
    # THEN HITExpired is not sent again; HITReviewable comes with the sweep
    assert _events_of(queue) == [("HITReviewable", hit_id(job.job_id))]


def test_send_test_event_notification_sends_a_ping_at_once(server, lab, queue, topic):
    # WHEN a Ping and an AssignmentSubmitted test event are sent (no consumer runs)
    lab.mturk.send_test_event_notification(Notification=_spec(queue, "SQS"),
                                           TestEventType="Ping")
    arn, reader = topic
    lab.mturk.send_test_event_notification(Notification=_spec(arn),
                                           TestEventType="AssignmentSubmitted")
    # THEN each destination has its document already
    [ping] = _received(queue)
    assert ping["Events"][0]["EventType"] == "Ping" and "HITId" not in ping["Events"][0]
    [envelope] = _received(reader)
    event = json.loads(envelope["Message"])["Events"][0]
    assert event["EventType"] == "AssignmentSubmitted"
    assert event["AssignmentId"] == mturk_events.TEST_IDS["AssignmentId"]
    # AND a topic that does not exist is a RequestError saying why
    missing = arn.rsplit(":", 1)[0] + ":lab-topic-never-made"
    response = _request_error(lambda: lab.mturk.send_test_event_notification(
        Notification=_spec(missing), TestEventType="Ping"))
    assert response["Error"]["Code"] == "RequestError"
    assert "could not be sent" in response["Error"]["Message"]


@pytest.mark.parametrize("notification, active, message", [
    ({"Destination": "lab@example.org", "Transport": "Email", "Version": "2006-05-05",
      "EventTypes": ["AssignmentSubmitted"]}, None, "Email transport is not supported"),
    (_spec("https://sqs.us-east-1.amazonaws.com/123456789012/q"), None, "an SNS topic ARN"),
    (_spec("arn:aws:sns:us-east-1:123456789012:t", "SQS"), None, "an SQS queue URL"),
    (_spec("arn:aws:sns:us-east-1:123456789012:t", version="2020-01-01"), None, "Version"),
    (_spec("https://sqs.us-east-1.amazonaws.com/123456789012/crowd-dev-results", "SQS"), None,
     "this deployment's own queues"),
    (_spec("https://sqs.us-east-1.amazonaws.com/123456789012/lab.fifo", "SQS"), None,
     "FIFO topic or queue"),
    (None, False, "has no notification specification"),
])
def test_specifications_that_cannot_be_served_are_request_errors(
        server, lab, notification, active, message):
    type_id = _hit_type(lab, "7")
    arguments: dict[str, Any] = {"HITTypeId": type_id}
    if notification is not None:
        arguments["Notification"] = notification
    if active is not None:
        arguments["Active"] = active
    response = _request_error(lambda: lab.mturk.update_notification_settings(**arguments))
    assert response["Error"]["Code"] == "RequestError", response
    assert message in response["Error"]["Message"]
    assert platform().mturk.get(f"mturk#notify#{lab.account_id}", type_id) is None


def test_an_unknown_hit_type_or_event_type_is_refused(server, lab, queue):
    response = _request_error(lambda: lab.mturk.update_notification_settings(
        HITTypeId="3HYWZZNOSUCHHITTYPE00000000000", Notification=_spec(queue, "SQS")))
    assert response["TurkErrorCode"] == "AWS.MechanicalTurk.HITTypeDoesNotExist"
    response = _request_error(lambda: lab.mturk.update_notification_settings(
        HITTypeId=_hit_type(lab), Notification=_spec(queue, "SQS", events=("Sneezed",))))
    assert response["Error"]["Code"] == "ValidationException"
    response = _request_error(lambda: lab.mturk.update_notification_settings(
        HITTypeId=_hit_type(lab)))
    assert response["Error"]["Code"] == "RequestError"
