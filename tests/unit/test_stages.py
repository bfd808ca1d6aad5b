"""Aggregation state-machine stages (chalicelib.workflows.aggregation) on the in-memory fakes."""
from __future__ import annotations

import copy
import csv
import io
import json

import pytest

from chalicelib.domain import keys
from chalicelib.domain.model import AGGREGATING, CLIENT, DONE, FAILED, WORKER, Job
from chalicelib.errors import NotFound
from chalicelib.handlers import accounts, jobs, rounds, tasks
from chalicelib.handlers.platform import client_job
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeClock, ingest_all, make_platform

# Which label each of three workers gives each item: item 0 splits 2:1, the others agree.
LABELS = {"000000": ["pos", "pos", "neg"]}
AGREED = ["neg", "neg", "neg"]


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _job(p, items=2, redundancy=3):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": redundancy})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
        "answer_schema": {"labels": ["pos", "neg"]},
        "items": [{"data": {"n": n}, "external_id": f"ext-{n}"} for n in range(items)]})
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _answer_all(p, job: Job) -> list[str]:
    """Every worker answers every item (one second apart); return the worker ids in order."""
    workers = [accounts.create_account(p, WORKER, f"w{n}")[0] for n in range(job.redundancy)]
    for index, worker in enumerate(workers):
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            p.clock.advance(1)
            label = LABELS.get(task.item.item_id, AGREED)[index]
            tasks.submit_answer(p, worker, task.assignment_id, {"label": label})
    for message in p.results_queue.take():
        rounds.count_answers(p, [message])
    return [worker.account_id for worker in workers]


def _execution_input(p, job: Job) -> dict:
    return p.workflow.executions[f"{job.job_id}-r{job.round}"]


def _shards(p, fitted: dict) -> list[dict]:
    """The Map's items: the inline list, or the manifest a Distributed Map reads."""
    if fitted["distributed"]:
        return json.loads(p.blobs.get_text(fitted["manifest_key"]))
    return fitted["shards"]


def _run_round(p, payload: dict, reverse_shards: bool = False) -> dict:
    """The state machine's happy path: load (while more) -> fit -> each shard -> publish -> done."""
    loaded = stages.load_answers(p, payload)
    while loaded["more"]:
        loaded = stages.load_answers(p, loaded)
    fitted = stages.fit_model(p, loaded)
    shards = _shards(p, fitted)
    for shard in (shards[::-1] if reverse_shards else shards):
        stages.aggregate_shard(p, shard)
    published = stages.publish_results(p, fitted)
    return stages.mark_done(p, published)


def _lines(p, key: str) -> list[dict]:
    return [json.loads(line) for line in p.blobs.get_text(key).splitlines()]


def test_a_round_publishes_one_json_line_per_item_and_marks_the_job_done(p):
    # GIVEN a 2-item job answered by three workers, its aggregation started
    client, job = _job(p)
    workers = _answer_all(p, job)
    assert p.jobs.get_job(job.job_id).state == AGGREGATING
    # WHEN the round runs
    _run_round(p, _execution_input(p, job))
    # THEN the job is done with two results the client can page through and download
    done = client_job(p, client, job.job_id)
    assert (done.state, done.result_count, done.done_at) == (DONE, 2, p.now())
    assert done.results_key == f"jobs/{job.job_id}/results.jsonl"
    lines = _lines(p, done.results_key)
    summary = [(l["item_id"], l["external_id"], l["answer"], l["n_answers"], l["method"])
               for l in lines]
    assert summary == [("000000", "ext-0", {"label": "pos"}, 3, "DawidSkene"),
                       ("000001", "ext-1", {"label": "neg"}, 3, "DawidSkene")]
    # AND the confidence is the posterior of the chosen label, over probabilities summing to 1
    for line in lines:
        assert line["confidence"] == round(line["probabilities"][line["answer"]["label"]], 4)
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert lines[0]["confidence"] < lines[1]["confidence"]
    # AND each line carries who answered what, in submission order
    assert [a["worker_id"] for a in lines[0]["answers"]] == workers
    assert [a["answer"]["label"] for a in lines[0]["answers"]] == ["pos", "pos", "neg"]
    _, page = jobs.result_page(p, client, job.job_id, {})
    assert page.entries == lines
    _, fmt, url = jobs.result_download(p, client, job.job_id)
    assert fmt == "jsonl" and done.results_key in url


