"""Aggregation of answers into one result per item (pure, no I/O).

Categorical answers: the item's posterior under the round's fitted model (the engine's
default, categorical.default_model; not-applicable is one more class). The chosen label is
the model's (the posterior's largest); its probabilities and confidence are the calibrated
ones (the round's calibration map, fitted on its gold items, applied to the posterior) and
confidence_raw is the model's own posterior of the chosen label, so calibration never changes
an answer, only how sure it says it is. Without a model (no fit), majority vote: ties go to
the label listed first in the job's answer schema; confidence is the share of answers that
chose the winner. Where no map applies, confidence_raw equals confidence.
Transcriptions: ROVER-style token voting (text.rover). Translations and collected text:
the medoid under normalised edit distance (the answer closest to the others); confidence
is one minus its mean distance to the others. Numbers: the median with a spread-based
confidence (numeric.median_with_confidence).
For text and numbers, not-applicable answers win when they outnumber the others, and the
confidence is scaled by the share of answers that gave a value.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.answers import NA_KEY, is_not_applicable
from chalicelib.domain.aggregation.numeric import median_with_confidence
from chalicelib.domain.aggregation.text import rover, text_medoid
from chalicelib.domain.model import ItemResult, answer_kind


_NA = object()
TIE_TOLERANCE = 1e-9
# Class standing for "not applicable" inside a fitted model (labels are printable text).
NA_CLASS = "\x00not_applicable"


def _vote_key(answer: dict[str, Any]) -> Any:
    return _NA if is_not_applicable(answer) else answer.get("label")


def vote(answer: dict[str, Any]) -> str:
    """A categorical answer as the model's class: its label, or the N/A class."""
    return NA_CLASS if is_not_applicable(answer) else answer["label"]


def majority_vote(answers: Sequence[dict[str, Any]], labels: Sequence[str]) -> tuple[Any, float]:
    """(winning label or the N/A marker, share of votes) with ties broken by label order."""
    counts = Counter(_vote_key(answer) for answer in answers)
    order: dict[Any, int] = {label: rank for rank, label in enumerate(labels)}
    order[_NA] = len(labels)
    winner = min(counts, key=lambda key: (-counts[key], order.get(key, len(labels) + 1)))
    return winner, counts[winner] / len(answers)


@dataclass(frozen=True)
class Posterior:
    """A fitted model's posterior for one item: P(class) in class order (N/A as NA_CLASS).

    probabilities are the calibrated ones, raw the model's own (None: not calibrated, the
    same as probabilities); the chosen label is raw's largest."""

    method: str
    classes: Sequence[str]
    probabilities: Sequence[float]
    raw: Sequence[float] | None = None


def _categorical(values: Sequence[dict[str, Any]], labels: Sequence[str],
                 posterior: Posterior | None
                 ) -> tuple[Any, float, float, dict[str, float] | None, str]:
    """(winning label or _NA, confidence, raw confidence, probabilities, method) of one
    categorical item."""
    if posterior is None:
        winner, share = majority_vote(values, labels)
        return winner, share, share, None, "majority_vote"
    raw = posterior.probabilities if posterior.raw is None else posterior.raw
    best = max(raw)
    # Ties go to the first class in model order: the job's labels, then N/A.
    chosen = next(index for index, p in enumerate(raw) if p >= best - TIE_TOLERANCE)
    winner = posterior.classes[chosen]
    probabilities = {(NA_KEY if label == NA_CLASS else label): p
                     for label, p in zip(posterior.classes, posterior.probabilities)}
    return ((_NA if winner == NA_CLASS else winner), posterior.probabilities[chosen], raw[chosen],
            probabilities, posterior.method)


def aggregate_item(item_id: str, task_type: str, schema: dict[str, Any],
                   answers: Sequence[dict[str, Any]], external_id: str | None = None,
                   posterior: Posterior | None = None, gold: dict[str, Any] | None = None
                   ) -> ItemResult:
    """One item's result from its answers, given in submission order with their lineage.

    Each entry of answers holds 'answer', 'worker_id', 'assignment_id' and 'submitted_at'.
    A categorical item takes the round's fitted posterior when there is one, majority vote
    otherwise. A gold item's result is its known answer (method "gold", confidence 1), with
    or without answers; its confidence and confidence_raw are 1: the answer is known, not
    estimated.
    """
    lineage = tuple({"worker_id": a["worker_id"], "assignment_id": a["assignment_id"],
                     "answer": a["answer"], "leased_at": a.get("leased_at"),
                     "submitted_at": a["submitted_at"],
                     "instruction_version": a.get("instruction_version", 1),
                     **({"flags": a["flags"]} if a.get("flags") else {})} for a in answers)
    values = [a["answer"] for a in answers]
    if gold is not None:
        probabilities = None
        if answer_kind(task_type) == "categorical":
            classes = [NA_KEY if c == NA_CLASS else c for c in posterior.classes] \
                if posterior is not None else list(schema.get("labels", []))
            probabilities = {c: 1.0 if c == gold.get("label") else 0.0 for c in classes}
        return ItemResult(item_id, dict(gold), 1.0, len(values), external_id=external_id,
                          lineage=lineage, probabilities=probabilities, method="gold",
                          confidence_raw=1.0)
    if not values:
        return ItemResult(item_id, None, 0.0, 0, external_id=external_id, method=None,
                          confidence_raw=0.0)
    reasons = tuple(v[NA_KEY] for v in values if is_not_applicable(v))
    kind = answer_kind(task_type)
    probabilities = None
    if kind == "categorical":
        winner, confidence, raw, probabilities, method = _categorical(
            values, schema.get("labels", []), posterior)
        answer = None if winner is _NA else {"label": winner}
    else:
        given = [v for v in values if not is_not_applicable(v)]
        if len(reasons) > len(given):
            answer, confidence, method = None, len(reasons) / len(values), "not_applicable_vote"
        else:
            if kind == "numeric":
                numbers = [v["value"] for v in given]
                value, agreement = median_with_confidence(numbers, scale=schema["max"] - schema["min"])
                if schema.get("integer"):
                    # An even count's median may fall between two whole numbers: the lower one.
                    value = int(value) if value == int(value) else int(sorted(numbers)[(len(numbers) - 1) // 2])
                answer, method = {"value": value}, "median"
            elif task_type == "transcription":
                text, agreement = rover([v["text"] for v in given])
                answer, method = {"text": text}, "rover"
            else:
                texts = [v["text"] for v in given]
                index, agreement = text_medoid(texts)
                answer, method = {"text": texts[index]}, "medoid"
            confidence = agreement * (len(given) / len(values))
        raw = confidence
    return ItemResult(
        item_id=item_id, answer=answer, confidence=round(confidence, 4), n_answers=len(values),
        not_applicable=answer is None, external_id=external_id, na_reasons=reasons,
        lineage=lineage, probabilities=probabilities, method=method,
        confidence_raw=round(raw, 4),
    )
