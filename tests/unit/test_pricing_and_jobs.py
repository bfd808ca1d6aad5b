"""Quotes and job posting rules (pure domain)."""
import math
from decimal import Decimal
from fractions import Fraction

import pytest

from chalicelib.domain.jobs import CHUNK_ITEMS, build_job, chunk_items, parse_items
from chalicelib.domain.model import NA_NOT_ALLOWED
from chalicelib.domain import pricing
from chalicelib.domain.pricing import (
    INFRASTRUCTURE_DOLLARS_PER_JUDGMENT, infrastructure_cents, platform_margin, price_quote,
)
from chalicelib.errors import Conflict, InvalidRequest, PayloadTooLarge

NOW = 1_800_000_000.0


def _quote(**spec):
    body = {"task_type": "categorical", "items": 4, "redundancy": 3, "reward_cents": 5}
    body.update(spec)
    return price_quote("cli_a", body, NOW)


def _job_body(quote, **extra):
    body = {"quote_id": quote.quote_id, "instructions": "Pick the sentiment.",
            "answer_schema": {"labels": ["pos", "neg"]},
            "items": [{"data": {"text": f"t{i}"}} for i in range(quote.items)]}
    body.update(extra)
    return body


def test_quote_prices_rewards_plus_a_fee_rounded_up():
    # GIVEN 7 items x 3 answers at 5 cents, without gold, WHEN quoted
    quote = _quote(items=7, gold_rate=0)
    # THEN rewards are 105 cents, the 20% fee 21 cents, and the total their sum
    lines = {line.name: line.amount_cents for line in quote.line_items}
    assert lines == {"worker_rewards": 105, "gold_answers": 0, "platform_fee": 21}
    assert quote.total_cents == 126
    assert quote.expires_at > NOW


def test_the_default_quote_pays_for_gold_served_as_a_tenth_of_tasks():
    # GIVEN 7 items x 3 answers: 21 regular answers; gold as 10% of all tasks adds 21/9 -> 3
    quote = _quote(items=7)
    lines = {line.name: (line.quantity, line.amount_cents) for line in quote.line_items}
    assert lines["gold_answers"] == (3, 15)
    assert lines["platform_fee"] == (1, 24)  # 20% of 120, rounded up
    assert quote.total_cents == 144 and quote.gold_rate == 0.1
    assert {line.name: line.quantity for line in _quote(items=9, gold_rate=0.25).line_items
            }["gold_answers"] == 9  # 27 x 0.25 / 0.75


def test_infrastructure_estimate_is_judgments_times_the_figure_rounded_up():
    # GIVEN the measured dollars per judgment, as an exact fraction
    figure = Fraction(str(INFRASTRUCTURE_DOLLARS_PER_JUDGMENT))
    assert figure > 0
    for judgments in (1, 24, 999, 1_000_000, 10_000_000):
        # THEN the estimate is judgments x figure in cents, rounded up to a whole cent
        assert infrastructure_cents(judgments) == math.ceil(judgments * figure * 100)
    assert infrastructure_cents(0) == 0


def test_infrastructure_estimate_rounds_an_exact_cent_to_itself(monkeypatch):
    # GIVEN a figure whose products land on whole cents (where binary floats would not)
    monkeypatch.setattr(pricing, "INFRASTRUCTURE_DOLLARS_PER_JUDGMENT", Decimal("0.00001"))
    # THEN 100,000 judgments are exactly 100 cents, one more judgment 101
    assert infrastructure_cents(100_000) == 100
    assert infrastructure_cents(100_001) == 101
    assert infrastructure_cents(3) == 1


def test_quote_shows_fee_infrastructure_and_margin_without_changing_the_total():
    # GIVEN 7 items x 3 answers and gold at a tenth of tasks (21 + 3 judgments)
    quote = _quote(items=7)
    lines = {line.name: line.amount_cents for line in quote.line_items}
    margin = platform_margin(quote)
    # THEN the platform's side is its fee, the estimate for all 24 answers, and the difference
    assert margin == {"fee_cents": lines["platform_fee"],
                      "infrastructure_cents": infrastructure_cents(24),
                      "margin_cents": lines["platform_fee"] - infrastructure_cents(24)}
    # AND the client pays the lines alone, as before
    assert quote.total_cents == sum(lines.values()) == 144


def test_a_large_quote_estimates_whole_dollars_of_infrastructure():
    quote = _quote(items=1_000_000, redundancy=3, gold_rate=0)
    expected = math.ceil(3_000_000 * Fraction(str(INFRASTRUCTURE_DOLLARS_PER_JUDGMENT)) * 100)
    assert platform_margin(quote)["infrastructure_cents"] == expected > 100
    assert platform_margin(quote)["margin_cents"] == platform_margin(quote)["fee_cents"] - expected


def test_quote_names_the_field_at_fault():
    with pytest.raises(InvalidRequest) as caught:
        _quote(redundancy=0)
    assert caught.value.field == "redundancy"
    with pytest.raises(InvalidRequest) as caught:
        _quote(task_type="painting")
    assert caught.value.field == "task_type"
    with pytest.raises(InvalidRequest) as caught:
        _quote(colour="blue")
    assert caught.value.field == "colour"
    with pytest.raises(InvalidRequest) as caught:
        _quote(items="12")
    assert caught.value.field == "items"


def test_job_budget_is_the_quoted_total_and_defaults_hold():
    quote = _quote()
    job, chunks = build_job(quote, "cli_a", _job_body(quote), NOW)
    assert job.budget_cents == quote.total_cents
    assert job.not_applicable == NA_NOT_ALLOWED
    assert job.item_count == 4 and sum(len(c) for c in chunks) == 4
    assert job.finalize_at == job.deadline


def test_job_must_match_the_quote_and_the_quote_must_be_live():
    quote = _quote()
    with pytest.raises(InvalidRequest) as caught:
        build_job(quote, "cli_a", _job_body(quote, items=[{"data": {"t": 1}}]), NOW)
    assert caught.value.field == "items"
    with pytest.raises(Conflict) as caught:
        build_job(quote, "cli_a", _job_body(quote), quote.expires_at + 1)
    assert caught.value.code == "quote_expired"
    with pytest.raises(InvalidRequest) as caught:
        build_job(quote, "cli_a", _job_body(quote, answer_schema={"labels": ["only"]}), NOW)
    assert caught.value.field == "answer_schema.labels"


def test_oversize_items_are_refused_with_413():
    with pytest.raises(PayloadTooLarge):
        parse_items([{"data": {"text": "x" * 9000}}], 1)
    with pytest.raises(PayloadTooLarge):
        parse_items([{"data": {"t": 1}}] * 3, 2)


def test_an_items_size_is_its_utf8_bytes_not_its_escaped_json():
    # 1,500 Hebrew letters are 3,000 bytes of UTF-8 (9,000 as ASCII-escaped JSON): accepted
    hebrew = "ש" * 1500
    (item,) = parse_items([{"data": {"text": hebrew}}], 1)
    assert item.data == {"text": hebrew}
    # 9,000 bytes of UTF-8 are over the 8 KiB limit, whatever the script
    with pytest.raises(PayloadTooLarge) as error:
        parse_items([{"data": {"text": "ש" * 4500}}], 1)
    assert error.value.field == "items[0].data"


def test_chunks_hold_at_most_one_batch_write():
    items = parse_items([{"data": {"n": i}} for i in range(60)], 60)
    chunks = chunk_items(items)
    assert [len(c) for c in chunks] == [CHUNK_ITEMS, CHUNK_ITEMS, 10]
    assert [i.item_id for c in chunks for i in c] == [f"{n:06d}" for n in range(60)]
