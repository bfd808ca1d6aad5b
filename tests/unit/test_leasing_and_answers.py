"""Lease policy, answer validation and identifiers (pure domain)."""
import random

import pytest

from chalicelib.domain.answers import validate_answer
from chalicelib.domain.ids import parse_assignment_id
from chalicelib.domain.jobs import build_job
from chalicelib.domain.leasing import candidate_plans, new_lease, plan_for
from chalicelib.domain.model import NA_ALLOWED, ItemState, Lease
from chalicelib.domain.pricing import price_quote
from chalicelib.errors import InvalidRequest, NotFound

NOW = 1_800_000_000.0


def _job(task_type="categorical", **extra):
    quote = price_quote("cli", {"task_type": task_type, "items": 1, "redundancy": 2}, NOW)
    body = {"quote_id": quote.quote_id, "instructions": "Do it.",
            "answer_schema": {"labels": ["a", "b"]} if task_type == "categorical"
            else {"min_length": 2, "max_length": 10},
            "items": [{"data": {"x": 1}}]}
    body.update(extra)
    return build_job(quote, "cli", body, NOW)[0]


def _item(free=1, leases=None, seen=()):
    return ItemState("job_0", "000000", {}, 2, free, leases=leases or {}, seen=frozenset(seen))


def test_a_worker_never_gets_an_item_they_have_seen():
    assert plan_for(_item(seen={"w1"}), "w1", NOW) is None
    assert plan_for(_item(seen={"w1"}), "w2", NOW) is not None


def test_an_expired_lease_frees_its_slot_and_a_live_one_does_not():
    live = {"w1": Lease("a", NOW + 5, NOW - 5)}
    expired = {"w1": Lease("a", NOW - 1, NOW - 60)}
    assert plan_for(_item(free=0, leases=live, seen={"w1"}), "w2", NOW) is None
    plan = plan_for(_item(free=0, leases=expired, seen={"w1"}), "w2", NOW)
    assert plan is not None and plan.reclaim_from == "w1"


def test_candidates_prefer_items_with_fewer_answers_and_leases():
    busy = ItemState("j", "000001", {}, 3, 1, leases={"w9": Lease("a", NOW + 9, NOW)},
                     seen=frozenset({"w9"}))
    idle = ItemState("j", "000002", {}, 3, 3)
    plans = candidate_plans([busy, idle], "w1", NOW, random.Random(1))
    assert [p.item_id for p in plans] == ["000002", "000001"]


def test_lease_ends_at_the_deadline_at_the_latest_and_its_id_names_the_slot():
    job = _job(lease_seconds=600)
    lease = new_lease(job, "000000", job.deadline - 10)
    assert lease.expires_at == job.deadline
    job_id, item_id, leased_at, version = parse_assignment_id(lease.assignment_id)
    assert (job_id, item_id, version) == (job.job_id, "000000", job.instruction_version)
    assert leased_at == pytest.approx(job.deadline - 10, abs=0.001)
    with pytest.raises(NotFound):
        parse_assignment_id("asg_nothing")


def test_answers_are_checked_against_the_schema_and_na_policy():
    job = _job()
    assert validate_answer(job, {"label": "a"}) == {"label": "a"}
    with pytest.raises(InvalidRequest) as caught:
        validate_answer(job, {"label": "z"})
    assert caught.value.field == "label"
    with pytest.raises(InvalidRequest) as caught:
        validate_answer(job, {"not_applicable": "blank image"})
    assert caught.value.code == "not_applicable_not_allowed"
    na_job = _job(not_applicable=NA_ALLOWED)
    assert validate_answer(na_job, {"not_applicable": " blank "}) == {"not_applicable": "blank"}
    with pytest.raises(InvalidRequest):
        validate_answer(na_job, {"not_applicable": "  "})
    text_job = _job("translation")
    assert validate_answer(text_job, {"text": "hola"}) == {"text": "hola"}
    with pytest.raises(InvalidRequest) as caught:
        validate_answer(text_job, {"text": "far too long here"})
    assert caught.value.field == "text"