def test_shards_are_joined_in_item_order_whatever_order_they_finish_in(p, monkeypatch):
    # GIVEN a 5-item job cut into shards of 2 items
    monkeypatch.setattr(stages, "SHARD_ITEMS", 2)
    client, job = _job(p, items=5, redundancy=1)
    _answer_all(p, job)
    # WHEN the round runs with the shards aggregated last-first
    _run_round(p, _execution_input(p, job), reverse_shards=True)
    # THEN three shards were written and the results are in item order
    assert len([k for k in p.blobs.objects if "/answers/" in k]) == 3
    done = client_job(p, client, job.job_id)
    assert done.result_count == 5
    assert [l["item_id"] for l in _lines(p, done.results_key)] == [f"{n:06d}" for n in range(5)]


def test_the_csv_download_holds_the_same_results_as_the_json_lines_in_item_order(p, monkeypatch):
    # GIVEN a 5-item job cut into shards of 2 items, aggregated last shard first
    monkeypatch.setattr(stages, "SHARD_ITEMS", 2)
    client, job = _job(p, items=5, redundancy=3)
    _answer_all(p, job)
    _run_round(p, _execution_input(p, job), reverse_shards=True)
    # WHEN the client asks for the CSV download
    _, fmt, url = jobs.result_download(p, client, job.job_id, {"format": "csv"})
    # THEN the link is to the job's results CSV: one header, then a row per item in item order,
    # each saying what the JSON line says
    assert fmt == "csv" and keys.results_csv_key(job.job_id) in url
    body, content_type = p.blobs.objects[keys.results_csv_key(job.job_id)]
    assert content_type.startswith("text/csv")
    table = list(csv.reader(io.StringIO(body)))
    assert table[0] == ["item_id", "external_id", "answer", "confidence", "n_answers",
                        "not_applicable", "method", "probabilities", "confidence_raw"]
    lines = _lines(p, p.jobs.get_job(job.job_id).results_key)
    assert [row[0] for row in table[1:]] == [line["item_id"] for line in lines] \
        == [f"{n:06d}" for n in range(5)]
    for row, line in zip(table[1:], lines):
        assert row[1:3] == [line["external_id"], line["answer"]["label"]]
        assert float(row[3]) == line["confidence"] and int(row[4]) == line["n_answers"]
        assert row[5:7] == ["false", line["method"]]
        assert json.loads(row[7]) == line["probabilities"]
        assert float(row[8]) == line["confidence_raw"]
    # AND it was made from a part per shard, as the JSON Lines were
    assert len([k for k in p.blobs.objects if k.endswith(".csv") and "/results/" in k]) == 3


def test_big_rounds_load_in_several_calls_and_aggregate_from_the_manifest(p, monkeypatch):
    # GIVEN a 7-item job cut into shards of 2 items, at most 2 shards per load call, and an
    # inline Map for at most 2 shards
    monkeypatch.setattr(stages, "SHARD_ITEMS", 2)
    monkeypatch.setattr(stages, "LOAD_SHARDS_PER_CALL", 2)
    monkeypatch.setattr(stages, "INLINE_MAX_SHARDS", 2)
    client, job = _job(p, items=7, redundancy=3)
    _answer_all(p, job)
    # WHEN the answers are loaded
    calls = [stages.load_answers(p, _execution_input(p, job))]
    while calls[-1]["more"]:
        calls.append(stages.load_answers(p, calls[-1]))
    # THEN two calls wrote 2 + 2 shards, the last wrote the rest
    assert [(c["shard_count"], c["more"]) for c in calls] == [(2, True), (4, False)]
    assert calls[0]["after"] == "000003"
    # AND the fit sends the Map to the S3 manifest instead of listing the shards in the state
    fitted = stages.fit_model(p, calls[-1])
    assert fitted["distributed"] and fitted["shards"] == []
    manifest = json.loads(p.blobs.get_text(fitted["manifest_key"]))
    assert [m["key"] for m in manifest] == [keys.answers_key(job.job_id, 1, n) for n in range(4)]
    # AND the whole round gives the same results as one unsharded pass
    _run_round(p, _execution_input(p, job))
    sharded = _lines(p, p.jobs.get_job(job.job_id).results_key)
    assert [l["item_id"] for l in sharded] == [f"{n:06d}" for n in range(7)]
    monkeypatch.setattr(stages, "SHARD_ITEMS", 500)
    single = stages.fit_model(p, stages.load_answers(p, _execution_input(p, job)))
    stages.aggregate_shard(p, single["shards"][0])
    whole = _lines(p, keys.part_key(job.job_id, 1, 0))
    assert [(l["answer"], l["probabilities"]) for l in whole] == \
        [(l["answer"], l["probabilities"]) for l in sharded]


