"""Calibrated confidence: a map from the model's posteriors to probabilities that mean what
they say, fitted on a round's own gold items, and the measures of how well they do.

A round's model is fitted with its gold items clamped and without gold, and `choose_fit`
keeps the clamped fit only when it predicts the gold measurably better (`clamp_helps`), the
gold items scored as if their answers were unknown: the fit without gold never saw them; the
clamped fit's are read off refits that withheld a fold of the gold each
(`cross_fitted_posteriors`). Above CROSS_FIT_MAX_ANSWERS answers the clamped fit is kept and
scored without its gold clamp (`gold_posteriors`). The chosen fit's honest gold posteriors
are what the map is fitted on. `fit_calibration` fits the map
on those posteriors and the gold labels, choosing among temperature scaling, Platt scaling,
histogram binning and isotonic regression of the chosen label's confidence, and the identity,
by log loss on gold items held out of the fit (`held_out_log_loss`); with too little gold it
is the identity, saying why. `CalibrationMap.apply` maps any item's posterior row to
calibrated probabilities (rows sum to 1, the order of the classes and the chosen label kept).
The map is small and JSON-serialisable (`to_dict` / `from_dict`), so it travels with a
round's posteriors to the stages that apply it.

Measures (10 equal-width bins on the confidence of the chosen label, as the report and
bench/calibration.py use them): `reliability` (the diagram's rows), `expected_calibration_error`,
`brier_score`, `log_loss`.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chalicelib.domain.aggregation.categorical import argmax_first

BINS = 10
# Fewer gold items than this: the map stays the identity (too little to fit anything).
MIN_GOLD = 20
EPSILON = 1e-12
IDENTITY = "identity"
TEMPERATURE = "temperature"
PLATT = "platt"
BINNING = "binning"
ISOTONIC = "isotonic"
# In order of preference when two tie on held-out log loss (the simpler first).
KINDS = (IDENTITY, TEMPERATURE, PLATT, BINNING, ISOTONIC)
_NAMES = {IDENTITY: "no map", TEMPERATURE: "temperature scaling",
          PLATT: "Platt scaling of the chosen label's confidence",
          BINNING: "histogram binning of the chosen label's confidence",
          ISOTONIC: "isotonic regression of the chosen label's confidence"}
# Folds of the cross-validation over gold items that chooses the kind.
CV_FOLDS = 5
# Cross-fitting (cross_fitted_posteriors) and the choice of fit (choose_fit): folds, and the
# most answers they are done on. Each fold is one more fit of the round, and the fit without
# gold one more; a fit of 1,000,000 answers takes about 8.6 s of CPU (bench/README.md), so
# the six add about 52 s there; above, the clamped fit is kept and the map is fitted on
# gold_posteriors (one E-step over the gold answers).
CROSS_FIT_FOLDS = 5
CROSS_FIT_MAX_ANSWERS = 1_000_000
# More gold items than this: the map is fitted on an evenly spaced sample of this many (a
# handful of parameters needs no more; choosing and fitting take about 2 s at this size).
MAX_FIT_GOLD = 20_000
# Fewer gold items than this: no binning or isotonic map (their shape would be noise).
MIN_GOLD_SHAPE = 50
# Gold items per bin of a binning map (at most BINS bins).
BIN_ITEMS = 25
# Top-label maps keep the chosen class at least this far ahead of the next (beyond the
# engine's tie tolerance), and confidences inside [_TOP_CLIP, 1 - _TOP_CLIP] for logits.
_MARGIN = 1e-8
_TOP_CLIP = 1e-6
# The temperatures tried: 0.05 .. 20 (a golden-section search on log T).
_LOG_T_LOW, _LOG_T_HIGH = np.log(0.05), np.log(20.0)


def _clipped_log(probas: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probas, EPSILON, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class CalibrationMap:
    """How a round's posteriors become calibrated probabilities.

    kind and its params: "identity" (unchanged, {}); "temperature" (p ** (1/t), renormalised,
    {"t"}); and three maps of the chosen label's confidence c, the other classes sharing
    1 - c' in their old proportions: "platt" (c' = sigmoid(a * logit(c) + b), {"a", "b"}),
    "binning" (c' = values[i] for the bin i of c between edges, {"edges", "values"}) and
    "isotonic" (c' interpolated between non-decreasing knots, {"x", "y"}). No kind changes
    the chosen label. gold is how many gold items it was fitted on; reason says why it is
    what it is (for the report)."""

    kind: str = IDENTITY
    params: dict[str, Any] = field(default_factory=dict)
    gold: int = 0
    reason: str = ""

    def apply(self, probas: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of posterior rows (n x classes)."""
        return _apply(self.kind, self.params, np.asarray(probas, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """The map as JSON-serialisable values."""
        return {"kind": self.kind, "params": dict(self.params), "gold": self.gold,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> CalibrationMap:
        """A map from to_dict's form (None: the identity)."""
        if not value:
            return cls(reason="no calibration")
        return cls(str(value["kind"]), dict(value.get("params") or {}), int(value.get("gold", 0)),
                   str(value.get("reason", "")))


def _nll(log_probas: np.ndarray, classes: np.ndarray, t: float) -> float:
    calibrated = _softmax(log_probas / t)
    return float(-_clipped_log(calibrated[np.arange(len(classes)), classes]).mean())


def _fit_temperature(probas: np.ndarray, classes: np.ndarray) -> float:
    """The temperature minimising the gold items' log loss (golden-section search on log T)."""
    log_probas = _clipped_log(probas)
    low, high = _LOG_T_LOW, _LOG_T_HIGH
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = _nll(log_probas, classes, float(np.exp(a))), _nll(log_probas, classes, float(np.exp(b)))
    for _ in range(40):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(log_probas, classes, float(np.exp(a)))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(log_probas, classes, float(np.exp(b)))
    return float(np.exp((low + high) / 2.0))


def _top_label(probas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the chosen class of each row, its probability): the first class within tie
    tolerance of the row maximum, as the engine chooses labels."""
    chosen = argmax_first(probas)
    return chosen, probas[np.arange(len(probas)), chosen]


def _with_top(probas: np.ndarray, chosen: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Rows whose chosen class gets probability top and whose other classes share the rest in
    their old proportions (evenly where they had none). top is raised where needed so that
    the chosen class stays strictly ahead of every other: a top-label map never changes the
    label."""
    n_classes = probas.shape[1]
    if n_classes < 2:
        return probas
    rows = np.arange(len(probas))
    others = probas.copy()
    others[rows, chosen] = 0.0
    rest = others.sum(axis=1)
    second = others.max(axis=1)
    empty = rest <= 0.0
    # top >= (1 - top) * second / rest keeps the chosen class ahead; 1/K when the rest is empty.
    lower = np.where(empty, 1.0 / n_classes, second / np.where(empty, 1.0, rest + second))
    top = np.minimum(np.maximum(np.asarray(top, dtype=np.float64), lower + _MARGIN), 1.0)
    scale = np.where(empty, 0.0, (1.0 - top) / np.where(empty, 1.0, rest))
    out = others * scale[:, None]
    out[empty] = ((1.0 - top[empty]) / (n_classes - 1))[:, None]
    out[rows, chosen] = top
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _TOP_CLIP, 1.0 - _TOP_CLIP)
    return np.log(p) - np.log1p(-p)


def _mapped_top(kind: str, params: dict[str, Any], confidence: np.ndarray) -> np.ndarray:
    """A top-label map's calibrated confidence of the chosen class."""
    if kind == PLATT:
        return _platt_top(confidence, float(params["a"]), float(params["b"]))
    if kind == BINNING:
        which = np.searchsorted(np.asarray(params["edges"], dtype=np.float64), confidence,
                                side="right")
        return np.asarray(params["values"], dtype=np.float64)[which]
    if kind == ISOTONIC:
        return np.interp(confidence, np.asarray(params["x"], dtype=np.float64),
                         np.asarray(params["y"], dtype=np.float64))
    raise ValueError(f"unknown calibration map kind {kind!r}")


def _apply(kind: str, params: dict[str, Any], probas: np.ndarray) -> np.ndarray:
    if kind == IDENTITY or probas.size == 0:
        return probas
    if kind == TEMPERATURE:
        return _softmax(_clipped_log(probas) / float(params["t"]))
    chosen, confidence = _top_label(probas)
    return _with_top(probas, chosen, _mapped_top(kind, params, confidence))


def _smoothed(hits: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Share right with one pseudo-hit and one pseudo-miss (Laplace): never exactly 0 or 1,
    so one surprise on new items does not cost an infinite log loss."""
    return (hits + 1.0) / (counts + 2.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _platt_top(confidence: np.ndarray, a: float, b: float) -> np.ndarray:
    return _sigmoid(a * _logit(confidence) + b)


def _fit_platt(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """(a, b) of sigmoid(a * logit(confidence) + b) minimising the binary log loss against
    Platt's smoothed targets ((n+ + 1) / (n+ + 2) and 1 / (n- + 2)): Newton's method, each step
    halved until the loss does not rise."""
    right = float(correct.sum())
    wrong = len(correct) - right
    target = np.where(correct, (right + 1.0) / (right + 2.0), 1.0 / (wrong + 2.0))
    x = np.column_stack([_logit(confidence), np.ones(len(confidence))])

    def loss(theta: np.ndarray) -> float:
        z = x @ theta
        return float((np.logaddexp(0.0, z) - target * z).sum())

    theta = np.array([1.0, 0.0])
    current = loss(theta)
    for _ in range(100):
        p = _sigmoid(x @ theta)
        gradient = x.T @ (p - target)
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):
            trial = loss(theta - step)
            if trial <= current:
                break
            step = step / 2.0
        else:
            break
        theta, gain, current = theta - step, current - trial, trial
        if gain <= 1e-12 * max(1.0, abs(current)):
            break
    return {"a": round(float(theta[0]), 6), "b": round(float(theta[1]), 6)}


def _fit_binning(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Equal-count bins of the chosen label's confidence (about BIN_ITEMS gold items each, at
    most BINS), each mapped to its smoothed share right, made non-decreasing."""
    order = np.argsort(confidence, kind="stable")
    sorted_conf, sorted_correct = confidence[order], correct[order].astype(np.float64)
    n_bins = int(min(BINS, max(2, len(confidence) // BIN_ITEMS)))
    cuts = np.unique((np.arange(1, n_bins) * len(confidence)) // n_bins)
    edges = np.unique((sorted_conf[cuts - 1] + sorted_conf[cuts]) / 2.0)
    which = np.searchsorted(edges, sorted_conf, side="right")
    hits = np.bincount(which, weights=sorted_correct, minlength=len(edges) + 1)
    counts = np.bincount(which, minlength=len(edges) + 1).astype(np.float64)
    values = np.maximum.accumulate(_smoothed(hits, counts))
    return {"edges": [round(float(e), 6) for e in edges],
            "values": [round(float(v), 6) for v in values]}


def _fit_isotonic(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """The non-decreasing fit of right/wrong on the chosen label's confidence (pool adjacent
    violators), its blocks' smoothed shares as knots at their mean confidence, interpolated
    linearly between knots and flat beyond them."""
    order = np.argsort(confidence, kind="stable")
    blocks: list[list[float]] = []  # [hits, count, confidence sum]
    for conf, right in zip(confidence[order].tolist(), correct[order].tolist()):
        blocks.append([float(right), 1.0, conf])
        while len(blocks) > 1 and (blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]):
            hits, count, total = blocks.pop()
            blocks[-1] = [blocks[-1][0] + hits, blocks[-1][1] + count, blocks[-1][2] + total]
    table = np.asarray(blocks)
    x = table[:, 2] / table[:, 1]
    y = np.maximum.accumulate(_smoothed(table[:, 0], table[:, 1]))
    return {"x": [round(float(v), 6) for v in x], "y": [round(float(v), 6) for v in y]}


def _fit_kind(kind: str, probas: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """The params of one kind fitted on gold posteriors and classes."""
    if kind == IDENTITY:
        return {}
    if kind == TEMPERATURE:
        return {"t": round(_fit_temperature(probas, classes), 6)}
    chosen, confidence = _top_label(probas)
    correct = chosen == classes
    fits = {PLATT: _fit_platt, BINNING: _fit_binning, ISOTONIC: _fit_isotonic}
    return fits[kind](confidence, correct)


def _candidates(n_gold: int, min_gold: int) -> list[str]:
    """The kinds worth trying on n_gold items: the identity always, the two one- and
    two-parameter maps from min_gold, the shape-free maps from MIN_GOLD_SHAPE."""
    kinds = [IDENTITY]
    if n_gold >= min_gold:
        kinds += [TEMPERATURE, PLATT]
    if n_gold >= max(min_gold, MIN_GOLD_SHAPE):
        kinds += [BINNING, ISOTONIC]
    return kinds


def held_out_log_loss(kind: str, probas: np.ndarray, classes: np.ndarray,
                      folds: int = CV_FOLDS) -> float:
    """Mean log loss of a kind on gold items it was not fitted on: the items split into folds
    (a fixed shuffle), each fold scored by the kind fitted on the others."""
    fold = np.random.default_rng(len(classes)).permutation(len(classes)) % folds
    total = 0.0
    for held in range(folds):
        out = fold == held
        if not out.any():
            continue
        params = _fit_kind(kind, probas[~out], classes[~out])
        total += log_loss(_apply(kind, params, probas[out]), classes[out]) * int(out.sum())
    return total / len(classes)


def fit_calibration(probas: np.ndarray, classes: np.ndarray, min_gold: int = MIN_GOLD,
                    kinds: Sequence[str] | None = None) -> CalibrationMap:
    """The calibration map fitted on gold items' posteriors (scored without their gold) and
    their gold class codes; the identity, with its reason, below min_gold items.

    The kind is the one with the lowest held-out log loss (held_out_log_loss, CV_FOLDS folds
    over the gold items) among the identity, temperature scaling and Platt scaling of the
    chosen label's confidence, and, from MIN_GOLD_SHAPE items, histogram binning and isotonic
    regression of it (or among `kinds`, when given); the winner is then fitted on every gold
    item (on MAX_FIT_GOLD of them, evenly spaced, when there are more)."""
    probas = np.asarray(probas, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    if len(classes) < min_gold:
        return CalibrationMap(gold=len(classes),
                              reason=f"{len(classes)} gold items answered, fewer than the "
                                     f"{min_gold} a calibration needs")
    n_gold = len(classes)
    if n_gold > MAX_FIT_GOLD:
        sample = np.linspace(0, n_gold - 1, MAX_FIT_GOLD).astype(np.int64)
        probas, classes = probas[sample], classes[sample]
    tried_kinds = _candidates(len(classes), min_gold) if kinds is None else list(kinds)
    unknown = set(tried_kinds) - set(KINDS)
    if unknown or not tried_kinds:
        raise ValueError(f"calibration kinds must be among {KINDS}, not {sorted(unknown)}")
    losses = {kind: held_out_log_loss(kind, probas, classes) for kind in tried_kinds}
    kind = min(losses, key=lambda k: (losses[k], KINDS.index(k)))
    tried = ", ".join(f"{k} {losses[k]:.4f}" for k in losses)
    sampled = f" (an even sample of {len(classes)})" if n_gold > len(classes) else ""
    reason = (f"{_NAMES[kind]} on {n_gold} gold items{sampled}, the lowest held-out log loss "
              f"({tried})")
    return CalibrationMap(kind, _fit_kind(kind, probas, classes), n_gold, reason)


def gold_posteriors(model: Any, encoded: Any, gold_items: np.ndarray) -> np.ndarray:
    """The posteriors of gold items as if their gold were unknown: one E-step of the fitted
    model (its class priors `priors_` and per-worker confusions `confusions_`, indexed
    [worker, true class, answered label]) over the items' own answers, without the clamp the
    fit put on them. Rows in gold_items' order (none: no rows, and a model fitted on no
    answers, which has no priors_, is not read)."""
    gold_items = np.asarray(gold_items, dtype=np.int64)
    if len(gold_items) == 0:
        return np.zeros((0, len(encoded.classes_)))
    priors = np.asarray(model.priors_, dtype=np.float64)
    confusions = np.asarray(model.confusions_, dtype=np.float64)
    row_of = np.full(len(encoded.items_), -1, dtype=np.int64)
    row_of[gold_items] = np.arange(len(gold_items))
    rows = row_of[encoded.item_codes]
    mine = rows >= 0
    log_joint = np.tile(_clipped_log(priors[None, :]), (len(gold_items), 1))
    np.add.at(log_joint, rows[mine],
              _clipped_log(confusions[encoded.worker_codes[mine], :, encoded.label_codes[mine]]))
    return _softmax(log_joint)


def cross_fitted_posteriors(model: Any, encoded: Any, gold_items: np.ndarray,
                            gold_classes: np.ndarray, folds: int = CROSS_FIT_FOLDS) -> np.ndarray:
    """The posteriors of gold items from refits that never saw their gold: the gold items
    split into folds (a fixed shuffle), and for each fold a copy of the fitted model (for the
    default, the candidate it chose, `model_`) refitted on every answer with only the other
    folds' gold clamped, the fold's items read off that fit. Unlike gold_posteriors, the
    workers' confusions did not learn from the item's own gold either, so the calibration
    data is as honest as the items the map will be applied to. Costs `folds` more fits.
    Rows in gold_items' order."""
    gold_items = np.asarray(gold_items, dtype=np.int64)
    gold_classes = np.asarray(gold_classes, dtype=np.int64)
    engine = getattr(model, "model_", model)
    fold = np.random.default_rng(len(gold_items)).permutation(len(gold_items)) % folds
    out = np.zeros((len(gold_items), len(encoded.classes_)))
    for held in range(folds):
        scored = fold == held
        if not scored.any():
            continue
        refit = copy.copy(engine)
        refit.fit_encoded(encoded, gold_items[~scored], gold_classes[~scored])
        out[scored] = refit.probas_array_[gold_items[scored]]
    return out


# Clamping the gold is kept only when, on the gold items scored honestly, the clamped fit gets
# more of them right than the fit without gold by more than CLAMP_Z standard errors of the
# difference (a sign test on the items the two fits disagree on); and never below MIN_GOLD.
CLAMP_Z = 1.0


@dataclass
class RoundFit:
    """A round's fitted model and the honest gold posteriors its map is fitted on.

    gold_clamped says whether the model is the fit with the round's gold clamped or the fit
    without gold; clamped_right / unclamped_right count the gold items each got right, scored
    as if their gold were unknown (None where that comparison was not made)."""

    model: Any
    posteriors: np.ndarray
    gold_clamped: bool
    clamped_right: int | None
    unclamped_right: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """What calibration.json and the report say of the choice."""
        return {"gold_clamped": self.gold_clamped, "clamped_right": self.clamped_right,
                "unclamped_right": self.unclamped_right, "reason": self.reason}


def clamp_helps(clamped_correct: np.ndarray, unclamped_correct: np.ndarray,
                z: float = CLAMP_Z) -> bool:
    """Whether the clamped fit is right on measurably more gold items than the unclamped one:
    of the items only one of them gets right (b for the clamped fit, c for the other),
    b - c > z * sqrt(b + c), the difference the noise of a few gold items does not pass."""
    b = int(np.sum(clamped_correct & ~unclamped_correct))
    c = int(np.sum(unclamped_correct & ~clamped_correct))
    return b > c and b - c > z * np.sqrt(b + c)


def choose_fit(make_model: Callable[[], Any], encoded: Any, gold_items: np.ndarray,
               gold_classes: np.ndarray, min_gold: int = MIN_GOLD,
               max_answers: int = CROSS_FIT_MAX_ANSWERS, z: float = CLAMP_Z) -> RoundFit:
    """Fit a round's model with its gold clamped or without gold, whichever predicts the gold
    better, with the honest gold posteriors of the one chosen.

    Up to max_answers answers, with at least min_gold gold items: both fits are made; the
    unclamped fit's gold posteriors are honest as they are (it never saw the gold), the
    clamped fit's are cross_fitted_posteriors (CROSS_FIT_FOLDS refits, each without a fold's
    gold). The clamped fit is kept only when clamp_helps on those; clamping can teach the
    model a confusion that does worse on the other items, and a round's gold is a small
    sample. With fewer gold items: the fit without gold (its posteriors of the gold items).
    Above max_answers (where the refits would cost too much): the clamped fit, as before the
    choice, with gold_posteriors (one E-step without the clamp). make_model returns a new,
    unfitted model."""
    gold_items = np.asarray(gold_items, dtype=np.int64)
    gold_classes = np.asarray(gold_classes, dtype=np.int64)
    if len(encoded.item_codes) > max_answers and len(gold_items) >= min_gold:
        model = make_model().fit_encoded(encoded, gold_items, gold_classes)
        return RoundFit(model, gold_posteriors(model, encoded, gold_items), True, None, None,
                        f"gold clamped: more than {max_answers:,} answers, no refits to "
                        f"compare it with the fit without gold")
    unclamped = make_model().fit_encoded(encoded)
    plain = np.asarray(unclamped.probas_array_)[gold_items]
    if len(gold_items) < min_gold:
        return RoundFit(unclamped, plain, False, None, None,
                        f"gold not clamped: {len(gold_items)} gold items answered, fewer than "
                        f"the {min_gold} a comparison needs")
    clamped = make_model().fit_encoded(encoded, gold_items, gold_classes)
    crossed = cross_fitted_posteriors(clamped, encoded, gold_items, gold_classes)
    clamped_correct = argmax_first(crossed) == gold_classes
    unclamped_correct = argmax_first(plain) == gold_classes
    right = int(clamped_correct.sum()), int(unclamped_correct.sum())
    told = (f"{right[0]} of {len(gold_items)} gold items right with the gold clamped "
            f"(cross-fitted), {right[1]} without")
    if clamp_helps(clamped_correct, unclamped_correct, z):
        return RoundFit(clamped, crossed, True, *right, f"gold clamped: {told}")
    return RoundFit(unclamped, plain, False, *right,
                    f"gold not clamped: {told}, not measurably better")


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
                ) -> list[dict[str, Any]]:
    """The reliability diagram: for each of `bins` equal-width confidence bins, its bounds,
    how many items fall in it, their mean confidence and the share that were right (None for
    an empty bin)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({"lower": b / bins, "upper": (b + 1) / bins, "count": count,
                     "confidence": float(confidence[inside].mean()) if count else None,
                     "accuracy": float(correct[inside].mean()) if count else None})
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
                               ) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    total = len(confidence)
    if total == 0:
        return 0.0
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"])
                     for row in reliability(confidence, correct, bins) if row["count"]) / total)


def brier_score(probas: np.ndarray, classes: np.ndarray) -> float:
    """Mean squared distance between the probability rows and the one-hot truth."""
    probas = np.asarray(probas, dtype=np.float64)
    truth = np.zeros_like(probas)
    truth[np.arange(len(classes)), classes] = 1.0
    return float(((probas - truth) ** 2).sum(axis=1).mean()) if len(classes) else 0.0


def log_loss(probas: np.ndarray, classes: np.ndarray) -> float:
    """Mean negative log probability of the true class."""
    probas = np.asarray(probas, dtype=np.float64)
    if not len(classes):
        return 0.0
    return float(-_clipped_log(probas[np.arange(len(classes)), classes]).mean())
