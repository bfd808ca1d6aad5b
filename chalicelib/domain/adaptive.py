"""Adaptive redundancy: how many answers an item takes, decided by its current confidence (pure).

The policy for ``redundancy: {"min": 2, "max": 5, "target_confidence": 0.9}``: offer an item
to workers until it has ``min`` answers, then keep offering it only while the aggregation
model's confidence in its label (the highest posterior class probability) is below
``target_confidence``, and never beyond ``max`` answers. Jobs ask for it with
``"redundancy": {"min": 2, "max": 10, "target_confidence": 0.99}``; bench/adaptive.py replays
it on the real data sets. Whether an extra answer fits the job's budget is the caller's concern
(it is reserved from the job's pool); this module only answers "does this item want another
answer?" and, with OnlineModel, "how sure are we of it now?".

Confidence is ``None`` when the model has not scored the item yet (no fit since its first
answer): such an item keeps taking answers up to ``max``, because nothing says it is settled.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_REDUNDANCY = 10


@dataclass(frozen=True)
class AdaptiveRedundancy:
    """Answers per item between ``min`` and ``max``, stopping once confidence >= target.

    Raises ValueError naming the field unless 1 <= min <= max <= MAX_REDUNDANCY (10) and
    0.5 <= target_confidence < 1.
    """

    min: int
    max: int
    target_confidence: float

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.min <= MAX_REDUNDANCY:
            raise ValueError(f"min must be between 1 and {MAX_REDUNDANCY}, got {self.min}")
        if not self.min <= self.max <= MAX_REDUNDANCY:
            raise ValueError(f"max must be between min ({self.min}) and {MAX_REDUNDANCY}, "
                             f"got {self.max}")
        target = self.target_confidence
        if isinstance(target, bool) or not isinstance(target, (int, float)):
            raise ValueError(f"target_confidence must be a number, got {target!r}")
        if not 0.5 <= target < 1:  # also rejects NaN
            raise ValueError(f"target_confidence must be in [0.5, 1), got {target}")


def wants_more(policy: AdaptiveRedundancy, answers_so_far: int, confidence: float | None) -> bool:
    """Whether an item with ``answers_so_far`` answers should be offered for one more.

    - False once ``answers_so_far >= policy.max`` (the cap wins over everything);
    - True while ``answers_so_far < policy.min`` (whatever the confidence);
    - otherwise True iff ``confidence`` is None (not scored yet) or below
      ``policy.target_confidence``.
    """
    if answers_so_far >= policy.max:
        return False
    if answers_so_far < policy.min:
        return True
    return confidence is None or confidence < policy.target_confidence


def parse_redundancy(raw: Any) -> AdaptiveRedundancy | int:
    """A quote's redundancy: a whole number of answers per item, or an adaptive policy object."""
    from chalicelib.domain import validation as v
    from chalicelib.errors import InvalidRequest

    if not isinstance(raw, Mapping):
        return v.integer({"redundancy": raw}, "redundancy", low=1, high=MAX_REDUNDANCY)
    v.reject_unknown(raw, ("min", "max", "target_confidence"), "redundancy.")
    low = v.integer(raw, "min", low=1, high=MAX_REDUNDANCY, prefix="redundancy.")
    high = v.integer(raw, "max", low=low, high=MAX_REDUNDANCY, prefix="redundancy.")
    target = v.number(raw, "target_confidence", low=0.5, high=0.999, prefix="redundancy.")
    try:
        return AdaptiveRedundancy(low, high, float(target))
    except ValueError as error:
        raise InvalidRequest(str(error), field="redundancy") from error


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