def test_a_cancelled_job_publishes_unanswered_items_with_no_answer(p):
    # GIVEN a 2-item job where one item got its only answer before the client cancelled
    client, job = _job(p, items=2, redundancy=1)
    worker = accounts.create_account(p, WORKER, "w")[0]
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    jobs.stop_job(p, client, job.job_id)
    # WHEN the round runs
    _run_round(p, _execution_input(p, job))
    # THEN both items are published, the unanswered one with no answer and no confidence
    lines = {l["item_id"]: l for l in _lines(p, p.jobs.get_job(job.job_id).results_key)}
    answered = lines[task.item.item_id]
    unanswered = lines[({"000000", "000001"} - {task.item.item_id}).pop()]
    assert (answered["answer"], answered["n_answers"]) == ({"label": "pos"}, 1)
    assert (unanswered["answer"], unanswered["confidence"], unanswered["n_answers"]) \
        == (None, 0.0, 0)


def _state(p, job_id: str) -> tuple:
    return (copy.deepcopy(p.blobs.objects), copy.deepcopy(p.results.rows),
            p.jobs.get_job(job_id))


def test_every_stage_can_run_twice_and_leave_the_same_state(p):
    # GIVEN a job whose aggregation has started
    _, job = _job(p)
    _answer_all(p, job)
    payload = _execution_input(p, job)

    def twice(stage, event):
        # WHEN a stage runs, and runs again with the same input (a retry)
        first = stage(p, event)
        after_first = _state(p, job.job_id)
        second = stage(p, event)
        # THEN it returns the same and leaves the same state
        assert second == first
        assert _state(p, job.job_id) == after_first
        return first

    loaded = twice(stages.load_answers, payload)
    fitted = twice(stages.fit_model, loaded)
    for shard in _shards(p, fitted):
        twice(stages.aggregate_shard, shard)
    published = twice(stages.publish_results, fitted)
    twice(stages.mark_done, published)
    assert p.jobs.get_job(job.job_id).state == DONE


def test_a_retried_mark_done_keeps_the_first_done_time(p):
    # GIVEN a job whose round was published and marked done
    _, job = _job(p)
    _answer_all(p, job)
    _run_round(p, _execution_input(p, job))
    done = p.jobs.get_job(job.job_id)
    # WHEN MarkDone is retried a minute later with the same input
    p.clock.advance(60)
    stages.mark_done(p, {"job_id": job.job_id, "round": 1, "results_key": done.results_key,
                         "count": done.result_count})
    # THEN the job still says when it was first done
    assert p.jobs.get_job(job.job_id).done_at == done.done_at


def test_loading_answers_of_an_unknown_job_fails_by_name(p):
    # GIVEN no such job WHEN its round is loaded THEN NotFound (not retried by the machine)
    with pytest.raises(NotFound):
        stages.load_answers(p, {"job_id": "job_0000000000000000", "round": 1})


def test_a_failed_round_marks_the_job_failed_with_the_error(p):
    # GIVEN a job whose aggregation has started
    client, job = _job(p)
    _answer_all(p, job)
    # WHEN the state machine's catch calls MarkFailed with the input it builds
    stages.mark_failed(p, {"job_id": job.job_id, "round": 1, "error": "ValueError",
                           "cause": '{"errorMessage": "bad data"}'})
    # THEN the client sees the job failed, with the error named
    failed = client_job(p, client, job.job_id)
    assert failed.state == FAILED
    assert failed.error.startswith("ValueError") and "bad data" in failed.error
