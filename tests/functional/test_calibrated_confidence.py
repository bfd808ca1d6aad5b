"""Calibrated confidence through the whole aggregation state machine (moto): a label job with
enough answered gold gets a calibration map, its results carry the calibrated confidence and
the model's own, and its report the map, the ECE before and after and the reliability
diagram; a job with little gold keeps the identity and says why."""
from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import deps
from tests.conftest import deployed_stack
from tests.functional.marketplace import Api

LABELS = ["pos", "neg", "neutral"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    """One moto stack for the module's two jobs."""
    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as deployed:
        yield deployed


def _run(stack: Any, regular: int, gold: int, workers: int) -> dict[str, Any]:
    """A label job of `regular` items and `gold` gold items (after them), 3 answers each,
    gold served on half the tasks; its result lines, report, CSV and report page. A quarter
    of the items mislead the crowd (7 workers in 10 give the same wrong label), the others
    are answered right 8 times in 10, so the model, taking errors as independent, is
    overconfident (the same worker and item always give the same answer)."""
    api = Api(stack)
    truth = {n: LABELS[n % 3] for n in range(regular + gold)}
    known = {n: {"label": truth[n]} for n in range(regular, regular + gold)}
    job = api.job(items=regular + gold, redundancy=3, gold=known, pilot={"items": 0},
                  quote={"gold_rate": 0.5}, quality={"gold_rate": 0.5, "block_after": 0})
    for worker in range(workers):
        token = api.worker(f"w{worker}")
        while True:
            status, task = api.lease(token, job["job_id"])
            if status != 200 or not task:
                break
            n = int(task["item"]["data"]["text"].split()[1])
            draw = zlib.crc32(f"{worker}/{n}".encode()) % 10
            right = LABELS.index(truth[n])
            if zlib.crc32(f"item {n}".encode()) % 4 == 0:  # misleading
                label = LABELS[(right + 1) % 3] if draw < 7 else truth[n]
            else:
                label = truth[n] if draw < 8 else LABELS[(right + 1 + draw % 2) % 3]
            assert api.submit(token, task["assignment_id"], {"label": label})[0] == 200
    final = stack.wait_for_state(job["job_id"], api.key, ("done", "failed"))
    assert final["state"] == "done", final
    body = deps.platform().blobs.get_text(f"jobs/{job['job_id']}/results.jsonl")
    _, report = api.as_client("GET", f"/jobs/{job['job_id']}/report")
    csv_text = deps.platform().blobs.get_text(f"jobs/{job['job_id']}/results.csv")
    page = api.http.get(f"/jobs/{job['job_id']}/report?format=html",
                        headers={"X-Api-Key": api.key}).body.decode()
    return {"job": job, "lines": [json.loads(line) for line in body.splitlines()],
            "report": report, "csv": csv_text, "page": page}


@pytest.fixture(scope="module")
def much_gold(stack: Any) -> dict[str, Any]:
    return _run(stack, regular=45, gold=40, workers=5)


@pytest.fixture(scope="module")
def little_gold(stack: Any) -> dict[str, Any]:
    return _run(stack, regular=12, gold=3, workers=3)


def test_enough_gold_calibrates_the_results_and_keeps_the_models_confidence(much_gold):
    section = much_gold["report"]["calibration"]
    # GIVEN a round with at least 20 answered gold items
    assert section["gold_items"] >= 20
    # THEN its map is not the identity, and it was fitted on them
    assert section["kind"] != "identity" and str(section["gold_items"]) in section["reason"]
    # AND it says whether the model kept the gold clamped, from how many gold items each fit
    # got right scored as if their gold were unknown
    assert isinstance(section["gold_clamped"], bool)
    right = section["clamped_right"], section["unclamped_right"]
    assert all(0 <= n <= section["gold_items"] for n in right)
    assert not section["gold_clamped"] or right[0] > right[1]
    assert f"{right[0]} of {section['gold_items']} gold items right" in section["clamp_reason"]
    # AND every fitted result carries probabilities summing to 1, its confidence the
    # calibrated probability of its answer, and the model's own beside it
    fitted = [line for line in much_gold["lines"] if line["method"] != "gold"]
    assert fitted and all(line["method"] in ("DawidSkene", "OneCoinDawidSkene") for line in fitted)
    for line in fitted:
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert line["confidence"] == round(line["probabilities"][line["answer"]["label"]], 4)
        assert 0 < line["confidence_raw"] <= 1
    assert any(line["confidence"] != line["confidence_raw"] for line in fitted)
    # AND gold items show their known answer, sure of it either way
    gold = [line for line in much_gold["lines"] if line["method"] == "gold"]
    assert gold and all(line["confidence"] == line["confidence_raw"] == 1.0 for line in gold)
    # AND the CSV's last column is the raw confidence
    header, first = much_gold["csv"].splitlines()[:2]
    assert header.endswith(",confidence_raw")
    assert first.endswith("," + str(much_gold["lines"][0]["confidence_raw"]))


def test_the_report_shows_the_map_its_ece_and_the_diagram_before_and_after(much_gold):
    report, section = much_gold["report"], much_gold["report"]["calibration"]
    for side in ("before", "after"):
        assert {"ece", "brier", "log_loss"} <= set(section[side])
        assert all(isinstance(section[side][name], float) for name in ("ece", "brier", "log_loss"))
        rows = section[side]["reliability"]
        assert len(rows) == 10 and sum(row["count"] for row in rows) == section["gold_items"]
        assert all({"lower", "upper", "count", "confidence", "accuracy"} <= set(row) for row in rows)
    # the map is fitted on these posteriors by their log loss: it cannot do worse on them
    assert section["after"]["log_loss"] <= section["before"]["log_loss"]
    # AND the report's confidence figures are the calibrated ones
    answered = [line for line in much_gold["lines"] if line["n_answers"]]
    assert report["mean_confidence"] == pytest.approx(
        sum(line["confidence"] for line in answered) / len(answered), abs=1e-4)
    lowest = min(line["confidence"] for line in answered)
    assert report["lowest_confidence"][0]["confidence"] == lowest
    # AND the page shows the diagram as a table
    assert "<h2>Calibration</h2>" in much_gold["page"] and "observed after" in much_gold["page"]


def test_little_gold_keeps_the_identity_and_the_report_says_why(little_gold):
    section = little_gold["report"]["calibration"]
    assert section["kind"] == "identity" and section["gold_items"] < 20
    assert f"{section['gold_items']} gold items" in section["reason"]
    # AND with too little gold to compare the two fits, the model is fitted without gold
    assert section["gold_clamped"] is False and section["clamped_right"] is None
    assert section["before"]["reliability"] == section["after"]["reliability"]
    fitted = [line for line in little_gold["lines"] if line["method"] != "gold"]
    assert fitted and all(line["confidence"] == line["confidence_raw"] for line in fitted)
