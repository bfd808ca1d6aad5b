"""Quotes, and their conversion between record and domain."""
from __future__ import annotations

from chalicelib.adapters.models import QuoteModel
from chalicelib.domain.model import LineItem, Quote


class DynamoQuotes:
    """Quotes."""

    def put_quote(self, quote: Quote) -> None:
        """Store a quote; it is deleted by TTL a week after it expires."""
        QuoteModel(
            quote.quote_id, client_id=quote.client_id, task_type=quote.task_type,
            items=quote.items, redundancy=quote.redundancy, reward_cents=quote.reward_cents,
            cohort=quote.cohort, line_items=[vars(line) for line in quote.line_items],
            total_cents=quote.total_cents, created_at=quote.created_at,
            expires_at=quote.expires_at, expires_ttl=int(quote.expires_at) + 7 * 86400,
            gold_rate=quote.gold_rate, skills=set(quote.skills) or None,
            adaptive=quote.adaptive or None,
        ).save(condition=QuoteModel.quote_id.does_not_exist())

    def get_quote(self, quote_id: str) -> Quote | None:
        """A quote by id."""
        try:
            r = QuoteModel.get(quote_id)
        except QuoteModel.DoesNotExist:
            return None
        return Quote(
            quote_id=r.quote_id, client_id=r.client_id, task_type=r.task_type,
            items=int(r.items), redundancy=int(r.redundancy), reward_cents=int(r.reward_cents),
            cohort=r.cohort, line_items=tuple(LineItem(**line) for line in r.line_items),
            total_cents=int(r.total_cents), created_at=r.created_at, expires_at=r.expires_at,
            job_id=r.job_id, gold_rate=float(r.gold_rate), skills=tuple(sorted(r.skills or ())),
            adaptive=r.adaptive or {},
        )
