"""Calibration maps and their measures: the identity below the gold a fit needs, temperature
scaling that cures overconfidence, and ECE, Brier score and log loss on known values."""
from __future__ import annotations

import numpy as np

from chalicelib.domain.aggregation import calibration as c


def _overconfident(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two-class posteriors saying 0.95 for the chosen class, right only 70% of the time."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, 2, n)
    right = rng.random(n) < 0.7
    truth = np.where(right, chosen, 1 - chosen)
    probas = np.full((n, 2), 0.05)
    probas[np.arange(n), chosen] = 0.95
    return probas, truth


def test_too_little_gold_keeps_the_identity_and_says_why() -> None:
    probas, truth = _overconfident(5)
    fitted = c.fit_calibration(probas, truth)
    assert fitted.kind == c.IDENTITY and "5 gold items" in fitted.reason
    assert np.array_equal(fitted.apply(probas), probas)


def test_temperature_scaling_brings_overconfident_posteriors_to_their_accuracy() -> None:
    probas, truth = _overconfident(2000)
    fitted = c.fit_calibration(probas, truth)
    assert fitted.kind == c.TEMPERATURE and fitted.params["t"] > 1
    calibrated = fitted.apply(probas)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert np.array_equal(calibrated.argmax(axis=1), probas.argmax(axis=1))
    correct = probas.argmax(axis=1) == truth
    before = c.expected_calibration_error(probas.max(axis=1), correct)
    after = c.expected_calibration_error(calibrated.max(axis=1), correct)
    assert before > 0.2 and after < 0.03
    assert c.log_loss(calibrated, truth) < c.log_loss(probas, truth)
    assert c.CalibrationMap.from_dict(fitted.to_dict()) == fitted


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
