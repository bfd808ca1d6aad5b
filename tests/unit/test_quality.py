"""Calibration report statistics: Krippendorff's alpha, Fleiss' kappa, label shares, N/A summary."""
import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from chalicelib.domain.quality import (
    fleiss_kappa, krippendorff_alpha_nominal, label_distribution, median, na_summary,
    total_variation_distance)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", nominal example C:
# 4 observers (A, B, C, D) x 12 units, values 1..5, "." (missing) written here as None.
#   unit: 1  2  3  3  2  1  4  1  2  .  .  .   <- observer A, and so on per row below
_KRIPPENDORFF_OBSERVERS = [
    ["1", "2", "3", "3", "2", "1", "4", "1", "2", None, None, None],
    ["1", "2", "3", "3", "2", "2", "4", "1", "2", "5", None, "3"],
    [None, "3", "3", "3", "2", "3", "4", "2", "2", "5", "1", None],
    ["1", "2", "3", "3", "2", "4", "4", "1", "2", "5", "1", None],
]
KRIPPENDORFF_2011 = {f"u{u + 1}": [row[u] for row in _KRIPPENDORFF_OBSERVERS] for u in range(12)}

# Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, counts per category 1..5.
FLEISS_COUNTS = [
    (0, 0, 0, 0, 14), (0, 2, 6, 4, 2), (0, 0, 3, 5, 6), (0, 3, 9, 2, 0), (2, 2, 8, 1, 1),
    (7, 7, 0, 0, 0), (3, 2, 6, 3, 0), (2, 5, 3, 2, 2), (6, 5, 2, 1, 0), (0, 2, 2, 3, 7),
]
FLEISS_1971 = {
    f"s{i}": [f"c{j + 1}" for j, count in enumerate(row) for _ in range(count)]
    for i, row in enumerate(FLEISS_COUNTS)
}


def _pairwise_alpha(units):
    """Alpha from its pair definition (every ordered pair within a unit), as an independent check."""
    pairs, values = [], []
    for unit in units.values():
        kept = [value for value in unit if value is not None]
        if len(kept) < 2:
            continue
        values += kept
        weight = Fraction(1, len(kept) - 1)
        pairs += [(a != b, weight) for a, b in itertools.permutations(kept, 2)]
    n = len(values)
    d_observed = sum(weight for differs, weight in pairs if differs) / n
    d_expected = Fraction(sum(a != b for a, b in itertools.permutations(values, 2)), n * (n - 1))
    return float(1 - d_observed / d_expected)


# --- Krippendorff's alpha -------------------------------------------------------------------

def test_alpha_matches_krippendorff_2011_nominal_example():
    # GIVEN the published 4 x 12 reliability data with missing values
    # Pairable units: u1..u11 (u12 has one value). n = 3 + 8*4 + 3 + 2 = 40.
    # Disagreeing units: u2 {2:3, 3:1} -> (16 - 10)/3 = 2; u6 {1,2,3,4} -> (16 - 4)/3 = 4;
    #   u8 {1:3, 2:1} -> (16 - 10)/3 = 2; all others agree -> sum_{c!=k} o_ck = 8.
    # Marginals n_c: 1 -> 9, 2 -> 13, 3 -> 10, 4 -> 5, 5 -> 3 (sum 40); sum n_c^2 = 384.
    # alpha = 1 - (n - 1) * 8 / (40^2 - 384) = 1 - 312 / 1216 = 113/152 = 0.7434...
    # WHEN alpha is computed
    alpha = krippendorff_alpha_nominal(KRIPPENDORFF_2011)
    # THEN it is the paper's 0.743
    assert alpha == pytest.approx(113 / 152)
    assert round(alpha, 3) == 0.743


def test_alpha_is_one_for_perfect_agreement():
    # GIVEN every worker agreeing on each item, with two labels in use
    units = {"i1": ["cat", "cat", "cat"], "i2": ["dog", "dog"], "i3": ["cat", "cat"]}
    # WHEN / THEN alpha is exactly 1
    assert krippendorff_alpha_nominal(units) == 1.0


def test_alpha_is_negative_for_systematic_disagreement():
    # GIVEN two workers who always answer the opposite label
    units = {"i1": ["a", "b"], "i2": ["b", "a"]}
    # n = 4; each unit contributes (4 - 2)/1 = 2 -> sum_{c!=k} o_ck = 4; n_a = n_b = 2.
    # alpha = 1 - 3 * 4 / (16 - 8) = 1 - 12/8 = -0.5
    # WHEN / THEN alpha is below chance
    assert krippendorff_alpha_nominal(units) == pytest.approx(-0.5)


def test_alpha_ignores_na_and_singleton_units():
    # GIVEN the systematic-disagreement units plus N/A answers and an item answered once
    units = {"i1": ["a", None, "b"], "i2": ["b", "a", None], "i3": ["a"], "i4": [None, None]}
    # WHEN / THEN the result is the same as without them
    assert krippendorff_alpha_nominal(units) == pytest.approx(-0.5)


