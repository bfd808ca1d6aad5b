"""Quotes: price a job spec from items, redundancy, reward and the platform fee."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.domain import validation as v
from chalicelib.domain.ids import new_id
from chalicelib.domain.model import TASK_TYPES, LineItem, Quote

MAX_ITEMS = 2000
MAX_REDUNDANCY = 10
MAX_REWARD_CENTS = 10_000
QUOTE_TTL_SECONDS = 72 * 3600
PLATFORM_FEE_PERCENT = 20
# Default and minimum reward per answer by task type, in US cents.
DEFAULT_REWARD_CENTS = {"categorical": 5, "numeric": 5, "transcription": 25, "translation": 40, "collection": 20}
MIN_REWARD_CENTS = {"categorical": 1, "numeric": 1, "transcription": 5, "translation": 10, "collection": 5}


def platform_fee(worker_rewards_cents: int) -> int:
    """The platform fee on a job's worker rewards, rounded up to a whole cent."""
    return -(-worker_rewards_cents * PLATFORM_FEE_PERCENT // 100)


def price_quote(client_id: str, spec: Mapping[str, Any], now: float) -> Quote:
    """Validate a quote request and price it; raises InvalidRequest naming the field."""
    spec = v.require_object(spec)
    v.reject_unknown(spec, ("task_type", "items", "redundancy", "reward_cents", "cohort"))
    task_type = v.choice(spec, "task_type", TASK_TYPES)
    items = v.integer(spec, "items", low=1, high=MAX_ITEMS)
    redundancy = v.integer(spec, "redundancy", low=1, high=MAX_REDUNDANCY, default=3)
    reward = v.integer(spec, "reward_cents", low=MIN_REWARD_CENTS[task_type],
                       high=MAX_REWARD_CENTS, default=DEFAULT_REWARD_CENTS[task_type])
    cohort = v.text(spec, "cohort", max_length=32, required=False)
    answers = items * redundancy
    rewards = answers * reward
    fee = platform_fee(rewards)
    lines = (
        LineItem("worker_rewards", answers, reward, rewards),
        LineItem("platform_fee", 1, fee, fee),
    )
    return Quote(
        quote_id=new_id("q"), client_id=client_id, task_type=task_type, items=items,
        redundancy=redundancy, reward_cents=reward, cohort=cohort.strip() if cohort else None,
        line_items=lines, total_cents=rewards + fee, created_at=now,
        expires_at=now + QUOTE_TTL_SECONDS,
    )
