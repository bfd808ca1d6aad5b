"""Adaptive redundancy in jobs: items take answers between min and max by their confidence,
every extra answer paid from the pool (on the fakes)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from chalicelib.domain.adaptive import OnlineModel
from chalicelib.domain.aggregation.calibration import MIN_GOLD, CalibrationMap
from chalicelib.domain.keys import online_model_key
from chalicelib.domain.model import CLIENT, WORKER
from chalicelib.errors import InvalidRequest
from chalicelib.handlers import accounts, jobs, redundancy, rounds, tasks
from tests.fakes import FakeClock, ingest_all, make_platform

POLICY = {"min": 2, "max": 5, "target_confidence": 0.9}


@pytest.fixture
def p():
    return make_platform(FakeClock())


def _post(p, items=30, policy=None, gold_rate=0.0):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": policy or POLICY,
                                              "gold_rate": gold_rate})
    job = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick one.", "pilot": {"items": 0},
        "answer_schema": {"labels": ["pos", "neg"]},
        "items": [{"data": {"n": n}} for n in range(items)]})
    ingest_all(p)
    return quote, p.jobs.get_job(job.job_id)


@pytest.mark.parametrize("redundancy, field", [
    ({"min": 3, "max": 2, "target_confidence": 0.9}, "redundancy.max"),
    ({"min": 2, "max": 11, "target_confidence": 0.9}, "redundancy.max"),
    ({"min": 2, "max": 4, "target_confidence": 1.0}, "redundancy.target_confidence"),
    ({"min": 2, "max": 4}, "redundancy.target_confidence"),
    ({"min": 2, "max": 4, "target_confidence": 0.9, "step": 1}, "redundancy.step"),
    ("three", "redundancy"),
])
def test_a_bad_redundancy_names_its_field(p, redundancy, field):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    with pytest.raises(InvalidRequest) as caught:
        jobs.create_quote(p, client, {"task_type": "categorical", "items": 3,
                                          "redundancy": redundancy})
    assert caught.value.field == field


def test_an_adaptive_job_is_quoted_at_max_and_starts_items_at_min(p):
    quote, job = _post(p)
    assert quote.redundancy == 5 and quote.adaptive == POLICY
    lines = {line.name: line.quantity for line in quote.line_items}
    assert lines["worker_rewards"] == 30 * 5
    assert job.redundancy == 2 and job.adaptive == POLICY
    # the pool holds the answers between min and max
    assert job.pool_cents == 30 * 3 * job.reward_cents
    assert {item.redundancy for item in p.items.iter_items(job.job_id)} == {2}
    client = accounts.create_account(p, CLIENT, "B")[0]
    with pytest.raises(InvalidRequest) as caught:
        jobs.create_quote(p, client, {"task_type": "translation", "items": 3,
                                          "redundancy": POLICY})
    assert caught.value.field == "redundancy"


def _crowd(p, job, n_workers, accuracy, truth, rng):
    """Workers answer everything they are offered (correct with the given probability)."""
    workers = [accounts.create_account(p, WORKER, f"w{k}")[0] for k in range(n_workers)]
    for worker in workers:
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            right = truth[task.item.item_id]
            label = right if rng.random() < accuracy else ("neg" if right == "pos" else "pos")
            tasks.submit_answer(p, worker, task.assignment_id, {"label": label})
            for message in p.results_queue.take():
                rounds.count_answers(p, [message])
    return workers


def test_confident_items_stop_at_min_and_doubtful_ones_take_more_within_the_pool(p, monkeypatch):
    # GIVEN an adaptive job whose online model is refitted every 20 answers
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 20)
    _, job = _post(p, items=30)
    truth = {f"{n:06d}": "pos" if n % 3 else "neg" for n in range(30)}
    pool = job.pool_cents
    # WHEN 8 fairly careful workers answer everything they are offered
    _crowd(p, job, 8, 0.85, truth, random.Random(3))
    # THEN every item has between min and max answers, some stopped early, some took more
    items = [item for item in p.items.iter_items(job.job_id)]
    counts = [item.answer_count for item in items]
    assert min(counts) >= 2 and max(counts) <= 5
    assert counts.count(2) >= 5 and counts.count(5) >= 1 and sum(counts) < 30 * 5
    # AND each extra answer came from the pool, which never went below zero
    job = p.jobs.get_job(job.job_id)
    extra = sum(item.extended for item in items)
    assert job.pool_cents == pool - extra * job.reward_cents >= 0
    assert job.items_done == 30 and job.state == "aggregating"
    # AND the online model was written for the counting consumer
    assert json.loads(p.blobs.get_text(online_model_key(job.job_id)))["classes"]


def test_without_budget_for_more_an_item_stops_at_min(p, monkeypatch):
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 10_000)  # never fitted
    _, job = _post(p, items=4)
    p.jobs.reserve(job.job_id, job.pool_cents - job.reward_cents)  # leave one extra answer
    _crowd(p, job, 6, 0.9, {f"{n:06d}": "pos" for n in range(4)}, random.Random(1))
    counts = sorted(item.answer_count for item in p.items.iter_items(job.job_id))
    assert counts == [2, 2, 2, 3] and p.jobs.get_job(job.job_id).pool_cents == 0


def test_a_redelivered_completing_answer_adds_no_second_slot(p, monkeypatch):
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 10_000)
    _, job = _post(p, items=1)
    workers = [accounts.create_account(p, WORKER, f"w{k}")[0] for k in range(2)]
    for worker in workers:
        task = tasks.lease_next_task(p, worker, job.job_id)
        tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    messages = p.results_queue.take()
    rounds.count_answers(p, messages)
    rounds.count_answers(p, messages)  # SQS delivers again
    item = p.items.get_item(job.job_id, "000000")
    assert (item.redundancy, item.extended) == (3, 1)
    assert p.jobs.get_job(job.job_id).items_done == 0


def test_a_refit_reads_a_bounded_window_of_items_and_keeps_the_guarantees(p, monkeypatch):
    # GIVEN an adaptive job of 30 items refitted every 20 answers from at most 12 items,
    # read 5 a page
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 20)
    monkeypatch.setattr(redundancy, "REFIT_ITEMS", 12)
    monkeypatch.setattr(redundancy, "REFIT_PAGE", 5)
    _, job = _post(p, items=30)
    truth = {f"{n:06d}": "pos" if n % 3 else "neg" for n in range(30)}
    pool = job.pool_cents
    refit, reads, samples = redundancy.refit_online_model, [], []

    def counted_refit(platform, job_id, new):
        before = platform.items.item_reads
        refit(platform, job_id, new)
        reads.append(platform.items.item_reads - before)

    def recorded_sample(platform, job):
        items = sample(platform, job)
        samples.append([item.item_id for item in items])
        return items

    sample = redundancy.refit_sample
    monkeypatch.setattr(redundancy, "refit_online_model", counted_refit)
    monkeypatch.setattr(redundancy, "refit_sample", recorded_sample)
    monkeypatch.setattr(p.items, "iter_items",
                        lambda *args, **kwargs: pytest.fail("a whole-job read of the items"))
    # WHEN 8 fairly careful workers answer everything they are offered
    _crowd(p, job, 8, 0.85, truth, random.Random(3))
    # THEN each refit read at most 12 items (a window of consecutive ones, wrapping), each once
    assert samples and max(reads) <= 12
    ids = sorted(truth)
    for window in samples:
        assert len(window) == len(set(window)) == 12
        at = ids.index(window[0])
        assert window == [ids[(at + k) % 30] for k in range(12)]
    assert len({window[0] for window in samples}) > 1  # from random items
    # AND the adaptive guarantees hold: between min and max answers, some items stopped early,
    # some took more, every extra answer paid from the pool, never below zero
    items = [p.items.get_item(job.job_id, item_id) for item_id in ids]
    counts = [item.answer_count for item in items]
    assert min(counts) >= 2 and max(counts) <= 5 and counts.count(2) >= 5
    assert counts.count(5) >= 1 or any(item.extended for item in items)
    job = p.jobs.get_job(job.job_id)
    assert job.pool_cents == pool - sum(item.extended for item in items) * job.reward_cents >= 0
    assert json.loads(p.blobs.get_text(online_model_key(job.job_id)))["classes"]


def _two_agreeing_answers_with(p, monkeypatch, calibration):
    """An adaptive item (2 to 5 answers, target 0.9) answered 'pos' twice, judged by an online
    model whose raw confidence in two agreeing answers is 0.988, through the given map.
    Returns the item."""
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 10_000)  # no refit
    _, job = _post(p, items=1)
    table = np.log(np.array([[[0.9, 0.1], [0.1, 0.9]]]))  # any worker: right 90% of the time
    model = OnlineModel(["pos", "neg"], np.log([0.5, 0.5]), [], table, calibration)
    p.blobs.put_text(online_model_key(job.job_id), json.dumps(model.to_dict()), "application/json")
    _crowd(p, job, 2, 1.0, {"000000": "pos"}, random.Random(0))
    return p.items.get_item(job.job_id, "000000")


def test_the_target_is_met_by_the_calibrated_confidence_not_the_raw_one(p, monkeypatch):
    item = _two_agreeing_answers_with(p, monkeypatch, CalibrationMap("temperature", {"t": 3.0}))
    assert (item.answer_count, item.redundancy, item.extended) == (2, 3, 1)  # 0.81 < 0.9


def test_with_the_identity_map_the_raw_confidence_stops_the_item(p, monkeypatch):
    item = _two_agreeing_answers_with(p, monkeypatch, CalibrationMap())
    assert (item.answer_count, item.redundancy, item.extended) == (2, 2, 0)  # 0.988 >= 0.9


def test_a_refit_fits_the_map_on_the_answered_gold_of_its_sample(p, monkeypatch):
    # GIVEN an adaptive job of 20 regular and 30 gold items, gold served on half the tasks
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: 10_000)
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": 50,
                                          "redundancy": POLICY, "gold_rate": 0.5})
    posted = jobs.post_job(p, client, {
        "quote_id": quote.quote_id, "instructions": "Pick one.", "pilot": {"items": 0},
        "answer_schema": {"labels": ["pos", "neg"]}, "quality": {"gold_rate": 0.5},
        "items": [{"data": {"n": n}, **({"gold": {"label": "pos"}} if n >= 20 else {})}
                  for n in range(50)]})
    ingest_all(p)
    job = p.jobs.get_job(posted.job_id)
    _crowd(p, job, 10, 0.85, {f"{n:06d}": "pos" if n % 3 else "neg" for n in range(50)},
           random.Random(5))
    # WHEN the online model is refitted on every answer
    monkeypatch.setattr(redundancy, "refit_every", lambda answers: p.jobs.get_job(job.job_id).answered)
    redundancy.refit_online_model(p, job.job_id, 1)
    # THEN its map was fitted on the gold items that have answers, and is kept with it
    answered_gold = sum(1 for item in p.items.iter_items(job.job_id)
                        if item.gold is not None and item.answers)
    assert answered_gold >= MIN_GOLD
    stored = OnlineModel.from_dict(json.loads(p.blobs.get_text(online_model_key(job.job_id))))
    assert stored.calibration.gold == answered_gold
