"""Workers' gold records, blocks and qualification attempts."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.cursors import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.gold import serving_key
from chalicelib.adapters.dynamo.writes import conditional_update, transact_once
from chalicelib.adapters.models import GoldServingModel, WorkerStatsModel
from chalicelib.domain.ids import parse_assignment_id
from chalicelib.domain.ports import WorkerRecord


def _record_from(r: WorkerStatsModel) -> WorkerRecord:
    return WorkerRecord(
        r.worker_id, r.scope, int(r.gold_answers or 0), int(r.gold_correct or 0),
        None if r.shown_gold_answers is None else int(r.shown_gold_answers),
        None if r.shown_gold_correct is None else int(r.shown_gold_correct),
        r.blocked_at, r.blocked_reason)


EVERYWHERE = "*"
BLOCKED = "blocked#"
# The scope of the record kept beside each block everywhere, so the workers blocked
# everywhere are one query of the by_scope index (every worker has a "*" record); a block
# from a job has one too ("blocked#<job id>"), so a job's blocked workers are one query of
# their own, not of every worker of the job.
BLOCKED_EVERYWHERE = BLOCKED + EVERYWHERE


def listing_scope(scope: str) -> str:
    """The scope of the record listing a block in scope (a job id, or "*")."""
    return BLOCKED + scope
# Records a query of a job's workers reads per request.
BLOCK_PAGE = 500


class DynamoWorkerStats:
    """Workers' gold records and blocks."""

    def record_gold(self, worker_id: str, job_id: str, assignment_id: str, correct: bool
                    ) -> tuple[int, int] | None:
        """Score a gold answer in the job's record and the overall one, together and once per
        assignment: the scoring mark is on the worker's serving of the gold item (one per
        item and worker, named by the assignment id), so a retried submit scores nothing and
        no record grows with the worker's gold answers; return the job's totals after it."""
        counts: list[Action] = [WorkerStatsModel.gold_answers.add(1),
                  WorkerStatsModel.gold_correct.add(1 if correct else 0)]
        _, item_id, _, _ = parse_assignment_id(assignment_id)

        def write(tx: TransactWrite) -> None:
            tx.update(GoldServingModel(serving_key(job_id, item_id), worker_id),
                      actions=[GoldServingModel.scored.set(assignment_id)],
                      condition=GoldServingModel.scored.does_not_exist())
            tx.update(WorkerStatsModel(worker_id, job_id), actions=counts)
            tx.update(WorkerStatsModel(worker_id, EVERYWHERE), actions=counts)

        if not transact_once(write):
            return None
        record = WorkerStatsModel.get(worker_id, job_id, consistent_read=True)
        return int(record.gold_answers), int(record.gold_correct)

    def mark_blocked(self, worker_id: str, scope: str, reason: str, now: float,
                     starts_at: float | None = None) -> None:
        """Record a block refusing leases from starts_at (default now). The first block's
        start and reason are kept, except that a block at once replaces one starting later."""
        # listed first: a listed worker not blocked costs a read, a block unlisted is lost
        self.list_block(worker_id, scope)
        kept = WorkerStatsModel.blocked_at.does_not_exist()
        if starts_at is None:
            kept |= WorkerStatsModel.blocked_at > now
        start = now if starts_at is None else starts_at
        conditional_update(WorkerStatsModel, worker_id, scope,
                           [WorkerStatsModel.blocked_at.set(start),
                            WorkerStatsModel.blocked_reason.set(reason)],
                           kept)

    def unblock(self, worker_id: str, scope: str) -> None:
        """Lift a block (a block everywhere, then its listing)."""
        conditional_update(WorkerStatsModel, worker_id, scope,
                           [WorkerStatsModel.blocked_at.remove(),
                            WorkerStatsModel.blocked_reason.remove()],
                           None)
        WorkerStatsModel(worker_id, listing_scope(scope)).delete()

    def blocked_everywhere_ids(self, limit: int) -> list[str]:
        """Workers blocked everywhere: one query of the by_scope index under the listing's
        scope, at most limit + 1 records."""
        return [r.worker_id for r in WorkerStatsModel.by_scope.query(
            BLOCKED_EVERYWHERE, limit=limit + 1, page_size=limit + 1,
            attributes_to_get=["worker_id", "scope"])]

    def of_job(self, job_id: str, limit: int, cursor: str | None
               ) -> tuple[list[WorkerRecord], str | None]:
        """A page of a job's workers' records, by worker id: one query of the by_scope
        index of at most limit records, behind an opaque cursor (another job's is refused)."""
        start = decode_cursor(cursor, {"worker_id": "S", "scope": "S"}, {"scope": job_id})
        query = WorkerStatsModel.by_scope.query(job_id, limit=limit, page_size=limit,
                                                last_evaluated_key=start)
        records = [_record_from(r) for r in query]
        return records, encode_cursor(query.last_evaluated_key)

    def blocks_page(self, cursor: str | None, limit: int
                    ) -> tuple[list[WorkerRecord], str | None]:
        """One Scan request of at most limit records, those with blocked_at kept by a
        filter (a listing record has none), behind an opaque cursor."""
        start = decode_cursor(cursor, {"worker_id": "S", "scope": "S"}, {})
        scan = WorkerStatsModel.scan(WorkerStatsModel.blocked_at.exists(), page_size=limit,
                                     last_evaluated_key=start)
        page = next(scan.page_iter)  # one request: the iterator would go on to fill a page
        records = [_record_from(WorkerStatsModel.from_raw_data(raw))
                   for raw in page.get("Items", [])]
        return records, encode_cursor(page.get("LastEvaluatedKey"))

    def list_block(self, worker_id: str, scope: str) -> None:
        """Put the block's listing record (key only: a repeat writes the same)."""
        WorkerStatsModel(worker_id, listing_scope(scope)).save()

    def record(self, worker_id: str, scope: str) -> WorkerRecord | None:
        """One record, strongly consistent."""
        try:
            return _record_from(WorkerStatsModel.get(worker_id, scope, consistent_read=True))
        except WorkerStatsModel.DoesNotExist:
            return None

    def blocks_in_job(self, job_id: str, worker_ids: Iterable[str] | None = None,
                      limit: int | None = None) -> dict[str, float]:
        """Worker id -> when their block from the job starts refusing leases: of the given
        workers (one strongly consistent batch read per 100), or of every worker blocked from
        the job (the job's listing of blocks, queried a page at a time, keys only, then the
        listed workers' records read as for given workers); with limit, at most limit listed."""
        if worker_ids is None:
            worker_ids = [r.worker_id for r in WorkerStatsModel.by_scope.query(
                listing_scope(job_id), limit=limit, page_size=min(limit or BLOCK_PAGE, BLOCK_PAGE),
                attributes_to_get=["worker_id", "scope"])]
        keys = [(worker, job_id) for worker in sorted(set(worker_ids))]
        if not keys:
            return {}
        return {r.worker_id: float(r.blocked_at) for r in WorkerStatsModel.batch_get(
            keys, consistent_read=True, attributes_to_get=["worker_id", "scope", "blocked_at"])
            if r.blocked_at is not None}

    def of_worker(self, worker_id: str) -> list[WorkerRecord]:
        """One worker's records (overall and per job)."""
        return [_record_from(r) for r in WorkerStatsModel.query(worker_id)]

    def publish_shown(self, job_id: str) -> None:
        """Copy the live gold counts of the job's workers to what they see."""
        for record in WorkerStatsModel.by_scope.query(job_id):
            conditional_update(WorkerStatsModel, record.worker_id, job_id,
                               [WorkerStatsModel.shown_gold_answers.set(
                                    int(record.gold_answers or 0)),
                                WorkerStatsModel.shown_gold_correct.set(
                                    int(record.gold_correct or 0))],
                               None)

    def start_attempt(self, worker_id: str, qual_id: str, attempt_id: str, now: float,
                      retake_seconds: int) -> bool:
        """One conditional write: not passed, and no attempt within retake_seconds."""
        ok, _ = conditional_update(
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
        ok, _ = conditional_update(
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
