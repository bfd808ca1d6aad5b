"""Cohorts and qualification tests (pure): what operators publish and how a test is scored.

- A **cohort** is a pool of workers with the skills it names and its own unit price per task
  type; a quote for the cohort pays that price (at least), and the job requires its skills.
- A **qualification test** is a set of gold items for one skill (``translation:en-ja``,
  ``label:sentiment-en``). A worker takes the whole test in one attempt; a score (share right,
  judged like gold answers in jobs) at or above ``pass_score`` grants the skill with that
  score. Failed attempts may be retaken after ``retake_seconds``; a passed test is done.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.answers import NA_KEY, matches_gold, validate_answer
from chalicelib.domain.ids import item_id as numbered
from chalicelib.domain.jobs import MAX_INSTRUCTIONS, MAX_ITEM_BYTES, parse_answer_schema
from chalicelib.domain.model import NA_NOT_ALLOWED, TASK_TYPES, answer_kind
from chalicelib.domain.pricing import MAX_REWARD_CENTS, MIN_REWARD_CENTS
from chalicelib.errors import InvalidRequest, PayloadTooLarge

MAX_TEST_ITEMS = 50
# A test is stored whole in one DynamoDB item (at most 400 KB): its JSON in UTF-8 stays under.
MAX_TEST_BYTES = 256 * 1024
DEFAULT_RETAKE_SECONDS = 24 * 3600
SKILL_LENGTH = 64


@dataclass(frozen=True)
class Cohort:
    """Workers holding `skills`, paid `unit_cents[task_type]` per answer at least."""

    name: str
    skills: tuple[str, ...]
    unit_cents: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Qualification:
    """A test of gold items that grants `skill` with the score of a passing attempt."""

    qual_id: str
    skill: str
    title: str
    task_type: str
    instructions: str
    answer_schema: dict[str, Any]
    items: tuple[dict[str, Any], ...]  # {"item_id", "data", "gold"}
    pass_score: float
    retake_seconds: int = DEFAULT_RETAKE_SECONDS
    not_applicable: str = NA_NOT_ALLOWED

    @property
    def kind(self) -> str:
        """The answer kind, as for jobs (answers are validated and judged the same way)."""
        return answer_kind(self.task_type)


def parse_cohort(body: Any) -> Cohort:
    """A cohort from an operator's request."""
    body = v.require_object(body)
    v.reject_unknown(body, ("name", "skills", "unit_cents"))
    name = v.text(body, "name", max_length=32).strip()
    skills = v.string_list(body, "skills", min_items=1, max_items=10, max_length=SKILL_LENGTH)
    prices = v.require_object(body.get("unit_cents", {}), "unit_cents")
    v.reject_unknown(prices, TASK_TYPES, "unit_cents.")
    unit_cents = {task_type: v.integer(prices, task_type, low=MIN_REWARD_CENTS[task_type],
                                       high=MAX_REWARD_CENTS, prefix="unit_cents.")
                  for task_type in prices}
    return Cohort(name, tuple(skills), unit_cents)


def parse_qualification(qual_id: str, body: Any) -> Qualification:
    """A qualification test from an operator's request; every item needs its gold answer."""
    body = v.require_object(body)
    v.reject_unknown(body, ("skill", "title", "task_type", "instructions", "answer_schema",
                            "items", "pass_score", "retake_seconds"))
    skill = v.text(body, "skill", max_length=SKILL_LENGTH).strip()
    task_type = v.choice(body, "task_type", TASK_TYPES)
    schema = parse_answer_schema(task_type, body.get("answer_schema"))
    raw = body.get("items")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TEST_ITEMS:
        raise InvalidRequest(f"'items' must be a list of 1 to {MAX_TEST_ITEMS} gold items",
                             field="items")
    draft = Qualification(qual_id, skill, v.text(body, "title", max_length=200, required=False)
                          or f"Qualification for {skill}", task_type,
                          v.text(body, "instructions", max_length=MAX_INSTRUCTIONS),
                          schema, (), v.number(body, "pass_score", low=0, high=1, default=0.8),
                          v.integer(body, "retake_seconds", low=0, high=90 * 24 * 3600,
                                    default=DEFAULT_RETAKE_SECONDS))
    items = []
    for index, entry in enumerate(raw):
        name = f"items[{index}]"
        entry = v.require_object(entry, name)
        v.reject_unknown(entry, ("data", "gold"), f"{name}.")
        data = v.require_object(entry.get("data"), f"{name}.data")
        if v.json_bytes(data) > MAX_ITEM_BYTES:
            raise PayloadTooLarge(f"'{name}.data' is over {MAX_ITEM_BYTES} bytes",
                                  field=f"{name}.data")
        gold = v.require_object(entry.get("gold"), f"{name}.gold")
        if NA_KEY in gold:
            raise InvalidRequest(f"'{name}.gold' must be an answer", field=f"{name}.gold")
        try:
            answer = validate_answer(draft, gold)  # type: ignore[arg-type]
        except InvalidRequest as error:
            raise InvalidRequest(f"'{name}.gold': {error.message}", field=f"{name}.gold") from error
        items.append({"item_id": numbered(index), "data": dict(data), "gold": answer})
    qual = Qualification(**{**vars(draft), "items": tuple(items)})
    if v.json_bytes(vars(qual)) > MAX_TEST_BYTES:
        raise PayloadTooLarge(f"the test is over {MAX_TEST_BYTES} bytes as JSON; split it or "
                              "shorten its items", field="items")
    return qual


def score(qual: Qualification, answers: Any) -> float:
    """The share of the test's items answered right; every item must be answered, validly."""
    answers = v.require_object(answers, "answers")
    ids = [item["item_id"] for item in qual.items]
    v.reject_unknown(answers, ids, "answers.")
    right = 0
    for item in qual.items:
        name = f"answers.{item['item_id']}"
        if item["item_id"] not in answers:
            raise InvalidRequest(f"'{name}' is required: answer every item", field=name)
        try:
            answer = validate_answer(qual, answers[item["item_id"]])  # type: ignore[arg-type]
        except InvalidRequest as error:
            raise InvalidRequest(f"'{name}': {error.message}", field=name) from error
        right += matches_gold(qual, answer, item["gold"])  # type: ignore[arg-type]
    return round(right / len(qual.items), 4)


def meets(scores: Mapping[str, float], required: Mapping[str, float]) -> bool:
    """Whether a worker's skill scores reach every minimum a job sets."""
    return all(scores.get(skill, -1.0) >= minimum for skill, minimum in required.items())
