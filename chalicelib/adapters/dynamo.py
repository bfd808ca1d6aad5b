"""DynamoDB repositories (pynamodb). Conditional single-item writes and atomic counters keep
leases, answers and counters exact; a transaction only where two items must move together."""
from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.constants import KEY, UPDATE_ITEM
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.models import (
    AccountModel, CatalogModel, CredentialModel, ItemModel, JobModel, LedgerModel, QuoteModel,
    ResultModel, WorkerStatsModel,
)
from chalicelib.domain.model import (
    APPROVED, INGESTING, CountedAnswer, LedgerEntry, ItemResult, ItemState, Job, Lease, LineItem, NewItem, Principal, Quote,
    StoredAnswer,
)
from chalicelib.domain.ports import Page, SlotOutcome, WorkerRecord
from chalicelib.domain.webhooks import record_has_events
from chalicelib.errors import Conflict, InvalidRequest, NotFound, TransientError

COUNT_ATTEMPTS = 4
_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException",
              "RequestLimitExceeded", "TransactionConflictException"}


def _raise_if_throttled(code: str | None, error: Exception) -> None:
    if code in _THROTTLED:
        raise TransientError("the database is busy; try again") from error


def _raise_transient(error: PynamoDBException) -> None:
    _raise_if_throttled(error.cause_response_code, error)


def _once(write: Any) -> bool:
    """Run write(tx) in one transaction: True if it went through, False if a condition
    cancelled it (nothing was written); throttling is a TransientError."""
    try:
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            write(tx)
    except TransactWriteError as error:
        _raise_transient(error)
        reasons = {r.code for r in (error.cancellation_reasons or []) if r is not None}
        if reasons & {"TransactionConflict", "ThrottlingError"}:
            raise TransientError("a concurrent write got there first; try again") from error
        if error.cause_response_code == "TransactionCanceledException":
            return False
        raise
    return True


def newest_first(index: Any, owner: str, owner_key: str, key: Mapping[str, str], limit: int,
                 cursor: str | None, convert: Any) -> tuple[list[Any], str | None]:
    """A page of an index ordered by time, newest first, for one owner (client or account);
    another owner's cursor is refused."""
    start = decode_cursor(cursor, key, {owner_key: owner})
    result = index.query(owner, scan_index_forward=False, limit=limit, last_evaluated_key=start)
    rows = [convert(r) for r in result]
    return rows, encode_cursor(result.last_evaluated_key)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="microseconds")


