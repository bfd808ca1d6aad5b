"""Page cursors over HTTP: every listing pages to its end, and a cursor is opaque (it shows no
key layout, account id or item id) and refused when altered, another account's or plain."""
from __future__ import annotations

import base64
import json

from chalicelib.adapters import cursors
from chalicelib.deps import platform
from chalicelib.domain.model import CLIENT
from chalicelib.handlers import payments
from chalicelib.handlers.accounts import authenticate, create_account
from tests.functional.marketplace import Api
from tests.functional.receiver import Receiver
from tests.functional.test_webhooks import _settle

# How a key's JSON names its attributes and their types.
KEY_NAMES = ('"client_id"', '"account_id"', '"job_id"', '"item_id"', '"created_at"',
             '"entry_id"', '"key"', '{"S":')


def _pages(call, path: str, listing: str, limit: int = 1) -> tuple[list, list[str]]:
    """Every entry of a listing read `limit` at a time, and the cursors it handed out."""
    entries, handed, cursor = [], [], None
    while True:
        status, page = call("GET", f"{path}{'&' if '?' in path else '?'}limit={limit}"
                                   + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        entries.extend(page[listing])
        cursor = page["next_cursor"]
        if not cursor:
            return entries, handed
        handed.append(cursor)


def _readable(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _assert_opaque(cursor: str, *secrets_inside: str) -> None:
    raw = _readable(cursor)
    for text in (*KEY_NAMES, *secrets_inside):
        # (random text holds a short string now and then: the cursor's own text is checked
        # for the longer ones)
        assert text.encode() not in raw, (text, cursor)
        assert len(text) < 6 or text not in cursor, (text, cursor)


def test_every_listing_pages_to_its_end_with_opaque_cursors(stack):
    # GIVEN a client with three finished jobs (one hooked to a receiver) and a worker paid for
    # every answer
    api = Api(stack)
    token = api.worker("paid")
    with Receiver() as receiver:
        assert api.as_client("POST", "/webhooks/endpoints", {"url": receiver.url})[0] == 201
        jobs = []
        for _ in range(3):
            job = api.job(items=3, redundancy=1)
            while (task := api.lease(token, job["job_id"])[1]) is not None:
                assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
                assert api.as_client("POST",
                                     f"/assignments/{task['assignment_id']}/approve")[0] == 200
            assert stack.wait_for_state(job["job_id"], api.key, ("done",))["state"] == "done"
            assert api.as_client("POST", f"/jobs/{job['job_id']}/approve")[0] == 202
            jobs.append(job)
        payments.auto_approve_due(platform())
        _settle(stack, lambda: len(receiver.succeeded()) >= 3)
    job_ids = [j["job_id"] for j in jobs]
    _, me = api.as_worker(token, "GET", "/workers/me")
    client = lambda method, path: api.as_client(method, path)  # noqa: E731
    worker = lambda method, path: api.as_worker(token, method, path)  # noqa: E731
    # WHEN each listing is read one entry at a time
    listed, job_cursors = _pages(client, "/jobs", "jobs")
    results, result_cursors = _pages(client, f"/jobs/{jobs[0]['job_id']}/results", "results")
    earned, earning_cursors = _pages(worker, "/workers/me/earnings", "entries")
    delivered, delivery_cursors = _pages(client, "/webhooks/deliveries", "deliveries")
    # THEN each comes whole, once, in its order
    assert [j["job_id"] for j in listed] == [j["job_id"] for j in reversed(jobs)]
    assert [r["item_id"] for r in results] == ["000000", "000001", "000002"]
    # (one settlement per job and pay window: three, or more if an hour turned meanwhile)
    assert sum(e["answers"] for e in earned) == 9 and len(earned) >= 3
    assert len({e["entry_id"] for e in earned}) == len(earned)
    assert len(delivered) >= 3 and len({d["delivery_id"] for d in delivered}) == len(delivered)
    # AND no cursor shows a key name, the account, a job or an item
    client_id = authenticate(platform(), api.key, CLIENT).account_id
    accounts = [client_id, me["worker_id"], *job_ids]
    for cursor in job_cursors + result_cursors + earning_cursors + delivery_cursors:
        _assert_opaque(cursor, *accounts, "000001")
    # AND a cursor is bound to its listing and its account
    _, other_key = create_account(platform(), CLIENT, "Other")
    status, error = api.as_client("GET", f"/jobs?limit=1&cursor={job_cursors[0]}", key=other_key)
    assert status == 400 and error["field"] == "cursor"
    status, error = api.as_client("GET", f"/jobs?limit=1&cursor={delivery_cursors[0]}")
    assert status == 400 and error["field"] == "cursor"


def test_an_altered_or_readable_cursor_is_refused_and_a_new_container_reads_old_ones(stack):
    # GIVEN a client with two jobs and the cursor of the first page of its listing
    api = Api(stack)
    api.job(items=1, redundancy=1)
    api.job(items=1, redundancy=1)
    status, page = api.as_client("GET", "/jobs?limit=1")
    cursor = page["next_cursor"]
    assert status == 200 and cursor
    # WHEN any character of it is changed, or it is cut, or made readable as cursors once were
    key = cursors.codec().open(cursor)
    plain = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
    altered = [cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1:]
               for i in range(0, len(cursor), 7)]
    for bad in [*altered, cursor[:-4], cursor + "AA", plain, "%%%"]:
        status, error = api.as_client("GET", f"/jobs?limit=1&cursor={bad}")
        # THEN it is refused, naming the cursor
        assert status == 400 and error == {
            "error": "invalid_request", "field": "cursor",
            "message": "'cursor' is not valid: pass back a next_cursor as it came"}, bad
    # AND another container (which reads the stage's cursor secret afresh) takes the cursor
    cursors.reset()
    status, second = api.as_client("GET", f"/jobs?limit=1&cursor={cursor}")
    assert status == 200 and second["jobs"][0]["job_id"] != page["jobs"][0]["job_id"]
