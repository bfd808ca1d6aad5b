"""The online model of an adaptive job: how sure the last fit is of an item now (numpy).

The counting consumer asks it for an item's confidence before deciding, with the pure policy
in chalicelib.domain.redundancy, whether the item takes one more answer; it is refitted every
refit_every answers from the aggregation's default model. The confidence it gives is calibrated:
each refit also fits a calibration map (chalicelib.domain.aggregation.calibration) on the
job's answered gold items in the refit's sample, scored without their gold clamp, and every
item's posterior goes through that map before it is compared with the job's target (the
identity with too little gold). Only the counting consumer and bench/adaptive.py import this
module: it loads numpy, which the API routes never need.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib.domain.aggregation.calibration import (
    CalibrationMap, fit_calibration, gold_posteriors,
)
from chalicelib.domain.aggregation.categorical import default_model, encode


def refit_every(max_answers: int) -> int:
    """Counted answers between refits of a job's online model: 2% of its most answers, at
    least 200 (bench/adaptive.py measures the policy with this schedule)."""
    return max(200, round(0.02 * max_answers))


class OnlineModel:
    """The last fit's class priors and worker confusion matrices, applied to one item's answers.

    An item's confidence is its highest posterior class probability given all its answers so
    far, including answers given after the fit (a one-item E-step, no refit); a worker the fit
    has not seen gets the fit's mean confusion matrix; a label the fit has not seen adds
    nothing. At a refit it equals the fitted posteriors (Dawid-Skene). The posterior then goes
    through the fit's calibration map (the identity when none was fitted).
    """

    def __init__(self, classes: list[str], log_prior: np.ndarray, workers: list[str],
                 table: np.ndarray, calibration: CalibrationMap | None = None) -> None:
        self.classes = classes
        self.log_prior = log_prior
        self.worker_at = {worker: w for w, worker in enumerate(workers)}
        self.table = table  # (workers + 1) x observed x true: log P(observed | true)
        self.class_at = {label: k for k, label in enumerate(classes)}
        self.calibration = calibration or CalibrationMap(reason="no calibration")

    @classmethod
    def from_fit(cls, model: Any, calibration: CalibrationMap | None = None) -> "OnlineModel":
        """From a fitted Dawid-Skene-shaped model (priors_, confusions_, classes_, workers_)
        and the calibration map fitted with it (None: the identity)."""
        confusions = np.asarray(model.confusions_)  # worker x true x observed
        mean = confusions.mean(axis=0, keepdims=True)
        table = np.log(np.clip(np.concatenate([confusions, mean]), 1e-12, None)).transpose(0, 2, 1)
        return cls(list(model.classes_), np.log(np.clip(np.asarray(model.priors_), 1e-12, None)),
                   list(model.workers_), table, calibration)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (stored between the counting consumer's calls)."""
        return {"classes": self.classes, "log_prior": self.log_prior.round(6).tolist(),
                "workers": list(self.worker_at), "table": self.table.round(6).tolist(),
                "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> "OnlineModel":
        """Back from to_dict (a model stored without a map gets the identity)."""
        return cls(list(body["classes"]), np.asarray(body["log_prior"]), list(body["workers"]),
                   np.asarray(body["table"]), CalibrationMap.from_dict(body.get("calibration")))

    def posterior(self, answers: Iterable[tuple[str, str]]) -> np.ndarray:
        """An item's posterior over the classes given its (worker, label) answers, uncalibrated."""
        joint = self.log_prior.copy()
        unknown = len(self.worker_at)
        for worker, label in answers:
            k = self.class_at.get(label)
            if k is not None:
                joint += self.table[self.worker_at.get(worker, unknown), k]
        shifted = np.exp(joint - joint.max())
        return shifted / shifted.sum()

    def confidence_raw(self, answers: Iterable[tuple[str, str]]) -> float:
        """The highest posterior of an item given its (worker, label) answers, uncalibrated."""
        return float(self.posterior(answers).max())

    def confidence(self, answers: Iterable[tuple[str, str]]) -> float:
        """The highest calibrated posterior of an item given its (worker, label) answers: what
        the job's target_confidence is compared with."""
        return float(self.calibration.apply(self.posterior(answers)[None, :])[0].max())


def fit_online(items: Sequence[str], workers: Sequence[str], labels: Sequence[str],
               gold: Mapping[str, str], label_order: Sequence[str]) -> OnlineModel:
    """The online model of long-form answers: the aggregation's default model fitted on them
    (gold items clamped to their gold label, as in a round's fit), and its calibration map
    fitted on the answered gold items' posteriors without their clamp
    (calibration.gold_posteriors); the identity, with its reason, with too little gold."""
    answered = set(items)
    known = {item: label for item, label in gold.items() if item in answered}
    encoded = encode(items, workers, labels, label_order, extra_classes=list(known.values()))
    item_at = {item: code for code, item in enumerate(encoded.items_)}
    class_at = {label: code for code, label in enumerate(encoded.classes_)}
    gold_items = np.fromiter((item_at[item] for item in known), dtype=np.int64, count=len(known))
    gold_classes = np.fromiter((class_at[label] for label in known.values()), dtype=np.int64,
                               count=len(known))
    model = default_model(label_order=label_order).fit_encoded(encoded, gold_items, gold_classes)
    calibration = fit_calibration(gold_posteriors(model, encoded, gold_items), gold_classes)
    return OnlineModel.from_fit(model, calibration)
