"""Adaptive redundancy policy (chalicelib.domain.redundancy) and the benchmark's replay."""
import dataclasses
import random

import pytest

from bench.adaptive import replay
from chalicelib.domain.redundancy import AdaptiveRedundancy, wants_more


def test_below_min_always_wants_more_whatever_the_confidence():
    policy = AdaptiveRedundancy(min=2, max=5, target_confidence=0.9)
    for confidence in (None, 0.0, 0.5, 0.9, 0.999):
        assert wants_more(policy, 0, confidence)
        assert wants_more(policy, 1, confidence)


def test_at_or_above_max_never_wants_more():
    policy = AdaptiveRedundancy(min=2, max=5, target_confidence=0.9)
    for confidence in (None, 0.0, 0.5, 0.89):
        assert not wants_more(policy, 5, confidence)
        assert not wants_more(policy, 6, confidence)


def test_between_min_and_max_follows_target():
    policy = AdaptiveRedundancy(min=2, max=5, target_confidence=0.9)
    for answers in (2, 3, 4):
        assert wants_more(policy, answers, 0.5)
        assert wants_more(policy, answers, 0.8999)
        assert not wants_more(policy, answers, 0.9)  # reaching the target is enough
        assert not wants_more(policy, answers, 0.99)


def test_none_confidence_wants_more_until_max():
    policy = AdaptiveRedundancy(min=1, max=3, target_confidence=0.6)
    assert [wants_more(policy, n, None) for n in range(5)] == [True, True, True, False, False]


def test_min_equals_max_is_fixed_overlap():
    policy = AdaptiveRedundancy(min=3, max=3, target_confidence=0.5)
    assert [wants_more(policy, n, 1.0 - 1e-9) for n in range(5)] == [True, True, True, False, False]


def test_policy_is_frozen():
    policy = AdaptiveRedundancy(2, 5, 0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.min = 3


@pytest.mark.parametrize("kwargs, field", [
    ({"min": 0, "max": 5, "target_confidence": 0.9}, "min"),
    ({"min": 11, "max": 11, "target_confidence": 0.9}, "min"),
    ({"min": 3, "max": 2, "target_confidence": 0.9}, "max"),
    ({"min": 2, "max": 11, "target_confidence": 0.9}, "max"),
    ({"min": 2.0, "max": 5, "target_confidence": 0.9}, "min"),
    ({"min": 2, "max": True, "target_confidence": 0.9}, "max"),
    ({"min": 2, "max": 5, "target_confidence": 0.49}, "target_confidence"),
    ({"min": 2, "max": 5, "target_confidence": 1.0}, "target_confidence"),
    ({"min": 2, "max": 5, "target_confidence": float("nan")}, "target_confidence"),
    ({"min": 2, "max": 5, "target_confidence": "0.9"}, "target_confidence"),
])
def test_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field} "):
        AdaptiveRedundancy(**kwargs)


def test_bounds_are_inclusive():
    AdaptiveRedundancy(min=1, max=1, target_confidence=0.5)
    AdaptiveRedundancy(min=10, max=10, target_confidence=0.999)


def _synthetic(n_items=60, n_workers=12, per_item=8, seed=7):
    """Workers of varying accuracy, binary truth; answers interleaved across items."""
    rng = random.Random(seed)
    truth = {f"i{k}": rng.choice("ab") for k in range(n_items)}
    skill = {f"w{w}": 0.6 + 0.35 * w / (n_workers - 1) for w in range(n_workers)}
    rows = []
    for item, label in truth.items():
        for worker in rng.sample(sorted(skill), per_item):
            correct = rng.random() < skill[worker]
            rows.append((item, worker, label if correct else ("b" if label == "a" else "a")))
    rng.shuffle(rows)
    items, workers, labels = (list(column) for column in zip(*rows))
    return items, workers, labels


@pytest.mark.parametrize("confidence", ["fit", "online"])
def test_replay_spends_at_most_full_and_respects_max(confidence):
    items, workers, labels = _synthetic()
    policy = AdaptiveRedundancy(min=2, max=5, target_confidence=0.9)
    result = replay(items, workers, labels, policy, refit_every=40, confidence=confidence)
    assert len(result.accepted) <= len(items)
    assert len(result.accepted) < len(items)  # the cap at 5 of 8 alone saves answers
    assert result.accepted == sorted(set(result.accepted))
    assert max(result.counts.values()) <= policy.max
    assert min(result.counts.values()) >= policy.min  # every item had >= 8 answers on offer
    assert sum(result.counts.values()) == len(result.accepted)
    assert result.refits == len(result.accepted) // 40
    # Deterministic.
    again = replay(items, workers, labels, policy, refit_every=40, confidence=confidence)
    assert again.accepted == result.accepted
