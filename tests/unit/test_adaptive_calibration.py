"""The online model's confidence goes through a calibration map fitted on the job's gold, so
adaptive redundancy compares a calibrated figure with the target."""
from __future__ import annotations

import json
import random

import numpy as np

from chalicelib.domain.adaptive import OnlineModel, fit_online
from chalicelib.domain.aggregation.calibration import IDENTITY, MIN_GOLD, CalibrationMap
from chalicelib.domain.redundancy import AdaptiveRedundancy, wants_more

POLICY = AdaptiveRedundancy(2, 5, 0.9)
AGREEING = [("w0", "pos"), ("w1", "pos")]


def _crowd(seed=7, items=300):
    """Long-form answers of 12 workers, 3 an item, whose errors are shared: on every fourth
    item most of them give the same wrong label (a model assuming independent errors is
    overconfident on such a crowd). Returns (items, workers, labels, truth)."""
    rng = random.Random(seed)
    rows: tuple[list[str], list[str], list[str]] = ([], [], [])
    truth = {}
    for n in range(items):
        item, right = f"i{n}", rng.choice(["pos", "neg"])
        wrong = "neg" if right == "pos" else "pos"
        truth[item] = right
        for k in rng.sample(range(12), 3):
            misled = rng.random() < (0.7 if n % 4 == 0 else 0.08)
            for column, value in zip(rows, (item, f"w{k}", wrong if misled else right)):
                column.append(value)
    return (*rows, truth)


def test_an_overconfident_model_is_brought_down_by_the_map_fitted_on_gold():
    # GIVEN a crowd whose errors are shared, and 60 of its items as gold
    items, workers, labels, truth = _crowd()
    gold = {item: truth[item] for item in list(truth)[::5]}
    # WHEN the online model is fitted with its calibration
    model = fit_online(items, workers, labels, gold, ["pos", "neg"])
    # THEN the map is fitted on the answered gold and lowers the confidence of two agreeing
    # answers from above the target to below it: the item gets another answer
    assert model.calibration.kind != IDENTITY and model.calibration.gold == len(gold)
    raw, calibrated = model.confidence_raw(AGREEING), model.confidence(AGREEING)
    assert raw >= POLICY.target_confidence > calibrated
    assert not wants_more(POLICY, 2, raw) and wants_more(POLICY, 2, calibrated)
    # AND the calibrated figure is nearer the crowd's real accuracy on such items
    agreeing = [item for item in truth
                if sum(label == "pos" for i, label in zip(items, labels) if i == item) >= 2]
    accuracy = sum(truth[item] == "pos" for item in agreeing) / len(agreeing)
    assert abs(calibrated - accuracy) < abs(raw - accuracy)


def test_with_too_little_gold_the_map_is_the_identity_and_confidence_unchanged():
    items, workers, labels, truth = _crowd()
    gold = {item: truth[item] for item in list(truth)[:MIN_GOLD - 1]}
    model = fit_online(items, workers, labels, gold, ["pos", "neg"])
    assert model.calibration.kind == IDENTITY and model.calibration.gold == MIN_GOLD - 1
    for answers in (AGREEING, [("w0", "pos"), ("w1", "neg")], [], [("stranger", "neg")]):
        assert model.confidence(answers) == model.confidence_raw(answers)


def test_a_model_stored_before_calibration_reads_back_with_the_identity():
    items, workers, labels, _ = _crowd(items=40)
    model = fit_online(items, workers, labels, {}, ["pos", "neg"])
    body = model.to_dict()
    assert CalibrationMap.from_dict(body.pop("calibration")).kind == IDENTITY
    old = OnlineModel.from_dict(json.loads(json.dumps(body)))
    assert old.calibration.kind == IDENTITY
    assert old.confidence(AGREEING) == old.confidence_raw(AGREEING)
    assert abs(old.confidence(AGREEING) - model.confidence(AGREEING)) < 1e-5


def test_the_map_travels_with_the_stored_model():
    table = np.log(np.array([[[0.9, 0.1], [0.1, 0.9]]]))  # the unseen-worker row only
    model = OnlineModel(["pos", "neg"], np.log([0.5, 0.5]), [], table,
                        CalibrationMap("temperature", {"t": 3.0}, 40, "temperature scaling"))
    back = OnlineModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert back.calibration == model.calibration
    assert abs(back.confidence(AGREEING) - model.confidence(AGREEING)) < 1e-5  # stored to 6 places
    assert model.confidence(AGREEING) < POLICY.target_confidence <= model.confidence_raw(AGREEING)
