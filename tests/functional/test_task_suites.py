"""Task suites on the moto stack: a job's tasks leased (GET /tasks/next?count=) and answered
(POST /assignments/submit) together, each task its own lease and slot, each answer judged on
its own, the counting messages of a request sent together. One stack for the module: every
test works in jobs and with workers of its own."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest

from chalicelib.deps import platform
from chalicelib.domain.model import Principal
from chalicelib.domain.suites import SuiteAnswer
from chalicelib.handlers import payments, tasks
from chalicelib.handlers.platform import Platform
from tests.conftest import Stack, deployed_stack
from tests.functional.marketplace import Api, in_containers


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One moto stack for the module's tests."""
    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as deployed:
        yield deployed


class Clock:
    """A settable clock for the platform."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The platform's clock, settable for the test and given back after it."""
    before = platform().clock
    platform().clock = settable = Clock()
    yield settable
    platform().clock = before


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The app's sends to the results (counting) queue: (operation, messages), in order."""
    queue = os.environ["RESULTS_QUEUE_NAME"]
    seen: list[tuple[str, int]] = []
    original = botocore.client.BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict) -> Any:
        if operation in ("SendMessage", "SendMessageBatch") and \
                str(params.get("QueueUrl", "")).endswith("/" + queue):
            seen.append((operation, len(params.get("Entries", [None]))))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    return seen


def _answers(suite: dict, label: str = "pos") -> list[dict]:
    return [{"assignment_id": task["assignment_id"], "answer": {"label": label}}
            for task in suite["tasks"]]


def _job_state(api: Api, stack: Stack, job_id: str) -> dict:
    stack.drain()
    status, job = api.as_client("GET", f"/jobs/{job_id}")
    assert status == 200, job
    return job


def test_a_suite_of_five_is_leased_and_submitted_in_one_request(stack, sends):
    # GIVEN a job of 5 items taking one answer each, in suites of 5, shown in both views
    api = Api(stack)
    job = api.job(items=5, redundancy=1, suite_size=5)
    assert job["suite_size"] == 5
    token = api.worker("suite-5")
    _, listed = api.as_worker(token, "GET", "/workers/me/jobs")
    assert [offer["suite_size"] for offer in listed["jobs"]
            if offer["job_id"] == job["job_id"]] == [5]
    # WHEN the worker leases a suite of 5
    status, suite = api.lease_suite(token, job["job_id"], 5)
    # THEN it holds the job's 5 items, each a task as a single lease shows it
    assert status == 200 and suite["suite_size"] == 5
    assert sorted(task["item"]["item_id"] for task in suite["tasks"]) == \
        sorted({task["item"]["item_id"] for task in suite["tasks"]})
    assert len(suite["tasks"]) == 5
    assert len({task["assignment_id"] for task in suite["tasks"]}) == 5
    assert all(task["job_id"] == job["job_id"] and task["expires_at"] and task["instructions"]
               for task in suite["tasks"])
    assert api.lease(api.worker("other"), job["job_id"])[0] == 204  # every slot is leased
    # WHEN it answers all five in one request
    sends.clear()
    status, done = api.submit_suite(token, _answers(suite, "neg"))
    # THEN each is accepted with its receipt, the counting messages went in one batch,
    # and the job counts five answers and completes
    assert status == 200 and done["next"] is None
    assert [r["assignment_id"] for r in done["results"]] == \
        [task["assignment_id"] for task in suite["tasks"]]
    assert all(r["status"] == "accepted" and r["reward_cents"] == job["reward_cents"]
               and r["job_id"] == job["job_id"] and r["submitted_at"]
               for r in done["results"])
    assert sends == [("SendMessageBatch", 5)]
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 5
    assert final["spent_cents"] == 5 * job["reward_cents"]
    _, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    assert {row["answer"]["label"] for row in page["results"]} == {"neg"}


