"""Calibrated confidence: a map from the model's posteriors to probabilities that mean what
they say, fitted on a round's own gold items, and the measures of how well they do.

A round's gold items are scored as if their answers were unknown: their posteriors come from
the fitted model without their gold clamp (`gold_posteriors`), so the map is fitted on
honest predictions. `fit_calibration` fits the map on those posteriors and the gold labels;
with too little gold it is the identity, saying why. `CalibrationMap.apply` maps any item's
posterior row to calibrated probabilities (rows sum to 1, the order of the classes kept).
The map is small and JSON-serialisable (`to_dict` / `from_dict`), so it travels with a
round's posteriors to the stages that apply it.

Measures (10 equal-width bins on the confidence of the chosen label, as the report and
bench/calibration.py use them): `reliability` (the diagram's rows), `expected_calibration_error`,
`brier_score`, `log_loss`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 10
# Fewer gold items than this: the map stays the identity (too little to fit anything).
MIN_GOLD = 20
EPSILON = 1e-12
IDENTITY = "identity"
TEMPERATURE = "temperature"
# log10 of the temperatures tried: 0.05 .. 20.
_LOG_T_LOW, _LOG_T_HIGH = np.log(0.05), np.log(20.0)


def _clipped_log(probas: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probas, EPSILON, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class CalibrationMap:
    """How a round's posteriors become calibrated probabilities.

    kind: "identity" (unchanged) or "temperature" (p ** (1/T), renormalised); params hold
    what the kind needs; gold is how many gold items it was fitted on; reason says why it is
    what it is (for the report)."""

    kind: str = IDENTITY
    params: dict[str, Any] = field(default_factory=dict)
    gold: int = 0
    reason: str = ""

    def apply(self, probas: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of posterior rows (n x classes)."""
        probas = np.asarray(probas, dtype=np.float64)
        if self.kind == IDENTITY or probas.size == 0:
            return probas
        if self.kind == TEMPERATURE:
            return _softmax(_clipped_log(probas) / float(self.params["t"]))
        raise ValueError(f"unknown calibration map kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """The map as JSON-serialisable values."""
        return {"kind": self.kind, "params": dict(self.params), "gold": self.gold,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> CalibrationMap:
        """A map from to_dict's form (None: the identity)."""
        if not value:
            return cls(reason="no calibration")
        return cls(str(value["kind"]), dict(value.get("params") or {}), int(value.get("gold", 0)),
                   str(value.get("reason", "")))


def _nll(log_probas: np.ndarray, classes: np.ndarray, t: float) -> float:
    calibrated = _softmax(log_probas / t)
    return float(-_clipped_log(calibrated[np.arange(len(classes)), classes]).mean())


def _fit_temperature(probas: np.ndarray, classes: np.ndarray) -> float:
    """The temperature minimising the gold items' log loss (golden-section search on log T)."""
    log_probas = _clipped_log(probas)
    low, high = _LOG_T_LOW, _LOG_T_HIGH
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = _nll(log_probas, classes, float(np.exp(a))), _nll(log_probas, classes, float(np.exp(b)))
    for _ in range(60):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(log_probas, classes, float(np.exp(a)))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(log_probas, classes, float(np.exp(b)))
    return float(np.exp((low + high) / 2.0))


def fit_calibration(probas: np.ndarray, classes: np.ndarray, min_gold: int = MIN_GOLD
                    ) -> CalibrationMap:
    """The calibration map fitted on gold items' posteriors (scored without their gold) and
    their gold class codes; the identity, with its reason, below min_gold items."""
    probas = np.asarray(probas, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    if len(classes) < min_gold:
        return CalibrationMap(gold=len(classes),
                              reason=f"{len(classes)} gold items answered, fewer than the "
                                     f"{min_gold} a calibration needs")
    t = _fit_temperature(probas, classes)
    return CalibrationMap(TEMPERATURE, {"t": round(t, 6)}, len(classes),
                          f"temperature scaling on {len(classes)} gold items")


def gold_posteriors(model: Any, encoded: Any, gold_items: np.ndarray) -> np.ndarray:
    """The posteriors of gold items as if their gold were unknown: one E-step of the fitted
    model (its class priors `priors_` and per-worker confusions `confusions_`, indexed
    [worker, true class, answered label]) over the items' own answers, without the clamp the
    fit put on them. Rows in gold_items' order."""
    gold_items = np.asarray(gold_items, dtype=np.int64)
    priors = np.asarray(model.priors_, dtype=np.float64)
    confusions = np.asarray(model.confusions_, dtype=np.float64)
    row_of = np.full(len(encoded.items_), -1, dtype=np.int64)
    row_of[gold_items] = np.arange(len(gold_items))
    rows = row_of[encoded.item_codes]
    mine = rows >= 0
    log_joint = np.tile(_clipped_log(priors[None, :]), (len(gold_items), 1))
    np.add.at(log_joint, rows[mine],
              _clipped_log(confusions[encoded.worker_codes[mine], :, encoded.label_codes[mine]]))
    return _softmax(log_joint)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
                ) -> list[dict[str, Any]]:
    """The reliability diagram: for each of `bins` equal-width confidence bins, its bounds,
    how many items fall in it, their mean confidence and the share that were right (None for
    an empty bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count,
                     "confidence": float(confidence[inside].mean()) if count else None,
                     "accuracy": float(correct[inside].mean()) if count else None})
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
                               ) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    total = len(confidence)
    if total == 0:
        return 0.0
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"])
                     for row in reliability(confidence, correct, bins) if row["count"]) / total)


def brier_score(probas: np.ndarray, classes: np.ndarray) -> float:
    """Mean squared distance between the probability rows and the one-hot truth."""
    probas = np.asarray(probas, dtype=np.float64)
    truth = np.zeros_like(probas)
    truth[np.arange(len(classes)), classes] = 1.0
    return float(((probas - truth) ** 2).sum(axis=1).mean()) if len(classes) else 0.0


def log_loss(probas: np.ndarray, classes: np.ndarray) -> float:
    """Mean negative log probability of the true class."""
    probas = np.asarray(probas, dtype=np.float64)
    if not len(classes):
        return 0.0
    return float(-_clipped_log(probas[np.arange(len(classes)), classes]).mean())