@pytest.mark.parametrize("units", [
    {},
    {"i1": ["a"], "i2": ["b"]},              # nothing pairable
    {"i1": [None, None], "i2": ["a", None]},  # N/A leaves under two values per unit
    {"i1": ["a", "a"], "i2": ["a", "a", "a"]},  # no variation: D_e == 0
])
def test_alpha_is_none_when_undefined(units):
    # GIVEN answers with too little data or no variation
    # WHEN / THEN alpha is not reported
    assert krippendorff_alpha_nominal(units) is None


# --- Fleiss' kappa --------------------------------------------------------------------------

def test_kappa_matches_fleiss_1971_worked_example():
    # GIVEN 10 subjects rated by 14 raters into 5 categories
    # P_i numerators sum_j n_ij^2 - 14: 182, 46, 56, 80, 60, 84, 44, 32, 52, 52 -> 688
    # P_bar = 688 / (10 * 14 * 13) = 688/1820 = 0.37802
    # column totals 20, 28, 39, 21, 32 (sum 140) -> P_e = (400+784+1521+441+1024)/140^2
    #   = 4170/19600 = 0.21276
    # kappa = (P_bar - P_e) / (1 - P_e) = 0.16527 / 0.78724 = 0.2099
    expected = (Fraction(688, 1820) - Fraction(4170, 19600)) / (1 - Fraction(4170, 19600))
    # WHEN kappa is computed
    kappa = fleiss_kappa(FLEISS_1971)
    # THEN it is the published 0.210
    assert kappa == pytest.approx(float(expected))
    assert round(kappa, 3) == 0.210


def test_kappa_is_one_for_perfect_agreement():
    # GIVEN three workers agreeing on every item, two labels in use
    units = {"i1": ["x", "x", "x"], "i2": ["y", "y", "y"]}
    # WHEN / THEN kappa is exactly 1
    assert fleiss_kappa(units) == 1.0


def test_kappa_is_negative_for_systematic_disagreement():
    # GIVEN two workers who always answer the opposite label
    units = {"i1": ["a", "b"], "i2": ["b", "a"]}
    # P_i = (1 + 1 - 2)/2 = 0 -> P_bar = 0; p_a = p_b = 1/2 -> P_e = 1/2; kappa = -0.5/0.5 = -1
    # WHEN / THEN kappa is -1
    assert fleiss_kappa(units) == pytest.approx(-1.0)


def test_kappa_drops_na_before_counting_raters():
    # GIVEN three answers per item, one N/A in each
    units = {"i1": ["a", None, "b"], "i2": [None, "b", "a"]}
    # WHEN / THEN kappa is computed over the two real answers per item
    assert fleiss_kappa(units) == pytest.approx(-1.0)


@pytest.mark.parametrize("units", [
    {},
    {"i1": ["a", "b", "a"], "i2": ["a", "b"]},  # unequal number of answers
    {"i1": ["a", "b", None], "i2": ["a", "b", "b"]},  # equal only if N/A counted
    {"i1": ["a"], "i2": ["b"]},                # n < 2
    {"i1": ["a", "a"], "i2": ["a", "a"]},      # one label only: P_e == 1
])
def test_kappa_is_none_when_undefined(units):
    # GIVEN answers that break Fleiss' assumptions or have no variation
    # WHEN / THEN kappa is not reported
    assert fleiss_kappa(units) is None


# --- label distribution and total variation distance --------------------------------------

def test_label_distribution_shares_exclude_na():
    # GIVEN 4 real answers (3 x "a", 1 x "b") and 2 N/A
    units = {"i1": ["a", "a", None], "i2": ["b", "a", None]}
    # WHEN / THEN shares are over the real answers, largest first
    distribution = label_distribution(units)
    assert distribution == {"a": 0.75, "b": 0.25}
    assert list(distribution) == ["a", "b"]


def test_label_distribution_is_empty_without_answers():
    assert label_distribution({}) == {}
    assert label_distribution({"i1": [None]}) == {}


def test_tvd_over_union_of_labels():
    # GIVEN p = {a: .5, b: .5} and q = {a: .5, c: .5}
    # |a: 0| + |b: .5| + |c: .5| = 1.0 -> TVD = 0.5
    assert total_variation_distance({"a": 0.5, "b": 0.5}, {"a": 0.5, "c": 0.5}) == pytest.approx(0.5)
    # identical -> 0; disjoint -> 1
    assert total_variation_distance({"a": 0.3, "b": 0.7}, {"b": 0.7, "a": 0.3}) == 0.0
    assert total_variation_distance({"a": 1.0}, {"b": 1.0}) == 1.0


