"""Calibration report statistics: agreement, label shares, N/A reasons (pure, no I/O).

Answers come as ``item_id -> list of answer values``; a value is a hashable label or
``None`` for "not applicable" (N/A). Agreement statistics ignore N/A values: an N/A says the
item did not fit the task, not which label it has, so it is reported through ``na_summary``
instead of counting as an extra category.

Agreement sums are kept as exact fractions and turned into a float once, so the results do
not depend on the order of items or answers and a zero denominator is detected exactly.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Optional

Units = Mapping[str, Sequence[Optional[Hashable]]]


def _label_counts(values: Sequence[Optional[Hashable]]) -> Counter:
    """Count the non-N/A values of one unit."""
    return Counter(value for value in values if value is not None)


def krippendorff_alpha_nominal(units: Units) -> float | None:
    """Krippendorff's alpha for nominal labels, from the coincidence matrix; None if undefined.

    Only units with at least two non-N/A values are pairable; N/A values are dropped first.
    With ``n_uc`` the count of label c in unit u, ``m_u`` the unit's pairable values and
    ``n_c`` the pairable total of label c over ``n`` pairable values:
    ``alpha = 1 - (n - 1) * sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) / (n^2 - sum_c n_c^2)``,
    i.e. ``1 - D_o / D_e``. Returns None when fewer than two values are pairable or when
    ``D_e == 0`` (every pairable value is the same label): with no variation there is nothing
    to be reliable about, and alpha is 0/0 rather than 1.
    """
    observed_disagreement = Fraction(0)
    label_totals: Counter = Counter()
    for values in units.values():
        counts = _label_counts(values)
        m_u = sum(counts.values())
        if m_u < 2:
            continue
        mismatched_pairs = m_u * m_u - sum(c * c for c in counts.values())
        observed_disagreement += Fraction(mismatched_pairs, m_u - 1)
        label_totals.update(counts)
    n = sum(label_totals.values())
    expected_disagreement = n * n - sum(c * c for c in label_totals.values())
    if n < 2 or expected_disagreement == 0:
        return None
    return float(1 - (n - 1) * observed_disagreement / expected_disagreement)


def fleiss_kappa(units: Units) -> float | None:
    """Fleiss' kappa; None unless every unit has the same number n >= 2 of non-N/A values.

    Fleiss' kappa assumes a fixed number of ratings per subject, so a job where some items got
    fewer (or more) usable answers has no kappa; use ``krippendorff_alpha_nominal`` there.
    Also None when there are no units or when chance agreement ``P_e == 1`` (one label only).
    """
    unit_counts = [_label_counts(values) for values in units.values()]
    sizes = {sum(counts.values()) for counts in unit_counts}
    if len(sizes) != 1:
        return None
    (n,) = sizes
    if n < 2:
        return None
    n_units = len(unit_counts)
    agreeing_pairs = sum(sum(c * c for c in counts.values()) - n for counts in unit_counts)
    mean_agreement = Fraction(agreeing_pairs, n_units * n * (n - 1))
    label_totals: Counter = Counter()
    for counts in unit_counts:
        label_totals.update(counts)
    chance_agreement = Fraction(sum(c * c for c in label_totals.values()), (n_units * n) ** 2)
    if chance_agreement == 1:
        return None
    return float((mean_agreement - chance_agreement) / (1 - chance_agreement))


def label_distribution(units: Units) -> dict[Hashable, float]:
    """Share of each label over all non-N/A values, largest first; {} when there are none.

    Ties keep the order in which the labels first appear.
    """
    counts: Counter = Counter()
    for values in units.values():
        counts.update(_label_counts(values))
    total = sum(counts.values())
    return {label: count / total for label, count in counts.most_common()}


def _normalised_weights(weights: Mapping[Hashable, float], name: str) -> dict[Hashable, float]:
    """Scale non-negative finite weights to sum to 1; ValueError naming ``name`` otherwise."""
    for label, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{name}: weight of {label!r} must be a finite number >= 0")
    total = math.fsum(weights.values())
    if total <= 0:
        raise ValueError(f"{name}: weights must not all be zero")
    return {label: weight / total for label, weight in weights.items()}


def total_variation_distance(p: Mapping[Any, float], q: Mapping[Any, float]) -> float:
    """Half the L1 distance between two label distributions, over the union of their labels.

    Both sides are normalised to sum to 1 (a client's expected distribution may be given as
    counts or percentages) and a label missing on one side has weight 0 there. Raises
    ValueError for a negative or non-finite weight, or when either side is empty or all zero
    (an observed distribution with no answers has no distance to anything).
    """
    p_norm, q_norm = _normalised_weights(p, "p"), _normalised_weights(q, "q")
    labels = list(p_norm) + [label for label in q_norm if label not in p_norm]
    distance = 0.5 * math.fsum(abs(p_norm.get(label, 0.0) - q_norm.get(label, 0.0)) for label in labels)
    return min(distance, 1.0)


def normalise_reason(reason: str) -> str:
    """An N/A reason as grouped in reports: trimmed, casefolded, inner whitespace collapsed."""
    return " ".join(reason.split()).casefold()


def na_summary(reasons: Sequence[str], total_answers: int) -> dict[str, Any]:
    """N/A rate over all answers and the N/A reasons grouped by their normalised text.

    ``rate`` is ``len(reasons) / total_answers`` (0.0 when there are no answers);
    ``reasons`` lists ``{"reason", "count"}`` by count descending, then reason text.
    Raises ValueError for a negative ``total_answers``.
    """
    if total_answers < 0:
        raise ValueError("total_answers must be >= 0")
    rate = len(reasons) / total_answers if total_answers else 0.0
    grouped = Counter(normalise_reason(reason) for reason in reasons)
    ordered = sorted(grouped.items(), key=lambda item: (-item[1], item[0]))
    return {"rate": rate, "reasons": [{"reason": reason, "count": count} for reason, count in ordered]}


def median(values: Sequence[float]) -> float | None:
    """The median of the values as a float (mean of the middle two for an even count); None if empty."""
    if not values:
        return None
    return float(statistics.median(values))
