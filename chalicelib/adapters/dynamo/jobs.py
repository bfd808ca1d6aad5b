"""Jobs: conditional state changes, counters, money, the outbox and bulk approval marks, and
the job's conversion between record and domain. Counting answers moves items, the workers'
accruals and the job's small counters record (JobCountsModel) in one transaction; the job
record itself is not written. The job's money and review counts are a small record of their
own (JobMoneyModel), which reservations, refunds, rejections, settlements and bonuses write
instead of the job record. The instructions are a record of their own
(JobInstructionsModel), written with the job and with each revision of them."""
from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.constants import BATCH_GET_ITEM
from pynamodb.exceptions import DeleteError, GetError, PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo import open_jobs as index
from chalicelib.adapters.dynamo.gold import count_on_serving
from chalicelib.adapters.dynamo.ledger import accrual_key
from chalicelib.adapters.dynamo.paging import newest_first
from chalicelib.adapters.dynamo.writes import conditional_update, raise_transient, transact_once
from chalicelib.adapters.models import (
    AccrualModel, IngestRangeModel, ItemModel, JobCountsModel, JobInstructionsModel, JobModel,
    JobMoneyModel, JobPassModel, QuoteModel, counts_key, instructions_key, money_key, pass_key,
    range_key,
)
from chalicelib.domain import payouts
from chalicelib.domain.model import ACTIVE, INGESTING, CountedAnswer, Job, Offer
from chalicelib.domain.ports import ApprovalRequest
from chalicelib.domain.webhooks import record_has_events
from chalicelib.errors import Conflict, TransientError

COUNT_ATTEMPTS = 4
# Answers counted per transaction: an item (or serving) and an accrual each at most, and the
# counters record: 81 of a transaction's 100 writes.
COUNT_TX_ANSWERS = 40
# The job's fields kept on its money record (JobMoneyModel), not on the job record.
MONEY_FIELDS = ("pool_cents", "held_cents", "paid_cents", "bonus_cents", "approved_answers",
                "rejected_answers")
# How many jobs' instructions a container holds (each at most MAX_INSTRUCTIONS characters).
HELD_INSTRUCTIONS = 64


