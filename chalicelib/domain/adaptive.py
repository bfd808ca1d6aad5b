"""The online model of an adaptive job: how sure the last fit is of an item now (numpy).

The counting consumer asks it for an item's confidence before deciding, with the pure policy
in chalicelib.domain.redundancy, whether the item takes one more answer; it is refitted every
refit_every answers from the aggregation's default model. Only the counting consumer and
bench/adaptive.py import this module: it loads numpy, which the API routes never need.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def refit_every(max_answers: int) -> int:
    """Counted answers between refits of a job's online model: 2% of its most answers, at
    least 200 (bench/adaptive.py measures the policy with this schedule)."""
    return max(200, round(0.02 * max_answers))


class OnlineModel:
    """The last fit's class priors and worker confusion matrices, applied to one item's answers.

    An item's confidence is its highest posterior class probability given all its answers so
    far, including answers given after the fit (a one-item E-step, no refit); a worker the fit
    has not seen gets the fit's mean confusion matrix; a label the fit has not seen adds
    nothing. At a refit it equals the fitted posteriors (Dawid-Skene).
    """

    def __init__(self, classes: list[str], log_prior: np.ndarray, workers: list[str],
                 table: np.ndarray) -> None:
        self.classes = classes
        self.log_prior = log_prior
        self.worker_at = {worker: w for w, worker in enumerate(workers)}
        self.table = table  # (workers + 1) x observed x true: log P(observed | true)
        self.class_at = {label: k for k, label in enumerate(classes)}

    @classmethod
    def from_fit(cls, model: Any) -> "OnlineModel":
        """From a fitted Dawid-Skene-shaped model (priors_, confusions_, classes_, workers_)."""
        confusions = np.asarray(model.confusions_)  # worker x true x observed
        mean = confusions.mean(axis=0, keepdims=True)
        table = np.log(np.clip(np.concatenate([confusions, mean]), 1e-12, None)).transpose(0, 2, 1)
        return cls(list(model.classes_), np.log(np.clip(np.asarray(model.priors_), 1e-12, None)),
                   list(model.workers_), table)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (stored between the counting consumer's calls)."""
        return {"classes": self.classes, "log_prior": self.log_prior.round(6).tolist(),
                "workers": list(self.worker_at), "table": self.table.round(6).tolist()}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> "OnlineModel":
        """Back from to_dict."""
        return cls(list(body["classes"]), np.asarray(body["log_prior"]), list(body["workers"]),
                   np.asarray(body["table"]))

    def confidence(self, answers: Iterable[tuple[str, str]]) -> float:
        """The highest posterior of an item given its (worker, label) answers."""
        joint = self.log_prior.copy()
        unknown = len(self.worker_at)
        for worker, label in answers:
            k = self.class_at.get(label)
            if k is not None:
                joint += self.table[self.worker_at.get(worker, unknown), k]
        shifted = np.exp(joint - joint.max())
        return float(shifted.max() / shifted.sum())
