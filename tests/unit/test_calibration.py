"""Calibration maps and their measures: the identity below the gold a fit needs, each kind of
map on the miscalibration it is for, the choice among them by held-out log loss, that no map
changes the chosen label, the maps' JSON round trip, the cross-fitted calibration data, and
ECE, Brier score and log loss on known values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.aggregation import synthetic_problem
from chalicelib.domain.aggregation import calibration as c
from chalicelib.domain.aggregation.categorical import argmax_first, default_model, encode


def _overconfident(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two-class posteriors saying 0.95 for the chosen class, right only 70% of the time."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, 2, n)
    right = rng.random(n) < 0.7
    truth = np.where(right, chosen, 1 - chosen)
    probas = np.full((n, 2), 0.05)
    probas[np.arange(n), chosen] = 0.95
    return probas, truth


def _two_groups(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Ten-class one-coin posteriors in two groups, as a sparse crowd gives them: confidence
    0.85 right 70% of the time, and 0.994 right 87% of the time. No single temperature fits
    both (it crushes the first group far below its accuracy to bring the second down)."""
    rng = np.random.default_rng(seed)
    sure = rng.random(n) < 0.6
    top = np.where(sure, 0.994, 0.85)
    accuracy = np.where(sure, 0.87, 0.70)
    chosen = rng.integers(0, 10, n)
    probas = np.repeat(((1.0 - top) / 9.0)[:, None], 10, axis=1)
    probas[np.arange(n), chosen] = top
    wrong = (chosen + rng.integers(1, 10, n)) % 10
    truth = np.where(rng.random(n) < accuracy, chosen, wrong)
    return probas, truth


