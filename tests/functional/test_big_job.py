"""A big categorical job end to end on one moto stack, with the app's consumers and the real
state machine: a client quotes ITEMS items at redundancy 3, uploads them as a JSON Lines file
(POST /uploads, the presigned PUT), posts the job naming the upload, and the ingest queue is
delivered until the job is active; every slot is answered and counted, the round closes by
itself, the state machine aggregates it over a Distributed Map (more shards than
INLINE_MAX_SHARDS) and publishes, and the client downloads the results (JSON Lines and CSV)
and walks the paged results API to the end; the report and the job's money are checked.

Size: 1,000 items (3,000 answers) by default, about a minute here with the machine idle and two
with it loaded; BIG_JOB_ITEMS sets another size (`BIG_JOB_ITEMS=20000` for the issue's 20,000
items). The phases cost, per 1,000 items on this machine: ingest ~4 s, counting ~14 ms of CPU
an answer (~42 s; a batch of ten answers is one DynamoDB transaction of ten item updates, each
update expression parsed by moto), the state machine ~6 s; at 20,000 items that is past
15 minutes, more than the whole suite's budget, so the 20,000-item run is not in the suite:
`make test-big` runs it (2026-12-06: 8 passed in 36 minutes on a loaded machine, 22 minutes of
CPU: counting 15 minutes, walking the paged results 5, ingest 50 s, the state machine 48 s).

How the answers are given: the first SUBMITTED answers go through the API (GET /tasks/next,
then POST /assignments/{id}/submit, which sends their counting messages); the rest are
written the way submit writes them: each item's record gets, per answer, what the lease's
and the submit's conditional writes put there (the worker seen, a slot taken, the newest
lease's end; the answer with its assignment, times and instruction version, its ordinal, one
more answer counted, and, with the last slot answered, the item out of the task pool's index),
a page of items in one BatchWriteItem per 25, and each answer's counting message as submit
sends it. Through the API each answer costs a lease and a submit request, each several
DynamoDB calls on moto. The answers through the API land on items the bulk writer then
completes, and every stored answer is checked to have their shape, so the two paths meet on
the same records. Counting is delivered by the real consumer, in batches of 10 as deployed,
after each page of PAGE_ITEMS items' answers: moto's SQS walks every message of the queue on
each send and receive, so bigger pages cost quadratically.

Shards: SHARD_ITEMS is lowered to a 50th of the items (400 at 20,000, where the default 500
gives exactly INLINE_MAX_SHARDS = 40 shards, which the inline Map takes), so the round crosses
the threshold and the Distributed Map runs, as it does for any bigger round.

Item ids: an uploaded item's id is its line's byte offset in the file, so the expected ids are
the file's line offsets, in file order.

Each phase's wall and CPU seconds are printed (`-s`).
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import time
from collections.abc import Iterator
from itertools import accumulate
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
import requests

from chalicelib.adapters.models import ItemModel
from chalicelib.deps import platform
from chalicelib.domain import leasing
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.model import Job
from chalicelib.domain.result_csv import COLUMNS
from chalicelib.workflows import aggregation as stages
from tests.conftest import deployed_stack
from tests.functional.marketplace import Api

ITEMS = int(os.environ.get("BIG_JOB_ITEMS", "1000"))
REDUNDANCY = 3
REWARD_CENTS = 5
LABELS = ["pos", "neg", "neutral"]
WORKERS = 30
SPAMMERS = 3          # workers who answer at random
ACCURACY = 0.85       # how often the others give the true label
SUBMITTED = 60        # answers through the API: 30 tasks each for two workers
PAGE_ITEMS = 100      # items answered (and their answers counted) per page
SHARD_ITEMS = max(1, ITEMS // 50)  # 50 shards: above INLINE_MAX_SHARDS (400 at 20,000 items)
LINK_TIMEOUT = 60


def truth(n: int) -> str:
    """The true label of item n."""
    return LABELS[(n * 7 + n // 3) % 3]


class Clock:
    """Wall and CPU seconds of each phase, printed at the end."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float, float]] = []

    def phase(self, name: str) -> "_Phase":
        """A with-block timed as the named phase."""
        return _Phase(self, name)

    def table(self) -> str:
        """The phases' times, one line each, and their total."""
        lines = [f"{'phase':<34}{'wall s':>8}{'cpu s':>8}"]
        lines += [f"{name:<34}{wall:>8.1f}{cpu:>8.1f}" for name, wall, cpu in self.phases]
        lines.append(f"{'total':<34}{sum(p[1] for p in self.phases):>8.1f}"
                     f"{sum(p[2] for p in self.phases):>8.1f}")
        return "\n".join(lines)


