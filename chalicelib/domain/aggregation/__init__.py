"""Aggregation of answers into one result per item (pure, no I/O).

Categorical answers: majority vote; ties go to the label listed first in the job's
answer schema; confidence is the share of answers that chose the winner.
Text answers: the medoid under normalised edit distance (the answer closest to the
others); confidence is one minus its mean distance to the others.
Not-applicable answers vote as one more option; if they win, the result is N/A.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from chalicelib.domain.answers import NA_KEY, is_not_applicable
from chalicelib.domain.model import ItemResult

_NA = object()


def normalised_edit_distance(left: str, right: str) -> float:
    """Levenshtein distance divided by the longer length (0 = same, 1 = nothing shared)."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.normalized_distance(left, right)


def _vote_key(answer: dict[str, Any]) -> Any:
    return _NA if is_not_applicable(answer) else answer.get("label")


def majority_vote(answers: Sequence[dict[str, Any]], labels: Sequence[str]) -> tuple[Any, float]:
    """(winning label or the N/A marker, share of votes) with ties broken by label order."""
    counts = Counter(_vote_key(answer) for answer in answers)
    order = {label: rank for rank, label in enumerate(labels)}
    order[_NA] = len(labels)
    winner = min(counts, key=lambda key: (-counts[key], order.get(key, len(labels) + 1)))
    return winner, counts[winner] / len(answers)


def text_medoid(texts: Sequence[str]) -> tuple[int, float]:
    """(index of the medoid, confidence) of texts; the earliest wins a tie."""
    if len(texts) == 1:
        return 0, 1.0
    totals = []
    for i, left in enumerate(texts):
        totals.append(sum(normalised_edit_distance(left, right)
                          for j, right in enumerate(texts) if j != i))
    best = min(range(len(texts)), key=lambda index: (totals[index], index))
    return best, 1.0 - totals[best] / (len(texts) - 1)


def aggregate_item(item_id: str, kind: str, labels: Sequence[str],
                   answers: Sequence[dict[str, Any]], external_id: str | None = None
                   ) -> ItemResult:
    """One item's result from its answers, given in submission order with their lineage.

    Each entry of answers holds 'answer', 'worker_id', 'assignment_id' and 'submitted_at'.
    """
    lineage = tuple({"worker_id": a["worker_id"], "assignment_id": a["assignment_id"],
                     "answer": a["answer"], "submitted_at": a["submitted_at"]} for a in answers)
    values = [a["answer"] for a in answers]
    if not values:
        return ItemResult(item_id, None, 0.0, 0, external_id=external_id)
    reasons = tuple(v[NA_KEY] for v in values if is_not_applicable(v))
    if kind == "categorical":
        winner, confidence = majority_vote(values, labels)
        answer = None if winner is _NA else {"label": winner}
    else:
        na_share = len(reasons) / len(values)
        texts = [v["text"] for v in values if not is_not_applicable(v)]
        if len(reasons) > len(texts):
            answer, confidence = None, na_share
        else:
            index, agreement = text_medoid(texts)
            answer = {"text": texts[index]}
            confidence = agreement * (len(texts) / len(values))
    return ItemResult(
        item_id=item_id, answer=answer, confidence=round(confidence, 4), n_answers=len(values),
        not_applicable=answer is None, external_id=external_id, na_reasons=reasons,
        lineage=lineage,
    )
