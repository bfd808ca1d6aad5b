"""Ledger entries and balances: a bonus moves the entry, the worker's balance and the job's
pool together."""
from __future__ import annotations

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.paging import newest_first
from chalicelib.adapters.dynamo.writes import cancellation_reasons, cancelled_by_condition
from chalicelib.adapters.models import AccountModel, JobModel, LedgerModel
from chalicelib.domain.model import LedgerEntry
from chalicelib.errors import Conflict, NotFound


def ledger_record(entry: LedgerEntry) -> LedgerModel:
    """The record of a ledger entry (a review writes one in the item's transaction)."""
    return LedgerModel(entry.account_id, entry.entry_id, kind=entry.kind,
                       amount_cents=entry.amount_cents, created_at=entry.created_at,
                       job_id=entry.job_id, assignment_id=entry.assignment_id,
                       reason=entry.reason, by=entry.by)


def _entry_from(r: LedgerModel) -> LedgerEntry:
    return LedgerEntry(r.account_id, r.entry_id, r.kind, int(r.amount_cents), r.created_at,
                       r.job_id, r.assignment_id, r.reason, r.by)


class DynamoLedger:
    """Ledger entries and balances."""

    def bonus(self, entry: LedgerEntry, job_id: str) -> bool:
        """The entry, the worker's balance and the job's pool and bonus total, together."""
        try:
            with TransactWrite(connection=LedgerModel._get_connection().connection) as tx:
                tx.save(ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
                tx.update(AccountModel(entry.account_id),
                          actions=[AccountModel.balance_cents.add(entry.amount_cents)],
                          condition=AccountModel.account_id.exists())
                tx.update(JobModel(job_id),
                          actions=[JobModel.pool_cents.add(-entry.amount_cents),
                                   JobModel.bonus_cents.add(entry.amount_cents)],
                          condition=JobModel.pool_cents >= entry.amount_cents)
        except TransactWriteError as error:
            if not cancelled_by_condition(error):
                raise
            reasons = cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # paid before
            if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise Conflict("the job's budget has not that much left for bonuses",
                               code="insufficient_budget") from error
            raise NotFound("no such worker", code="worker_not_found") from error
        return True

    def get_entry(self, account_id: str, entry_id: str) -> LedgerEntry | None:
        """One entry."""
        try:
            return _entry_from(LedgerModel.get(account_id, entry_id, consistent_read=True))
        except LedgerModel.DoesNotExist:
            return None

    def entries(self, account_id: str, limit: int, cursor: str | None
                ) -> tuple[list[LedgerEntry], str | None]:
        """An account's entries, newest first."""
        return newest_first(LedgerModel.by_time, account_id, "account_id",
                            {"account_id": "S", "entry_id": "S", "created_at": "N"}, limit, cursor,
                            _entry_from)

    def balance(self, account_id: str) -> int:
        """An account's balance."""
        try:
            return int(AccountModel.get(account_id, consistent_read=True).balance_cents or 0)
        except AccountModel.DoesNotExist:
            return 0
