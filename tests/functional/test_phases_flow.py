"""Pilot -> calibration -> production over HTTP, with the real state machine on moto."""
import random

from chalicelib import deps
from tests.functional.marketplace import Api

GOLD_ITEM = 5


def _post(api, **extra):
    deps.platform().rng = random.Random(5)  # which leases try gold first
    return api.job(items=20, redundancy=2, **{"pilot": {"items": 2}, **extra},
                   gold={GOLD_ITEM: {"label": "pos"}}, quote={"gold_rate": 0.5},
                   quality={"gold_rate": 0.5, "block_after": 0})


def _answer_all(api, job, tokens, label="pos"):
    answered = []
    for token in tokens:
        while True:
            status, task = api.lease(token, job["job_id"])
            if status != 200:
                break
            answered.append(task["item"]["item_id"])
            assert api.submit(token, task["assignment_id"], {"label": label})[0] == 200
    return answered


def test_a_pilot_pauses_for_review_then_production_runs_with_revised_instructions(stack):
    api = Api(stack)
    job = _post(api)
    assert (job["phase"], job["pilot_items"], job["instruction_version"]) == ("pilot", 2, 1)
    tokens = [api.worker("a"), api.worker("b")]
    answered = _answer_all(api, job, tokens)
    # the 2 pilot items twice, and the gold item to each worker served it
    assert len([item for item in answered if item != f"{GOLD_ITEM:06d}"]) == 4
    paused = stack.wait_for_state(job["job_id"], api.key, ("paused", "failed"))
    assert (paused["state"], paused["phase"], paused["result_count"]) == ("paused", "calibration", 3)
    status, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    assert status == 200 and report["phase"] == "pilot"
    assert report["gold"]["accuracy"] in (1.0, None)
    # nothing is offered while the client reviews
    assert api.lease(api.worker("c"), job["job_id"])[0] == 204
    status, promoted = api.as_client("POST", f"/jobs/{job['job_id']}/promote",
                                     {"instructions": "Choose the sentiment; irony is neg."})
    assert status == 200, promoted
    assert (promoted["state"], promoted["phase"], promoted["instruction_version"]) == (
        "active", "production", 2)
    stack.drain()  # the held items open
    reviewer = api.worker("d")
    status, task = api.lease(reviewer, job["job_id"])
    assert status == 200 and task["instruction_version"] == 2
    assert task["instructions"] == "Choose the sentiment; irony is neg."
    assert api.as_worker(reviewer, "POST", f"/assignments/{task['assignment_id']}/release")[0] == 200
    _answer_all(api, job, [api.worker("e"), api.worker("f"), api.worker("g")])
    done = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert done["state"] == "done" and done["result_count"] == 20
    assert [t["to"]["state"] for t in done["transitions"]] == [
        "ingesting", "active", "aggregating", "paused", "active", "aggregating", "done"]
    assert done["transitions"][4]["by"] == api_client_id(api)
    status, pilot_report = api.as_client("GET", f"/jobs/{job['job_id']}/report?round=1")
    assert status == 200 and pilot_report["round"] == 1 and pilot_report["items"] == 3
    status, error = api.as_client("GET", f"/jobs/{job['job_id']}/report?round=3")
    assert status == 400 and error["field"] == "round"
    status, error = api.as_client("POST", f"/jobs/{job['job_id']}/promote")
    assert status == 409 and error["error"] == "job_not_promotable"


def api_client_id(api):
    status, listing = api.as_client("GET", "/jobs")
    return listing["jobs"][0]["transitions"][0]["by"]


def test_thresholds_promote_by_rule_or_hold_the_job_for_the_client(stack):
    api = Api(stack)
    good = _post(api, promotion={"gold_accuracy": 0.6}, pilot={"items": 6})
    _answer_all(api, good, [api.worker("a"), api.worker("b")])
    promoted = stack.wait_for_state(good["job_id"], api.key, ("active", "failed"))
    assert (promoted["state"], promoted["phase"], promoted["round"]) == ("active", "production", 2)
    assert promoted["transitions"][-1]["by"] == "rule"
    bad = _post(api, promotion={"gold_accuracy": 0.6}, pilot={"items": 6})
    _answer_all(api, bad, [api.worker("c"), api.worker("d")], label="neg")
    held = stack.wait_for_state(bad["job_id"], api.key, ("paused", "failed"))
    assert held["state"] == "paused" and held["phase"] == "calibration"
    assert "gold_accuracy 0.0 is below 0.6" in held["transitions"][-1]["reason"], held
    status, stopped = api.as_client("POST", f"/jobs/{bad['job_id']}/stop")
    assert status == 200 and stopped["state"] == "done"
    status, error = api.as_client("POST", f"/jobs/{bad['job_id']}/promote", {"reason": 5})
    assert status == 400 and error["field"] == "reason"
