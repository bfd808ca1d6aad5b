"""calibration.choose_fit: a round keeps the fit with its gold clamped only when that fit
predicts held-out gold measurably better than the fit without gold."""
from __future__ import annotations

from typing import Any

import numpy as np

from bench.aggregation import synthetic_problem
from chalicelib.domain.aggregation import calibration as c
from chalicelib.domain.aggregation.categorical import default_model, encode

N_ITEMS, N_GOLD = 200, 60


def _encoded() -> Any:
    items, workers, labels, _, _ = synthetic_problem(n_items=N_ITEMS, n_classes=2, per_item=3,
                                                     n_workers=20, seed=2)
    return encode(items, workers, labels)


def _rows(right: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Two-class posterior rows, sure at 0.8 of the class when right, of the other when not."""
    chosen = np.where(right, classes, 1 - classes)
    rows = np.full((len(classes), 2), 0.2)
    rows[np.arange(len(classes)), chosen] = 0.8
    return rows


class _Stub:
    """A model whose gold-item posteriors are set: `clamped_right` of the gold items right
    when fitted with any gold, `plain_right` when fitted without; the other items at 0.5."""

    def __init__(self, gold_items: np.ndarray, gold_classes: np.ndarray,
                 clamped_right: np.ndarray, plain_right: np.ndarray) -> None:
        self.gold_items, self.gold_classes = gold_items, gold_classes
        self.clamped_right, self.plain_right = clamped_right, plain_right
        self.fits: list[int] = []

    def fit_encoded(self, encoded: Any, gold_items: Any = None, gold_classes: Any = None
                    ) -> _Stub:
        clamped = gold_items is not None and len(gold_items) > 0
        self.fits.append(len(gold_items) if clamped else 0)
        self.probas_array_ = np.full((len(encoded.items_), 2), 0.5)
        right = self.clamped_right if clamped else self.plain_right
        self.probas_array_[self.gold_items] = _rows(right, self.gold_classes)
        self.priors_ = np.array([0.5, 0.5])
        self.confusions_ = np.full((len(encoded.workers_), 2, 2), 0.5)
        return self


def _choose(clamped_count: int, plain_count: int, gold: int = N_GOLD, **kwargs: Any
            ) -> tuple[c.RoundFit, list[_Stub]]:
    encoded = _encoded()
    gold_items = np.arange(gold)
    gold_classes = np.arange(gold) % 2
    clamped_right = np.arange(gold) < clamped_count
    plain_right = np.arange(gold) < plain_count
    made: list[_Stub] = []

    def make() -> _Stub:
        made.append(_Stub(gold_items, gold_classes, clamped_right, plain_right))
        return made[-1]

    return c.choose_fit(make, encoded, gold_items, gold_classes, **kwargs), made


def test_clamping_that_gets_fewer_gold_items_right_is_not_kept() -> None:
    chosen, made = _choose(clamped_count=40, plain_count=50)
    assert not chosen.gold_clamped and chosen.model.fits == [0]
    assert (chosen.clamped_right, chosen.unclamped_right) == (40, 50)
    # The map is fitted on the unclamped fit's own gold posteriors.
    assert np.array_equal(chosen.posteriors, chosen.model.probas_array_[:N_GOLD])
    assert chosen.to_dict() == {"gold_clamped": False, "clamped_right": 40, "unclamped_right": 50,
                                "reason": "gold not clamped: 40 of 60 gold items right with the "
                                          "gold clamped (cross-fitted), 50 without, not "
                                          "measurably better"}


def test_clamping_that_gets_measurably_more_gold_items_right_is_kept() -> None:
    chosen, made = _choose(clamped_count=55, plain_count=40)
    assert chosen.gold_clamped and (chosen.clamped_right, chosen.unclamped_right) == (55, 40)
    # The clamped fit saw all the gold; its cross-fitted refits each left out a fold's.
    assert chosen.model.fits[0] == N_GOLD
    assert sorted(chosen.model.fits[1:]) == [N_GOLD - N_GOLD // c.CROSS_FIT_FOLDS] * c.CROSS_FIT_FOLDS
    assert chosen.reason.startswith("gold clamped: 55 of 60")


def test_a_gain_within_the_noise_keeps_the_unclamped_fit() -> None:
    # 3 of 3 differing items to the clamped fit: 3 > 1.0 * sqrt(3) passes; 3 to 1: 2 > 2 does not.
    assert c.clamp_helps(np.array([True] * 3), np.array([False] * 3))
    assert not c.clamp_helps(np.array([True, True, True, False]),
                             np.array([False, False, False, True]))
    chosen, _ = _choose(clamped_count=41, plain_count=40)
    assert not chosen.gold_clamped
    assert not c.clamp_helps(np.ones(5, bool), np.ones(5, bool))


def test_too_little_gold_keeps_the_unclamped_fit_without_a_clamped_one() -> None:
    chosen, made = _choose(clamped_count=10, plain_count=0, gold=c.MIN_GOLD - 1)
    assert not chosen.gold_clamped and len(made) == 1 and made[0].fits == [0]
    assert chosen.clamped_right is None and "fewer than the 20" in chosen.reason


def test_above_the_cross_fit_limit_the_clamped_fit_is_kept_as_before() -> None:
    encoded = _encoded()
    chosen, made = _choose(clamped_count=0, plain_count=60,
                           max_answers=len(encoded.item_codes) - 1)
    assert chosen.gold_clamped and len(made) == 1 and made[0].fits == [N_GOLD]
    assert chosen.clamped_right is None
    assert np.allclose(chosen.posteriors, 0.5)  # gold_posteriors of the stub's flat confusions


def test_on_a_real_crowd_the_chosen_fit_is_one_of_the_two_and_its_posteriors_are_honest() -> None:
    items, workers, labels, gold, _ = synthetic_problem(n_items=400, n_classes=3, per_item=4,
                                                        n_workers=40, seed=9)
    encoded = encode(items, workers, labels, extra_classes=sorted(set(gold.values())))
    rank = {item: i for i, item in enumerate(encoded.items_)}
    chosen_ids = sorted(gold)[::4]
    gold_items = np.array([rank[t] for t in chosen_ids])
    gold_classes = np.array([encoded.classes_.index(gold[t]) for t in chosen_ids])
    chosen = c.choose_fit(default_model, encoded, gold_items, gold_classes)
    plain = default_model().fit_encoded(encoded)
    if chosen.gold_clamped:
        assert chosen.clamped_right > chosen.unclamped_right
        assert np.array_equal(chosen.posteriors, c.cross_fitted_posteriors(
            chosen.model, encoded, gold_items, gold_classes))
    else:
        assert np.allclose(chosen.model.probas_array_, plain.probas_array_)
        assert np.allclose(chosen.posteriors, plain.probas_array_[gold_items])
    assert (chosen.posteriors.max(axis=1) < 1.0).all()
    # Above the cross-fit limit: the clamped default, scored by one E-step without the clamp.
    big = c.choose_fit(default_model, encoded, gold_items, gold_classes,
                       max_answers=len(encoded.item_codes) - 1)
    clamped = default_model().fit_encoded(encoded, gold_items, gold_classes)
    assert big.gold_clamped and np.allclose(big.model.probas_array_, clamped.probas_array_)
    assert np.allclose(big.posteriors, c.gold_posteriors(clamped, encoded, gold_items))
