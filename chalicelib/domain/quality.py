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


class AgreementSums:
    """The sums nominal agreement and label shares are computed from, mergeable by addition.

    For each count m of non-N/A values in a unit: how many units have m values and the sum of
    their squared label counts; and the total of each label, over every unit and over the
    pairable ones (m >= 2). These few numbers per label and per m stand for any number of
    units, so agreement over a whole round is the merge of its shards' sums, exactly: the
    statistics below are exact fractions of these integers. Labels keep the order in which
    they first appear, so merging in unit order gives the same ties as one pass.
    """

    def __init__(self) -> None:
        self.sizes: dict[int, list[int]] = {}  # m -> [units, sum over them of sum_c n_uc^2]
        self.labels: Counter = Counter()
        self.pairable: Counter = Counter()

    def add(self, values: Sequence[Optional[Hashable]]) -> None:
        """Count one unit's values (N/A is None)."""
        counts = _label_counts(values)
        m_u = sum(counts.values())
        entry = self.sizes.setdefault(m_u, [0, 0])
        entry[0] += 1
        entry[1] += sum(c * c for c in counts.values())
        self.labels.update(counts)
        if m_u >= 2:
            self.pairable.update(counts)

    def to_json(self) -> dict[str, Any]:
        """The sums as JSON; labels as [label, count] pairs so a number stays a number."""
        return {"sizes": [[m, units, squares] for m, (units, squares) in self.sizes.items()],
                "labels": [[label, n] for label, n in self.labels.items()],
                "pairable": [[label, n] for label, n in self.pairable.items()]}

    def merge(self, sums: Mapping[str, Any]) -> None:
        """Add another run of units' sums (as to_json wrote them)."""
        for m_u, units, squares in sums["sizes"]:
            entry = self.sizes.setdefault(m_u, [0, 0])
            entry[0] += units
            entry[1] += squares
        for label, n in sums["labels"]:
            self.labels[label] += n
        for label, n in sums["pairable"]:
            self.pairable[label] += n

    def alpha(self) -> float | None:
        """Krippendorff's alpha of the units counted (krippendorff_alpha_nominal)."""
        observed_disagreement = sum(
            (Fraction(m_u * m_u * units - squares, m_u - 1)
             for m_u, (units, squares) in self.sizes.items() if m_u >= 2), Fraction(0))
        n = sum(self.pairable.values())
        expected_disagreement = n * n - sum(c * c for c in self.pairable.values())
        if n < 2 or expected_disagreement == 0:
            return None
        return float(1 - (n - 1) * observed_disagreement / expected_disagreement)

    def kappa(self) -> float | None:
        """Fleiss' kappa of the units counted (fleiss_kappa)."""
        present = [m_u for m_u, (units, _) in self.sizes.items() if units]
        if len(present) != 1:
            return None
        (n,) = present
        if n < 2:
            return None
        n_units, squares = self.sizes[n]
        mean_agreement = Fraction(squares - n * n_units, n_units * n * (n - 1))
        chance_agreement = Fraction(sum(c * c for c in self.labels.values()), (n_units * n) ** 2)
        if chance_agreement == 1:
            return None
        return float((mean_agreement - chance_agreement) / (1 - chance_agreement))

    def distribution(self) -> dict[Hashable, float]:
        """Share of each label over all non-N/A values (label_distribution)."""
        total = sum(self.labels.values())
        return {label: count / total for label, count in self.labels.most_common()}


def agreement_sums(units: Units) -> AgreementSums:
    """The agreement sums of some units."""
    sums = AgreementSums()
    for values in units.values():
        sums.add(values)
    return sums


def krippendorff_alpha_nominal(units: Units) -> float | None:
    """Krippendorff's alpha for nominal labels, from the coincidence matrix; None if undefined.

    Only units with at least two non-N/A values are pairable; N/A values are dropped first.
    With ``n_uc`` the count of label c in unit u, ``m_u`` the unit's pairable values and
    ``n_c`` the pairable total of label c over ``n`` pairable values:
    ``alpha = 1 - (n - 1) * sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) / (n^2 - sum_c n_c^2)``,
    i.e. ``1 - D_o / D_e``. Units of the same m_u are summed before dividing by m_u - 1
    (AgreementSums), the same exact fraction. Returns None when fewer than two values are
    pairable or when ``D_e == 0`` (every pairable value is the same label): with no variation
    there is nothing to be reliable about, and alpha is 0/0 rather than 1.
    """
    return agreement_sums(units).alpha()


def fleiss_kappa(units: Units) -> float | None:
    """Fleiss' kappa; None unless every unit has the same number n >= 2 of non-N/A values.

    Fleiss' kappa assumes a fixed number of ratings per subject, so a job where some items got
    fewer (or more) usable answers has no kappa; use ``krippendorff_alpha_nominal`` there.
    Also None when there are no units or when chance agreement ``P_e == 1`` (one label only).
    """
    return agreement_sums(units).kappa()


def label_distribution(units: Units) -> dict[Hashable, float]:
    """Share of each label over all non-N/A values, largest first; {} when there are none.

    Ties keep the order in which the labels first appear.
    """
    return agreement_sums(units).distribution()


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
    return grouped_na_summary(Counter(normalise_reason(reason) for reason in reasons),
                              len(reasons), total_answers)


def grouped_na_summary(grouped: Mapping[str, int], n_reasons: int, total_answers: int
                       ) -> dict[str, Any]:
    """na_summary from reasons already grouped by normalised text (counts add up across runs
    of answers, so a round's summary is the merge of its shards')."""
    if total_answers < 0:
        raise ValueError("total_answers must be >= 0")
    rate = n_reasons / total_answers if total_answers else 0.0
    ordered = sorted(grouped.items(), key=lambda item: (-item[1], item[0]))
    return {"rate": rate, "reasons": [{"reason": reason, "count": count} for reason, count in ordered]}


def median(values: Sequence[float]) -> float | None:
    """The median of the values as a float (mean of the middle two for an even count); None if empty."""
    if not values:
        return None
    return float(statistics.median(values))


def median_of_counts(counts: Mapping[float, int]) -> float | None:
    """The median of values given as value -> how many times it occurs (as ``median`` of the
    values listed out); None if there are none. Durations measured in whole seconds take few
    distinct values, so a round's are held in a few counts instead of one float per answer."""
    total = sum(counts.values())
    if not total:
        return None
    middle = [(total - 1) // 2, total // 2]  # the two middle ranks (the same one when odd)
    found: list[float] = []
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        while middle and middle[0] < seen:
            found.append(value)
            middle.pop(0)
    if total % 2:
        return float(found[0])
    return float((found[0] + found[1]) / 2)