def test_a_partly_expired_suite_keeps_the_answers_whose_leases_were_live(stack, clock):
    # GIVEN two tasks leased at 0 s and two at 40 s, each lease 60 s long
    api = Api(stack)
    job = api.job(items=4, redundancy=2, suite_size=2, lease_seconds=60)
    token = api.worker("late")
    _, early = api.lease_suite(token, job["job_id"], 2)
    clock.now += 40
    _, late = api.lease_suite(token, job["job_id"], 2)
    # WHEN all four are submitted together at 70 s
    clock.now += 30
    status, done = api.submit_suite(token, _answers(early) + _answers(late))
    # THEN the two expired leases' answers are refused and the two live ones accepted
    assert status == 200
    statuses = {r["assignment_id"]: r for r in done["results"]}
    for task in early["tasks"]:
        result = statuses[task["assignment_id"]]
        assert result["status"] == result["error"] == "lease_expired" and result["message"]
    assert [statuses[task["assignment_id"]]["status"] for task in late["tasks"]] == \
        ["accepted", "accepted"]
    # and only those two are counted and spent
    state = _job_state(api, stack, job["job_id"])
    assert state["counts"]["answered"] == 2 and state["spent_cents"] == 2 * job["reward_cents"]


def test_each_answer_of_a_suite_is_judged_on_its_own(stack):
    # GIVEN a suite of three on a job that does not take N/A
    api = Api(stack)
    job = api.job(items=3, redundancy=1, suite_size=3)
    token = api.worker("mixed")
    _, suite = api.lease_suite(token, job["job_id"], 3)
    first, second, third = (task["assignment_id"] for task in suite["tasks"])
    unknown = first[:-6] + "999999_v1"  # well formed, never leased
    # WHEN it answers one well, one with a label the job lacks, one N/A, and names another
    status, done = api.submit_suite(token, [
        {"assignment_id": first, "answer": {"label": "pos"}},
        {"assignment_id": second, "answer": {"label": "maybe"}},
        {"assignment_id": third, "not_applicable": "no text"},
        {"assignment_id": unknown, "answer": {"label": "pos"}}])
    # THEN each has its own result, and the refused ones can still be answered
    assert status == 200
    assert [r["status"] for r in done["results"]] == [
        "accepted", "invalid_answer", "invalid_answer", "assignment_not_found"]
    assert done["results"][1]["field"] == "label"
    assert done["results"][2]["error"] == "not_applicable_not_allowed"
    status, again = api.submit_suite(token, [
        {"assignment_id": second, "answer": {"label": "neg"}},
        {"assignment_id": third, "answer": {"label": "pos"}}])
    assert [r["status"] for r in again["results"]] == ["accepted", "accepted"]
    assert _job_state(api, stack, job["job_id"])["counts"]["answered"] == 3


def test_a_retried_suite_submit_counts_and_pays_nothing_twice(stack, sends):
    # GIVEN a suite of three answered with an Idempotency-Key
    api = Api(stack)
    job = api.job(items=3, redundancy=1, suite_size=3)
    token = api.worker("retry")
    _, suite = api.lease_suite(token, job["job_id"], 3)
    status, first = api.submit_suite(token, _answers(suite), key="suite-1")
    assert status == 200 and {r["status"] for r in first["results"]} == {"accepted"}
    # WHEN the same request is sent again with the key
    status, replayed = api.submit_suite(token, _answers(suite), key="suite-1")
    # THEN it gets the first response, and another body under the key is 422
    assert status == 200 and replayed == first
    status, error = api.submit_suite(token, _answers(suite, "neg"), key="suite-1")
    assert status == 422 and error["error"] == "idempotency_key_reused"
    # WHEN it is sent again without the key, other labels and all
    status, again = api.submit_suite(token, _answers(suite, "neg"))
    # THEN every answer is a duplicate with the first receipt, and the first answer stands
    assert status == 200
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [{**r, "status": "accepted"} for r in again["results"]] == first["results"]
    final = stack.wait_for_state(job["job_id"], api.key, ("done",))
    assert final["counts"]["answered"] == 3 and final["spent_cents"] == 3 * job["reward_cents"]
    _, page = api.as_client("GET", f"/jobs/{job['job_id']}/results")
    assert {row["answer"]["label"] for row in page["results"]} == {"pos"}
    # and once approved, each answer is paid once
    assert api.as_client("POST", f"/jobs/{job['job_id']}/approve", {})[0] == 202
    payments.auto_approve_due(platform())
    payments.auto_approve_due(platform())
    _, earned = api.as_worker(token, "GET", "/workers/me/earnings")
    assert earned["balance_cents"] == 3 * job["reward_cents"]


