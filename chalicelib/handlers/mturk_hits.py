"""The MTurk-compatible API's HIT operations (merged into chalicelib.handlers.mturk).

A HIT is a job of one item (task type `collection`, answers are QuestionFormAnswers XML):
bought from an ordinary quote (items x redundancy = MaxAssignments answers at Reward, plus
the platform fee), created with the job store and its one item written synchronously through
the ingest handler, so the HIT is Assignable when CreateHIT answers. What MTurk keeps on a HIT
that the job does not is the HIT's `mturk#hit#<client>` record (domain.mturk_hits.hit_settings).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.adapters.cursors import mturk_page_tokens
from chalicelib.domain import mturk, phases
from chalicelib.domain import mturk_hits as hits
from chalicelib.domain.ids import item_id
from chalicelib.domain.jobs import MAX_DEADLINE_SECONDS, build_job
from chalicelib.domain.model import (
    ACTIVE, AGGREGATING, CANCELLED, CLOSING, DONE, ItemState, Job, Principal, Quote,
)
from chalicelib.domain.mturk_ids import hit_group_id, hit_id, hit_type_id, job_of_hit
from chalicelib.domain.ports import MTurkRecord, MTurkRecords
from chalicelib.domain.pricing import MIN_REWARD_CENTS, platform_fee, price_quote
from chalicelib.errors import Conflict
from chalicelib.handlers.jobs import ingest_chunk, live_leases, stop_job
from chalicelib.handlers.mturk_events import emit
from chalicelib.handlers.platform import Platform
from chalicelib.observability import logger

TASK_TYPE = "collection"
# A UniqueRequestToken names its first request for this long (MTurk's 24 hours).
# A token whose request may still be running (a CreateHIT takes well under this).
TOKEN_IN_FLIGHT_SECONDS = 60
TOKEN_SECONDS = 24 * 3600
MAX_TOKEN = 64
# The one item of a HIT's job.
ITEM = item_id(0, 1)
HIT_ALREADY_EXISTS = "AWS.MechanicalTurk.HitAlreadyExists"
DUPLICATE_REQUEST = "AWS.MechanicalTurk.DuplicateRequest"
# Attempts at one conditional change (a slot, a record) that another writer got to first.
ATTEMPTS = 4


def records(p: Platform) -> MTurkRecords:
    """The stage's MTurk records; a RequestError on a stage without them."""
    if p.mturk is None:
        raise mturk.request_error("HITs are not available on this stage",
                                  "AWS.MechanicalTurk.ServiceUnavailable")
    return p.mturk


def _floor() -> int:
    return MIN_REWARD_CENTS[TASK_TYPE]


