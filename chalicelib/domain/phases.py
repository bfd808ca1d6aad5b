"""Job phases: pilot -> calibration -> production (pure).

A job answers a *pilot* sample first. When the sample is answered, the round is aggregated and
its quality report published; the job then waits in *calibration* (state ``paused``) until the
client promotes it to *production* (optionally with revised instructions) or stops it. When
the client set promotion thresholds, the report decides instead: met, the job is promoted by
the rule; not met, it stays paused and the reasons are recorded.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.errors import InvalidRequest

DEFAULT_PILOT_SHARE = 0.05
MAX_PILOT_ITEMS = 100

# Threshold name -> (where it is in the report, the smallest value it may be set to).
THRESHOLDS: dict[str, tuple[tuple[str, ...], float]] = {
    "gold_accuracy": (("gold", "accuracy"), 0.0),
    "alpha": (("agreement", "krippendorff_alpha"), -1.0),
    "kappa": (("agreement", "fleiss_kappa"), -1.0),
    "mean_confidence": (("mean_confidence",), 0.0),
}
MAX_NA_RATE = "max_na_rate"


def parse_pilot(raw: Any, item_count: int) -> int:
    """How many items the pilot answers: ``{"items": n}`` or ``{"share": s}`` (capped at 100).

    Without a setting the pilot is 5% of the items, at most 100, rounded down; a job too small
    for one pilot item (under 20 items), or one with ``{"items": 0}``, goes straight to
    production. A pilot of every item is refused: it would leave nothing to promote.
    """
    if raw is None:
        return min(MAX_PILOT_ITEMS, math.floor(item_count * DEFAULT_PILOT_SHARE))
    body = v.require_object(raw, "pilot")
    v.reject_unknown(body, ("items", "share"), "pilot.")
    if ("items" in body) == ("share" in body):
        raise InvalidRequest("'pilot' takes one of 'items' or 'share'", field="pilot")
    if "items" in body:
        size = v.integer(body, "items", low=0, high=MAX_PILOT_ITEMS, prefix="pilot.")
    else:
        share = v.number(body, "share", low=0, high=1, prefix="pilot.")
        size = min(MAX_PILOT_ITEMS, math.ceil(item_count * share))
    if size >= item_count and size > 0:
        raise InvalidRequest(f"the pilot must be smaller than the job's {item_count} items",
                             field="pilot")
    return size


def pilot_indices(eligible: int, size: int) -> list[int]:
    """Positions (among `eligible` items, in posted order) of an evenly spread pilot sample.

    Spread rather than the first items, so a job posted sorted by source or date pilots every
    part of it; deterministic, so the job's record needs no list.
    """
    if size <= 0:
        return []
    return sorted({math.floor((k + 0.5) * eligible / size) for k in range(size)})


def parse_promotion(raw: Any) -> dict[str, float]:
    """Thresholds that promote the job by themselves, e.g. ``{"gold_accuracy": 0.85, "alpha": 0.6}``."""
    if raw is None:
        return {}
    body = v.require_object(raw, "promotion")
    v.reject_unknown(body, (*THRESHOLDS, MAX_NA_RATE), "promotion.")
    settings = {name: v.number(body, name, low=low, high=1, prefix="promotion.")
                for name, (_, low) in THRESHOLDS.items() if name in body}
    if MAX_NA_RATE in body:
        settings[MAX_NA_RATE] = v.number(body, MAX_NA_RATE, low=0, high=1, prefix="promotion.")
    if not settings:
        raise InvalidRequest("'promotion' needs at least one threshold", field="promotion")
    return settings


def _lookup(report: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = report
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def check_thresholds(report: Mapping[str, Any], thresholds: Mapping[str, float]
                     ) -> tuple[bool, list[str]]:
    """Whether the report meets every threshold, and one line per threshold saying why.

    A threshold whose metric the report could not compute (no gold answers, a text job's
    agreement) is not met: promotion by rule needs evidence.
    """
    met, reasons = True, []
    for name, (path, _) in THRESHOLDS.items():
        if name not in thresholds:
            continue
        value, wanted = _lookup(report, path), thresholds[name]
        if value is None:
            met = False
            reasons.append(f"{name} could not be measured (needs {wanted})")
        elif value < wanted:
            met = False
            reasons.append(f"{name} {value} is below {wanted}")
        else:
            reasons.append(f"{name} {value} meets {wanted}")
    if MAX_NA_RATE in thresholds:
        rate, wanted = _lookup(report, ("not_applicable", "rate")), thresholds[MAX_NA_RATE]
        if rate is None or rate > wanted:
            met = False
            reasons.append(f"not-applicable rate {rate} is above {wanted}")
        else:
            reasons.append(f"not-applicable rate {rate} is within {wanted}")
    return met, reasons


def record(at: float, from_state: str | None, from_phase: str | None, to_state: str,
           to_phase: str, by: str, reason: str, round_no: int | None = None) -> dict[str, Any]:
    """One entry of a job's transition history: when, from and to (state and phase), by whom
    (an account id, "rule" or "system") and why; the round, for a round's end."""
    entry = {"at": at, "from": {"state": from_state, "phase": from_phase},
             "to": {"state": to_state, "phase": to_phase}, "by": by, "reason": reason}
    if round_no is not None:
        entry["round"] = round_no
    return entry