def test_tvd_normalises_a_client_expected_distribution():
    # GIVEN an observed distribution and an expectation given in percent
    observed = {"cat": 0.6, "dog": 0.4}
    expected = {"cat": 50, "dog": 30, "bird": 20}
    # q -> {cat: .5, dog: .3, bird: .2}; |.1| + |.1| + |.2| = .4 -> TVD = 0.2
    # WHEN / THEN the distance is computed on the normalised expectation
    assert total_variation_distance(observed, expected) == pytest.approx(0.2)


@pytest.mark.parametrize("p, q", [
    ({"a": 1.0}, {"a": -0.5, "b": 1.5}),  # negative weight
    ({"a": 1.0}, {"a": 0, "b": 0}),       # all-zero q
    ({"a": 1.0}, {}),                     # empty q
    ({}, {"a": 1.0}),                     # no observed answers
    ({"a": float("nan")}, {"a": 1.0}),
])
def test_tvd_rejects_invalid_weights(p, q):
    with pytest.raises(ValueError):
        total_variation_distance(p, q)


# --- N/A summary and median -----------------------------------------------------------------

def test_na_summary_groups_reasons_typed_differently():
    # GIVEN 4 N/A answers out of 10, two spellings of the same reason
    reasons = ["Image is blurry", "  image   IS blurry ", "Not English", "image is\tblurry"]
    # WHEN summarised
    summary = na_summary(reasons, total_answers=10)
    # THEN the rate is 4/10 and the reasons are grouped, most frequent first
    assert summary == {
        "rate": 0.4,
        "reasons": [{"reason": "image is blurry", "count": 3}, {"reason": "not english", "count": 1}],
    }


def test_na_summary_breaks_count_ties_by_reason_text():
    summary = na_summary(["zebra", "Apple", "mango"], total_answers=3)
    assert [r["reason"] for r in summary["reasons"]] == ["apple", "mango", "zebra"]
    assert summary["rate"] == 1.0


def test_na_summary_without_answers():
    assert na_summary([], total_answers=0) == {"rate": 0.0, "reasons": []}
    with pytest.raises(ValueError):
        na_summary([], total_answers=-1)


def test_median():
    assert median([]) is None
    assert median([3, 1, 2]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


# --- properties -----------------------------------------------------------------------------

LABELS = ["a", "b", "c", "d"]
units_strategy = st.dictionaries(
    st.text("xyz", min_size=1, max_size=3),
    st.lists(st.one_of(st.sampled_from(LABELS), st.none()), max_size=6),
    max_size=8)
equal_size_units = st.integers(2, 5).flatmap(lambda n: st.dictionaries(
    st.text("xyz", min_size=1, max_size=3),
    st.lists(st.sampled_from(LABELS), min_size=n, max_size=n),
    min_size=1, max_size=8))


def _relabel_and_shuffle(units, permutation, rng):
    mapping = dict(zip(LABELS, permutation))
    shuffled = []
    for item, values in units.items():
        relabelled = [mapping[v] if v is not None else None for v in values]
        rng.shuffle(relabelled)
        shuffled.append((item, relabelled))
    rng.shuffle(shuffled)
    return dict(shuffled)


@settings(max_examples=200, deadline=None)
@given(units=units_strategy, permutation=st.permutations(LABELS), rng=st.randoms(use_true_random=False))
def test_alpha_is_invariant_to_relabelling_and_order(units, permutation, rng):
    # GIVEN any answers, and the same answers relabelled by a bijection and reordered
    moved = _relabel_and_shuffle(units, permutation, rng)
    # WHEN / THEN alpha is unchanged (both None, or equal)
    assert krippendorff_alpha_nominal(moved) == krippendorff_alpha_nominal(units)


@settings(max_examples=200, deadline=None)
@given(units=equal_size_units, permutation=st.permutations(LABELS), rng=st.randoms(use_true_random=False))
def test_kappa_is_invariant_to_relabelling_and_order(units, permutation, rng):
    moved = _relabel_and_shuffle(units, permutation, rng)
    assert fleiss_kappa(moved) == fleiss_kappa(units)


@settings(max_examples=200, deadline=None)
@given(units=units_strategy)
def test_alpha_is_at_most_one_and_matches_pair_definition(units):
    # GIVEN any answers
    # WHEN alpha is defined
    alpha = krippendorff_alpha_nominal(units)
    # THEN it never exceeds 1 and equals the pairwise definition of alpha
    if alpha is not None:
        assert alpha <= 1.0
        assert alpha == pytest.approx(_pairwise_alpha(units))


@settings(max_examples=200, deadline=None)
@given(units=units_strategy)
def test_label_distribution_sums_to_one_and_is_zero_distance_from_itself(units):
    distribution = label_distribution(units)
    if distribution:
        assert sum(distribution.values()) == pytest.approx(1.0)
        assert total_variation_distance(distribution, distribution) == 0.0
