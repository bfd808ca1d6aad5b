"""Calibrated confidence in results and reports: the model's label with the calibrated
confidence beside its own, the round's map fitted on its gold items by FitModel's pure part,
a shard's rows mapped at once, and the report's calibration section and page table."""
from __future__ import annotations

import random

import numpy as np
import pytest

from chalicelib.api.report_page import render
from chalicelib.domain.aggregation import NA_CLASS, Posterior, aggregate_item
from chalicelib.domain.aggregation.calibration import CalibrationMap
from chalicelib.domain.aggregation.categorical import default_model, encode
from chalicelib.domain.report import build_report, calibration_section
from chalicelib.workflows.aggregation import calibrated_posteriors, result_line, round_calibration

SCHEMA = {"labels": ["pos", "neg", "neutral"]}
ANSWER = {"worker_id": "w", "assignment_id": "a", "answer": {"label": "neg"}, "submitted_at": 1.0}


def _line(posterior: Posterior | None = None, task_type: str = "categorical",
          answers: tuple = (ANSWER,), gold: dict | None = None) -> dict:
    return result_line(aggregate_item("i", task_type, SCHEMA if task_type == "categorical"
                                      else {"min_length": 1, "max_length": 9}, list(answers),
                                      posterior=posterior, gold=gold))


def test_the_answer_is_the_models_and_the_confidence_the_calibrated_probability() -> None:
    # GIVEN a posterior whose calibrated row would prefer another class (a map may reorder)
    posterior = Posterior("DawidSkene", ["pos", "neg", "neutral"], [0.2, 0.35, 0.45],
                          raw=[0.1, 0.8, 0.1])
    line = _line(posterior)
    # THEN the label is the model's, its confidence the calibrated figure, its raw the model's
    assert line["answer"] == {"label": "neg"}
    assert line["confidence"] == 0.35 and line["confidence_raw"] == 0.8
    assert line["probabilities"] == {"pos": 0.2, "neg": 0.35, "neutral": 0.45}


def test_without_a_map_or_a_model_the_raw_confidence_is_the_confidence() -> None:
    uncalibrated = _line(Posterior("DawidSkene", ["pos", NA_CLASS], [0.25, 0.75]))
    assert uncalibrated["answer"] is None and uncalibrated["confidence"] == 0.75
    assert uncalibrated["confidence_raw"] == 0.75
    voted = _line(None)
    assert voted["method"] == "majority_vote" and voted["confidence_raw"] == voted["confidence"] == 1.0
    text = _line(None, "translation", ({**ANSWER, "answer": {"text": "hola"}},
                                       {**ANSWER, "worker_id": "v", "answer": {"text": "hola!"}}))
    assert 0 < text["confidence"] < 1 and text["confidence_raw"] == text["confidence"]
    empty = _line(None, answers=())
    assert empty["confidence"] == empty["confidence_raw"] == 0.0


def test_a_gold_item_shows_its_known_answer_with_full_confidence_raw_and_calibrated() -> None:
    posterior = Posterior("DawidSkene", ["pos", "neg", "neutral"], [0.2, 0.35, 0.45],
                          raw=[0.1, 0.8, 0.1])
    line = _line(posterior, gold={"label": "pos"})
    assert line["answer"] == {"label": "pos"} and line["method"] == "gold"
    assert line["confidence"] == line["confidence_raw"] == 1.0


def _round(gold_count: int, seed: int = 5):
    """Encoded votes of 200 items by 5 workers, the first gold_count items gold; the default
    model fitted with them clamped. A quarter of the items mislead the crowd (most workers
    give the same wrong label), the others are answered right 80% of the time: the model,
    which takes the workers' errors as independent, is sure of the misled items' wrong
    labels, so its confidence overstates its accuracy."""
    rng = random.Random(seed)
    labels = SCHEMA["labels"]
    truth = {f"{n:04d}": labels[rng.randrange(3)] for n in range(200)}
    votes = []
    for item, label in truth.items():
        decoy = labels[(labels.index(label) + 1) % 3] if rng.random() < 0.25 else None
        for w in range(5):
            if decoy is not None:
                answer = decoy if rng.random() < 0.75 else label
            else:
                answer = label if rng.random() < 0.8 else rng.choice(labels)
            votes.append((item, f"w{w}", answer))
    encoded = encode(*zip(*votes), label_order=labels)
    gold_items = np.arange(gold_count)
    gold_classes = np.array([labels.index(truth[encoded.items_[i]]) for i in gold_items],
                            dtype=np.int64)
    return (lambda: default_model(label_order=labels)), encoded, gold_items, gold_classes


