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
    value = v.text(body, "text", min_length=schema["min_length"], max_length=schema["max_length"])
    return {"text": value}


def is_not_applicable(answer: Mapping[str, Any]) -> bool:
    """True for an answer that marks the item not applicable."""
    return NA_KEY in answer