def _iso(timestamp: float) -> str:
    """A time as the ISO text the jobs table sorts by (microseconds, UTC)."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="microseconds")


def job_from_model(r: JobModel, counts: JobCountsModel | None = None,
                   instructions: JobInstructionsModel | None = None,
                   money: JobMoneyModel | None = None) -> Job:
    """A domain job from its record, its counters record (none yet: zero), its instructions
    record and its money record (none: zero); a job created before the instructions record
    existed has its instructions on the job record, and they are read from there."""
    m = money or JobMoneyModel()
    text, version = (r.instructions or "", int(r.instruction_version or 1)) \
        if instructions is None else (instructions.instructions, int(instructions.version))
    return Job(
        job_id=r.job_id, client_id=r.client_id, quote_id=r.quote_id, title=r.title,
        task_type=r.task_type, instructions=text, answer_schema=r.answer_schema,
        not_applicable=r.not_applicable, redundancy=int(r.redundancy),
        reward_cents=int(r.reward_cents), budget_cents=int(r.budget_cents),
        item_count=int(r.item_count), chunk_count=int(r.chunk_count),
        lease_seconds=int(r.lease_seconds), suite_size=int(r.suite_size or 1),
        deadline=r.deadline, created_at=datetime.fromisoformat(r.created_at).timestamp(), state=r.state,
        required_skills=tuple(sorted(r.required_skills or ())),
        min_skill_scores=r.min_skill_scores or {}, adaptive=r.adaptive or {},
        report_settings=r.report_settings or {},
        phase=r.phase or "production", pilot_items=int(r.pilot_items or 0),
        instruction_version=version, promotion=r.promotion or {},
        transitions=tuple(json.loads(str(entry)) for entry in (r.transitions or ())),
        events_sent=int(r.events_sent or 0), events_due_at=r.events_due_at,
        request_digest=r.request_digest or "", upload=r.upload or {}, mturk=r.mturk or {},
        budget_alerted=bool(r.budget_alerted), budget_alert_at=r.budget_alert_at,
        gold_items=int(r.gold_items or 0), quality=r.quality or {},
        pool_cents=int(m.pool_cents or 0), held_cents=int(m.held_cents or 0),
        gold_slots=int(r.gold_slots or 0),
        auto_approve_seconds=int(r.auto_approve_seconds if r.auto_approve_seconds is not None
                                 else 3 * 24 * 3600), paid_cents=int(m.paid_cents or 0),
        bonus_cents=int(m.bonus_cents or 0), approved_answers=int(m.approved_answers or 0),
        rejected_answers=int(m.rejected_answers or 0),
        chunks_written=int(counts.chunks_written or 0) if counts else 0,
        answered=int(counts.answered or 0) if counts else 0,
        items_done=int(counts.items_done or 0) if counts else 0,
        round=int(r.round or 1), finalize_at=r.finalize_at, cancelled_at=r.cancelled_at,
        aggregating_at=r.aggregating_at,
        results_key=r.results_key,
        result_count=None if r.result_count is None else int(r.result_count),
        done_at=r.done_at, error=r.error,
    )


class HeldInstructions:
    """The instructions records this container has read, by job id, the most recently read
    kept. A job's instructions at a version never change (a revision takes a higher version),
    so a held record stands for the job's instructions while its record names that version."""

    def __init__(self, size: int = HELD_INSTRUCTIONS) -> None:
        self._size = size
        self._held: dict[str, JobInstructionsModel] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> JobInstructionsModel | None:
        """The job's instructions record as last read here (None: none held)."""
        with self._lock:
            return self._held.get(job_id)

    def put(self, job_id: str, record: JobInstructionsModel) -> None:
        """Hold a record just read, dropping the one read longest ago when full."""
        with self._lock:
            self._held.pop(job_id, None)
            self._held[job_id] = record
            while len(self._held) > self._size:
                self._held.pop(next(iter(self._held)))