class _Phase:
    """One timed phase: its wall and CPU seconds are added to the clock when it ends."""

    def __init__(self, clock: Clock, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.clock.phases.append((self.name, time.perf_counter() - self.wall,
                                  time.process_time() - self.cpu))


def _file() -> tuple[bytes, list[str]]:
    """ITEMS lines of JSON Lines items, and their item ids in file order (an uploaded line's
    item id is its byte offset: handlers.uploads._item)."""
    lines = [json.dumps({"data": {"text": f"review {n}", "n": n},
                         "external_id": f"r{n}"}).encode() + b"\n" for n in range(ITEMS)]
    body = b"".join(lines)
    offsets = list(accumulate((len(line) for line in lines[:-1]), initial=0))
    return body, [numbered(offset, len(body)) for offset in offsets]


def _choose(rng: random.Random, worker: str, spammers: set[str], n: int) -> dict[str, str]:
    """The answer a worker gives item n."""
    if worker in spammers or rng.random() > ACCURACY:
        return {"label": rng.choice(LABELS)}
    return {"label": truth(n)}


def _submit_some(api: Api, job_id: str, tokens: dict[str, str], spammers: set[str],
                 rng: random.Random) -> dict[str, str]:
    """Two workers lease and answer SUBMITTED // 2 tasks each through the API; return the
    item of each assignment."""
    given = {}
    for worker in list(tokens)[:2]:
        for _ in range(SUBMITTED // 2):
            status, task = api.lease(tokens[worker], job_id)
            assert status == 200 and task, task
            n = task["item"]["data"]["n"]
            status, receipt = api.submit(tokens[worker], task["assignment_id"],
                                         _choose(rng, worker, spammers, n))
            assert status == 200, receipt
            given[task["assignment_id"]] = task["item"]["item_id"]
    return given


def answer_record(record: ItemModel, job: Job, answers: list[tuple[str, dict]], at: float,
                  rng: random.Random) -> list[dict[str, Any]]:
    """Give the item the answers (worker, answer), each as a lease and then a submit write it
    (tasks.lease_next_task, tasks.submit_answer: DynamoItems.try_lease, try_submit and, for
    the last slot, _close); return the counting messages submit sends for them."""
    messages = []
    stored = record.answers.as_dict() if record.answers else {}
    ordinals = record.ordinals.as_dict() if record.ordinals else {}
    seen = set(record.seen or ())
    for worker, answer in answers:
        lease = leasing.new_lease(job, record.item_id, at)
        seen.add(worker)                                     # the lease
        record.free = int(record.free) - 1
        record.last_exp = lease.expires_at
        ordinal = int(record.answer_count or 0)              # the submit
        submitted = at + rng.uniform(4, 40)
        stored[worker] = {"aid": lease.assignment_id, "ans": json.dumps(answer),
                          "at": submitted, "lat": lease.leased_at,
                          "iv": job.instruction_version}
        ordinals[worker] = ordinal
        record.answer_count = ordinal + 1
        messages.append({"job_id": job.job_id, "item_id": record.item_id, "worker_id": worker,
                         "assignment_id": lease.assignment_id,
                         "item_complete": ordinal + 1 == int(record.redundancy),
                         "ordinal": ordinal})
        at += 0.001
    record.seen, record.answers, record.ordinals = seen, stored, ordinals
    if int(record.answer_count) >= int(record.redundancy):
        record.open_job = None                               # _close
    return messages


def _pages(job_id: str) -> Iterator[list[ItemModel]]:
    """The job's item records, PAGE_ITEMS at a time in item order."""
    page: list[ItemModel] = []
    for record in ItemModel.query(job_id, consistent_read=True):
        page.append(record)
        if len(page) == PAGE_ITEMS:
            yield page
            page = []
    if page:
        yield page


def _answer_the_rest(stack: Any, job: Job, workers: list[str], spammers: set[str],
                     rng: random.Random) -> dict[str, int]:
    """Fill every item's slots, a page at a time, each page's answers counted before the
    next is written; return how many answers were written and counted."""
    written = delivered = 0
    results = platform().results_queue
    at = time.time()
    for page in _pages(job.job_id):
        messages = []
        with ItemModel.batch_write() as batch:
            for record in page:
                need = int(record.redundancy) - int(record.answer_count or 0)
                taken = set(record.seen or ())
                chosen = rng.sample([w for w in workers if w not in taken], need)
                n = int(record.data["n"])
                messages += answer_record(record, job, [
                    (w, _choose(rng, w, spammers, n)) for w in chosen], at, rng)
                at += 0.01
                batch.save(record)
        written += len(messages)
        results.send_many(messages)
        delivered += stack.pump.drain(max_rounds=10_000)
    return {"written": written, "delivered": delivered}


@pytest.fixture(scope="module")
def big_job() -> Iterator[dict[str, Any]]:
    """The whole job, run once for the module's tests: what they look at."""
    clock = Clock()
    with pytest.MonkeyPatch.context() as env, ExitStack() as undo:
        env.setattr(stages, "SHARD_ITEMS", SHARD_ITEMS)
        with clock.phase("deploy the stack"):
            stack = undo.enter_context(deployed_stack(env))
        yield from _run(stack, clock, random.Random(16))


def _run(stack: Any, clock: Clock, rng: random.Random) -> Iterator[dict[str, Any]]:
    api = Api(stack)
    seen: dict[str, Any] = {"api": api, "clock": clock}
    with clock.phase("quote, upload, post"):
        body, ids = _file()
        status, quote = api.as_client("POST", "/quotes", {
            "task_type": "categorical", "items": ITEMS, "redundancy": REDUNDANCY,
            "reward_cents": REWARD_CENTS, "gold_rate": 0})
        assert status == 201, quote
        status, target = api.as_client("POST", "/uploads", {"format": "jsonl",
                                                            "bytes": len(body)})
        assert status == 201, target
        put = requests.put(target["url"], data=body, headers=target["headers"],
                           timeout=LINK_TIMEOUT)
        assert put.status_code == 200, put.text
        status, posted = api.as_client("POST", "/jobs", {
            "quote_id": quote["quote_id"], "instructions": "Is the review positive?",
            "answer_schema": {"labels": LABELS}, "items_from": {"upload_id": target["upload_id"]},
            "pilot": {"items": 0}})
        assert status == 202 and posted["state"] == "ingesting", posted
    job_id = posted["job_id"]
    seen.update(quote=quote, job_id=job_id, ids=ids)
    with clock.phase(f"ingest {ITEMS} items"):
        stack.pump.drain(max_rounds=10_000)
        status, active = api.as_client("GET", f"/jobs/{job_id}")
    seen["active"] = active
    tokens = {}
    with clock.phase(f"register {WORKERS} workers"):
        for k in range(WORKERS):
            status, worker = api.call("POST", "/workers", {"name": f"w{k}", "skills": ["en"]})
            assert status == 201, worker
            tokens[worker["worker_id"]] = worker["token"]
    workers = sorted(tokens)
    spammers = set(workers[-SPAMMERS:])
    with clock.phase(f"{SUBMITTED} answers through the API"):
        seen["submitted"] = _submit_some(api, job_id, tokens, spammers, rng)
        stack.pump.drain(max_rounds=10_000)
    job = platform().jobs.get_job(job_id)
    with clock.phase(f"{ITEMS * REDUNDANCY - SUBMITTED} answers written, counted"):
        seen.update(_answer_the_rest(stack, job, workers, spammers, rng))
    with clock.phase("round closes, state machine runs"):
        seen["final"] = stack.wait_for_state(job_id, api.key, ("done", "failed"), timeout=600)
    with clock.phase("download JSON Lines"):
        seen["jsonl"] = _download(api, job_id, "jsonl")
    with clock.phase("download CSV"):
        seen["csv"] = _download(api, job_id, "csv")
    with clock.phase("walk the paged results API"):
        seen["pages"], seen["paged"] = _walk(api, job_id)
    with clock.phase("report, execution history"):
        seen["report"] = api.as_client("GET", f"/jobs/{job_id}/report")
        seen["entered"] = _states_entered(job_id)
        seen["items"] = {record.item_id: record for record in
                         ItemModel.query(job_id, consistent_read=True)}
    print(f"\n{ITEMS}-item job, {ITEMS * REDUNDANCY} answers:\n{clock.table()}")
    yield seen


def _download(api: Api, job_id: str, fmt: str) -> str:
    """The text behind the job's download link in a format."""
    status, link = api.as_client("GET", f"/jobs/{job_id}/results/download?format={fmt}")
    assert status == 200 and link["format"] == fmt, link
    response = requests.get(link["url"], timeout=LINK_TIMEOUT)
    assert response.status_code == 200, response.text[:500]
    return response.content.decode("utf-8")


def _walk(api: Api, job_id: str) -> tuple[int, list[dict[str, Any]]]:
    """Every result line of the paged API, its pages of 1,000 followed to the last; the
    number of pages read."""
    lines: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, page = api.as_client("GET", f"/jobs/{job_id}/results?{query}")
        assert status == 200, page
        pages += 1
        lines += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            return pages, lines
        assert pages <= ITEMS, "the cursor never ends"


def _states_entered(job_id: str) -> list[str]:
    """Names of the states the job's first round's execution entered, in order."""
    sfn = boto3.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])
                    ["executions"] if e["name"] == f"{job_id}-r1"]
    events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events
            if "stateEnteredEventDetails" in e]