def test_a_submit_can_lease_the_next_suite_in_the_same_request(stack):
    # GIVEN a job of 6 items in suites of 3 and a first suite leased
    api = Api(stack)
    job = api.job(items=6, redundancy=1, suite_size=3)
    token = api.worker("next")
    _, suite = api.lease_suite(token, job["job_id"], 3)
    # WHEN its answers go with "next"
    status, done = api.submit_suite(token, _answers(suite),
                                    {"count": 3, "job_id": job["job_id"]})
    # THEN the answers are accepted and the next suite holds the three other items
    assert status == 200 and [r["status"] for r in done["results"]] == ["accepted"] * 3
    following = done["next"]
    assert following["suite_size"] == 3 and len(following["tasks"]) == 3
    first_items = {task["item"]["item_id"] for task in suite["tasks"]}
    assert not first_items & {task["item"]["item_id"] for task in following["tasks"]}
    # WHEN those are answered asking for more, and there is none
    status, last = api.submit_suite(token, _answers(following),
                                    {"count": 3, "job_id": job["job_id"]})
    assert status == 200 and [r["status"] for r in last["results"]] == ["accepted"] * 3
    assert last["next"] == {"tasks": [], "suite_size": None}
    # and a "next" naming no such job says so, the answers standing
    status, odd = api.submit_suite(token, _answers(following),
                                   {"count": 2, "job_id": "job_0000000000000000"})
    assert status == 200 and odd["next"]["tasks"] == [] and odd["next"]["error"] == "job_not_found"
    assert [r["status"] for r in odd["results"]] == ["duplicate"] * 3
    assert _job_state(api, stack, job["job_id"])["counts"]["answered"] == 6


def test_count_is_clamped_to_the_suite_size_and_checked(stack):
    api = Api(stack)
    pairs = api.job(items=5, redundancy=1, suite_size=2)
    single = api.job(items=2, redundancy=1)
    token = api.worker("clamp")
    # a count above the job's suite size gets its suite size
    status, suite = api.lease_suite(token, pairs["job_id"], 20)
    assert status == 200 and len(suite["tasks"]) == 2 and suite["suite_size"] == 2
    # a job of single tasks (suite_size 1 by default) gives one task in a suite's shape
    assert single["suite_size"] == 1
    status, one = api.lease_suite(token, single["job_id"], 5)
    assert status == 200 and len(one["tasks"]) == 1 and one["suite_size"] == 1
    # and without count the answer is the single task itself
    status, task = api.lease(token, single["job_id"])
    assert status == 200 and task["assignment_id"] and "tasks" not in task
    # a bad count is a 400 that leases nothing
    for bad in ("0", "21", "x", "2.5", "-1", "%C2%B2"):
        status, error = api.lease_suite(token, pairs["job_id"], bad)
        assert status == 400 and error["field"] == "count", (bad, error)
    status, rest = api.lease_suite(token, pairs["job_id"], 2)
    assert status == 200 and len(rest["tasks"]) == 2
    status, last = api.lease_suite(token, pairs["job_id"], 2)
    assert status == 200 and len(last["tasks"]) == 1  # a suite may be shorter than asked
    assert api.lease_suite(token, pairs["job_id"], 2)[0] == 204


