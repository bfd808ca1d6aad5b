"""Adaptive redundancy policy: how many answers an item takes, decided by its confidence (pure).

The policy for ``redundancy: {"min": 2, "max": 5, "target_confidence": 0.9}``: offer an item
to workers until it has ``min`` answers, then keep offering it only while the aggregation
model's confidence in its label (the highest posterior class probability, calibrated on the
job's gold items) is below ``target_confidence``, and never beyond ``max`` answers. Jobs ask for it with
``"redundancy": {"min": 2, "max": 10, "target_confidence": 0.99}``; bench/adaptive.py replays
it on the real data sets. Whether an extra answer fits the job's budget is the caller's concern
(it is reserved from the job's pool); this module only answers "does this item want another
answer?". How sure the model is of an item comes from chalicelib.domain.adaptive.OnlineModel,
which needs numpy; this module does not, so quoting a job (an API route) never loads numpy.

Confidence is ``None`` when the model has not scored the item yet (no fit since its first
answer): such an item keeps taking answers up to ``max``, because nothing says it is settled.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.errors import InvalidRequest

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