def create_hit_type(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Register a HIT type; the same properties again give the same HITTypeId (MTurk's
    CreateHITType is idempotent by value)."""
    return {"HITTypeId": _register_type(p, client, hits.type_properties(body, _floor()))}


def _register_type(p: Platform, client: Principal, properties: dict[str, Any]) -> str:
    type_id = hit_type_id(client.account_id, properties)
    records(p).put_new(hits.hit_type_kind(client.account_id), type_id, properties, p.now())
    return type_id


def create_hit(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """CreateHIT: the HIT type of its properties (registered as CreateHITType would), then the
    HIT, as CreateHITWithHITType."""
    properties = hits.type_properties(body, _floor())
    return _create(p, client, properties, _register_type(p, client, properties), body)


def create_hit_with_hit_type(p: Platform, client: Principal, body: dict[str, Any]
                             ) -> dict[str, Any]:
    """A HIT of a type the client registered."""
    type_id = body.get("HITTypeId")
    if not isinstance(type_id, str) or not type_id:
        raise hits.invalid("Value null at 'hITTypeId' failed to satisfy constraint: "
                           "Member must not be null")
    found = records(p).get(hits.hit_type_kind(client.account_id), type_id)
    if found is None:
        raise mturk.request_error(f"HITType {type_id} does not exist.",
                                  "AWS.MechanicalTurk.HITTypeDoesNotExist")
    return _create(p, client, found.body, type_id, body)


def _create(p: Platform, client: Principal, properties: dict[str, Any], type_id: str,
            body: dict[str, Any]) -> dict[str, Any]:
    """Make the HIT's job of one item, written through the ordinary quote, job and ingest
    code, and its record; a repeated UniqueRequestToken is an error naming the first HIT."""
    now = p.now()
    question = hits.parse_question(body)
    lifetime = hits.lifetime(body)
    assignments = hits.max_assignments(body)
    annotation = hits.text(body, "RequesterAnnotation", hits.MAX_ANNOTATION, required=False)
    token = _token(body)
    job, quote = _hit_job(p, client, properties, question, assignments, now + lifetime,
                          type_id, now)
    hid = hit_id(job.job_id)
    settings = hits.hit_settings(question, properties, type_id, hit_group_id(type_id),
                                 annotation, now)
    if token is not None:
        _claim_token(p, client, "CreateHIT", token, {"HITId": hid}, now,
                     lambda found: _hit_exists(p, client, found.get("HITId")),
                     lambda found: mturk.request_error(
                         f"The HIT with ID \"{found.get('HITId')}\" was already created with "
                         "this UniqueRequestToken.", HIT_ALREADY_EXISTS))
    made: list[str] = []
    try:
        records(p).put_new(hits.hit_kind(client.account_id), hid, settings, now)
        made.append("record")
        p.quotes.put_quote(quote)
        p.jobs.create_job(job)
        made.append("job")
        ingest_chunk(p, {"job_id": job.job_id, "chunk": 0, "items": [
            {"item_id": ITEM, "data": question.data, "external_id": None}]})
        created = p.jobs.get_job(job.job_id)
        if created is None or created.state != ACTIVE:
            raise RuntimeError(f"the HIT's job {job.job_id} did not become active")
    except Exception:
        _undo(p, client, job, hid, made, token)
        raise
    emit(p, created, "HITCreated", at=now)
    return {"HIT": hits.render_hit(created, settings, p.items.get_item(job.job_id, ITEM),
                                   p.now())}


def _hit_job(p: Platform, client: Principal, properties: dict[str, Any],
             question: hits.Question, assignments: int, deadline: float, type_id: str,
             now: float) -> tuple[Job, Quote]:
    """The HIT's job and its quote (not stored yet), priced and built as any job: a quote of
    MaxAssignments answers at the reward (priced as that many items of one answer, the same
    money, so the marketplace's redundancy bound of ordinary jobs does not apply), then one
    item taking them all."""
    reward = hits.reward_cents(properties, _floor())
    quote = price_quote(client.account_id, {
        "task_type": TASK_TYPE, "items": assignments, "redundancy": 1, "reward_cents": reward,
        "gold_rate": 0}, now, p.catalog.get_cohort)
    quote = replace(quote, items=1, redundancy=assignments)
    job, _ = build_job(quote, client.account_id, {
        "quote_id": quote.quote_id, "title": properties["Title"],
        "instructions": properties["Description"], "items": [{"data": {"question": "-"}}],
        "lease_seconds": int(properties["AssignmentDurationInSeconds"]),
        "auto_approve_seconds": int(properties["AutoApprovalDelayInSeconds"]),
        "answer_schema": {}, "pilot": {"items": 0},
        "quality": {"gold_rate": 0, "min_seconds": 0},
    }, now)
    return replace(job, deadline=deadline, finalize_at=deadline,
                   answer_schema=hits.answer_schema(assignments),
                   mturk={"hit_type_id": type_id,
                          "requirements": list(properties["QualificationRequirements"]),
                          "question": question.kind, "frame_height": question.frame_height}
                   ), quote


def _undo(p: Platform, client: Principal, job: Job, hid: str, made: list[str],
          token: str | None) -> None:
    """After a failure part-way through CreateHIT: take back what was written, so the same
    request (and its UniqueRequestToken) can simply be sent again."""
    steps: list[Callable[[], Any]] = []
    if "job" in made:
        steps.append(lambda: p.jobs.abandon_job(job.job_id, job.quote_id))
    if "record" in made:
        steps.append(lambda: records(p).delete(hits.hit_kind(client.account_id), hid))
    if token is not None:
        steps.append(lambda: records(p).delete(hits.token_kind(client.account_id),
                                               f"CreateHIT#{token}"))
    for step in steps:
        try:
            step()
        except Exception:  # the original failure is what the caller hears of
            logger.exception("undoing a failed CreateHIT")


def _token(body: dict[str, Any]) -> str | None:
    token = body.get("UniqueRequestToken")
    if token is None:
        return None
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN:
        raise hits.invalid(f"UniqueRequestToken must be 1 to {MAX_TOKEN} characters")
    return token


def _claim_token(p: Platform, client: Principal, operation: str, token: str,
                 body: dict[str, Any], now: float, lives: Callable[[dict[str, Any]], bool],
                 repeated: Callable[[dict[str, Any]], mturk.MTurkError]) -> None:
    """Hold a UniqueRequestToken for this request: a token used in the last 24 hours by a
    request whose effect exists (lives) is `repeated`'s error, not a replay; one taken less
    than TOKEN_IN_FLIGHT_SECONDS ago whose effect is not there yet is a retryable error (its
    request may still be running, e.g. a client retrying after a gateway timeout); an older
    one, or one whose request left nothing, is taken over."""
    kind, name = hits.token_kind(client.account_id), f"{operation}#{token}"
    for _ in range(ATTEMPTS):
        if records(p).put_new(kind, name, body, now):
            return
        found = records(p).get(kind, name)
        if found is None:
            continue
        if now - found.created_at < TOKEN_SECONDS and lives(found.body):
            raise repeated(found.body)
        if now - found.created_at < TOKEN_IN_FLIGHT_SECONDS:
            break  # its request may still be running: taking it over could do the work twice
        records(p).delete(kind, name)
    raise mturk.request_error("this UniqueRequestToken is in use by another request; "
                              "retry with the same UniqueRequestToken",
                              "AWS.MechanicalTurk.ServiceUnavailable")


def _hit_exists(p: Platform, client: Principal, value: Any) -> bool:
    job_id = job_of_hit(value) if isinstance(value, str) else None
    job = p.jobs.get_job(job_id) if job_id else None
    return job is not None and job.client_id == client.account_id


def find_hit(p: Platform, client: Principal, value: Any) -> tuple[Job, MTurkRecord]:
    """A HIT of the client by its HITId: its job and its `mturk#hit#<client>` record;
    MTurk's "Hit <id> does not exist." (HITDoesNotExist) for any other id."""
    if not isinstance(value, str) or not value:
        raise hits.invalid("Value null at 'hITId' failed to satisfy constraint: "
                           "Member must not be null")
    job_id = job_of_hit(value)
    record = records(p).get(hits.hit_kind(client.account_id), value) if job_id else None
    job = p.jobs.get_job(job_id) if job_id and record is not None else None
    if job is None or record is None or job.client_id != client.account_id:
        raise mturk.request_error(f"Hit {str(value)[:64]} does not exist.",
                                  hits.HIT_DOES_NOT_EXIST)
    return job, record


def hit_item(p: Platform, job: Job) -> ItemState | None:
    """The one item of a HIT's job (one strongly consistent read)."""
    return p.items.get_item(job.job_id, ITEM)


def get_hit(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """A HIT with its status and counters as of now (`Disposed` after DeleteHIT)."""
    job, record = find_hit(p, client, body.get("HITId"))
    return {"HIT": hits.render_hit(job, record.body, hit_item(p, job), p.now())}


def list_hits(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The client's HITs that are not disposed, in HITId order, MaxResults (at most 100) a
    page, a NextToken on every non-empty page."""
    tokens = mturk_page_tokens()
    request = tokens.read(body, "ListHITs", client.account_id)
    kind = hits.hit_kind(client.account_id)

    def fetch(cursor: str | None, limit: int
              ) -> tuple[list[tuple[Job, MTurkRecord, ItemState | None]], str | None]:
        # Disposed HITs stay in the partition (GetHIT answers for them): a page of only
        # those is skipped, so no empty page comes before the last.
        while True:
            page, cursor = records(p).page(kind, limit, cursor)
            found = []
            for record in page:
                job_id = job_of_hit(record.name)
                job = None if record.body.get("disposed") or job_id is None \
                    else p.jobs.get_job(job_id)
                if job is not None:
                    found.append((job, record, hit_item(p, job)))
            if found or cursor is None:
                return found, cursor

    now = p.now()
    return tokens.page(request, fetch, "ListHITs", client.account_id, "HITs",
                       lambda entry: hits.render_hit(entry[0], entry[1].body, entry[2], now))


def _refuse_disposed(record: MTurkRecord, allowed: str = "Assignable, Unassignable, "
                     "Reviewable") -> None:
    if record.body.get("disposed"):
        raise mturk.request_error("This HIT is currently in the state 'Disposed'.  This "
                                  f"operation can be called with a status of: {allowed}",
                                  hits.INVALID_HIT_STATE)


def update_expiration_for_hit(p: Platform, client: Principal, body: dict[str, Any]
                              ) -> dict[str, Any]:
    """ExpireAt now, in the past or 0: the HIT expires at once (Reviewable; no new
    assignments, those accepted may still be submitted while their time lasts, then its
    answers are aggregated). A later time: the HIT's deadline moves there, reopening a HIT
    whose job had already closed and published its results (a new round of it)."""
    job, record = find_hit(p, client, body.get("HITId"))
    expire_at = mturk.read_timestamp(body, "ExpireAt")
    _refuse_disposed(record)
    now = p.now()
    if expire_at <= now:
        if _expire(p, client, job, now):
            emit(p, job, "HITExpired", at=now)
        return mturk.void()
    if expire_at > now + MAX_DEADLINE_SECONDS:
        raise mturk.request_error(f"ExpireAt may be at most {MAX_DEADLINE_SECONDS // 86400} "
                                  "days from now here", "AWS.MechanicalTurk.InvalidParameterValue")
    _reopen(p, client, job, "extended by UpdateExpirationForHIT", deadline=expire_at,
            finalize_at=expire_at)
    emit(p, job, "HITExtended", at=now)
    return mturk.void()


def _expire(p: Platform, client: Principal, job: Job, now: float) -> bool:
    """Move an active HIT's deadline to now: no new leases; its answers are aggregated once
    the live leases have had their time (at once, by the sweeper, when none is live). False
    when it had expired already."""
    if job.state != ACTIVE or job.deadline <= now:
        return False
    leased, estimated = live_leases(p, job)
    finalize_at = now + job.lease_seconds + p.cache_seconds if leased or estimated else now
    moved = p.jobs.transition(job.job_id, (ACTIVE,), ACTIVE, deadline=now,
                              finalize_at=finalize_at, record=phases.record(
                                  now, ACTIVE, job.phase, ACTIVE, job.phase, client.account_id,
                                  hits.EXPIRED_BY_REQUEST))
    p.cache.forget_job(job.job_id)
    if not moved:
        raise mturk.request_error("the HIT changed meanwhile; retry",
                                  "AWS.MechanicalTurk.ServiceUnavailable")
    return True


def _reopen(p: Platform, client: Principal, job: Job, reason: str, **changes: Any) -> None:
    """Make a HIT's job take workers again with changes (a new deadline, a budget): an
    active, expired or stopped job goes on in its round; a job whose round was aggregated
    and published (done) starts its next round, aggregated again when it ends. A job being
    aggregated is a retryable error; a failed one cannot be reopened. A job that had closed
    is aggregated again at its deadline, and not before its new slots could be leased and
    answered (changes may set finalize_at itself)."""
    for _ in range(ATTEMPTS):
        now = p.now()
        if job.state == AGGREGATING:
            raise mturk.request_error("the HIT's answers are being aggregated; retry in a "
                                      "minute", "AWS.MechanicalTurk.ServiceUnavailable")
        if job.state not in (ACTIVE, CANCELLED, CLOSING, DONE):
            raise mturk.request_error(f"This HIT's job is {job.state} and cannot take more "
                                      "assignments.", hits.INVALID_HIT_STATE)
        extra: dict[str, Any] = {}
        if job.state == DONE:
            extra = {"round": job.round + 1, "done_at": None, "aggregating_at": None}
        if job.state == CANCELLED:
            extra = {"cancelled_at": None}
        if job.state != ACTIVE:
            extra["finalize_at"] = max(job.deadline, now + job.lease_seconds + p.cache_seconds)
        moved = p.jobs.transition(job.job_id, (job.state,), ACTIVE, record=phases.record(
            now, job.state, job.phase, ACTIVE, job.phase, client.account_id, reason),
            **{**extra, **changes})
        p.cache.forget_job(job.job_id)
        if moved:
            return
        job = p.jobs.get_job(job.job_id) or job
    raise mturk.request_error("the HIT kept changing; retry",
                              "AWS.MechanicalTurk.ServiceUnavailable")


def delete_hit(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Dispose of a Reviewable HIT whose submitted assignments were all approved or
    rejected: it leaves ListHITs, GetHIT answers `Disposed`, and its job stops (what was
    answered is aggregated into its results)."""
    job, record = find_hit(p, client, body.get("HITId"))
    allowed = "Reviewing, Reviewable"
    _refuse_disposed(record, allowed)
    now = p.now()
    tally = hits.counts(hit_item(p, job), now, job.auto_approve_seconds)
    state = hits.status(job, record.body, tally, now)
    if state != "Reviewable":
        raise mturk.request_error(f"This HIT is currently in the state '{state}'.  This "
                                  f"operation can be called with a status of: {allowed}",
                                  hits.INVALID_HIT_STATE)
    if tally.awaiting_review:
        raise mturk.request_error(
            f"This HIT has {tally.awaiting_review} submitted assignment(s) awaiting review: "
            "approve or reject them before deleting it.", hits.INVALID_HIT_STATE)
    if not records(p).replace(record, {**record.body, "disposed": True, "DisposedAt": now}):
        raise mturk.request_error("the HIT changed meanwhile; retry",
                                  "AWS.MechanicalTurk.ServiceUnavailable")
    if job.state == ACTIVE:
        try:
            job = stop_job(p, client, job.job_id)
        except Conflict:
            pass  # it moved on by itself (aggregated at its deadline) meanwhile
    emit(p, job, "HITDisposed", at=now)
    return mturk.void()


def create_additional_assignments_for_hit(p: Platform, client: Principal, body: dict[str, Any]
                                          ) -> dict[str, Any]:
    """More assignments on a HIT (at most MAX_HIT_ASSIGNMENTS in all): the client is billed
    for them as for the HIT (their rewards and the platform fee join the job's budget), the
    slots are added to its item, and a job already closed is reopened for them. It does not
    move the HIT's expiration."""
    job, record = find_hit(p, client, body.get("HITId"))
    added = hits.integer(body, "NumberOfAdditionalAssignments", 1,
                         hits.MAX_HIT_ASSIGNMENTS - 1)
    token = _token(body)
    _refuse_disposed(record)
    item = hit_item(p, job)
    if item is None:
        raise mturk.request_error("the HIT is not ready yet; retry",
                                  "AWS.MechanicalTurk.ServiceUnavailable")
    if item.redundancy + added > hits.MAX_HIT_ASSIGNMENTS:
        raise mturk.request_error(
            f"A HIT takes at most {hits.MAX_HIT_ASSIGNMENTS} assignments here; it has "
            f"{item.redundancy}", "AWS.MechanicalTurk.InvalidParameterValue")
    now = p.now()
    if token is not None:
        _claim_token(p, client, "CreateAdditionalAssignmentsForHIT", token,
                     {"HITId": record.name, "added": added}, now, lambda found: True,
                     lambda found: mturk.request_error(
                         f"The request with UniqueRequestToken {token} already added "
                         f"{found.get('added')} assignment(s) to HIT {found.get('HITId')}.",
                         DUPLICATE_REQUEST))
    billed: list[bool] = []
    try:
        _add_assignments(p, client, job, item, added, billed)
    except Exception:
        # Released only if nothing was billed: once the client has paid, the same token
        # again must not pay a second time (it is then DuplicateRequest).
        if token is not None and not billed:
            records(p).delete(hits.token_kind(client.account_id),
                              f"CreateAdditionalAssignmentsForHIT#{token}")
        raise
    emit(p, job, "HITExtended", at=now)
    return mturk.void()


def _add_assignments(p: Platform, client: Principal, job: Job, item: ItemState, added: int,
                     billed: list[bool]) -> None:
    """Reopen the job if it had closed, bill the added assignments (their rewards to the
    job's pool, rewards and fee to its budget, both added to what is there), then add the
    slots, each paid from the pool as it is added (one slot a write on an open item, all at
    once on an item counted complete, which reopens it). billed gets True once the client
    has been billed. Slots that cannot be added after billing are an error that says so and
    is not to be retried: their rewards wait, unspent, in the HIT job's pool."""
    rewards = added * job.reward_cents
    if job.state != ACTIVE:
        _reopen(p, client, job, "assignments added by CreateAdditionalAssignmentsForHIT")
    if not p.jobs.buy(job.job_id, rewards, platform_fee(rewards)):
        raise mturk.request_error(f"Hit {hit_id(job.job_id)} does not exist.",
                                  hits.HIT_DOES_NOT_EXIST)
    billed.append(True)
    remaining = added  # counted by what this call added, whatever others add meanwhile
    for _ in range(added * ATTEMPTS):
        current = hit_item(p, job)
        if current is None or remaining == 0:
            break
        # An item counted complete is reopened with all of them at once; an open one (or one
        # whose last answer is not counted yet) takes one more slot a write.
        if current.complete and p.items.add_slots(job.job_id, ITEM, remaining, current.replaced,
                                                  remaining * job.reward_cents, "pool"):
            remaining = 0
            break
        extended = p.items.extend(job.job_id, ITEM, current.redundancy, job.reward_cents)
        if extended is None:
            break  # the pool does not hold the reward: nothing more can be paid for
        remaining -= 1 if extended else 0
    if remaining:
        p.cache.forget_job(job.job_id)
        raise mturk.request_error(
            f"{added - remaining} of {added} assignments were added to HIT "
            f"{hit_id(job.job_id)}; the rest were billed and wait, unspent, in its job's pool. "
            "Do not send this request again: it would bill them again.",
            "AWS.MechanicalTurk.InvalidState")
    p.cache.forget_job(job.job_id)


OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {
    "CreateHITType": create_hit_type,
    "CreateHIT": create_hit,
    "CreateHITWithHITType": create_hit_with_hit_type,
    "GetHIT": get_hit,
    "ListHITs": list_hits,
    "UpdateExpirationForHIT": update_expiration_for_hit,
    "DeleteHIT": delete_hit,
    "CreateAdditionalAssignmentsForHIT": create_additional_assignments_for_hit,
}