def test_a_bad_suite_size_is_refused_when_the_job_is_posted(stack):
    api = Api(stack)
    _, quote = api.as_client("POST", "/quotes", {"task_type": "categorical", "items": 1,
                                                 "redundancy": 1})
    body = {"quote_id": quote["quote_id"], "instructions": "Pick one.",
            "answer_schema": {"labels": ["pos", "neg"]}, "items": [{"data": {"text": "a"}}]}
    for bad in (0, 21, "3", True, 2.5):
        status, error = api.as_client("POST", "/jobs", {**body, "suite_size": bad})
        assert status == 400 and error["field"] == "suite_size", (bad, error)
    status, job = api.as_client("POST", "/jobs", {**body, "suite_size": 20})
    assert status == 202 and job["suite_size"] == 20  # the quote was not used by the refusals


def test_gold_is_served_per_task_and_never_as_a_whole_suite(stack):
    # GIVEN a job of 40 items, 10 of them gold, served at the highest gold rate, in pairs
    api = Api(stack)
    gold = {n: {"label": "pos"} for n in range(10)}
    job = api.job(items=40, redundancy=1, gold=gold, suite_size=2,
                  quote={"gold_rate": 0.5}, quality={"gold_rate": 0.5, "block_after": 0},
                  pilot={"items": 0})
    gold_texts = {f"item {n}" for n in gold}
    # WHEN six workers lease pairs (and answer them) until the job has nothing for them
    suites = []
    for n in range(6):
        token = api.worker(f"gold-{n}")
        while (leased := api.lease_suite(token, job["job_id"], 2))[0] == 200:
            suite = leased[1]
            suites.append([task["item"]["data"]["text"] in gold_texts for task in suite["tasks"]])
            assert api.submit_suite(token, _answers(suite))[0] == 200
    # THEN gold was served, but no suite was gold alone, and every regular item was answered
    assert len(suites) >= 15
    assert any(any(flags) for flags in suites)
    assert not any(all(flags) for flags in suites), suites
    assert sum(flags.count(False) for flags in suites) == 30


def _race_suites(tokens: list[str], job_id: str, size: int, answer: bool
                 ) -> list[tuple[str, list[str]]]:
    """Workers, each on a container of its own, lease suites of the job all at once until it
    has nothing for them (answering each when `answer`); (worker id, item ids) per suite."""
    suites: list[tuple[str, list[str]]] = []

    def work(container: Platform, worker: Principal) -> None:
        while suite := tasks.lease_suite(container, worker, size, job_id):
            suites.append((worker.account_id, [task.item.item_id for task in suite]))
            if answer:
                tasks.submit_suite(container, worker, [
                    SuiteAnswer(task.assignment_id, {"label": "pos"}) for task in suite])

    in_containers(tokens, work)
    return suites


def test_racing_suites_never_share_a_slot_nor_give_a_worker_an_item_twice(stack):
    # GIVEN 10 items taking one answer each and two workers leasing suites of 5 at once
    api = Api(stack)
    job = api.job(items=10, redundancy=1, suite_size=5)
    suites = _race_suites([api.worker("a"), api.worker("b")], job["job_id"], 5, answer=False)
    # THEN every item was leased exactly once
    leased = [item for _, items in suites for item in items]
    assert sorted(leased) == sorted(set(leased)) and len(leased) == 10
    # GIVEN 12 items taking two answers each and four workers leasing and answering suites
    job = api.job(items=12, redundancy=2, suite_size=4)
    suites = _race_suites([api.worker(f"r{n}") for n in range(4)], job["job_id"], 4,
                          answer=True)
    # THEN no item went beyond its two answers and no worker had an item twice
    per_item: dict[str, list[str]] = {}
    for worker, items in suites:
        for item in items:
            per_item.setdefault(item, []).append(worker)
    assert len(per_item) == 12
    assert all(len(workers) == 2 == len(set(workers)) for workers in per_item.values())
    state = _job_state(api, stack, job["job_id"])
    assert state["counts"]["answered"] == 24 and state["spent_cents"] == 24 * job["reward_cents"]


