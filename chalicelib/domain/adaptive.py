"""Adaptive redundancy: how many answers an item takes, decided by its current confidence (pure).

The policy for ``redundancy: {"min": 2, "max": 5, "target_confidence": 0.9}``: offer an item
to workers until it has ``min`` answers, then keep offering it only while the aggregation
model's confidence in its label (the highest posterior class probability) is below
``target_confidence``, and never beyond ``max`` answers. Jobs cannot ask for it yet (leasing
does not consult it); bench/adaptive.py replays it on the real data sets. Whether an offer fits the
job's budget is the caller's concern (the budget is checked where answers are paid for);
this module only answers "does this item want another answer?".

Confidence is ``None`` when the model has not scored the item yet (no fit since its first
answer): such an item keeps taking answers up to ``max``, because nothing says it is settled.
"""
from __future__ import annotations

from dataclasses import dataclass

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
