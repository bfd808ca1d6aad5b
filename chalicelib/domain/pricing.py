"""Quotes: price a job spec from items, redundancy, reward and the platform fee."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.redundancy import AdaptiveRedundancy, parse_redundancy
from chalicelib.domain.ids import new_id
from chalicelib.domain.model import TASK_TYPES, Job, LineItem, Quote
from chalicelib.errors import InvalidRequest

# Items a job may post inline (in the POST /jobs body); a quote may cover up to
# MAX_UPLOAD_ITEMS, posted from an uploaded file (POST /uploads, then items_from).
MAX_ITEMS = 2000
MAX_UPLOAD_ITEMS = 1_000_000
MAX_REDUNDANCY = 10
MAX_REWARD_CENTS = 10_000
QUOTE_TTL_SECONDS = 72 * 3600
PLATFORM_FEE_PERCENT = 20
DEFAULT_GOLD_RATE = 0.10
MAX_GOLD_RATE = 0.5
# A gold rate is kept to a millionth of tasks: about what the largest job can serve (at most
# 10,000,000 answers), and within what DynamoDB can store (1e-200 would underflow its numbers).
GOLD_RATE_DIGITS = 6
# What the platform's own AWS use costs per judgment (an accepted answer, gold included), in
# dollars: at us-east-1 on-demand prices of 2026-12-06, measured on 2026-12-06 by
# `.venv/bin/python -m bench.cost` (its single-task job, the dearer of its mix; the bench
# prints this line). A quote shows it beside the fee; it changes nothing the client pays.
INFRASTRUCTURE_DOLLARS_PER_JUDGMENT = Decimal("0.00001603")
# Default and minimum reward per answer by task type, in US cents.
DEFAULT_REWARD_CENTS = {"categorical": 5, "numeric": 5, "transcription": 25, "translation": 40, "collection": 20}
MIN_REWARD_CENTS = {"categorical": 1, "numeric": 1, "transcription": 5, "translation": 10, "collection": 5}


def platform_fee(worker_rewards_cents: int) -> int:
    """The platform fee on a job's worker rewards, rounded up to a whole cent."""
    return -(-worker_rewards_cents * PLATFORM_FEE_PERCENT // 100)


def infrastructure_cents(judgments: int) -> int:
    """The platform's estimate of its own AWS cost for judgments, in cents, rounded up."""
    cents = judgments * INFRASTRUCTURE_DOLLARS_PER_JUDGMENT * 100
    return int(cents.to_integral_value(rounding=ROUND_CEILING))


def platform_margin(quote: Quote) -> dict[str, int]:
    """The platform's side of a quote, in cents: its fee, its estimated AWS cost for every
    answer it pays for (regular and gold), and what the fee leaves over that estimate."""
    fee = line_amount(quote, "platform_fee")
    infrastructure = infrastructure_cents(line_quantity(quote, "worker_rewards")
                                          + line_quantity(quote, "gold_answers"))
    return {"fee_cents": fee, "infrastructure_cents": infrastructure,
            "margin_cents": fee - infrastructure}


def worker_budget(total_cents: int) -> int:
    """The part of a quote's total that pays workers (the total less the platform fee)."""
    rewards = total_cents * 100 // (100 + PLATFORM_FEE_PERCENT)
    while rewards + 1 + platform_fee(rewards + 1) <= total_cents:
        rewards += 1
    while rewards > 0 and rewards + platform_fee(rewards) > total_cents:
        rewards -= 1
    return rewards


def job_money(job: Job) -> dict[str, int]:
    """Where a job's budget stands, in cents. The workers' part (the budget less the fee) is
    always spent + bonus + reserved + pool: spent is the rewards of counted answers not
    rejected (paid: the approved part of it), reserved what open slots, leased tasks, gold
    slots and rejected answers' replacements hold, pool what nothing holds yet. After a job
    ends, reserved + pool is what it did not spend."""
    for_workers = worker_budget(job.budget_cents)
    spent, bonus = job.spent_cents, job.bonus_cents
    return {"budget_cents": job.budget_cents, "fee_cents": job.budget_cents - for_workers,
            "for_workers_cents": for_workers, "spent_cents": spent, "paid_cents": job.paid_cents,
            "bonus_cents": bonus, "reserved_cents": for_workers - spent - bonus - job.pool_cents,
            "pool_cents": job.pool_cents}


def gold_rate_of(body: Mapping[str, Any], default: float, prefix: str = "") -> float:
    """The `gold_rate` field: a share of tasks from 0 to MAX_GOLD_RATE, rounded to
    GOLD_RATE_DIGITS decimals (a smaller positive rate is 0: no gold is served or priced)."""
    rate = v.number(body, "gold_rate", low=0, high=MAX_GOLD_RATE, default=default, prefix=prefix)
    return round(rate, GOLD_RATE_DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0


def gold_answers_for(answers: int, gold_rate: float) -> int:
    """Gold answers that come with `answers` regular ones when gold is served at gold_rate."""
    return math.ceil(round(answers * gold_rate / (1 - gold_rate), 9))


def line_amount(quote: Quote, name: str) -> int:
    """The amount of one line of a quote (0 if it has none)."""
    return sum(line.amount_cents for line in quote.line_items if line.name == name)


def line_quantity(quote: Quote, name: str) -> int:
    """The quantity of one line of a quote (0 if it has none)."""
    return sum(line.quantity for line in quote.line_items if line.name == name)


def price_quote(client_id: str, spec: Mapping[str, Any], now: float,
                cohort_of: Callable[[str], Any] = lambda name: None) -> Quote:
    """Validate a quote request and price it; raises InvalidRequest naming the field.

    cohort_of looks a cohort up by name: its unit price for the task type is the default
    reward and the lowest allowed, and its skills become the job's required skills.
    """
    spec = v.require_object(spec)
    v.reject_unknown(spec, ("task_type", "items", "redundancy", "reward_cents", "cohort",
                            "gold_rate"))
    task_type = v.choice(spec, "task_type", TASK_TYPES)
    items = v.integer(spec, "items", low=1, high=MAX_UPLOAD_ITEMS)
    policy = parse_redundancy(spec.get("redundancy", 3))
    adaptive: dict[str, Any] = {}
    if isinstance(policy, AdaptiveRedundancy):
        if task_type != "categorical":
            raise InvalidRequest("adaptive redundancy is for categorical jobs",
                                 field="redundancy")
        adaptive = {"min": policy.min, "max": policy.max,
                    "target_confidence": policy.target_confidence}
        # An adaptive job is priced for its most answers: what it does not need is not spent.
        redundancy = policy.max
    else:
        redundancy = policy
    cohort = v.text(spec, "cohort", max_length=32, required=False)
    floor, default, skills = MIN_REWARD_CENTS[task_type], DEFAULT_REWARD_CENTS[task_type], ()
    if cohort:
        found = cohort_of(cohort.strip())
        if found is None:
            raise InvalidRequest(f"no cohort named {cohort.strip()!r}; GET /cohorts lists them",
                                 field="cohort", code="unknown_cohort")
        skills = tuple(found.skills)
        if task_type in found.unit_cents:
            floor = default = found.unit_cents[task_type]
    reward = v.integer(spec, "reward_cents", low=floor, high=MAX_REWARD_CENTS, default=default)
    gold_rate = gold_rate_of(spec, DEFAULT_GOLD_RATE)
    answers = items * redundancy
    rewards = answers * reward
    # Gold is served as gold_rate of all tasks, so it adds gold_rate / (1 - gold_rate)
    # answers per regular answer; they are paid like any other.
    gold_answers = gold_answers_for(answers, gold_rate)
    gold = gold_answers * reward
    fee = platform_fee(rewards + gold)
    lines = (
        LineItem("worker_rewards", answers, reward, rewards),
        LineItem("gold_answers", gold_answers, reward, gold),
        LineItem("platform_fee", 1, fee, fee),
    )
    return Quote(
        quote_id=new_id("q"), client_id=client_id, task_type=task_type, items=items,
        redundancy=redundancy, reward_cents=reward, cohort=cohort.strip() if cohort else None,
        line_items=lines, total_cents=rewards + gold + fee, created_at=now,
        expires_at=now + QUOTE_TTL_SECONDS, gold_rate=gold_rate, skills=skills, adaptive=adaptive,
    )