def _update_raw(model: type, hash_key: str, range_key: str | None, actions: list,
                condition: Any) -> tuple[bool, dict[str, Any] | None]:
    """UpdateItem returning (True, new item) or (False, old item) without a second read.

    pynamodb's Model.update cannot ask for ReturnValuesOnConditionCheckFailure, so the
    expression is built by pynamodb and sent through its connection.
    """
    connection = model._get_connection()
    kwargs = connection.get_operation_kwargs(
        hash_key, range_key=range_key, key=KEY, actions=actions, condition=condition,
        return_values="ALL_NEW", return_values_on_condition_failure="ALL_OLD",
    )
    try:
        response = connection.connection.dispatch(UPDATE_ITEM, kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        _raise_if_throttled(code, error)
        if code != "ConditionalCheckFailedException":
            raise
        # pynamodb re-raises without the returned item; botocore's original error has it.
        original = error.__cause__ if isinstance(error.__cause__, ClientError) else error
        return False, original.response.get("Item")
    return True, response.get("Attributes")


class DynamoAccounts:
    """Accounts and credentials."""

    def create_account(self, account_id: str, role: str, name: str, skills: Sequence[str],
                       token_hash: str, now: float) -> None:
        """Store the account and its credential in one transaction."""
        with TransactWrite(connection=AccountModel._get_connection().connection) as tx:
            tx.save(AccountModel(account_id, role=role, name=name, skills=set(skills) or None,
                                 created_at=now, token_hash=token_hash),
                    condition=AccountModel.account_id.does_not_exist())
            tx.save(CredentialModel(token_hash, account_id=account_id, role=role, name=name,
                                    skills=set(skills) or None, created_at=now),
                    condition=CredentialModel.token_hash.does_not_exist())

    def principal_for(self, token_hash: str) -> Principal | None:
        """The principal of a credential; None if unknown or revoked."""
        try:
            record = CredentialModel.get(token_hash)
        except CredentialModel.DoesNotExist:
            return None
        if record.revoked:
            return None
        return Principal(record.account_id, record.role, record.name,
                         frozenset(record.skills or ()),
                         tuple(sorted((record.scores or {}).items())))

    def grant_skill(self, account_id: str, skill: str, score: float) -> None:
        """Add the skill and its score to the account and its credential, together."""
        account = AccountModel.get(account_id, consistent_read=True)
        scores = {**(account.scores or {}), skill: score}

        def write(tx: TransactWrite) -> None:
            tx.update(AccountModel(account_id), actions=[AccountModel.skills.add({skill}),
                                                         AccountModel.scores.set(scores)])
            if account.token_hash:
                tx.update(CredentialModel(account.token_hash),
                          actions=[CredentialModel.skills.add({skill}),
                                   CredentialModel.scores.set(scores)])

        if not _once(write):
            raise TransientError("the skill could not be granted; submit again")

    def rotate(self, account_id: str, old_hash: str, new_hash: str, now: float) -> bool:
        """Replace the account's credential: the new one is stored and the old one revoked,
        together; False if old_hash is no longer the account's live credential."""
        account = AccountModel.get(account_id, consistent_read=True)
        old = CredentialModel.get(old_hash, consistent_read=True)

        def write(tx: TransactWrite) -> None:
            tx.save(CredentialModel(new_hash, account_id=account_id, role=account.role,
                                    name=account.name, skills=account.skills or None,
                                    scores=account.scores or None, created_at=now),
                    condition=CredentialModel.token_hash.does_not_exist())
            tx.update(CredentialModel(old_hash), actions=[CredentialModel.revoked.set(True)],
                      condition=(CredentialModel.revoked == False)  # noqa: E712
                      & (CredentialModel.account_id == account_id))
            tx.update(AccountModel(account_id), actions=[AccountModel.token_hash.set(new_hash)],
                      condition=AccountModel.token_hash == old_hash)

        return old.account_id == account_id and _once(write)

    def revoke(self, account_id: str) -> bool:
        """Revoke the account's live credential; False if there is no such account."""
        try:
            account = AccountModel.get(account_id, consistent_read=True)
        except AccountModel.DoesNotExist:
            return False
        if account.token_hash:
            _update_raw(CredentialModel, account.token_hash, None,
                        [CredentialModel.revoked.set(True)], CredentialModel.token_hash.exists())
        return True


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


def job_from_model(r: JobModel) -> Job:
    """A domain job from its record."""
    return Job(
        job_id=r.job_id, client_id=r.client_id, quote_id=r.quote_id, title=r.title,
        task_type=r.task_type, instructions=r.instructions, answer_schema=r.answer_schema,
        not_applicable=r.not_applicable, redundancy=int(r.redundancy),
        reward_cents=int(r.reward_cents), budget_cents=int(r.budget_cents),
        item_count=int(r.item_count), chunk_count=int(r.chunk_count),
        lease_seconds=int(r.lease_seconds), deadline=r.deadline,
        created_at=datetime.fromisoformat(r.created_at).timestamp(), state=r.state,
        required_skills=tuple(sorted(r.required_skills or ())),
        min_skill_scores=r.min_skill_scores or {}, adaptive=r.adaptive or {},
        report_settings=r.report_settings or {},
        phase=r.phase or "production", pilot_items=int(r.pilot_items or 0),
        instruction_version=int(r.instruction_version or 1), promotion=r.promotion or {},
        transitions=tuple(json.loads(entry) for entry in (r.transitions or ())),
        events_sent=int(r.events_sent or 0), events_due_at=r.events_due_at,
        request_digest=r.request_digest or "",
        budget_alerted=bool(r.budget_alerted), budget_alert_at=r.budget_alert_at,
        gold_items=int(r.gold_items or 0), quality=r.quality or {},
        pool_cents=int(r.pool_cents or 0), held_cents=int(r.held_cents or 0),
        gold_slots=int(r.gold_slots or 0), blocked_workers=frozenset(r.blocked_workers or ()),
        block_starts={w: float(t) for w, t in (r.block_starts.as_dict()
                                                if r.block_starts else {}).items()},
        auto_approve_seconds=int(r.auto_approve_seconds if r.auto_approve_seconds is not None
                                 else 3 * 24 * 3600), paid_cents=int(r.paid_cents or 0),
        bonus_cents=int(r.bonus_cents or 0), approved_answers=int(r.approved_answers or 0),
        rejected_answers=int(r.rejected_answers or 0),
        ingested_chunks=frozenset(int(c) for c in (r.ingested_chunks or ())),
        answered=int(r.answered or 0), items_done=int(r.items_done or 0),
        round=int(r.round or 1), finalize_at=r.finalize_at, cancelled_at=r.cancelled_at,
        aggregating_at=r.aggregating_at,
        results_key=r.results_key,
        result_count=None if r.result_count is None else int(r.result_count),
        done_at=r.done_at, error=r.error,
    )


class DynamoJobs:
    """Jobs."""

    def create_job(self, job: Job) -> None:
        """Store the job and mark its quote used, together, so a quote buys one job."""
        record = JobModel(
            job.job_id, client_id=job.client_id, quote_id=job.quote_id, title=job.title,
            task_type=job.task_type, instructions=job.instructions,
            answer_schema=job.answer_schema, not_applicable=job.not_applicable,
            redundancy=job.redundancy, reward_cents=job.reward_cents,
            budget_cents=job.budget_cents, item_count=job.item_count,
            chunk_count=job.chunk_count, lease_seconds=job.lease_seconds, deadline=job.deadline,
            created_at=_iso(job.created_at), state=job.state, finalize_at=job.finalize_at,
            required_skills=set(job.required_skills) or None, answered=0, items_done=0,
            min_skill_scores=job.min_skill_scores or None, adaptive=job.adaptive or None,
            round=job.round, report_settings=job.report_settings or None,
            phase=job.phase, pilot_items=job.pilot_items,
            instruction_version=job.instruction_version, promotion=job.promotion or None,
            transitions=[json.dumps(entry) for entry in job.transitions],
            gold_items=job.gold_items, quality=job.quality or None, pool_cents=job.pool_cents,
            gold_slots=job.gold_slots or None, auto_approve_seconds=job.auto_approve_seconds,
            request_digest=job.request_digest or None,
        )
        try:
            with TransactWrite(connection=JobModel._get_connection().connection) as tx:
                tx.save(record, condition=JobModel.job_id.does_not_exist())
                tx.update(QuoteModel(job.quote_id), actions=[QuoteModel.job_id.set(job.job_id)],
                          condition=QuoteModel.job_id.does_not_exist())
        except TransactWriteError as error:
            _raise_transient(error)
            if error.cause_response_code == "TransactionCanceledException":
                raise Conflict("this quote was already used for a job", field="quote_id",
                               code="quote_used") from error
            raise

    def abandon_job(self, job_id: str, quote_id: str) -> None:
        """Delete a job still ingesting and free its quote, in one transaction."""
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            tx.delete(JobModel(job_id), condition=JobModel.state == INGESTING)
            tx.update(QuoteModel(quote_id), actions=[QuoteModel.job_id.remove()],
                      condition=QuoteModel.job_id == job_id)

    def get_job(self, job_id: str) -> Job | None:
        """A job by id, strongly consistent."""
        try:
            return job_from_model(JobModel.get(job_id, consistent_read=True))
        except JobModel.DoesNotExist:
            return None

    def jobs_in_state(self, state: str, finalize_before: float | None = None) -> list[Job]:
        """Jobs in a state (from the by_state index), optionally only those due."""
        condition = None if finalize_before is None else JobModel.finalize_at <= finalize_before
        return [job_from_model(r) for r in JobModel.by_state.query(state, condition)]

    def jobs_of_client(self, client_id: str, limit: int, cursor: str | None
                       ) -> tuple[list[Job], str | None]:
        """A page of a client's jobs, newest first."""
        return newest_first(JobModel.by_client, client_id, "client_id",
                            {"job_id": "S", "client_id": "S", "created_at": "S"}, limit, cursor,
                            job_from_model)

    def mark_chunk_ingested(self, job_id: str, chunk: int) -> Job | None:
        """Add chunk to the job's ingested set (a repeat changes nothing); None if the job is gone."""
        ok, raw = _update_raw(JobModel, job_id, None, [JobModel.ingested_chunks.add({chunk})],
                              JobModel.job_id.exists())
        return job_from_model(JobModel.from_raw_data(raw)) if ok and raw else None

    def transition(self, job_id: str, from_states: Sequence[str], to_state: str,
                   record: Mapping[str, Any] | None = None, expect_round: int | None = None,
                   expect_items_done: int | None = None, **changes: Any) -> bool:
        """Conditional state change with extra attributes set alongside, and the change
        appended to the job's history when a record is given. expect_round and
        expect_items_done (at least) add to the condition."""
        actions = [JobModel.state.set(to_state)]
        if record is not None:
            actions.append(JobModel.transitions.set(
                JobModel.transitions.append([json.dumps(record)])))
        if record is not None and record_has_events(record):
            # The outbox mark: this transition's events are due (webhooks.publish_job_events).
            actions += [JobModel.events_queue.set("due"),
                        JobModel.events_due_at.set(float(record.get("at") or time.time())
                                                   + random.random() / 1000)]
        for name, value in changes.items():
            attribute = getattr(JobModel, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        condition = JobModel.state.is_in(*from_states)
        if expect_round is not None:
            condition &= JobModel.round == expect_round
        if expect_items_done is not None:
            condition &= JobModel.items_done >= expect_items_done
        ok, _ = _update_raw(JobModel, job_id, None, actions, condition)
        return ok

    def mark_events_sent(self, job_id: str, sent_before: int, sent_now: int,
                         due_at_seen: float | None) -> None:
        """Move the job's published-events mark; off the outbox index unless a transition
        came after the read (then the sweeper publishes it if nothing else does)."""
        cleared = (JobModel.events_sent == sent_before) if sent_before else \
            (JobModel.events_sent.does_not_exist() | (JobModel.events_sent == 0))
        if due_at_seen is not None:
            ok, _ = _update_raw(JobModel, job_id, None,
                                [JobModel.events_sent.set(sent_now),
                                 JobModel.events_queue.remove(), JobModel.events_due_at.remove()],
                                cleared & (JobModel.events_due_at == due_at_seen))
            if ok:
                return
        _update_raw(JobModel, job_id, None, [JobModel.events_sent.set(sent_now)],
                    cleared & JobModel.job_id.exists())

    def jobs_with_events_due(self) -> list[str]:
        """Ids of jobs with transitions whose events are not all published (sparse index)."""
        return [r.job_id for r in JobModel.events_due.query("due")]

    def claim_budget_alert(self, job_id: str, now: float) -> float:
        """The time of the job's budget alert: now, unless an earlier claim set one."""
        _, raw = _update_raw(JobModel, job_id, None,
                             [JobModel.budget_alert_at.set(JobModel.budget_alert_at | now)],
                             JobModel.job_id.exists())
        return float((raw or {}).get("budget_alert_at", {}).get("N", now))

    def mark_budget_alerted(self, job_id: str) -> None:
        """Record that the budget alert was published."""
        _update_raw(JobModel, job_id, None, [JobModel.budget_alerted.set(True)],
                    JobModel.job_id.exists())

    def claim_refit(self, job_id: str, mark: int) -> bool:
        """Take the right to refit the online model at mark (once per mark)."""
        ok, _ = _update_raw(JobModel, job_id, None, [JobModel.refit_mark.set(mark)],
                            JobModel.refit_mark.does_not_exist() | (JobModel.refit_mark < mark))
        return ok

    def record_counted(self, job_id: str, answers: Sequence[CountedAnswer],
                       review_due_at: float | None = None) -> int:
        """Mark answers counted on their items and add them to the job's counters, together.

        One transaction per batch. Consumers counting the same job at once conflict on the
        job's row, so a conflict is retried here a few times with jitter before the batch is
        left to SQS. If any answer was counted before (a redelivery), the answers are
        counted one by one instead.
        """
        for attempt in range(COUNT_ATTEMPTS):
            try:
                return self._count_together(job_id, answers, review_due_at)
            except TransactWriteError as error:
                reasons = [r.code for r in (error.cancellation_reasons or []) if r is not None]
                conflicted = (error.cause_response_code == "TransactionConflictException"
                              or "TransactionConflict" in reasons
                              or "ThrottlingError" in reasons)
                if conflicted:
                    if attempt + 1 < COUNT_ATTEMPTS:
                        time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
                        continue
                    raise TransientError("counting conflicted with another write") from error
                _raise_transient(error)
                if error.cause_response_code != "TransactionCanceledException" or \
                        set(reasons) != {"ConditionalCheckFailed"}:
                    raise
                if len(answers) == 1:
                    return 0  # counted before: a redelivery
                break
        return sum(self.record_counted(job_id, [answer], review_due_at) for answer in answers)

    def reserve(self, job_id: str, cents: int, source: str = "pool") -> bool:
        """Take cents from the pool (or the money held for replacements) in one conditional
        write (never below zero)."""
        money = _money(source)
        ok, _ = _update_raw(JobModel, job_id, None, [money.add(-cents)], money >= cents)
        return ok

    def refund(self, job_id: str, cents: int, source: str = "pool") -> None:
        """Give cents back to the pool (or to the money held for replacements)."""
        _update_raw(JobModel, job_id, None, [_money(source).add(cents)],
                    JobModel.job_id.exists())

    def release_held(self, job_id: str) -> int:
        """Move the money held for replacements to the pool; return how much moved."""
        for _ in range(COUNT_ATTEMPTS):
            job = self.get_job(job_id)
            if job is None or not job.held_cents:
                return 0
            ok, _ = _update_raw(JobModel, job_id, None,
                                [JobModel.held_cents.set(0),
                                 JobModel.pool_cents.add(job.held_cents)],
                                JobModel.held_cents == job.held_cents)
            if ok:
                return job.held_cents
        raise TransientError("the job's money kept changing; try again")

    def block_worker(self, job_id: str, worker_id: str, starts_at: float | None = None) -> None:
        """Add the worker to the job's blocked set, refusing leases from starts_at (a repeat
        keeps the first start) or, without it, at once."""
        # A nested key needs its map, made by a first write (blocks are rare).
        _update_raw(JobModel, job_id, None,
                    [JobModel.block_starts.set(JobModel.block_starts | {})],
                    JobModel.job_id.exists())
        start = JobModel.block_starts[worker_id]
        _update_raw(JobModel, job_id, None,
                    [JobModel.blocked_workers.add({worker_id}),
                     start.remove() if starts_at is None else start.set(start | starts_at)],
                    JobModel.job_id.exists())

    def jobs_due_for_review(self, now: float) -> list[str]:
        """Ids of jobs whose earliest automatic approval is due (sparse index)."""
        return [r.job_id for r in JobModel.reviews_due.query(
            "due", JobModel.review_due_at <= now)]

    def set_review_due(self, job_id: str, due_at: float | None, answered_seen: int) -> None:
        """Move the job's next due time, or take it off the queue unless answers were counted
        since the sweep read it (then it is looked at again on the next sweep)."""
        if due_at is not None:
            _update_raw(JobModel, job_id, None, [JobModel.review_due_at.set(due_at)],
                        JobModel.job_id.exists())
            return
        ok, _ = _update_raw(JobModel, job_id, None,
                            [JobModel.review_queue.remove(), JobModel.review_due_at.remove()],
                            JobModel.answered == answered_seen)
        if not ok:
            _update_raw(JobModel, job_id, None, [JobModel.review_due_at.set(0)],
                        JobModel.job_id.exists())

    def _count_together(self, job_id: str, answers: Sequence[CountedAnswer],
                        review_due_at: float | None = None) -> int:
        by_item: dict[str, list[CountedAnswer]] = defaultdict(list)
        for answer in answers:
            by_item[answer.item_id].append(answer)
        completed = 0
        with TransactWrite(connection=ItemModel._get_connection().connection) as tx:
            for item_id, entries in by_item.items():
                actions = [ItemModel.counted[e.worker_id].set(e.assignment_id) for e in entries]
                condition = None
                for entry in entries:
                    clause = ItemModel.counted[entry.worker_id].does_not_exist()
                    condition = clause if condition is None else condition & clause
                if any(entry.item_complete for entry in entries):
                    actions.append(ItemModel.open_job.remove())
                    completed += 1
                tx.update(ItemModel(job_id, item_id), actions=actions, condition=condition)
            job_actions = [JobModel.answered.add(len(answers))]
            if review_due_at is not None:
                # if_not_exists keeps an earlier due time: the queue holds the soonest.
                job_actions += [JobModel.review_queue.set("due"),
                                JobModel.review_due_at.set(JobModel.review_due_at | review_due_at)]
            if completed:
                job_actions.append(JobModel.items_done.add(completed))
            tx.update(JobModel(job_id), actions=job_actions)
        return len(answers)


def _money(source: str) -> Any:
    """The job attribute that holds a kind of money: the pool or what is held for replacements."""
    return {"pool": JobModel.pool_cents, "held": JobModel.held_cents}[source]


def _lease_from(raw: dict[str, Any]) -> Lease:
    return Lease(raw["aid"], float(raw["exp"]), float(raw["at"]))


def _answer_from(raw: dict[str, Any], ordinal: Any, review: Any = None) -> StoredAnswer:
    return StoredAnswer(raw["aid"], json.loads(raw["ans"]), float(raw["at"]), float(raw["lat"]),
                        None if ordinal is None else int(ordinal), int(raw.get("iv", 1)),
                        None if review is None else {
                            "status": review["s"], "reason": review.get("r"),
                            "at": float(review["at"]), "by": review.get("by")})


def item_from_model(r: ItemModel) -> ItemState:
    """A domain item from its record."""
    leases = {w: _lease_from(dict(v)) for w, v in (r.leases.as_dict() if r.leases else {}).items()}
    ordinals = r.ordinals.as_dict() if r.ordinals else {}
    reviews = r.reviews.as_dict() if r.reviews else {}
    answers = {w: _answer_from(dict(v), ordinals.get(w), reviews.get(w))
               for w, v in (r.answers.as_dict() if r.answers else {}).items()}
    return ItemState(
        job_id=r.job_id, item_id=r.item_id, data=r.data or {}, redundancy=int(r.redundancy),
        free=int(r.free), external_id=r.external_id, leases=leases, answers=answers,
        seen=frozenset(r.seen or ()), answer_count=int(r.answer_count or 0), gold=r.gold,
        held=bool(r.held), replaced=int(r.replaced or 0), extended=int(r.extended or 0),
    )


def _item_from_raw(raw: dict[str, Any] | None) -> ItemState | None:
    return None if raw is None else item_from_model(ItemModel.from_raw_data(raw))


# What picking a slot needs: not the item's data, answers or counting marks.
_SLOT_FIELDS = ["job_id", "item_id", "redundancy", "free", "answer_count", "leases", "seen", "gold"]


class DynamoItems:
    """Items and their slots."""

    def put_items(self, job_id: str, redundancy: int, items: Sequence[NewItem]) -> None:
        """Write a chunk of fresh items in one transaction that fails if any exists already.

        A chunk delivered twice at once must not overwrite items a worker has leased since,
        so the writes are conditional; the chunk is written whole or not at all.
        """
        try:
            with TransactWrite(connection=ItemModel._get_connection().connection) as tx:
                for item in items:
                    slots = redundancy if item.slots is None else item.slots
                    # A held item stays out of the open-items index until production, and
                    # a gold item without slots never enters it.
                    tx.save(ItemModel(
                        job_id, item.item_id, data=item.data, external_id=item.external_id,
                        gold=item.gold, held=True if item.held else None,
                        redundancy=slots, free=slots, answer_count=0, leases={},
                        answers={}, reviews={}, counted={}, ordinals={},
                        open_job=None if item.held or not slots else job_id,
                    ), condition=ItemModel.item_id.does_not_exist())
        except TransactWriteError as error:
            _raise_transient(error)
            reasons = {r.code for r in (error.cancellation_reasons or []) if r is not None}
            if reasons != {"ConditionalCheckFailed"}:
                raise

    def open_items(self, job_id: str, worker_id: str | None, limit: int | None
                   ) -> list[ItemState]:
        """Incomplete items from the sparse open_items index, optionally unseen by a worker."""
        condition = None if worker_id is None else ~ItemModel.seen.contains(worker_id)
        found: list[ItemState] = []
        for record in ItemModel.open_items.query(job_id, filter_condition=condition,
                                                 page_size=200, attributes_to_get=_SLOT_FIELDS):
            found.append(item_from_model(record))
            if limit is not None and len(found) >= limit:
                break
        return found

    def held_item_ids(self, job_id: str) -> list[str]:
        """Ids of the job's items held back from its pilot."""
        return [record.item_id for record in ItemModel.query(
            job_id, filter_condition=ItemModel.held.exists(), consistent_read=True,
            attributes_to_get=["item_id"])]

    def review(self, job_id: str, item_id: str, worker_id: str, assignment_id: str,
               review: dict[str, Any], entry: LedgerEntry, refund_cents: int = 0,
               refund_to: str = "pool") -> bool:
        """One transaction: the review on the item (only if it has none and the answer is this
        assignment's), the ledger entry (only if new), and the money: an approval credits the
        worker's balance and the job's paid total; a rejection gives the reward back to the
        job's pool, or holds it for a replacement slot (refund_to "held")."""
        reward = entry.amount_cents
        value = {"s": review["status"], "r": review.get("reason"), "at": review["at"],
                 "by": review.get("by")}

        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id),
                      actions=[ItemModel.reviews[worker_id].set(value)],
                      condition=ItemModel.reviews[worker_id].does_not_exist()
                      & (ItemModel.answers[worker_id]["aid"] == assignment_id))
            tx.save(_ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
            if review["status"] == APPROVED:
                tx.update(AccountModel(worker_id), actions=[AccountModel.balance_cents.add(reward)])
                tx.update(JobModel(job_id), actions=[JobModel.paid_cents.add(reward),
                                                     JobModel.approved_answers.add(1)])
            else:
                tx.update(JobModel(job_id), actions=[_money(refund_to).add(refund_cents),
                                                     JobModel.rejected_answers.add(1)])

        return _once(write)

    def add_slots(self, job_id: str, item_id: str, count: int, replaced_before: int) -> bool:
        """Reopen a counted-complete item with more slots and uncount it, in one transaction."""
        def write(tx: TransactWrite) -> None:
            tx.update(ItemModel(job_id, item_id), actions=[
                ItemModel.redundancy.add(count), ItemModel.free.add(count),
                ItemModel.replaced.add(count), ItemModel.open_job.set(job_id)],
                condition=ItemModel.open_job.does_not_exist()
                & (ItemModel.replaced == replaced_before))
            tx.update(JobModel(job_id), actions=[JobModel.items_done.add(-1)])

        return _once(write)

    def extend(self, job_id: str, item_id: str, redundancy_now: int) -> bool:
        """One more slot for an item not yet counted complete whose redundancy is still
        redundancy_now (so two deciders cannot both add one for the same answer)."""
        ok, _ = _update_raw(ItemModel, job_id, item_id,
                            [ItemModel.redundancy.add(1), ItemModel.free.add(1),
                             ItemModel.extended.add(1)],
                            ItemModel.open_job.exists() & (ItemModel.redundancy == redundancy_now))
        return ok

    def release_gold_slots(self, job_id: str, item_id: str, free: int, expired: Sequence[str],
                           now: float, reward_cents: int) -> int:
        """Take a gold item's free slots (still `free`) and the slots of the expired leases
        away, and give their rewards to the job's pool, together and once; return the cents."""
        slots = free + len(expired)

        def write(tx: TransactWrite) -> None:
            condition = ItemModel.free == free
            for worker in expired:
                condition &= ItemModel.leases[worker]["exp"] <= now
            tx.update(ItemModel(job_id, item_id),
                      actions=[ItemModel.redundancy.add(-slots), ItemModel.free.add(-free),
                               *(ItemModel.leases[worker].remove() for worker in expired)],
                      condition=condition)
            tx.update(JobModel(job_id), actions=[JobModel.pool_cents.add(slots * reward_cents)])

        return slots * reward_cents if _once(write) else 0

    def open_held(self, job_id: str, item_ids: Sequence[str]) -> None:
        """Put held items into the open-items index (an item opened before is left alone)."""
        for item_id in item_ids:
            _update_raw(ItemModel, job_id, item_id,
                        [ItemModel.open_job.set(job_id), ItemModel.held.remove()],
                        ItemModel.held.exists())

    def get_item(self, job_id: str, item_id: str) -> ItemState | None:
        """One item, strongly consistent."""
        try:
            return item_from_model(ItemModel.get(job_id, item_id, consistent_read=True))
        except ItemModel.DoesNotExist:
            return None

    def try_lease(self, job_id: str, item_id: str, worker_id: str, lease: Lease,
                  reclaim_from: str | None, now: float) -> SlotOutcome:
        """Take a free slot, or the slot of reclaim_from's expired lease, in one write."""
        value = {"aid": lease.assignment_id, "exp": lease.expires_at, "at": lease.leased_at}
        actions = [ItemModel.leases[worker_id].set(value), ItemModel.seen.add({worker_id})]
        condition = ItemModel.open_job.exists() & ~ItemModel.seen.contains(worker_id)
        if reclaim_from is None:
            actions.append(ItemModel.free.add(-1))
            condition &= ItemModel.free > 0
        else:
            actions.append(ItemModel.leases[reclaim_from].remove())
            condition &= ItemModel.leases[reclaim_from]["exp"] <= now
        ok, raw = _update_raw(ItemModel, job_id, item_id, actions, condition)
        return SlotOutcome(ok, _item_from_raw(raw))

    def try_submit(self, job_id: str, item_id: str, worker_id: str, answer: StoredAnswer,
                   now: float) -> SlotOutcome:
        """Turn a live lease into an accepted answer: one conditional write, exactly once."""
        value = {"aid": answer.assignment_id, "ans": json.dumps(answer.answer),
                 "at": answer.submitted_at, "lat": answer.leased_at,
                 "iv": answer.instruction_version}
        lease = ItemModel.leases[worker_id]
        # The answer's ordinal is the count before this write: DynamoDB orders the writes.
        actions = [lease.remove(), ItemModel.answers[worker_id].set(value),
                   ItemModel.ordinals[worker_id].set(ItemModel.answer_count),
                   ItemModel.answer_count.add(1)]
        condition = (lease["aid"] == answer.assignment_id) & (lease["exp"] > now)
        ok, raw = _update_raw(ItemModel, job_id, item_id, actions, condition)
        return SlotOutcome(ok, _item_from_raw(raw))

    def try_release(self, job_id: str, item_id: str, worker_id: str, assignment_id: str
                    ) -> SlotOutcome:
        """Give a slot back; the worker stays in 'seen', so they are not offered it again."""
        lease = ItemModel.leases[worker_id]
        ok, raw = _update_raw(ItemModel, job_id, item_id, [lease.remove(), ItemModel.free.add(1)],
                              lease["aid"] == assignment_id)
        return SlotOutcome(ok, _item_from_raw(raw))

    def iter_items(self, job_id: str, after: str | None = None) -> Iterator[ItemState]:
        """Every item of a job in item order, or those after the item id `after`."""
        condition = None if after is None else ItemModel.item_id > after
        try:
            for record in ItemModel.query(job_id, condition, consistent_read=True):
                yield item_from_model(record)
        except PynamoDBException as error:
            _raise_transient(error)
            raise


class DynamoResults:
    """Aggregated results."""

    def put_results(self, job_id: str, results: Iterable[dict[str, Any]]) -> None:
        """Batch-write result lines (deterministic, so a repeat writes the same)."""
        try:
            with ResultModel.batch_write() as batch:
                for line in results:
                    batch.save(ResultModel(job_id, line["item_id"], body=line))
        except PynamoDBException as error:
            _raise_transient(error)
            raise

    def page(self, job_id: str, limit: int, cursor: str | None) -> Page:
        """A page of result lines in item order."""
        start = decode_cursor(cursor, {"job_id": "S", "item_id": "S"}, {"job_id": job_id})
        result = ResultModel.query(job_id, limit=limit, last_evaluated_key=start)
        entries = [record.body for record in result]
        return Page(entries, encode_cursor(result.last_evaluated_key))


def _record_from(r: WorkerStatsModel) -> WorkerRecord:
    return WorkerRecord(
        r.worker_id, r.scope, int(r.gold_answers or 0), int(r.gold_correct or 0),
        None if r.shown_gold_answers is None else int(r.shown_gold_answers),
        None if r.shown_gold_correct is None else int(r.shown_gold_correct),
        r.blocked_at, r.blocked_reason)


EVERYWHERE = "*"


class DynamoWorkerStats:
    """Workers' gold records and blocks."""

    def record_gold(self, worker_id: str, job_id: str, assignment_id: str, correct: bool
                    ) -> tuple[int, int] | None:
        """Score a gold answer in the job's record and the overall one, together and once per
        assignment (the job's record keeps the assignment ids it scored, so a retried submit
        scores nothing); return the job's totals after it."""
        counts = [WorkerStatsModel.gold_answers.add(1),
                  WorkerStatsModel.gold_correct.add(1 if correct else 0)]

        def write(tx: TransactWrite) -> None:
            tx.update(WorkerStatsModel(worker_id, job_id),
                      actions=counts + [WorkerStatsModel.scored.add({assignment_id})],
                      condition=~WorkerStatsModel.scored.contains(assignment_id))
            tx.update(WorkerStatsModel(worker_id, EVERYWHERE), actions=counts)

        if not _once(write):
            return None
        record = WorkerStatsModel.get(worker_id, job_id, consistent_read=True)
        return int(record.gold_answers), int(record.gold_correct)

    def mark_blocked(self, worker_id: str, scope: str, reason: str, now: float) -> None:
        """Record a block (the first block's time and reason are kept)."""
        _update_raw(WorkerStatsModel, worker_id, scope,
                    [WorkerStatsModel.blocked_at.set(now),
                     WorkerStatsModel.blocked_reason.set(reason)],
                    WorkerStatsModel.blocked_at.does_not_exist())

    def unblock(self, worker_id: str, scope: str) -> None:
        """Lift a block."""
        _update_raw(WorkerStatsModel, worker_id, scope,
                    [WorkerStatsModel.blocked_at.remove(), WorkerStatsModel.blocked_reason.remove()],
                    None)

    def of_job(self, job_id: str) -> list[WorkerRecord]:
        """A job's workers' records, by worker id."""
        return [_record_from(r) for r in WorkerStatsModel.by_scope.query(job_id)]

    def of_worker(self, worker_id: str) -> list[WorkerRecord]:
        """One worker's records (overall and per job)."""
        return [_record_from(r) for r in WorkerStatsModel.query(worker_id)]

    def publish_shown(self, job_id: str) -> None:
        """Copy the live gold counts of the job's workers to what they see."""
        for record in WorkerStatsModel.by_scope.query(job_id):
            _update_raw(WorkerStatsModel, record.worker_id, job_id,
                        [WorkerStatsModel.shown_gold_answers.set(int(record.gold_answers or 0)),
                         WorkerStatsModel.shown_gold_correct.set(int(record.gold_correct or 0))],
                        None)

    def start_attempt(self, worker_id: str, qual_id: str, attempt_id: str, now: float,
                      retake_seconds: int) -> bool:
        """One conditional write: not passed, and no attempt within retake_seconds."""
        ok, _ = _update_raw(
            WorkerStatsModel, worker_id, f"qual#{qual_id}",
            [WorkerStatsModel.attempt_id.set(attempt_id), WorkerStatsModel.attempt_at.set(now),
             WorkerStatsModel.score.remove()],
            (WorkerStatsModel.passed.does_not_exist() | (WorkerStatsModel.passed == False))  # noqa: E712
            & (WorkerStatsModel.attempt_at.does_not_exist()
               | (WorkerStatsModel.attempt_at <= now - retake_seconds)))
        return ok

    def finish_attempt(self, worker_id: str, qual_id: str, attempt_id: str, score: float,
                       passed: bool) -> bool:
        """Score the open attempt, once."""
        ok, _ = _update_raw(
            WorkerStatsModel, worker_id, f"qual#{qual_id}",
            [WorkerStatsModel.score.set(score), WorkerStatsModel.passed.set(passed)],
            (WorkerStatsModel.attempt_id == attempt_id) & WorkerStatsModel.score.does_not_exist())
        return ok

    def attempt(self, worker_id: str, qual_id: str) -> dict[str, Any] | None:
        """The open or last attempt."""
        try:
            r = WorkerStatsModel.get(worker_id, f"qual#{qual_id}", consistent_read=True)
        except WorkerStatsModel.DoesNotExist:
            return None
        return {"attempt_id": r.attempt_id, "attempt_at": r.attempt_at, "score": r.score,
                "passed": bool(r.passed)}

    def blocked_everywhere(self, worker_ids: Iterable[str]) -> set[str]:
        """Those of the workers with an operator's block (one batch read per 100)."""
        keys = [(worker, EVERYWHERE) for worker in sorted(set(worker_ids))]
        if not keys:
            return set()
        return {r.worker_id for r in WorkerStatsModel.batch_get(keys,
                                                                attributes_to_get=["worker_id", "scope", "blocked_at"])
                if r.blocked_at is not None}


def _ledger_record(entry: LedgerEntry) -> LedgerModel:
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
                tx.save(_ledger_record(entry), condition=LedgerModel.entry_id.does_not_exist())
                tx.update(AccountModel(entry.account_id),
                          actions=[AccountModel.balance_cents.add(entry.amount_cents)],
                          condition=AccountModel.account_id.exists())
                tx.update(JobModel(job_id),
                          actions=[JobModel.pool_cents.add(-entry.amount_cents),
                                   JobModel.bonus_cents.add(entry.amount_cents)],
                          condition=JobModel.pool_cents >= entry.amount_cents)
        except TransactWriteError as error:
            _raise_transient(error)
            reasons = [r.code if r is not None else None for r in (error.cancellation_reasons or [])]
            if error.cause_response_code != "TransactionCanceledException":
                raise
            if {"TransactionConflict", "ThrottlingError"} & set(reasons):
                raise TransientError("a concurrent write got there first; try again") from error
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


class DynamoCatalog:
    """Cohorts and qualification tests, stored whole as JSON."""

    def put_cohort(self, cohort: Any) -> None:
        """Create or replace a cohort."""
        CatalogModel("cohort", cohort.name, body={"skills": list(cohort.skills),
                                                  "unit_cents": cohort.unit_cents},
                     created_at=time.time()).save()

    def get_cohort(self, name: str) -> Any | None:
        """A cohort by name."""
        from chalicelib.domain.qualifications import Cohort

        try:
            r = CatalogModel.get("cohort", name)
        except CatalogModel.DoesNotExist:
            return None
        return Cohort(r.name, tuple(r.body["skills"]), dict(r.body["unit_cents"]))

    def cohorts(self) -> list[Any]:
        """Every cohort, by name."""
        return [self.get_cohort(r.name) for r in CatalogModel.query("cohort")]

    def put_qualification(self, qualification: Any) -> None:
        """Store a new test (its id is fresh, so nothing is overwritten)."""
        body = {k: v for k, v in vars(qualification).items() if k != "qual_id"}
        body["items"] = list(body["items"])
        CatalogModel("qualification", qualification.qual_id, body=body,
                     created_at=time.time()).save(CatalogModel.name.does_not_exist())

    def get_qualification(self, qual_id: str) -> Any | None:
        """A test by id."""
        from chalicelib.domain.qualifications import Qualification

        try:
            r = CatalogModel.get("qualification", qual_id)
        except CatalogModel.DoesNotExist:
            return None
        return Qualification(qual_id=r.name, **{**r.body, "items": tuple(r.body["items"])})

    def qualifications(self) -> list[Any]:
        """Every test, by id."""
        from chalicelib.domain.qualifications import Qualification

        return [Qualification(qual_id=r.name, **{**r.body, "items": tuple(r.body["items"])})
                for r in CatalogModel.query("qualification")]
