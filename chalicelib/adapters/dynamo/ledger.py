"""Ledger entries, balances and accruals: a bonus moves the entry, the worker's balance and
the job's pool together; a settlement moves the entry, the balance, the accrual's paid count
and the job's paid total together. The job's money is its small money record
(JobMoneyModel), not the job record."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.paging import newest_first
from chalicelib.adapters.dynamo.writes import (
    cancellation_reasons, cancelled_by_condition, conditional_update, transact_once,
)
from chalicelib.adapters.models import (
    AccountModel, AccrualModel, JobModel, JobMoneyModel, LedgerModel, money_key,
)
from chalicelib.domain.model import LedgerEntry
from chalicelib.domain.payouts import DUE_SHARDS, Accrual
from chalicelib.errors import Conflict, NotFound


def accrual_key(job_id: str, window: int) -> str:
    """An accrual's entry_id beside its worker's entries, in window order per job."""
    return f"accrual#{job_id}#{window:010d}"


def accrual_from(r: AccrualModel) -> Accrual:
    """A domain accrual from its record."""
    job_id = r.entry_id.split("#")[1]
    return Accrual(job_id, r.account_id, int(r.entry_id.rsplit("#", 1)[1]),
                   int(r.accrued or 0), int(r.rejected or 0), int(r.paid or 0), r.due_at,
                   r.settled_at, r.settled_by)


def _counter_is(attribute: Any, value: int) -> Any:
    """A counter equals value (a counter never written counts as 0)."""
    return (attribute == value) if value else (attribute.does_not_exist() | (attribute == 0))


def ledger_record(entry: LedgerEntry) -> LedgerModel:
    """The record of a ledger entry (a review writes one in the item's transaction)."""
    return LedgerModel(entry.account_id, entry.entry_id, kind=entry.kind,
                       amount_cents=entry.amount_cents, created_at=entry.created_at,
                       job_id=entry.job_id, assignment_id=entry.assignment_id,
                       reason=entry.reason, by=entry.by, answers=entry.answers)


def _entry_from(r: LedgerModel) -> LedgerEntry:
    return LedgerEntry(r.account_id, r.entry_id, r.kind, int(r.amount_cents), r.created_at,
                       r.job_id, r.assignment_id, r.reason, r.by,
                       None if r.answers is None else int(r.answers))


class DynamoLedger:
    """Ledger entries and balances."""

    def bonus(self, entry: LedgerEntry, job_id: str, billed_cents: int | None = None) -> bool:
        """The entry, the worker's balance and the job's pool and bonus total (its money
        record), together; only if the pool holds the bonus. Billed (billed_cents given),
        the pool is left alone and the job's budget grows by billed_cents instead, in the
        same transaction: the client is charged for the bonus on the job."""
        try:
            with TransactWrite(connection=LedgerModel._get_connection().connection) as tx:
                tx.save(ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
                tx.update(AccountModel(entry.account_id),
                          actions=[AccountModel.balance_cents.add(entry.amount_cents)],
                          condition=AccountModel.account_id.exists())
                if billed_cents is None:
                    tx.update(JobMoneyModel(money_key(job_id)),
                              actions=[JobMoneyModel.pool_cents.add(-entry.amount_cents),
                                       JobMoneyModel.bonus_cents.add(entry.amount_cents)],
                              condition=JobMoneyModel.pool_cents >= entry.amount_cents)
                else:
                    tx.update(JobMoneyModel(money_key(job_id)),
                              actions=[JobMoneyModel.bonus_cents.add(entry.amount_cents)])
                    tx.update(JobModel(job_id),
                              actions=[JobModel.budget_cents.add(billed_cents)],
                              condition=JobModel.job_id.exists())
        except TransactWriteError as error:
            if not cancelled_by_condition(error):
                raise
            reasons = cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False  # paid before
            if billed_cents is not None and len(reasons) > 3 \
                    and reasons[3] == "ConditionalCheckFailed":
                raise NotFound("no such job", code="job_not_found") from error
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

    def accrual(self, job_id: str, worker_id: str, window: int) -> Accrual | None:
        """One accrual, strongly consistent."""
        try:
            return accrual_from(AccrualModel.get(worker_id, accrual_key(job_id, window),
                                                 consistent_read=True))
        except AccrualModel.DoesNotExist:
            return None

    def _read(self, keys: list[tuple[str, str]]) -> list[Accrual]:
        """The accruals under keys as they stand, in the keys' order (one BatchGetItem per
        100 keys; keys gone meanwhile are left out)."""
        read = {(r.account_id, r.entry_id): r
                for r in AccrualModel.batch_get(keys, consistent_read=True)}
        return [accrual_from(read[key]) for key in keys if key in read]

    def accruals_due(self, now: float, limit: int) -> list[Accrual]:
        """From each shard of the sparse due index, the soonest due by now (keys only), then
        each accrual read as it stands."""
        keys: list[tuple[str, str]] = []
        per_shard = max(1, -(-limit // DUE_SHARDS))
        for shard in range(DUE_SHARDS):
            for r in AccrualModel.accruals_due.query(f"due#{shard}", AccrualModel.due_at <= now,
                                                     limit=per_shard, page_size=per_shard):
                keys.append((r.account_id, r.entry_id))
        return self._read(keys[:limit])

    def accruals_of_job(self, job_id: str, before_window: int | None, cursor: str | None,
                        limit: int) -> tuple[list[Accrual], str | None]:
        """A page of the job's accruals from its keys-only index, in window order."""
        condition = None if before_window is None else \
            AccrualModel.entry_id < accrual_key(job_id, before_window)
        query = AccrualModel.accruals_by_job.query(
            job_id, condition, limit=limit, page_size=limit,
            last_evaluated_key=json.loads(cursor) if cursor else None)
        keys = [(r.account_id, r.entry_id) for r in query]
        last = query.last_evaluated_key
        return self._read(keys), (json.dumps(last) if last and len(keys) >= limit else None)

    def workers_in_job(self, job_id: str, worker_ids: Iterable[str]) -> set[str]:
        """Per worker, one query of their accruals in the job, keys only, one record at most."""
        return {worker for worker in sorted(set(worker_ids))
                if any(True for _ in AccrualModel.query(
                    worker, AccrualModel.entry_id.startswith(f"accrual#{job_id}#"),
                    limit=1, page_size=1, attributes_to_get=["account_id", "entry_id"]))}

    def settle(self, accrual: Accrual, entry: LedgerEntry | None, answers: int, now: float,
               by: str) -> bool:
        """The entry, the balance, the accrual (counts as read: paid up, off the due index)
        and the job's paid total and approved count (its money record), in one transaction."""
        record = AccrualModel(accrual.worker_id, accrual_key(accrual.job_id, accrual.window))
        actions: list[Action] = [AccrualModel.paid.set(accrual.paid + answers),
                   AccrualModel.settled_at.set(AccrualModel.settled_at | now),
                   AccrualModel.settled_by.set(AccrualModel.settled_by | by),
                   AccrualModel.due_shard.remove(), AccrualModel.due_at.remove()]
        condition = (AccrualModel.accrued == accrual.accrued) \
            & _counter_is(AccrualModel.rejected, accrual.rejected) \
            & _counter_is(AccrualModel.paid, accrual.paid)
        if entry is None or answers <= 0:
            ok, _ = conditional_update(AccrualModel, record.account_id, record.entry_id,
                                       actions, condition)
            return ok

        def write(tx: TransactWrite) -> None:
            tx.save(ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
            tx.update(AccountModel(accrual.worker_id),
                      actions=[AccountModel.balance_cents.add(entry.amount_cents)])
            tx.update(record, actions=actions, condition=condition)
            tx.update(JobMoneyModel(money_key(accrual.job_id)),
                      actions=[JobMoneyModel.paid_cents.add(entry.amount_cents),
                               JobMoneyModel.approved_answers.add(answers)])

        return transact_once(write)
