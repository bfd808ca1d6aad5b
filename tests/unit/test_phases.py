"""Pilot -> calibration -> production: sizing, thresholds and the lifecycle on the fakes."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain import phases
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CALIBRATION, CLIENT, CLOSING, DONE, PAUSED, PILOT, PRODUCTION, WORKER,
)
from chalicelib.errors import Conflict, InvalidRequest
from chalicelib.handlers import accounts, jobs, rounds, tasks
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeClock, ingest_all, make_platform


@pytest.fixture
def p():
    return make_platform(FakeClock())


def test_the_default_pilot_is_five_percent_capped_at_100_and_small_jobs_skip_it():
    assert phases.parse_pilot(None, 100) == 5
    assert phases.parse_pilot(None, 2000) == 100 == phases.parse_pilot(None, 5000)
    assert phases.parse_pilot(None, 19) == 0
    assert phases.parse_pilot({"items": 7}, 10) == 7
    assert phases.parse_pilot({"share": 0.5}, 10) == 5
    assert phases.parse_pilot({"share": 1.0}, 1000) == 100
    assert phases.parse_pilot({"items": 0}, 100) == 0


@pytest.mark.parametrize("raw, field", [
    ({"items": 10}, "pilot"),                 # every item: nothing left to promote
    ({"items": 3, "share": 0.1}, "pilot"),    # one or the other
    ({}, "pilot"),
    ({"items": 101}, "pilot.items"),
    ({"share": 1.5}, "pilot.share"),
    ({"size": 3}, "pilot.size"),
    ("5%", "pilot"),
])
def test_a_bad_pilot_setting_names_its_field(raw, field):
    with pytest.raises(InvalidRequest) as caught:
        phases.parse_pilot(raw, 10)
    assert caught.value.field == field


def test_the_pilot_sample_is_spread_over_the_items():
    assert phases.pilot_indices(100, 5) == [10, 30, 50, 70, 90]
    assert phases.pilot_indices(3, 3) == [0, 1, 2]
    assert phases.pilot_indices(10, 0) == []


@pytest.mark.parametrize("raw, field", [
    ({}, "promotion"), ({"gold": 0.9}, "promotion.gold"),
    ({"gold_accuracy": 1.2}, "promotion.gold_accuracy"), ({"alpha": "high"}, "promotion.alpha"),
])
def test_bad_thresholds_name_their_field(raw, field):
    with pytest.raises(InvalidRequest) as caught:
        phases.parse_promotion(raw)
    assert caught.value.field == field


def test_thresholds_are_met_only_when_every_metric_is_measured_and_high_enough():
    report = {"gold": {"accuracy": 0.9}, "agreement": {"krippendorff_alpha": 0.55,
                                                       "fleiss_kappa": None},
              "mean_confidence": 0.8, "not_applicable": {"rate": 0.1}}
    assert phases.check_thresholds(report, {"gold_accuracy": 0.85})[0] is True
    met, reasons = phases.check_thresholds(report, {"gold_accuracy": 0.85, "alpha": 0.6})
    assert met is False and reasons == ["gold_accuracy 0.9 meets 0.85", "alpha 0.55 is below 0.6"]
    assert phases.check_thresholds(report, {"kappa": 0.1}) == (
        False, ["kappa could not be measured (needs 0.1)"])
    assert phases.check_thresholds(report, {"max_na_rate": 0.05})[0] is False
    assert phases.check_thresholds(report, {"max_na_rate": 0.2, "mean_confidence": 0.8})[0]


# --- the lifecycle on the fakes ---------------------------------------------------------------

GOLD = {"000003": "pos", "000011": "neg"}


def _post(p, promotion=None, items=20, pilot=None):
    client = accounts.create_account(p, CLIENT, "Acme")[0]
    quote = jobs.create_quote(p, client, {"task_type": "categorical", "items": items,
                                              "redundancy": 2})
    body = {"quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
            "answer_schema": {"labels": ["pos", "neg"]}, "pilot": pilot or {"items": 4},
            "quality": {"gold_rate": 0.5, "block_after": 0},
            "items": [{"data": {"n": n}, **({"gold": {"label": GOLD[f"{n:06d}"]}}
                                             if f"{n:06d}" in GOLD else {})}
                      for n in range(items)]}
    if promotion:
        body["promotion"] = promotion
    job = jobs.post_job(p, client, body)
    ingest_all(p)
    return client, p.jobs.get_job(job.job_id)


def _answer(p, job, workers, label_of):
    """Each worker answers everything it is offered; return the item ids answered."""
    answered = set()
    for worker in workers:
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            p.clock.advance(1)
            tasks.submit_answer(p, worker, task.assignment_id,
                                   {"label": label_of(task.item.item_id)})
            answered.add(task.item.item_id)
    for message in p.results_queue.take():
        rounds.count_answers(p, [message])
    return answered


def _run_round(p, job_id):
    job = p.jobs.get_job(job_id)
    assert job.state == AGGREGATING
    loaded = stages.load_answers(p, {"job_id": job_id, "round": job.round})
    fitted = stages.fit_model(p, loaded)
    for shard in fitted["shards"]:
        stages.aggregate_shard(p, shard)
    return stages.mark_done(p, stages.publish_results(p, fitted))


def _workers(p, n=2):
    return [accounts.create_account(p, WORKER, f"w{k}")[0] for k in range(n)]


def _truth(item_id):
    return GOLD.get(item_id, "pos")


def test_a_pilot_answers_its_sample_then_waits_in_calibration_for_the_client(p):
    # GIVEN a 20-item job with a pilot of 4 items and 2 gold items
    client, job = _post(p)
    assert (job.phase, job.state, job.pilot_items, job.gold_items) == (PILOT, ACTIVE, 4, 2)
    # WHEN two workers answer everything they are offered
    answered = _answer(p, job, _workers(p), _truth)
    # THEN only the pilot's items (spread over the job) and gold were offered
    assert {"000002", "000007", "000013", "000017"} < answered
    assert answered <= {"000002", "000003", "000007", "000011", "000013", "000017"}
    # AND the pilot round was aggregated, then the job paused in calibration
    assert p.workflow.started == [f"{job.job_id}-r1"]
    outcome = _run_round(p, job.job_id)
    job = p.jobs.get_job(job.job_id)
    assert outcome["state"] == PAUSED and (job.state, job.phase) == (PAUSED, CALIBRATION)
    report = jobs.job_report(p, client, job.job_id)
    assert report["phase"] == PILOT and report["items"] == 6 and report["gold"]["accuracy"] == 1.0
    # AND no task is offered while the client reads the report
    assert tasks.lease_next_task(p, _workers(p, 3)[2], job.job_id) is None
    # WHEN the client promotes it with revised instructions
    job = jobs.promote_job(p, client, job.job_id, {"instructions": "Pick the sentiment. "
                                                       "Sarcasm counts as neg."})
    ingest_all(p)
    # THEN production offers the held items under version 2 of the instructions
    assert (job.state, job.phase, job.round, job.instruction_version) == (
        ACTIVE, PRODUCTION, 2, 2)
    workers = _workers(p, 3)
    task = tasks.lease_next_task(p, workers[0], job.job_id)
    assert task.job.instruction_version == 2 and task.assignment_id.endswith("_v2")
    tasks.release_assignment(p, workers[0], task.assignment_id)
    _answer(p, job, workers, _truth)
    outcome = _run_round(p, job.job_id)
    job = p.jobs.get_job(job.job_id)
    assert outcome["state"] == DONE and job.state == DONE and job.result_count == 20
    # AND every answer records the version it was given under
    lines = [json.loads(line) for line in
             p.blobs.get_text(f"jobs/{job.job_id}/results.jsonl").splitlines()]
    versions = {line["item_id"]: {a["instruction_version"] for a in line["answers"]}
                for line in lines}
    assert versions["000002"] == {1} and versions["000000"] == {2}
    # AND the pilot's calibration report is still there as round 1
    assert jobs.job_report(p, client, job.job_id, {"round": "1"})["phase"] == PILOT
    assert jobs.job_report(p, client, job.job_id)["phase"] == PRODUCTION
    # AND every transition is on record: when, by whom and why
    moves = [(t["to"]["state"], t["to"]["phase"], t["by"]) for t in job.transitions]
    assert moves == [
        ("ingesting", PILOT, client.account_id), (ACTIVE, PILOT, "system"),
        (AGGREGATING, PILOT, "system"), (PAUSED, CALIBRATION, "system"),
        (ACTIVE, PRODUCTION, client.account_id), (AGGREGATING, PRODUCTION, "system"),
        (DONE, PRODUCTION, "system")]
    assert "instructions revised to version 2" in job.transitions[4]["reason"]
    assert all(isinstance(t["at"], float) for t in job.transitions)


def test_thresholds_promote_the_job_by_themselves_when_the_report_meets_them(p):
    client, job = _post(p, promotion={"gold_accuracy": 0.6})
    _answer(p, job, _workers(p), _truth)
    outcome = _run_round(p, job.job_id)
    job = p.jobs.get_job(job.job_id)
    assert outcome["state"] == "promoted"
    assert (job.state, job.phase, job.round) == (ACTIVE, PRODUCTION, 2)
    assert job.transitions[-1]["by"] == "rule"
    assert job.transitions[-1]["reason"].startswith("promotion thresholds met: gold_accuracy")
    # the held items were queued for opening, in one message, and it opens them
    pilot = {"000002", "000003", "000007", "000011", "000013", "000017"}
    assert [f"{n:06d}" for n in range(20) if p.items.get_item(job.job_id, f"{n:06d}").held] \
        == [f"{n:06d}" for n in range(20) if f"{n:06d}" not in pilot]
    assert p.ingest_queue.sent == [{"job_id": job.job_id, "open_range": [0, 20], "items": 20}]
    ingest_all(p)
    assert not any(p.items.get_item(job.job_id, f"{n:06d}").held for n in range(20))
    # a repeated MarkDone changes nothing and promotes nothing twice
    stages.mark_done(p, {"job_id": job.job_id, "round": 1, "results_key": "x", "count": 6})
    assert p.jobs.get_job(job.job_id).round == 2


def test_thresholds_not_met_pause_the_job_with_the_reasons(p):
    client, job = _post(p, promotion={"gold_accuracy": 0.6, "alpha": 0.5})
    # every worker answers "neg": the gold item that is "pos" is missed by all
    _answer(p, job, _workers(p), lambda item: "neg")
    outcome = _run_round(p, job.job_id)
    job = p.jobs.get_job(job.job_id)
    assert outcome["state"] == PAUSED and (job.state, job.phase) == (PAUSED, CALIBRATION)
    last = job.transitions[-1]
    assert last["by"] == "rule" and "gold_accuracy 0.5 is below 0.6" in last["reason"]
    # the client can still promote it by hand, or stop it
    job = jobs.stop_job(p, client, job.job_id)
    assert job.state == DONE and job.phase == CALIBRATION and job.result_count == 6
    with pytest.raises(Conflict) as caught:
        jobs.promote_job(p, client, job.job_id, {})
    assert caught.value.code == "job_not_promotable"


def test_promoting_a_running_pilot_closes_it_and_stopping_a_pilot_ends_the_job(p):
    client, job = _post(p)
    worker = _workers(p, 1)[0]
    task = tasks.lease_next_task(p, worker, job.job_id)
    tasks.submit_answer(p, worker, task.assignment_id, {"label": "pos"})
    with pytest.raises(Conflict) as caught:
        jobs.promote_job(p, client, job.job_id, {"instructions": "new"})
    assert caught.value.code == "instructions_too_early"
    job = jobs.promote_job(p, client, job.job_id, {"reason": "seen enough"})
    # nothing leased: the pilot round starts at once and ends in calibration
    assert job.state == AGGREGATING and job.transitions[-2]["to"]["state"] == CLOSING
    assert job.transitions[-2]["reason"] == "seen enough"
    assert _run_round(p, job.job_id)["state"] == PAUSED
    # a stopped pilot ends the job instead
    client, other = _post(p)
    assert jobs.stop_job(p, client, other.job_id).state == AGGREGATING
    assert _run_round(p, other.job_id)["state"] == DONE


@pytest.mark.parametrize("body, field", [
    ({"instructions": ""}, "instructions"), ({"why": "x"}, "why"), ([], "body"),
])
def test_a_bad_promotion_body_names_its_field(p, body, field):
    client, job = _post(p)
    with pytest.raises(InvalidRequest) as caught:
        jobs.promote_job(p, client, job.job_id, body)
    assert caught.value.field == field