@pytest.fixture(scope="module")
def enough_gold():
    make, encoded, gold_items, gold_classes = _round(60)
    engine, fitted, stored = round_calibration(make, encoded, gold_items, gold_classes)
    return engine, (fitted, stored)


def test_a_round_with_enough_gold_fits_a_map_and_measures_it_before_and_after(enough_gold) -> None:
    engine, (fitted, stored) = enough_gold
    assert fitted.kind != "identity" and stored["map"] == fitted.to_dict()
    assert stored["gold_items"] == 60
    for side in ("before", "after"):
        rows = stored[side]["reliability"]
        assert len(rows) == 10 and sum(row["count"] for row in rows) == 60
        assert all(0 <= stored[side][name] for name in ("ece", "brier", "log_loss"))
    # fitted by log loss on these very posteriors, the map cannot do worse on them
    assert stored["after"]["log_loss"] <= stored["before"]["log_loss"]
    assert stored["after"]["ece"] != stored["before"]["ece"]


def test_the_round_writes_the_chosen_fits_posteriors() -> None:
    make, encoded, gold_items, gold_classes = _round(60)
    engine, _, stored = round_calibration(make, encoded, gold_items, gold_classes)
    clamped = make().fit_encoded(encoded, gold_items, gold_classes)
    plain = make().fit_encoded(encoded)
    expected = clamped if stored["gold_clamped"] else plain
    other = plain if stored["gold_clamped"] else clamped
    assert np.array_equal(engine.probas_array_, expected.probas_array_)
    assert not np.array_equal(engine.probas_array_, other.probas_array_)
    # the forced other way round: too little gold to compare keeps the fit without gold
    engine, _, stored = round_calibration(make, encoded, gold_items[:8], gold_classes[:8])
    assert stored["gold_clamped"] is False
    assert np.array_equal(engine.probas_array_, plain.probas_array_)


def test_a_round_with_little_gold_keeps_the_identity_and_says_why() -> None:
    make, encoded, gold_items, gold_classes = _round(8)
    _, fitted, stored = round_calibration(make, encoded, gold_items, gold_classes)
    assert fitted.kind == "identity"
    assert stored["map"]["reason"] == "8 gold items answered, fewer than the 20 a calibration needs"
    assert stored["before"] == stored["after"] and stored["before"]["ece"] is not None
    make, encoded, gold_items, gold_classes = _round(0)
    _, _, stored = round_calibration(make, encoded, gold_items, gold_classes)
    assert stored["gold_items"] == 0 and stored["before"]["ece"] is None
    assert [row["count"] for row in stored["after"]["reliability"]] == [0] * 10


def test_a_shards_rows_are_mapped_together_and_an_identity_map_leaves_them() -> None:
    rows = {"a": [0.9, 0.1], "b": [0.6, 0.4]}
    softer = CalibrationMap("temperature", {"t": 2.0}, 40, "temperature scaling on 40 gold items")
    mapped = calibrated_posteriors({"posteriors": rows, "calibration": softer.to_dict()})
    assert list(mapped) == ["a", "b"]
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in mapped.values())
    assert 0.5 < mapped["a"][0] < 0.9 and 0.5 < mapped["b"][0] < 0.6
    assert calibrated_posteriors({"posteriors": rows, "calibration": CalibrationMap().to_dict()}) == {}
    assert calibrated_posteriors({"posteriors": rows}) == {}  # written before maps were


def test_the_report_shows_the_map_and_its_diagram_and_the_page_a_table(enough_gold) -> None:
    _, (fitted, stored) = enough_gold
    assert calibration_section(None) is None
    section = calibration_section(stored)
    assert section["kind"] == fitted.kind and section["reason"] == fitted.reason
    assert section["gold_items"] == 60 and section["params"] == fitted.params
    assert section["before"]["ece"] == stored["before"]["ece"]
    assert isinstance(section["gold_clamped"], bool)
    assert section["gold_clamped"] == stored["gold_clamped"]
    assert section["clamped_right"] == stored["clamped_right"] <= 60
    assert section["unclamped_right"] == stored["unclamped_right"] <= 60
    assert section["clamp_reason"] == stored["reason"] and section["clamp_reason"].startswith(
        "gold clamped" if stored["gold_clamped"] else "gold not clamped")
    assert calibration_section({**stored, "gold_clamped": None})["gold_clamped"] is None
    report = {**build_report("job", 1, "categorical", []), "calibration": section}
    page = render(report)
    assert "<h2>Calibration</h2>" in page and "predicted after" in page
    assert f"<p>Model: {section['clamp_reason']}.</p>" in page
    assert page.count("<tr>") - render({**report, "calibration": None}).count("<tr>") == 11