def _stepped(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Three-class posteriors whose chosen label is right 55% of the time below confidence 0.8
    and 97% above: a step no smooth one-parameter curve follows."""
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.5, 1.0, n)
    chosen = rng.integers(0, 3, n)
    probas = np.repeat(((1.0 - top) / 2.0)[:, None], 3, axis=1)
    probas[np.arange(n), chosen] = top
    right = rng.random(n) < np.where(top < 0.8, 0.55, 0.97)
    truth = np.where(right, chosen, (chosen + 1) % 3)
    return probas, truth


def _ece(probas: np.ndarray, truth: np.ndarray) -> float:
    chosen = argmax_first(probas)
    return c.expected_calibration_error(probas[np.arange(len(truth)), chosen], chosen == truth)


def _check_map(fitted: c.CalibrationMap, probas: np.ndarray) -> np.ndarray:
    """The calibrated rows, after checking they are probabilities, keep the chosen label and
    come back the same from the map's JSON form."""
    calibrated = fitted.apply(probas)
    assert calibrated.shape == probas.shape
    assert np.allclose(calibrated.sum(axis=1), 1.0) and (calibrated >= 0).all()
    assert np.array_equal(argmax_first(calibrated), argmax_first(probas))
    again = c.CalibrationMap.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again == fitted
    assert np.array_equal(again.apply(probas), calibrated)
    return calibrated


def test_too_little_gold_keeps_the_identity_and_says_why() -> None:
    probas, truth = _overconfident(5)
    fitted = c.fit_calibration(probas, truth)
    assert fitted.kind == c.IDENTITY and "5 gold items" in fitted.reason
    assert np.array_equal(fitted.apply(probas), probas)
    assert c.CalibrationMap.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted
    assert c.CalibrationMap.from_dict(None).kind == c.IDENTITY


def test_temperature_scaling_brings_overconfident_posteriors_to_their_accuracy() -> None:
    probas, truth = _overconfident(2000)
    fitted = c.fit_calibration(probas, truth, kinds=[c.TEMPERATURE])
    assert fitted.kind == c.TEMPERATURE and fitted.params["t"] > 1
    calibrated = _check_map(fitted, probas)
    assert _ece(probas, truth) > 0.2 and _ece(calibrated, truth) < 0.03
    assert c.log_loss(calibrated, truth) < c.log_loss(probas, truth)


def test_platt_scaling_fits_two_groups_a_temperature_cannot() -> None:
    probas, truth = _two_groups(3000)
    temperature = c.fit_calibration(probas, truth, kinds=[c.TEMPERATURE])
    platt = c.fit_calibration(probas, truth, kinds=[c.PLATT])
    assert platt.kind == c.PLATT and set(platt.params) == {"a", "b"}
    after_platt = _ece(_check_map(platt, probas), truth)
    after_temperature = _ece(_check_map(temperature, probas), truth)
    assert _ece(probas, truth) > 0.1 and after_platt < 0.02 < 0.05 < after_temperature
    # The choice sees it too: a map of the chosen label's confidence wins on held-out loss.
    assert c.fit_calibration(probas, truth).kind in (c.PLATT, c.BINNING, c.ISOTONIC)


@pytest.mark.parametrize("kind", [c.BINNING, c.ISOTONIC])
def test_binning_and_isotonic_follow_a_step(kind: str) -> None:
    probas, truth = _stepped(3000)
    fitted = c.fit_calibration(probas, truth, kinds=[kind])
    assert fitted.kind == kind
    values = fitted.params["values" if kind == c.BINNING else "y"]
    assert values == sorted(values) and 0 < values[0] and values[-1] < 1
    calibrated = _check_map(fitted, probas)
    assert _ece(probas, truth) > 0.09 and _ece(calibrated, truth) < 0.03
    platt = _check_map(c.fit_calibration(probas, truth, kinds=[c.PLATT]), probas)
    assert c.log_loss(calibrated, truth) < c.log_loss(platt, truth)


def test_the_choice_is_the_kind_with_the_lowest_held_out_log_loss() -> None:
    probas, truth = _stepped(400)
    fitted = c.fit_calibration(probas, truth)
    losses = {kind: c.held_out_log_loss(kind, probas, truth) for kind in c.KINDS}
    assert fitted.kind == min(losses, key=losses.__getitem__) != c.IDENTITY
    assert all(f"{kind} {loss:.4f}" in fitted.reason for kind, loss in losses.items())
    # Below MIN_GOLD_SHAPE items the shape-free maps are not tried.
    small = c.fit_calibration(probas[:40], truth[:40])
    assert c.BINNING not in small.reason and c.ISOTONIC not in small.reason
    assert small.kind in (c.IDENTITY, c.TEMPERATURE, c.PLATT)


def test_posteriors_that_already_mean_what_they_say_keep_the_identity() -> None:
    rng = np.random.default_rng(11)
    n = 300
    top = rng.uniform(0.55, 1.0, n)
    chosen = rng.integers(0, 2, n)
    probas = np.column_stack([1.0 - top, top])
    probas[chosen == 0] = probas[chosen == 0][:, ::-1]
    truth = np.where(rng.random(n) < top, chosen, 1 - chosen)
    fitted = c.fit_calibration(probas, truth)
    assert fitted.kind == c.IDENTITY and "held-out log loss" in fitted.reason
    assert np.array_equal(fitted.apply(probas), probas)


def test_a_map_that_would_lower_the_chosen_class_below_another_keeps_the_label() -> None:
    rows = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2], [0.0, 1.0, 0.0],
                     [0.2, 0.2, 0.6]])
    for fitted in (c.CalibrationMap(c.ISOTONIC, {"x": [0.0, 1.0], "y": [0.1, 0.1]}),
                   c.CalibrationMap(c.BINNING, {"edges": [0.5], "values": [0.05, 0.2]}),
                   c.CalibrationMap(c.PLATT, {"a": 0.0, "b": -5.0})):
        calibrated = _check_map(fitted, rows)
        top = calibrated[np.arange(len(rows)), argmax_first(rows)]
        others = calibrated.copy()
        others[np.arange(len(rows)), argmax_first(rows)] = -1.0
        assert (top > others.max(axis=1)).all() or np.array_equal(rows[2], calibrated[2])
        # A one-hot row's rest is shared evenly.
        assert np.allclose(calibrated[3, [0, 2]], (1.0 - calibrated[3, 1]) / 2)
    raising = c.CalibrationMap(c.ISOTONIC, {"x": [0.0, 1.0], "y": [0.9, 0.9]}).apply(rows)
    # The others keep their proportions: 0.4 : 0.1 becomes 0.08 : 0.02.
    assert np.allclose(raising[0], [0.9, 0.08, 0.02])


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown calibration map kind"):
        c.CalibrationMap("spline", {}).apply(np.array([[0.6, 0.4]]))
    probas, truth = _overconfident(100)
    with pytest.raises(ValueError, match="calibration kinds"):
        c.fit_calibration(probas, truth, kinds=["spline"])


