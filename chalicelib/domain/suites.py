"""Task suites: how many tasks a lease asks for, and the body of a suite submit, checked whole
before anything is written (each answer's content is judged later, on its own)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.answers import NA_KEY, MAX_REASON
from chalicelib.domain.leasing import MAX_SUITE_SIZE
from chalicelib.errors import InvalidRequest

# Longer than any assignment id; a longer one is refused as the body's fault.
MAX_ASSIGNMENT_ID = 200


@dataclass(frozen=True)
class SuiteAnswer:
    """One answer of a suite submit: its assignment and the body the single submit takes."""

    assignment_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class NextSuite:
    """The suite to lease after a submit, in the same request."""

    count: int
    job_id: str | None = None


def parse_count(raw: str | None) -> int | None:
    """The `count` of a lease query: None when absent (a single task), else 1..MAX_SUITE_SIZE."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 2) \
            or not 1 <= int(raw) <= MAX_SUITE_SIZE:
        raise InvalidRequest(f"'count' must be an integer between 1 and {MAX_SUITE_SIZE}",
                             field="count")
    return int(raw)


def suite_length(count: int, suite_size: int) -> int:
    """How many tasks a lease asking for count takes from a job: never more than its suite."""
    return max(1, min(count, suite_size))


def parse_suite_submit(raw: Any) -> tuple[list[SuiteAnswer], NextSuite | None]:
    """The answers of a suite submit and the suite to lease next, if asked for.

    The shape is checked whole (1..MAX_SUITE_SIZE answers, each an object naming its
    assignment once, with either `answer`, the single submit's body, or `not_applicable`,
    the reason as a string or {"reason": ...}), so a malformed body writes nothing.
    """
    body = v.require_object(raw)
    v.reject_unknown(body, ("answers", "next"))
    entries = body.get("answers")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_SUITE_SIZE:
        raise InvalidRequest(f"'answers' must be a list of 1 to {MAX_SUITE_SIZE} answers",
                             field="answers")
    answers: list[SuiteAnswer] = []
    seen: set[str] = set()
    for index, raw_entry in enumerate(entries):
        answer = _entry(raw_entry, f"answers[{index}]")
        if answer.assignment_id in seen:
            raise InvalidRequest("an assignment may be answered once per request",
                                 field=f"answers[{index}].assignment_id")
        seen.add(answer.assignment_id)
        answers.append(answer)
    return answers, _next(body.get("next"))


def _entry(raw: Any, name: str) -> SuiteAnswer:
    entry = v.require_object(raw, name)
    prefix = f"{name}."
    v.reject_unknown(entry, ("assignment_id", "answer", NA_KEY), prefix)
    assignment_id = v.text(entry, "assignment_id", max_length=MAX_ASSIGNMENT_ID, prefix=prefix)
    if ("answer" in entry) == (NA_KEY in entry):
        raise InvalidRequest(f"'{name}' needs either 'answer' or 'not_applicable'",
                             field=name)
    if "answer" in entry:
        return SuiteAnswer(assignment_id, dict(v.require_object(entry["answer"],
                                                                f"{prefix}answer")))
    reason = entry[NA_KEY]
    if isinstance(reason, Mapping):
        v.reject_unknown(reason, ("reason",), f"{prefix}{NA_KEY}.")
        reason = v.text(reason, "reason", max_length=MAX_REASON, prefix=f"{prefix}{NA_KEY}.")
    return SuiteAnswer(assignment_id, {NA_KEY: reason})


def _next(raw: Any) -> NextSuite | None:
    if raw is None:
        return None
    body = v.require_object(raw, "next")
    v.reject_unknown(body, ("count", "job_id"), "next.")
    count = v.integer(body, "count", low=1, high=MAX_SUITE_SIZE, default=MAX_SUITE_SIZE,
                      prefix="next.")
    return NextSuite(count, v.text(body, "job_id", max_length=64, prefix="next.",
                                   required=False))
