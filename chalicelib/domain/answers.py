"""Answer validation per task type, and the not-applicable policy."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.model import NA_ALLOWED, Job
from chalicelib.errors import InvalidRequest

NA_KEY = "not_applicable"
MAX_REASON = 500


def validate_answer(job: Job, body: Any) -> dict[str, Any]:
    """The answer in its stored form, or InvalidRequest naming the field at fault."""
    body = v.require_object(body)
    if NA_KEY in body:
        v.reject_unknown(body, (NA_KEY,))
        if job.not_applicable != NA_ALLOWED:
            raise InvalidRequest("this job does not accept 'not_applicable' answers",
                                 field=NA_KEY, code="not_applicable_not_allowed")
        reason = v.text(body, NA_KEY, max_length=MAX_REASON)
        return {NA_KEY: reason.strip()}
    if job.kind == "categorical":
        v.reject_unknown(body, ("label",))
        return {"label": v.choice(body, "label", job.answer_schema["labels"])}
    if job.kind == "numeric":
        v.reject_unknown(body, ("value",))
        schema = job.answer_schema
        value = v.number(body, "value", low=schema["min"], high=schema["max"])
        if schema["integer"]:
            if value != int(value):
                raise InvalidRequest("'value' must be a whole number", field="value")
            value = int(value)
        return {"value": value}
    v.reject_unknown(body, ("text",))
    schema = job.answer_schema
    text = v.text(body, "text", min_length=schema["min_length"], max_length=schema["max_length"])
    return {"text": text}


def is_not_applicable(answer: Mapping[str, Any]) -> bool:
    """True for an answer that marks the item not applicable."""
    return NA_KEY in answer


GOLD_TEXT_SIMILARITY = 0.9


def matches_gold(job: Job, answer: Mapping[str, Any], gold: Mapping[str, Any]) -> bool:
    """Whether an answer counts as right on a gold item.

    Labels must be equal; numbers within 1% of the job's range; text at least 90% similar
    (normalised Levenshtein, ignoring case and runs of white space). N/A is never right:
    gold items are items that apply.
    """
    if is_not_applicable(answer):
        return False
    if job.kind == "categorical":
        return answer.get("label") == gold.get("label")
    if job.kind == "numeric":
        schema = job.answer_schema
        return abs(answer["value"] - gold["value"]) <= 0.01 * (schema["max"] - schema["min"])
    # rapidfuzz (a compiled library): loaded at the first text gold judged, not by every route.
    from rapidfuzz.distance import Levenshtein

    def norm(text: str) -> str:
        return " ".join(text.casefold().split())

    return Levenshtein.normalized_similarity(norm(answer["text"]), norm(gold["text"])) \
        >= GOLD_TEXT_SIMILARITY


def smoothed_accuracy(correct: int, answers: int) -> float:
    """Gold accuracy under a Beta(1, 1) prior: (correct + 1) / (answers + 2)."""
    return (correct + 1) / (answers + 2)