def _crowd() -> tuple[object, np.ndarray, np.ndarray]:
    items, workers, labels, gold, _ = synthetic_problem(n_items=400, n_classes=3, per_item=4,
                                                        n_workers=40, seed=9)
    encoded = encode(items, workers, labels, extra_classes=sorted(set(gold.values())))
    rank = {item: i for i, item in enumerate(encoded.items_)}
    chosen = sorted(gold)[::4]
    gold_items = np.array([rank[t] for t in chosen])
    gold_classes = np.array([encoded.classes_.index(gold[t]) for t in chosen])
    return encoded, gold_items, gold_classes


def test_cross_fitted_posteriors_come_from_refits_without_the_items_gold() -> None:
    encoded, gold_items, gold_classes = _crowd()
    model = default_model().fit_encoded(encoded, gold_items, gold_classes)
    crossed = c.cross_fitted_posteriors(model, encoded, gold_items, gold_classes)
    assert crossed.shape == (len(gold_items), len(encoded.classes_))
    assert np.allclose(crossed.sum(axis=1), 1.0)
    assert (crossed.max(axis=1) < 1.0).all()  # no item clamped to its own gold
    fold = np.random.default_rng(len(gold_items)).permutation(len(gold_items)) % c.CROSS_FIT_FOLDS
    scored = fold == 0
    refit = type(model.model_)(**_params(model.model_)).fit_encoded(
        encoded, gold_items[~scored], gold_classes[~scored])
    assert np.allclose(crossed[scored], refit.probas_array_[gold_items[scored]])
    # The fitted model is left as it was.
    assert np.array_equal(model.probas_array_[gold_items].argmax(axis=1), gold_classes)
    # gold_posteriors leaves only the clamp out, so it is surer of the gold than refits are.
    leave_clamp = c.gold_posteriors(model, encoded, gold_items)
    rows = np.arange(len(gold_items))
    assert leave_clamp[rows, gold_classes].mean() > crossed[rows, gold_classes].mean()


def _params(model: object) -> dict[str, object]:
    names = ("n_iter", "tol", "smoothing", "prior_smoothing", "init", "prior", "hybrid")
    return {name: getattr(model, name) for name in names if hasattr(model, name)}


def test_the_measures_on_known_values() -> None:
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    rows = c.reliability(confidence, correct)
    assert [r["count"] for r in rows] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert rows[9]["accuracy"] == 0.5 and rows[5]["accuracy"] == 1.0
    assert abs(c.expected_calibration_error(confidence, correct) - (0.45 + 0.45) / 2) < 1e-9
    probas = np.array([[0.8, 0.2], [0.5, 0.5]])
    truth = np.array([0, 1])
    assert abs(c.brier_score(probas, truth) - ((0.04 + 0.04) + (0.25 + 0.25)) / 2) < 1e-9
    assert abs(c.log_loss(probas, truth) - -(np.log(0.8) + np.log(0.5)) / 2) < 1e-9


def test_a_large_gold_set_is_fitted_on_an_even_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    probas, truth = _overconfident(1000)
    monkeypatch.setattr(c, "MAX_FIT_GOLD", 100)
    fitted = c.fit_calibration(probas, truth, kinds=[c.TEMPERATURE])
    sample = np.linspace(0, 999, 100).astype(np.int64)
    on_sample = c.fit_calibration(probas[sample], truth[sample], kinds=[c.TEMPERATURE])
    assert fitted.gold == 1000 and "1000 gold items (an even sample of 100)" in fitted.reason
    assert fitted.params == on_sample.params


def test_a_round_without_answered_gold_has_no_calibration_rows_and_reads_no_model() -> None:
    class Unfitted:  # a model fitted on no answers has no priors_ or confusions_
        pass

    class Encoded:
        classes_ = ["a", "b"]

    rows = c.gold_posteriors(Unfitted(), Encoded(), np.zeros(0, dtype=np.int64))
    assert rows.shape == (0, 2)
    assert c.fit_calibration(rows, np.zeros(0, dtype=np.int64)).kind == c.IDENTITY