def test_the_uploaded_file_is_ingested_and_the_job_takes_answers(big_job):
    active = big_job["active"]
    assert active["state"] == "active" and active["phase"] == "production", active
    ingest = active["ingest"]
    assert ingest["source"] == "upload" and ingest["written"] == ingest["chunks"] > 1, ingest
    assert len(big_job["submitted"]) == SUBMITTED


def test_every_answer_is_counted_and_the_round_closes_by_itself(big_job):
    # every slot was answered once and every answer counted (the counting messages of the
    # answers given through the API were delivered before the others were written)
    assert big_job["written"] + SUBMITTED == ITEMS * REDUNDANCY
    assert big_job["delivered"] >= big_job["written"]
    job = platform().jobs.get_job(big_job["job_id"])
    assert (job.answered, job.items_done) == (ITEMS * REDUNDANCY, ITEMS)
    records = big_job["items"]
    assert sorted(records) == big_job["ids"]
    for record in records.values():
        assert record.done and record.open_job is None and int(record.free) == 0
        assert int(record.answer_count) == REDUNDANCY == len(record.counted.as_dict())
        assert sorted(record.ordinals.as_dict().values()) == list(range(REDUNDANCY))
    # the answers written in bulk are stored as those submitted through the API, beside them
    # on the same items
    by_assignment = {a["aid"]: (record.item_id, a) for record in records.values()
                     for a in record.answers.as_dict().values()}
    assert len(by_assignment) == ITEMS * REDUNDANCY
    assert {by_assignment[aid][0] for aid in big_job["submitted"]} == \
        set(big_job["submitted"].values())
    shapes = {tuple((key, type(value).__name__) for key, value in sorted(a.items()))
              for _, a in by_assignment.values()}
    assert len(shapes) == 1, shapes
    # nobody closed the round: counting did when the last item was complete
    transitions = big_job["final"]["transitions"]
    aggregating = [t for t in transitions if t["to"]["state"] == "aggregating"]
    assert [t["by"] for t in aggregating] == ["system"], transitions


