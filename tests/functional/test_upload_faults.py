"""Crash after every write of an uploaded file's ingest and deliver every message again: each
item is written once, each range counted once, and the job goes active exactly when every
range is in, with its bad lines reported.

A 10-line file (line 4 bad, skip_bad_lines) is read in ranges of 64 bytes (four ranges). Its
planner message and the range messages it queues go to the ingest consumer one at a time,
once without faults, recording the writes (the planner's send; per range its bad lines'
object if any, each item's PutItem and the transaction that counts the range with its
summary; then the report and the move to active); then once per such write with a crash
right after it. A delivery that died is delivered again, as SQS does, and then every
message three more times, with an item leased in between. After every delivery the job is
active only with every range in, and every range counted has all its items in.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.deps import platform
from chalicelib.domain import uploads as u
from chalicelib.domain.ids import item_id, new_assignment_id
from chalicelib.domain.keys import upload_key
from chalicelib.domain.model import ACTIVE, CLIENT, INGESTING, Lease, Principal
from chalicelib.handlers import accounts, jobs, uploads
from tests.functional.faults import Crash, Plan, crash_after_writes, messages_sent

RANGE = 64
LINES = [json.dumps({"data": {"n": n}, "external_id": f"e{n}"}) if n != 4 else "{oops"
         for n in range(1, 11)]
BODY = ("\n".join(LINES) + "\n").encode()
OFFSETS = [sum(len(line) + 1 for line in LINES[:k]) for k in range(len(LINES))]
GOOD = {item_id(offset, len(BODY)): n + 1 for n, offset in enumerate(OFFSETS) if n != 3}
RANGES = [{item for item, n in GOOD.items() if start <= int(item) < start + RANGE}
          for start in range(0, len(BODY), RANGE)]
COPIES = 3


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(u, "RANGE_BYTES", RANGE)


def _post(name: str) -> tuple[str, list[dict[str, Any]]]:
    """A job from the uploaded file, posted by a new client, and its planner message."""
    p = platform()
    client, _ = accounts.create_account(p, CLIENT, name)
    target = uploads.create_upload(p, client, {"format": "jsonl", "bytes": len(BODY)})
    p.blobs._s3.put_object(Bucket=p.blobs._bucket, Key=upload_key(
        client.account_id, target["upload_id"], "jsonl"), Body=BODY)
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": len(GOOD),
                                          "redundancy": 2})
    with messages_sent() as sent:
        job = jobs.post_job(p, client, {
            "quote_id": quote.quote_id, "instructions": "Sentiment?", "pilot": {"items": 0},
            "answer_schema": {"labels": ["pos", "neg"]}, "skip_bad_lines": True,
            "items_from": {"upload_id": target["upload_id"]}})
    return job.job_id, [json.loads(body) for _, body in sent]


def _check(job_id: str) -> tuple[str, set[str]]:
    """The job's state and items in, checked: every range counted has all its items in, and
    the job is active only with every range counted."""
    p = platform()
    job = p.jobs.get_job(job_id)
    items = {item.item_id for item in p.items.iter_items(job_id)}
    counted = [s is not None for s in p.jobs.ingest_ranges(job_id, len(RANGES))]
    assert job.chunks_written == sum(counted)
    assert all(RANGES[k] <= items for k, done in enumerate(counted) if done), (counted, items)
    assert job.state in (INGESTING, ACTIVE)
    if job.state == ACTIVE:
        assert all(counted)
    return job.state, items


def _ingest(job_id: str, messages: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Deliver each message until it goes through (a crashed one again, after the others),
    and those it queues, checking the job after every delivery; how many deliveries died,
    and every message delivered."""
    p = platform()
    waiting, died, delivered = list(messages), 0, []
    while waiting:
        message = waiting.pop(0)
        with messages_sent() as sent:
            try:
                jobs.ingest_chunk(p, message)
            except Crash:
                waiting.append(message)
                died += 1
        delivered.append(message)
        waiting += [json.loads(body) for _, body in sent if json.loads(body) not in waiting]
        _check(job_id)
    return died, delivered


def _run(plan: Plan, name: str) -> None:
    job_id, messages = _post(name)
    assert messages == [{"job_id": job_id, "plan": 0}]
    with crash_after_writes(plan):
        plan.armed = True
        died, delivered = _ingest(job_id, messages)
        plan.armed = False
    assert died == (plan.crashed is not None)
    state, items = _check(job_id)
    assert (state, items) == (ACTIVE, set(GOOD))
    p = platform()
    now = time.time()
    first = sorted(GOOD)[0]
    lease = Lease(new_assignment_id(job_id, first, now), now + 600, now)
    assert p.items.try_lease(job_id, first, "w1", lease, None, now).ok
    unique = [m for k, m in enumerate(delivered) if m not in delivered[:k]]
    for _ in range(COPIES):
        _ingest(job_id, unique)
    written = {item.item_id: item for item in p.items.iter_items(job_id)}
    assert {key: item.data["n"] for key, item in written.items()} == GOOD
    assert (written[first].leases, written[first].free) == ({"w1": lease}, 1)
    assert p.jobs.get_job(job_id).chunks_written == len(RANGES)
    owner = Principal(p.jobs.get_job(job_id).client_id, CLIENT)
    report = uploads.ingest_report(p, owner, job_id)
    assert report["bad_lines"] == 1 and [line["line"] for line in report["listed"]] == [4]


def test_a_crash_after_any_write_of_an_upload_ingest_leaves_every_item_once(stack,
                                                                           small_ranges):
    clean = Plan()
    _run(clean, "Upload client")
    sites = [site for _, site in clean.writes]
    assert sorted(set(sites)) == [
        "uploads.finish_ingest > jobs.transition", "uploads.finish_ingest > storage.put_text",
        "uploads.ingest_range > items.put_range", "uploads.ingest_range > storage.put_text",
        "uploads.plan_ranges > messaging.send_many"]
    assert sites.count("uploads.ingest_range > items.put_range") == len(GOOD) + len(RANGES)
    crashed = []
    for site in dict.fromkeys(sites):
        for nth in range(1, sites.count(site) + 1):
            plan = Plan(crash_site=site, nth=nth)
            _run(plan, f"Upload client {len(crashed)}")
            assert plan.crashed is not None, (site, nth)
            crashed.append(plan.crashed)
    assert len(crashed) == len(clean.writes)