class DynamoJobs:
    """Jobs."""

    def __init__(self) -> None:
        self._instructions = HeldInstructions()

    def create_job(self, job: Job) -> None:
        """Store the job, its counters, its money and its instructions and mark its quote used,
        together, so a quote buys one job (and its money record always exists)."""
        record = JobModel(
            job.job_id, client_id=job.client_id, quote_id=job.quote_id, title=job.title,
            task_type=job.task_type, answer_schema=job.answer_schema,
            not_applicable=job.not_applicable, redundancy=job.redundancy,
            reward_cents=job.reward_cents, budget_cents=job.budget_cents,
            item_count=job.item_count, chunk_count=job.chunk_count,
            lease_seconds=job.lease_seconds, deadline=job.deadline,
            suite_size=job.suite_size if job.suite_size > 1 else None,
            created_at=_iso(job.created_at), state=job.state, finalize_at=job.finalize_at,
            required_skills=set(job.required_skills) or None,
            min_skill_scores=job.min_skill_scores or None, adaptive=job.adaptive or None,
            round=job.round, report_settings=job.report_settings or None,
            phase=job.phase, pilot_items=job.pilot_items,
            instruction_version=job.instruction_version, promotion=job.promotion or None,
            transitions=[json.dumps(entry) for entry in job.transitions],
            gold_items=job.gold_items, quality=job.quality or None,
            gold_slots=job.gold_slots or None, auto_approve_seconds=job.auto_approve_seconds,
            request_digest=job.request_digest or None, upload=job.upload or None,
            mturk=job.mturk or None,
        )
        try:
            with TransactWrite(connection=JobModel._get_connection().connection) as tx:
                tx.save(record, condition=JobModel.job_id.does_not_exist())
                tx.save(JobCountsModel(counts_key(job.job_id), answered=job.answered,
                                       items_done=job.items_done,
                                       chunks_written=job.chunks_written))
                tx.save(_money_record(job))
                tx.save(_instructions_record(job.job_id, job.instructions,
                                             job.instruction_version))
                tx.update(QuoteModel(job.quote_id), actions=[QuoteModel.job_id.set(job.job_id)],
                          condition=QuoteModel.job_id.does_not_exist())
        except TransactWriteError as error:
            raise_transient(error)
            if error.cause_response_code == "TransactionCanceledException":
                raise Conflict("this quote was already used for a job", field="quote_id",
                               code="quote_used") from error
            raise

    def abandon_job(self, job_id: str, quote_id: str) -> None:
        """Delete a job still ingesting and free its quote, in one transaction."""
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            tx.delete(JobModel(job_id), condition=JobModel.state == INGESTING)
            tx.delete(JobCountsModel(counts_key(job_id)))
            tx.delete(JobMoneyModel(money_key(job_id)))
            tx.delete(JobInstructionsModel(instructions_key(job_id)))
            tx.update(QuoteModel(quote_id), actions=[QuoteModel.job_id.remove()],
                      condition=QuoteModel.job_id == job_id)

    def ingest_ranges(self, job_id: str, count: int, start: int = 0
                      ) -> list[dict[str, int] | None]:
        """The summaries of an uploaded job's ingest ranges start..start+count-1 (None: not
        counted yet), by BatchGetItem, strongly consistent (a hundred small records a
        request)."""
        keys = [range_key(job_id, index) for index in range(start, start + count)]
        found: dict[str, dict[str, int]] = {}
        try:
            for record in IngestRangeModel.batch_get(keys, consistent_read=True):
                found[record.job_id] = {"lines": int(record.lines), "items": int(record.items),
                                        "bad": int(record.bad), "pilot": int(record.pilot)}
        except PynamoDBException as error:
            raise_transient(error)
            raise
        return [found.get(key) for key in keys]

    def get_job(self, job_id: str, consistent: bool = True) -> Job | None:
        """A job by id: its record, its counters and its money in one BatchGetItem (each item
        rounded on its own: 2 read units strongly consistent, 1 eventually), with its
        instructions record in the same request unless this container holds it (then a
        GetItem only if the job record names another version)."""
        found = self._jobs([job_id], consistent)
        return found[0] if found else None

    def jobs_in_state(self, state: str, finalize_before: float | None = None,
                      limit: int | None = None) -> list[Job]:
        """Jobs in a state (from the by_state index, soonest due first), optionally only those
        due and at most limit of them, with their counters, money and instructions
        (eventually consistent, as the index)."""
        condition = None if finalize_before is None else JobModel.finalize_at <= finalize_before
        return self._jobs_listed(list(JobModel.by_state.query(state, condition, limit=limit,
                                                              page_size=limit)))

    def jobs_of_client(self, client_id: str, limit: int, cursor: str | None
                       ) -> tuple[list[Job], str | None]:
        """A page of a client's jobs, newest first, with their counters, money and
        instructions."""
        records, next_cursor = newest_first(JobModel.by_client, client_id, "client_id",
                                            {"job_id": "S", "client_id": "S", "created_at": "S"},
                                            limit, cursor, lambda r: r)
        return self._jobs_listed(records), next_cursor

    def _jobs_listed(self, records: Sequence[JobModel]) -> list[Job]:
        """Jobs read from an index: the index's copy stands for the job record, and only
        the counters, money and instructions records are read beside it, in the same
        BatchGetItems (eventually consistent)."""
        return self._jobs([r.job_id for r in records], consistent=False, records=records) \
            if records else []

    def _jobs(self, job_ids: Sequence[str], consistent: bool,
              records: Sequence[JobModel] | None = None) -> list[Job]:
        """Jobs made from their records (read here, or as an index returned them), their
        counters, money and instructions, in job_ids' order; jobs without a record are left
        out. Instructions records this container holds are not asked for again."""
        held = {job_id for job_id in job_ids if self._instructions.get(job_id) is not None}
        parts = _read_jobs(job_ids, consistent, with_records=records is None, held=held)
        rows: Sequence[JobModel | None] = records if records is not None else \
            [parts.records.get(job_id) for job_id in job_ids]
        found = []
        for job_id, record in zip(job_ids, rows):
            if record is not None:
                found.append(job_from_model(record, parts.counts.get(job_id),
                                            self._instructions_of(record, parts, consistent),
                                            parts.money.get(job_id)))
        return found

    def _instructions_of(self, record: JobModel, parts: _JobParts, consistent: bool
                         ) -> JobInstructionsModel | None:
        """The job's instructions record: as just read, or as held here if it is at the
        version the job record names, or else read now; None for a job created before the
        instructions record (its job record has them)."""
        job_id = record.job_id
        read = parts.instructions.get(job_id)
        if read is not None:
            self._instructions.put(job_id, read)
            return read
        if record.instructions is not None or job_id in parts.asked:
            return None
        held = self._instructions.get(job_id)
        if held is not None and int(held.version) == int(record.instruction_version or 1):
            return held
        try:
            read = JobInstructionsModel.get(instructions_key(job_id), consistent_read=consistent)
        except JobInstructionsModel.DoesNotExist:
            return None
        except GetError as error:
            raise_transient(error)
            raise
        self._instructions.put(job_id, read)
        return read

    def transition(self, job_id: str, from_states: Sequence[str], to_state: str,
                   record: Mapping[str, Any] | None = None, expect_round: int | None = None,
                   expect_items_done: int | None = None, **changes: Any) -> bool:
        """Conditional state change with extra attributes set alongside, and the change
        appended to the job's history when a record is given. expect_round and
        expect_items_done (at least) add to the condition. New instructions (with their
        instruction_version, which changes only with them) are written to the instructions
        record, and money (MONEY_FIELDS) to the money record, in the same transaction."""
        revised = _revision(job_id, changes)
        money = _money_changes(changes)

        def beside(tx: TransactWrite) -> None:
            if revised is not None:
                tx.save(revised)
            if money:
                tx.update(JobMoneyModel(money_key(job_id)), actions=list(money))

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
            if name == "instructions":  # off the job record (a job from before had them on it)
                actions.append(JobModel.instructions.remove())
                continue
            if name in MONEY_FIELDS:
                continue
            attribute = getattr(JobModel, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        condition = JobModel.state.is_in(*from_states)
        if expect_round is not None:
            condition &= JobModel.round == expect_round
        if revised is not None:  # a version is written once: its text never changes after
            condition &= JobModel.instruction_version.does_not_exist() | \
                (JobModel.instruction_version < revised.version)
        if to_state != ACTIVE and ACTIVE not in from_states:
            if expect_items_done is None and revised is None and not money:
                ok, _ = conditional_update(JobModel, job_id, None, actions, condition)
                return ok
            done = expect_items_done

            def write(tx: TransactWrite) -> None:
                tx.update(JobModel(job_id), actions=list(actions), condition=condition)
                if done is not None:
                    _check_items_done(tx, job_id, done)
                beside(tx)

            return transact_once(write)
        return self._transition_indexed(job_id, from_states, to_state, actions, condition,
                                        changes, expect_items_done, beside)

    def _transition_indexed(self, job_id: str, from_states: Sequence[str], to_state: str,
                            actions: Sequence[Action], condition: Any,
                            changes: Mapping[str, Any], expect_items_done: int | None,
                            beside: Callable[[TransactWrite], None]) -> bool:
        """A transition into or out of active, with the open-jobs index (and what beside
        writes: revised instructions, money) changed in the same transaction: the job is read
        first (the index record is made from it) and the write requires the state read, so a
        job that moved meanwhile is read again."""
        for _ in range(COUNT_ATTEMPTS):
            read = self.get_job(job_id)
            if read is None or read.state not in from_states:
                return False
            before: Job = read
            after = replace(before, state=to_state, **{
                name: value for name, value in changes.items() if name in Job.__dataclass_fields__})

            def write(tx: TransactWrite, before: Job = before, after: Job = after) -> None:
                tx.update(JobModel(job_id), actions=list(actions),
                          condition=condition & (JobModel.state == before.state))
                if expect_items_done is not None:
                    _check_items_done(tx, job_id, expect_items_done)
                beside(tx)
                if to_state == ACTIVE:
                    tx.save(index.open_job_record(Offer.of(after)))
                elif before.state == ACTIVE:
                    tx.delete(index.open_job_key(Offer.of(before)))

            if transact_once(write):
                return True
            now = self.get_job(job_id)
            if now is None or now.state == before.state:
                return False  # refused by the round or items-done condition, not a move
        raise TransientError("the job kept changing; try again")

    def open_jobs(self, key: str) -> list[Offer]:
        """The open-jobs index under one key, oldest job first."""
        return index.open_jobs(key)

    def mark_events_sent(self, job_id: str, sent_before: int, sent_now: int,
                         due_at_seen: float | None) -> None:
        """Move the job's published-events mark; off the outbox index unless a transition
        came after the read (then the sweeper publishes it if nothing else does)."""
        cleared = (JobModel.events_sent == sent_before) if sent_before else \
            (JobModel.events_sent.does_not_exist() | (JobModel.events_sent == 0))
        if due_at_seen is not None:
            ok, _ = conditional_update(JobModel, job_id, None,
                                       [JobModel.events_sent.set(sent_now),
                                        JobModel.events_queue.remove(),
                                        JobModel.events_due_at.remove()],
                                       cleared & (JobModel.events_due_at == due_at_seen))
            if ok:
                return
        conditional_update(JobModel, job_id, None, [JobModel.events_sent.set(sent_now)],
                           cleared & JobModel.job_id.exists())

    def jobs_with_events_due(self) -> list[str]:
        """Ids of jobs with transitions whose events are not all published (sparse index)."""
        return [r.job_id for r in JobModel.events_due.query("due")]

    def claim_budget_alert(self, job_id: str, now: float) -> float:
        """The time of the job's budget alert: now, unless an earlier claim set one."""
        _, raw = conditional_update(JobModel, job_id, None,
                                    [JobModel.budget_alert_at.set(JobModel.budget_alert_at | now)],
                                    JobModel.job_id.exists())
        return float((raw or {}).get("budget_alert_at", {}).get("N", now))

    def mark_budget_alerted(self, job_id: str) -> None:
        """Record that the budget alert was published."""
        conditional_update(JobModel, job_id, None, [JobModel.budget_alerted.set(True)],
                           JobModel.job_id.exists())

    def claim_refit(self, job_id: str, mark: int) -> bool:
        """Take the right to refit the online model at mark (once per mark)."""
        ok, _ = conditional_update(JobModel, job_id, None, [JobModel.refit_mark.set(mark)],
                                   JobModel.refit_mark.does_not_exist()
                                   | (JobModel.refit_mark < mark))
        return ok

    def claim_pass(self, job_id: str, pass_id: str, after: str | None, now: float,
                   stale_before: float) -> bool:
        """Hold the job's pass record for pass_id at its page after `after`: one conditional
        write."""
        ok, _ = conditional_update(
            JobPassModel, pass_key(job_id), None,
            [JobPassModel.pass_id.set(pass_id), JobPassModel.at.set(now),
             JobPassModel.after.set(after or "")],
            JobPassModel.job_id.does_not_exist() | (JobPassModel.at < stale_before)
            | ((JobPassModel.pass_id == pass_id) & (JobPassModel.after == (after or ""))))
        return ok

    def advance_pass(self, job_id: str, pass_id: str, after: str | None, cursor: str) -> None:
        """Move the pass record from after to cursor: one conditional write."""
        conditional_update(JobPassModel, pass_key(job_id), None,
                           [JobPassModel.after.set(cursor)],
                           (JobPassModel.pass_id == pass_id)
                           & (JobPassModel.after == (after or "")))

    def end_pass(self, job_id: str, pass_id: str) -> None:
        """Delete the job's pass record if pass_id holds it."""
        try:
            JobPassModel(pass_key(job_id)).delete(condition=JobPassModel.pass_id == pass_id)
        except DeleteError as error:
            raise_transient(error)
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def record_counted(self, job_id: str, answers: Sequence[CountedAnswer],
                       pay_delay: float | None = None) -> int:
        """Mark answers counted on their items and add them to the job's counters record and
        (with pay_delay) to their workers' accruals, together, so an answer accrues exactly
        once; the job record itself is not written.

        One transaction per COUNT_TX_ANSWERS answers (items, accruals and the counters record
        stay within a transaction's 100 writes). Consumers counting the same job at once
        conflict on the counters record, so a conflict is retried here a few times with jitter
        before the batch is left to SQS. If any answer was counted before (a redelivery), the
        answers are counted one by one instead.
        """
        if len(answers) > COUNT_TX_ANSWERS:
            return sum(self.record_counted(job_id, answers[start:start + COUNT_TX_ANSWERS],
                                           pay_delay)
                       for start in range(0, len(answers), COUNT_TX_ANSWERS))
        for attempt in range(COUNT_ATTEMPTS):
            try:
                return self._count_together(job_id, answers, pay_delay)
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
                raise_transient(error)
                if error.cause_response_code != "TransactionCanceledException" or \
                        set(reasons) != {"ConditionalCheckFailed"}:
                    raise
                if len(answers) == 1:
                    return 0  # counted before: a redelivery
                break
        return sum(self.record_counted(job_id, [answer], pay_delay) for answer in answers)

    def reserve(self, job_id: str, cents: int, source: str = "pool") -> bool:
        """Take cents from the pool (or the money held for replacements) in one conditional
        write of the money record (never below zero)."""
        money = money_attribute(source)
        ok, _ = conditional_update(JobMoneyModel, money_key(job_id), None, [money.add(-cents)],
                                   money >= cents)
        return ok

    def refund(self, job_id: str, cents: int, source: str = "pool") -> None:
        """Give cents back to the pool (or to the money held for replacements)."""
        conditional_update(JobMoneyModel, money_key(job_id), None,
                           [money_attribute(source).add(cents)], JobMoneyModel.job_id.exists())

    def buy(self, job_id: str, rewards_cents: int, fee_cents: int) -> bool:
        """Grow the job's budget (on the job record) by rewards and fee and its pool (on the
        money record) by the rewards, in one transaction of two additions."""
        def write(tx: TransactWrite) -> None:
            tx.update(JobModel(job_id), actions=[
                JobModel.budget_cents.add(rewards_cents + fee_cents)],
                condition=JobModel.job_id.exists())
            tx.update(JobMoneyModel(money_key(job_id)), actions=[
                JobMoneyModel.pool_cents.add(rewards_cents)],
                condition=JobMoneyModel.job_id.exists())

        return transact_once(write)

    def release_held(self, job_id: str) -> int:
        """Move the money held for replacements to the pool; return how much moved. Only the
        money record is read and written."""
        for _ in range(COUNT_ATTEMPTS):
            try:
                money = JobMoneyModel.get(money_key(job_id), consistent_read=True)
            except JobMoneyModel.DoesNotExist:
                return 0
            except GetError as error:
                raise_transient(error)
                raise
            held = int(money.held_cents or 0)
            if not held:
                return 0
            ok, _ = conditional_update(JobMoneyModel, money_key(job_id), None,
                                       [JobMoneyModel.held_cents.set(0),
                                        JobMoneyModel.pool_cents.add(held)],
                                       JobMoneyModel.held_cents == held)
            if ok:
                return held
        raise TransientError("the job's money kept changing; try again")

    def request_approval(self, job_id: str, before: float | None, by: str, now: float) -> None:
        """Queue the job's bulk approval on the sparse reviews_due index, from the start."""
        conditional_update(JobModel, job_id, None,
                           [JobModel.review_queue.set("due"), JobModel.review_due_at.set(now),
                            JobModel.approve_before.set(-1 if before is None else before),
                            JobModel.approve_by.set(by), JobModel.approve_cursor.remove()],
                           JobModel.job_id.exists())

    def approvals_requested(self, now: float) -> list[ApprovalRequest]:
        """Bulk approvals queued by now (the index holds keys only: each job's request is
        read with a projection)."""
        found = []
        for key in JobModel.reviews_due.query("due", JobModel.review_due_at <= now):
            try:
                r = JobModel.get(key.job_id, consistent_read=True, attributes_to_get=[
                    "job_id", "review_due_at", "approve_before", "approve_cursor", "approve_by"])
            except JobModel.DoesNotExist:
                continue
            if r.review_due_at is None:
                continue
            before = r.approve_before
            found.append(ApprovalRequest(r.job_id, r.review_due_at,
                                         None if before is None or before < 0 else before,
                                         r.approve_by or "", r.approve_cursor))
        return found

    def advance_approval(self, request: ApprovalRequest, cursor: str | None) -> None:
        """Store the cursor, or take the job off the queue; either only while the request is
        the one read (a newer request starts again from the first window)."""
        same = JobModel.review_due_at == request.requested_at
        if cursor is not None:
            conditional_update(JobModel, request.job_id, None,
                               [JobModel.approve_cursor.set(cursor)], same)
            return
        conditional_update(JobModel, request.job_id, None,
                           [JobModel.review_queue.remove(), JobModel.review_due_at.remove(),
                            JobModel.approve_before.remove(), JobModel.approve_cursor.remove(),
                            JobModel.approve_by.remove()], same)

    def _count_together(self, job_id: str, answers: Sequence[CountedAnswer],
                        pay_delay: float | None = None) -> int:
        by_item: dict[str, list[CountedAnswer]] = defaultdict(list)
        for answer in answers:
            by_item[answer.item_id].append(answer)
        completed = 0
        with TransactWrite(connection=ItemModel._get_connection().connection) as tx:
            for item_id, entries in by_item.items():
                if entries[0].gold:  # a gold answer's mark is on its serving
                    for entry in entries:
                        count_on_serving(tx, job_id, item_id, entry.worker_id,
                                         entry.assignment_id)
                    continue
                actions = [ItemModel.counted[e.worker_id].set(e.assignment_id) for e in entries]
                condition = None
                for entry in entries:
                    clause = ItemModel.counted[entry.worker_id].does_not_exist()
                    condition = clause if condition is None else condition & clause
                if any(entry.item_complete for entry in entries):
                    actions += [ItemModel.open_job.remove(), ItemModel.done.set(True)]
                    completed += 1
                tx.update(ItemModel(job_id, item_id), actions=actions, condition=condition)
            if pay_delay is not None:
                self._accrue(tx, job_id, answers, pay_delay)
            counters: list[Action] = [JobCountsModel.answered.add(len(answers))]
            if completed:
                counters.append(JobCountsModel.items_done.add(completed))
            tx.update(JobCountsModel(counts_key(job_id)), actions=counters)
        return len(answers)

    @staticmethod
    def _accrue(tx: TransactWrite, job_id: str, answers: Sequence[CountedAnswer],
                pay_delay: float) -> None:
        """Add the answers to their workers' accruals (one update per worker and pay window),
        putting each on the due index unless it is there: a settled accrual that gets a
        late answer is due again at once (its due time has passed)."""
        per_accrual: dict[tuple[str, int], int] = defaultdict(int)
        for answer in answers:
            per_accrual[(answer.worker_id, payouts.window_of(answer.assignment_id))] += 1
        for (worker_id, window), count in per_accrual.items():
            due = payouts.window_end(window) + pay_delay
            tx.update(AccrualModel(worker_id, accrual_key(job_id, window)), actions=[
                AccrualModel.accrued.add(count), AccrualModel.accrual_job.set(job_id),
                AccrualModel.window.set(window),
                AccrualModel.due_shard.set(payouts.due_shard(job_id, worker_id)),
                AccrualModel.due_at.set(AccrualModel.due_at | due)])


def _check_items_done(tx: TransactWrite, job_id: str, at_least: int) -> None:
    """Require, in the transaction, at least this many items counted complete."""
    condition = JobCountsModel.items_done >= at_least
    if at_least <= 0:
        condition |= JobCountsModel.items_done.does_not_exist()
    tx.condition_check(JobCountsModel, counts_key(job_id), condition=condition)


def _money_changes(changes: Mapping[str, Any]) -> list[Action]:
    """The money record's actions for a transition's money changes (None removes)."""
    return [getattr(JobMoneyModel, name).remove() if value is None
            else getattr(JobMoneyModel, name).set(value)
            for name, value in changes.items() if name in MONEY_FIELDS]


def _money_record(job: Job) -> JobMoneyModel:
    """A new job's money record: its pool, and whatever else the job starts with."""
    return JobMoneyModel(money_key(job.job_id), pool_cents=job.pool_cents,
                         held_cents=job.held_cents or None, paid_cents=job.paid_cents,
                         bonus_cents=job.bonus_cents, approved_answers=job.approved_answers,
                         rejected_answers=job.rejected_answers)


def _instructions_record(job_id: str, text: str, version: int) -> JobInstructionsModel:
    """A job's instructions record at a version."""
    return JobInstructionsModel(instructions_key(job_id), instructions=text, version=version)


def _revision(job_id: str, changes: Mapping[str, Any]) -> JobInstructionsModel | None:
    """The instructions record a transition's changes write (None: they keep the
    instructions); the text and its version change together or not at all."""
    if "instructions" not in changes and "instruction_version" not in changes:
        return None
    if changes.get("instructions") is None or changes.get("instruction_version") is None:
        raise ValueError("instructions and instruction_version change together")
    return _instructions_record(job_id, changes["instructions"],
                                int(changes["instruction_version"]))


# The most keys one BatchGetItem may ask for.
BATCH_KEYS = 100


class _JobParts:
    """A batch read's records by job id: the job records, counters, money and instructions,
    and the jobs whose instructions record was asked for."""

    def __init__(self) -> None:
        self.records: dict[str, JobModel] = {}
        self.counts: dict[str, JobCountsModel] = {}
        self.money: dict[str, JobMoneyModel] = {}
        self.instructions: dict[str, JobInstructionsModel] = {}
        self.asked: set[str] = set()

    def add(self, item: dict[str, Any]) -> None:
        """File one item of a BatchGetItem's response by its key."""
        key = item["job_id"]["S"]
        if key.endswith("#counts"):
            self.counts[key.removesuffix("#counts")] = JobCountsModel.from_raw_data(item)
        elif key.endswith("#money"):
            self.money[key.removesuffix("#money")] = JobMoneyModel.from_raw_data(item)
        elif key.endswith("#instructions"):
            self.instructions[key.removesuffix("#instructions")] = \
                JobInstructionsModel.from_raw_data(item)
        else:
            self.records[key] = JobModel.from_raw_data(item)


def _read_jobs(job_ids: Sequence[str], consistent: bool, with_records: bool = True,
               held: Collection[str] = ()) -> _JobParts:
    """Job records (unless with_records is False), counters and money records and the
    instructions records of the jobs not in held, by job id, in BatchGetItems of up to 100
    keys (the records of a job in the same request), unprocessed keys asked again."""
    connection = JobModel._get_connection()
    table = connection.table_name
    parts = _JobParts()
    unique = list(dict.fromkeys(job_ids))
    parts.asked = {job_id for job_id in unique if job_id not in held}
    per_batch = BATCH_KEYS // (4 if with_records else 3)
    for start in range(0, len(unique), per_batch):
        keys = [{"job_id": {"S": key}} for job_id in unique[start:start + per_batch]
                for key in ((job_id,) if with_records else ())
                + (counts_key(job_id), money_key(job_id))
                + ((instructions_key(job_id),) if job_id in parts.asked else ())]
        while keys:
            request = {"RequestItems": {table: {"Keys": keys, "ConsistentRead": consistent}}}
            try:
                response = connection.connection.dispatch(BATCH_GET_ITEM, request)
            except ClientError as error:
                raise_transient(error)
                raise
            for item in response.get("Responses", {}).get(table, []):
                parts.add(item)
            keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    return parts


def money_attribute(source: str) -> Any:
    """The money record's attribute that holds a kind of money: the pool or what is held for
    replacements."""
    return {"pool": JobMoneyModel.pool_cents, "held": JobMoneyModel.held_cents}[source]