def test_the_counting_messages_of_a_request_go_in_one_batch_per_ten(stack, sends):
    api = Api(stack)
    job = api.job(items=14, redundancy=1, suite_size=20)
    token = api.worker("batch")
    _, ten = api.lease_suite(token, job["job_id"], 10)
    _, four = api.lease_suite(token, job["job_id"], 4)
    assert len(ten["tasks"]) == 10 and len(four["tasks"]) == 4
    # ten answers: one SendMessageBatch
    sends.clear()
    assert api.submit_suite(token, _answers(ten))[0] == 200
    assert sends == [("SendMessageBatch", 10)]
    # the same ten again (duplicates, their messages sent again) and four more: two batches
    sends.clear()
    status, done = api.submit_suite(token, _answers(ten) + _answers(four))
    assert status == 200 and [r["status"] for r in done["results"]] == \
        ["duplicate"] * 10 + ["accepted"] * 4
    assert sends == [("SendMessageBatch", 10), ("SendMessageBatch", 4)]
    # nothing refused: nothing sent
    sends.clear()
    assert api.submit_suite(token, [{"assignment_id": ten["tasks"][0]["assignment_id"][:-3]
                                     + "_v9", "answer": {"label": "pos"}}])[0] == 200
    assert sends == []
    state = _job_state(api, stack, job["job_id"])
    assert state["counts"]["answered"] == 14
    # and the single submit still sends its one message
    single = api.job(items=1, redundancy=1)
    _, task = api.lease(token, single["job_id"])
    sends.clear()
    assert api.submit(token, task["assignment_id"], {"label": "pos"})[0] == 200
    assert sends == [("SendMessage", 1)]


def test_a_malformed_suite_submit_is_400_and_writes_nothing(stack, sends):
    # GIVEN a leased suite of three
    api = Api(stack)
    job = api.job(items=3, redundancy=1, suite_size=3)
    token = api.worker("bad-bodies")
    _, suite = api.lease_suite(token, job["job_id"], 3)
    good = _answers(suite)
    first = good[0]["assignment_id"]
    bad_bodies = [
        ({"answers": {"a": 1}}, "answers"),
        ({"answers": []}, "answers"),
        ({"answers": good * 7}, "answers"),  # 21 answers
        ({"answers": good + [good[0]]}, "answers[3].assignment_id"),
        ({"answers": good[:2] + [{"answer": {"label": "pos"}}]}, "answers[2].assignment_id"),
        ({"answers": good[:2] + [{"assignment_id": first}]}, "answers[2]"),
        ({"answers": good[:2] + [{**good[2], "not_applicable": "x"}]}, "answers[2]"),
        ({"answers": good[:2] + [{**good[2], "extra": 1}]}, "answers[2].extra"),
        ({"answers": good[:2] + [{"assignment_id": first, "answer": "pos"}]},
         "answers[2].answer"),
        ({"answers": good[:2] + ["pos"]}, "answers[2]"),
        ({"answers": good, "next": {"count": 0}}, "next.count"),
        ({"answers": good, "next": {"count": 2, "other": 1}}, "next.other"),
        ({"answers": good, "more": 1}, "more"),
        ([good], "body"),
    ]
    # WHEN each malformed body is sent
    for body, field in bad_bodies:
        status, error = api.call("POST", "/assignments/submit", body,
                                 {"Authorization": f"Bearer {token}"})
        # THEN it is a 400 naming the field
        assert status == 400 and error["field"] == field and error["message"], (body, error)
    status, error = api.call("POST", "/assignments/submit", "{not json",
                             {"Authorization": f"Bearer {token}"})
    assert status == 400 and error["error"] == "malformed_json"
    # and nothing was written or sent: the leases are live and unanswered
    assert sends == []
    status, done = api.submit_suite(token, good)
    assert [r["status"] for r in done["results"]] == ["accepted"] * 3
    assert _job_state(api, stack, job["job_id"])["counts"]["answered"] == 3