def test_the_round_is_aggregated_over_a_distributed_map(big_job):
    shards = -(-ITEMS // SHARD_ITEMS)
    assert shards > stages.INLINE_MAX_SHARDS
    entered = big_job["entered"]
    assert entered.count("LoadAnswers") == -(-shards // stages.LOAD_SHARDS_PER_CALL)
    assert entered.count("FitModel") == 1 and entered.count("Publish") == 1
    assert "AggregateDistributed" in entered and "AggregateInline" not in entered
    assert entered.index("Publish") < entered.index("MarkDone")
    manifest = json.loads(platform().blobs.get_text(
        f"jobs/{big_job['job_id']}/rounds/1/manifest.json"))
    assert [entry["shard"] for entry in manifest] == list(range(shards))


def _jsonl(big_job) -> list[dict[str, Any]]:
    return [json.loads(line) for line in big_job["jsonl"].splitlines()]


def test_the_json_lines_download_holds_every_item_once_in_item_order(big_job):
    lines = _jsonl(big_job)
    assert lines[0]["method"].endswith("DawidSkene")  # one model fitted on the whole round
    assert [line["item_id"] for line in lines] == big_job["ids"]
    assert [line["external_id"] for line in lines] == [f"r{n}" for n in range(ITEMS)]
    for line in lines:
        assert line["n_answers"] == REDUNDANCY == len(line["answers"])
        assert 0 < line["confidence"] <= 1 and line["method"] == lines[0]["method"]
        assert line["answer"]["label"] in LABELS and set(line["probabilities"]) <= set(LABELS)
        assert len({a["worker_id"] for a in line["answers"]}) == REDUNDANCY


def test_the_results_follow_the_answers(big_job):
    lines = _jsonl(big_job)
    agreed = [line for line in lines
              if len({a["answer"]["label"] for a in line["answers"]}) == 1]
    assert agreed and all(line["answer"] == line["answers"][0]["answer"] for line in agreed)
    right = sum(line["answer"]["label"] == truth(n) for n, line in enumerate(lines))
    assert right / ITEMS > 0.9, right


def test_the_csv_download_holds_every_item_once_in_item_order(big_job):
    rows = list(csv.reader(io.StringIO(big_job["csv"], newline="")))
    assert tuple(rows[0]) == COLUMNS
    lines = _jsonl(big_job)
    assert len(rows) == ITEMS + 1
    for row, line in zip(rows[1:], lines):
        cells = dict(zip(COLUMNS, row))
        assert cells["item_id"] == line["item_id"] and cells["external_id"] == line["external_id"]
        assert cells["answer"] == line["answer"]["label"]
        assert float(cells["confidence"]) == line["confidence"]
        assert cells["n_answers"] == str(REDUNDANCY)


def test_the_paged_results_api_walks_every_item_once_in_item_order(big_job):
    pages, paged = big_job["pages"], big_job["paged"]
    assert pages >= -(-ITEMS // 1000)
    assert paged == _jsonl(big_job)


def test_the_report_counts_the_round_and_the_money_is_spent_exactly(big_job):
    status, report = big_job["report"]
    assert status == 200, report
    assert (report["items"], report["answers"], report["workers"]) == \
        (ITEMS, ITEMS * REDUNDANCY, WORKERS)
    final = big_job["final"]
    assert final["state"] == "done" and final["result_count"] == ITEMS, final
    money = final["money"]
    assert money["budget_cents"] == big_job["quote"]["total_cents"]
    assert money["spent_cents"] == final["spent_cents"] == ITEMS * REDUNDANCY * REWARD_CENTS
    assert money["reserved_cents"] == 0 and money["pool_cents"] == 0
    assert money["for_workers_cents"] == money["spent_cents"] + money["bonus_cents"] == \
        ITEMS * REDUNDANCY * REWARD_CENTS
    job = platform().jobs.get_job(big_job["job_id"])
    assert job.held_cents == 0 and job.pool_cents == 0
