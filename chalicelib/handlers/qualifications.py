"""Cohorts and qualification tests: operators publish them, clients price with cohorts,
workers take tests to earn skills. How they look on the wire is chalicelib.api.views'."""
from __future__ import annotations

from typing import Any

from chalicelib.domain import qualifications as q
from chalicelib.domain import validation as v
from chalicelib.domain.ids import new_id
from chalicelib.domain.model import Principal
from chalicelib.errors import Conflict, NotFound
from chalicelib.handlers.platform import Platform


class RetakeTooSoon(Conflict):
    """The worker's last attempt at the test is too recent to start another; `attempt` is it."""

    code = "retake_too_soon"

    def __init__(self, retake_seconds: int, attempt: dict[str, Any]) -> None:
        super().__init__(f"you may take this test again {retake_seconds} s after your last "
                         "attempt")
        self.attempt = attempt


def put_cohort(p: Platform, operator: Principal, body: Any) -> q.Cohort:
    """Create or replace a cohort (quotes made before keep their price)."""
    cohort = q.parse_cohort(body)
    p.catalog.put_cohort(cohort)
    return cohort


def list_cohorts(p: Platform) -> list[q.Cohort]:
    """Every cohort with its skills and unit prices."""
    return list(p.catalog.cohorts())


def create_qualification(p: Platform, operator: Principal, body: Any) -> q.Qualification:
    """Publish a qualification test."""
    qual = q.parse_qualification(new_id("qual"), body)
    p.catalog.put_qualification(qual)
    return qual


def _qualification(p: Platform, qual_id: str) -> q.Qualification:
    qual = p.catalog.get_qualification(qual_id) if qual_id.startswith("qual_") else None
    if qual is None:
        raise NotFound("no such qualification", code="qualification_not_found")
    return qual


def list_qualifications(p: Platform, worker: Principal
                        ) -> list[tuple[q.Qualification, dict[str, Any] | None]]:
    """Every test, with the worker's last attempt at it (None if they never took it)."""
    return [(qual, p.stats.attempt(worker.account_id, qual.qual_id))
            for qual in p.catalog.qualifications()]


def start_qualification(p: Platform, worker: Principal, qual_id: str
                        ) -> tuple[q.Qualification, str]:
    """Open an attempt at a test; returns the test and the attempt's id."""
    qual = _qualification(p, qual_id)
    attempt_id = new_id("att")
    if not p.stats.start_attempt(worker.account_id, qual.qual_id, attempt_id, p.now(),
                                 qual.retake_seconds):
        last = p.stats.attempt(worker.account_id, qual.qual_id) or {}
        if last.get("passed"):
            raise Conflict("you passed this test already", code="qualification_passed")
        raise RetakeTooSoon(qual.retake_seconds, last)
    return qual, attempt_id


def submit_qualification(p: Platform, worker: Principal, qual_id: str, body: Any
                         ) -> dict[str, Any]:
    """Score the open attempt once; a pass grants the skill with its score."""
    qual = _qualification(p, qual_id)
    body = v.require_object(body)
    v.reject_unknown(body, ("attempt_id", "answers"))
    attempt_id = v.text(body, "attempt_id", max_length=64)
    last = p.stats.attempt(worker.account_id, qual.qual_id)
    if last is None or last["attempt_id"] != attempt_id:
        raise NotFound("no such attempt", field="attempt_id", code="attempt_not_found")
    if last["score"] is not None:
        if last["passed"] and qual.skill not in worker.skills:
            # Scored, but the grant did not happen (or has not reached this container):
            # granting again is harmless.
            p.accounts.grant_skill(worker.account_id, qual.skill, last["score"])
            p.cache.principals.clear()
        return _outcome(qual, last["score"], last["passed"])
    score = q.score(qual, body.get("answers"))
    passed = score >= qual.pass_score
    if p.stats.finish_attempt(worker.account_id, qual.qual_id, attempt_id, score, passed):
        if passed:
            p.accounts.grant_skill(worker.account_id, qual.skill, score)
            p.cache.principals.clear()  # this container sees the new skill at once
    else:
        last = p.stats.attempt(worker.account_id, qual.qual_id) or last
        score, passed = last["score"], last["passed"]
    return _outcome(qual, score, passed)


def _outcome(qual: q.Qualification, score: float, passed: bool) -> dict[str, Any]:
    return {"qualification_id": qual.qual_id, "skill": qual.skill, "score": score,
            "pass_score": qual.pass_score, "passed": passed}