def test_suite_routes_refuse_what_single_routes_refuse(stack):
    api = Api(stack)
    job = api.job(items=2, redundancy=1, suite_size=2)
    # no worker token
    status, error = api.call("GET", f"/tasks/next?count=2&job_id={job['job_id']}")
    assert status == 401 and error["error"] == "missing_credentials"
    status, error = api.call("POST", "/assignments/submit", {"answers": []})
    assert status == 401
    token = api.worker("needs-skill", skills=["fr"])
    skilled = api.job(items=1, redundancy=1, suite_size=2, required_skills=["de"])
    status, error = api.lease_suite(token, skilled["job_id"], 2)
    assert status == 403 and error["error"] == "not_qualified"
    status, error = api.lease_suite(token, "job_0000000000000000", 2)
    assert status == 404 and error["error"] == "job_not_found"
    status, error = api.as_worker(token, "GET", "/tasks/next?count=2&color=red")
    assert status == 400 and error["error"] == "unknown_field"
    # another worker's assignment is not found for this one
    other = api.worker("owner")
    _, suite = api.lease_suite(other, job["job_id"], 2)
    status, done = api.submit_suite(token, _answers(suite))
    assert status == 200
    assert [r["status"] for r in done["results"]] == ["assignment_not_found"] * 2


def test_workers_racing_for_suites_get_full_suites_until_the_job_runs_low(stack):
    # GIVEN 60 items taking three answers each (180 tasks) in suites of 5
    api = Api(stack)
    job = api.job(items=60, redundancy=3, suite_size=5, pilot={"items": 0})
    tokens = [api.worker(f"full-{n}") for n in range(6)]
    lock = threading.Lock()
    leased = [0]
    suites: list[tuple[int, int]] = []  # (tasks leased before the request, suite length)

    def work(container: Platform, worker: Principal) -> None:
        while True:
            with lock:
                before = leased[0]
            suite = tasks.lease_suite(container, worker, 5, job["job_id"])
            if not suite:
                return
            with lock:
                leased[0] += len(suite)
                suites.append((before, len(suite)))
            tasks.submit_suite(container, worker, [
                SuiteAnswer(task.assignment_id, {"label": "pos"}) for task in suite])

    # WHEN six workers, each on a container of its own, lease and answer suites all at once
    in_containers(tokens, work)
    # THEN every task was leased, and every suite asked for while more than 80 tasks were
    # still to lease (the six workers' suites in flight take at most 30 of them) held five
    assert leased[0] == 180
    early = [length for before, length in suites if 180 - before > 80]
    assert len(early) >= 15 and early == [5] * len(early), suites


def test_a_keyed_suite_submit_whose_response_is_large_is_kept_and_replayed(stack):
    # GIVEN a job whose instructions are as long as allowed (each task shows them: 240 KB
    # of JSON each, as the key's stored response escapes them), in suites of 5, one leased
    api = Api(stack)
    job = api.job(items=20, redundancy=1, suite_size=5, pilot={"items": 0},
                  instructions="\U0001f642" * 20_000)
    token = api.worker("long")
    _, suite = api.lease_suite(token, job["job_id"], 5)
    # WHEN its answers go with an Idempotency-Key and ask for the next suite
    following = {"count": 5, "job_id": job["job_id"]}
    status, done = api.submit_suite(token, _answers(suite), following, key="long-1")
    # THEN it is answered, and the same request again gets the same response
    assert status == 200, done
    assert len(done["next"]["tasks"]) >= 2, (len(suite["tasks"]), done["next"])
    assert {r["status"] for r in done["results"]} == {"accepted"}
    status, replayed = api.submit_suite(token, _answers(suite), following, key="long-1")
    assert status == 200 and replayed == done, replayed
