"""The MTurk-compatible API's qualifications, worker blocks and messages to workers (merged
into chalicelib.handlers.mturk), and their enforcement on the lease path.

Records (`p.mturk`, one partition per owner, so no list reads a table):
- `mturk#qual#<client>` / QualificationTypeId: a client's qualification type;
- `mturk#qualname#<client>` / lower(Name): the name's reservation (names are unique per client);
- `mturk#grant#<QualificationTypeId>` / WorkerId: a worker's qualification (Granted/Revoked);
- `mturk#block#<client>` / WorkerId: a client-wide worker block, with its reason;
- `mturk#inbox#<worker account>` / newest-first key: a message NotifyWorkers sent the worker.

Enforcement: a HIT's job carries its QualificationRequirements (`job.mturk["requirements"]`);
a worker who fails one guarding an action (Discover: the job list; Accept: a lease) may not
take it, and a worker its client blocked takes none of the client's HIT jobs. Each decision
reads only the grants the requirements name, one keyed read each, and the worker's recent
ledger page for the approval figures, all cached per container like credentials.
"""
from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.adapters.cursors import mturk_page_tokens
from chalicelib.domain import mturk
from chalicelib.domain import mturk_requirements as reqs
from chalicelib.domain import validation as v
from chalicelib.domain.cache import MISSING
from chalicelib.domain.jobs import iso
from chalicelib.domain.locales import locale_value
from chalicelib.domain.model import Job, Offer, Principal
from chalicelib.domain.mturk_ids import worker_account, worker_id as mturk_worker_id
from chalicelib.domain.ports import MTurkRecord, MTurkRecords
from chalicelib.handlers.platform import PRINCIPAL_CACHE_SECONDS, Platform, cached_job

GRANTED, REVOKED = "Granted", "Revoked"
TYPE_STATUSES = ("Active", "Inactive")
MAX_NAME, MAX_DESCRIPTION, MAX_KEYWORDS = 200, 2000, 1000
MAX_SUBJECT, MAX_MESSAGE, MAX_NOTIFIED = 200, 4096, 100
MAX_REASON = 1024
# A worker's approval figures are computed from this many of their newest ledger entries.
HISTORY_ENTRIES = 100
# NotifyWorkers looks for a grant of at most this many of the caller's types (its first page).
MESSAGE_TYPES_CHECKED = 10
# Inbox keys sort newest first: this minus the time in ms, zero-padded.
INBOX_CLOCK = 10 ** 15
WRITE_TRIES = 3
# A name reservation without its type is taken over after this long (seconds).
ABANDONED_SECONDS = 60.0
NOT_FOUND = "AWS.MechanicalTurk.QualificationTypeDoesNotExist"
DUPLICATE_NAME = ("You have already created a QualificationType with this name. A "
                  "QualificationType's name must be unique among all of the QualificationTypes "
                  "created by the same user.")


def qual_kind(client_id: str) -> str:
    """The partition of a client's qualification types."""
    return f"mturk#qual#{client_id}"


def grant_kind(type_id: str) -> str:
    """The partition of a qualification type's grants."""
    return f"mturk#grant#{type_id}"


def block_kind(client_id: str) -> str:
    """The partition of a client's worker blocks."""
    return f"mturk#block#{client_id}"


def inbox_kind(account_id: str) -> str:
    """The partition of a worker's messages."""
    return f"mturk#inbox#{account_id}"


def _name_kind(client_id: str) -> str:
    return f"mturk#qualname#{client_id}"


def _records(p: Platform) -> MTurkRecords:
    if p.mturk is None:
        raise mturk.request_error("the MTurk-compatible API is not configured on this stage",
                                  "AWS.MechanicalTurk.ServiceUnavailable")
    return p.mturk



# --- request members ---------------------------------------------------------------------

def _invalid(message: str) -> mturk.MTurkError:
    return mturk.MTurkError("ValidationException", message)


def _text(body: Mapping[str, Any], name: str, limit: int, required: bool = True,
          empty: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name} is required")
        return None
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _invalid(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise mturk.request_error(f"{name} must be at most {limit} characters")
    return value


def _flag(body: Mapping[str, Any], name: str, default: bool | None = False) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise _invalid(f"{name} must be a boolean")
    return value


def _integer(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer")
    return value


def _worker(body: Mapping[str, Any]) -> tuple[str, str]:
    """The request's WorkerId and the worker account it names (one of ours, or an error)."""
    worker_id = _text(body, "WorkerId", 64) or ""
    account = worker_account(worker_id)
    if account is None:
        raise mturk.request_error(f"WorkerId {worker_id[:64]} is not a worker of this "
                                  "platform.", "AWS.MechanicalTurk.WorkerDoesNotExist")
    return worker_id, account


def _own_type(p: Platform, client: Principal, body: Mapping[str, Any]) -> MTurkRecord:
    """The caller's qualification type the request names; "does not exist" otherwise."""
    type_id = _text(body, "QualificationTypeId", 64) or ""
    record = _records(p).get(qual_kind(client.account_id), type_id)
    if record is None:
        raise mturk.request_error(f"QualificationType {type_id[:64]} does not exist.",
                                  NOT_FOUND)
    return record


def _upsert(p: Platform, kind: str, name: str,
            change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
    """Create or replace one record with change(current body); optimistic, a few tries."""
    for _ in range(WRITE_TRIES):
        record = _records(p).get(kind, name)
        body = change(None if record is None else record.body)
        written = _records(p).put_new(kind, name, body, p.now()) if record is None else \
            _records(p).replace(record, body)
        if written:
            p.cache.mturk.forget((kind, name))
            return body
    raise mturk.request_error("the record kept changing; try again",
                              "AWS.MechanicalTurk.ConcurrentUpdate")


def _filtered(p: Platform, kind: str, keep: Callable[[MTurkRecord], bool],
              cursor: str | None, limit: int) -> tuple[list[MTurkRecord], str | None]:
    """Up to limit records of one partition that keep accepts, from cursor on, and the
    cursor after them: pages are read (each no larger than what is still wanted, so the
    cursor is exact) until limit are found or the partition ends, so no page comes back
    empty while more remain."""
    found: list[MTurkRecord] = []
    while len(found) < limit:
        records, cursor = _records(p).page(kind, limit - len(found), cursor)
        found += [record for record in records if keep(record)]
        if cursor is None:
            break
    return found, cursor


# --- qualification types -----------------------------------------------------------------

def _new_type_id() -> str:
    return "3" + base64.b32encode(secrets.token_bytes(20)).decode("ascii")[:29]


def _type_view(record: MTurkRecord) -> dict[str, Any]:
    body = record.body
    view = {"QualificationTypeId": record.name, "CreationTime": mturk.epoch(record.created_at),
            "Name": body["Name"], "Description": body["Description"],
            "QualificationTypeStatus": body["QualificationTypeStatus"],
            "IsRequestable": True, "AutoGranted": bool(body.get("AutoGranted"))}
    if body.get("Keywords"):
        view["Keywords"] = body["Keywords"]
    if body.get("RetryDelayInSeconds") is not None:
        view["RetryDelayInSeconds"] = body["RetryDelayInSeconds"]
    if body.get("AutoGranted"):
        view["AutoGrantedValue"] = body.get("AutoGrantedValue", 1)
    return view


def _system_view(system: Mapping[str, Any]) -> dict[str, Any]:
    return {**system, "QualificationTypeStatus": "Active", "IsRequestable": False,
            "AutoGranted": False, "CreationTime": mturk.epoch(0)}


def create_qualification_type(p: Platform, client: Principal, body: dict[str, Any]
                              ) -> dict[str, Any]:
    """A new qualification type; its name (case-insensitive) unique among the client's.
    Qualification tests (Test, AnswerKey) are not supported: workers cannot request a
    qualification here, a requester grants it."""
    if body.get("Test") is not None or body.get("AnswerKey") is not None:
        raise mturk.request_error("Qualification tests (Test, AnswerKey) are not supported: "
                                  "grant the qualification with AssociateQualificationWithWorker",
                                  "AWS.MechanicalTurk.OperationNotSupported")
    name = (_text(body, "Name", MAX_NAME) or "").strip()
    description = _text(body, "Description", MAX_DESCRIPTION, empty=True) or ""
    status = _text(body, "QualificationTypeStatus", 20)
    if status not in TYPE_STATUSES:
        raise _invalid("QualificationTypeStatus must be Active or Inactive")
    keywords = _text(body, "Keywords", MAX_KEYWORDS, required=False, empty=True)
    retry = body.get("RetryDelayInSeconds")
    if retry is not None:
        retry = _integer(body, "RetryDelayInSeconds", 0)
    auto = bool(_flag(body, "AutoGranted"))
    record = {"Name": name, "Description": description, "Keywords": keywords,
              "QualificationTypeStatus": status, "RetryDelayInSeconds": retry,
              "AutoGranted": auto, "AutoGrantedValue": _integer(body, "AutoGrantedValue", 1)}
    type_id, now = _new_type_id(), p.now()
    _reserve_name(p, client.account_id, name, type_id)
    _records(p).put_new(qual_kind(client.account_id), type_id, record, now)
    return {"QualificationType": _type_view(
        MTurkRecord(qual_kind(client.account_id), type_id, record, now, 1))}


def _reserve_name(p: Platform, client_id: str, name: str, type_id: str) -> None:
    """Reserve a type name for type_id; the duplicate-name error when a type of the client
    holds it (a reservation whose type was never written, by a create that failed between
    its two writes, is taken over once it is ABANDONED_SECONDS old: a younger one may belong
    to a create still running)."""
    kind, key, now = _name_kind(client_id), name.casefold(), p.now()
    if _records(p).put_new(kind, key, {"QualificationTypeId": type_id}, now):
        return
    held = _records(p).get(kind, key)
    if held is not None and held.created_at < now - ABANDONED_SECONDS \
            and _records(p).get(qual_kind(client_id),
                                held.body.get("QualificationTypeId", "")) is None \
            and _records(p).replace(held, {"QualificationTypeId": type_id}):
        return
    raise mturk.request_error(f"{DUPLICATE_NAME} : {name}",
                              "AWS.MechanicalTurk.QualificationTypeAlreadyExists")


def delete_qualification_type(p: Platform, client: Principal, body: dict[str, Any]
                              ) -> dict[str, Any]:
    """Delete a type at once, and free its name at once (MTurk kept a name reserved for up
    to 48 hours; nothing depends on that). Grants already made are left as they are: a HIT
    that still requires the type keeps judging workers by them."""
    record = _own_type(p, client, body)
    _records(p).delete(qual_kind(client.account_id), record.name)
    key = str(record.body.get("Name", "")).casefold()
    held = _records(p).get(_name_kind(client.account_id), key)
    if held is not None and held.body.get("QualificationTypeId") == record.name:
        _records(p).delete(_name_kind(client.account_id), key)
    p.cache.mturk.forget((qual_kind(client.account_id), record.name))
    return mturk.void()


def list_qualification_types(p: Platform, client: Principal, body: dict[str, Any]
                             ) -> dict[str, Any]:
    """The caller's types (MustBeOwnedByCaller) or, without it, also the system types that
    match MustBeRequestable (system types are not requestable); Query filters by a
    case-insensitive substring of name, description or keywords. Other clients' types are
    never listed."""
    requestable = _flag(body, "MustBeRequestable", None)
    if requestable is None:
        raise _invalid("MustBeRequestable is required")
    owned = bool(_flag(body, "MustBeOwnedByCaller"))
    query = _text(body, "Query", 256, required=False, empty=True) or ""
    systems = [] if owned or requestable else \
        [s for s in reqs.SYSTEM_TYPES if reqs.matches_query(s, query)]
    kind = qual_kind(client.account_id)

    def keep(record: MTurkRecord) -> bool:
        return reqs.matches_query(record.body, query)

    def fetch(cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        # Where the last page stopped: how many system types were shown, then the cursor
        # of the caller's own types (None: from their first).
        state = json.loads(cursor) if cursor else {}
        start: int = state.get("s", 0)
        listed = [_system_view(s) for s in systems[start:start + limit]]
        shown = start + len(listed)
        store_cursor: str | None = state.get("c")
        if len(listed) < limit:
            records, store_cursor = _filtered(p, kind, keep, store_cursor, limit - len(listed))
            listed += [_type_view(record) for record in records]
            if store_cursor is None:
                return listed, None
        return listed, json.dumps({"s": shown, "c": store_cursor})

    tokens = mturk_page_tokens()
    scope = f"{client.account_id}\n{owned}\n{requestable}\n{query}"
    page = tokens.read(body, "ListQualificationTypes", scope)
    return tokens.page(page, fetch, "ListQualificationTypes", scope, "QualificationTypes",
                       lambda view: view)


# --- grants --------------------------------------------------------------------------------

def associate_qualification_with_worker(p: Platform, client: Principal, body: dict[str, Any]
                                        ) -> dict[str, Any]:
    """Grant (or re-grant, with a new value) one of the caller's types to a worker; repeats
    are allowed. SendNotification is accepted and ignored."""
    record = _own_type(p, client, body)
    worker_id, _ = _worker(body)
    value = _integer(body, "IntegerValue", 1)
    _flag(body, "SendNotification")
    now = p.now()
    _upsert(p, grant_kind(record.name), worker_id, lambda _: {
        "IntegerValue": value, "Status": GRANTED, "GrantTime": now, "Client": client.account_id})
    return mturk.void()


def _grant(p: Platform, type_id: str, worker_id: str) -> MTurkRecord:
    grant = _records(p).get(grant_kind(type_id), worker_id)
    if grant is None:
        raise mturk.request_error(
            f"You requested a Qualification that does not exist. (QualificationTypeId "
            f"{type_id}, WorkerId {worker_id})", "AWS.MechanicalTurk.QualificationDoesNotExist")
    return grant


def disassociate_qualification_from_worker(p: Platform, client: Principal,
                                           body: dict[str, Any]) -> dict[str, Any]:
    """Revoke a worker's qualification of one of the caller's types (status Revoked)."""
    record = _own_type(p, client, body)
    worker_id, _ = _worker(body)
    reason = _text(body, "Reason", MAX_REASON, required=False, empty=True)
    _grant(p, record.name, worker_id)
    _upsert(p, grant_kind(record.name), worker_id,
            lambda held: {**(held or {}), "Status": REVOKED, "Reason": reason})
    return mturk.void()


def _qualification_view(type_id: str, grant: MTurkRecord) -> dict[str, Any]:
    return {"QualificationTypeId": type_id, "WorkerId": grant.name,
            "GrantTime": mturk.epoch(grant.body.get("GrantTime", grant.created_at)),
            "IntegerValue": grant.body.get("IntegerValue", 1), "Status": grant.body["Status"]}


def get_qualification_score(p: Platform, client: Principal, body: dict[str, Any]
                            ) -> dict[str, Any]:
    """A worker's qualification of one of the caller's types; a revoked one is an error, as
    on MTurk ("This operation can be called with a status of: Granted")."""
    record = _own_type(p, client, body)
    worker_id = _text(body, "WorkerId", 64) or ""
    grant = _grant(p, record.name, worker_id)
    if grant.body.get("Status") != GRANTED:
        raise mturk.request_error("This operation can be called with a status of: Granted",
                                  "AWS.MechanicalTurk.InvalidQualificationState")
    return {"Qualification": _qualification_view(record.name, grant)}


def list_workers_with_qualification_type(p: Platform, client: Principal,
                                         body: dict[str, Any]) -> dict[str, Any]:
    """The workers holding one of the caller's types, optionally only those Granted or
    Revoked, a page at a time in WorkerId order."""
    record = _own_type(p, client, body)
    status = body.get("Status")
    if status is not None and status not in (GRANTED, REVOKED):
        raise _invalid("Status must be Granted or Revoked")

    def fetch(cursor: str | None, limit: int) -> tuple[list[MTurkRecord], str | None]:
        return _filtered(p, grant_kind(record.name),
                         lambda grant: status is None or grant.body.get("Status") == status,
                         cursor, limit)

    tokens = mturk_page_tokens()
    scope = f"{record.name}\n{status}"
    page = tokens.read(body, "ListWorkersWithQualificationType", scope)
    return tokens.page(page, fetch, "ListWorkersWithQualificationType", scope,
                       "Qualifications", lambda grant: _qualification_view(record.name, grant))


# --- worker blocks -------------------------------------------------------------------------

def create_worker_block(p: Platform, client: Principal, body: dict[str, Any]
                        ) -> dict[str, Any]:
    """Block a worker from every HIT of the caller (a repeat replaces the reason)."""
    worker_id, _ = _worker(body)
    reason = _text(body, "Reason", MAX_REASON) or ""
    _upsert(p, block_kind(client.account_id), worker_id, lambda _: {"Reason": reason})
    return mturk.void()


def delete_worker_block(p: Platform, client: Principal, body: dict[str, Any]
                        ) -> dict[str, Any]:
    """Lift a block (none to lift is not an error)."""
    worker_id = _text(body, "WorkerId", 64) or ""
    _text(body, "Reason", MAX_REASON, required=False, empty=True)
    _records(p).delete(block_kind(client.account_id), worker_id)
    p.cache.mturk.forget((block_kind(client.account_id), worker_id))
    return mturk.void()


def list_worker_blocks(p: Platform, client: Principal, body: dict[str, Any]
                       ) -> dict[str, Any]:
    """The caller's worker blocks, a page at a time in WorkerId order."""
    tokens = mturk_page_tokens()
    page = tokens.read(body, "ListWorkerBlocks", client.account_id)
    return tokens.page(page, lambda cursor, limit: _records(p).page(
        block_kind(client.account_id), limit, cursor), "ListWorkerBlocks", client.account_id,
        "WorkerBlocks", lambda block: {"WorkerId": block.name, "Reason": block.body["Reason"]})


# --- messages to workers -----------------------------------------------------------------

def notify_workers(p: Platform, client: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """A message to up to 100 workers, each put in their inbox (GET /workers/me/messages).

    A requester may message a worker it has a relationship with: one who worked in one of
    its jobs (one of the worker's newest HISTORY_ENTRIES ledger entries - an approval, a
    rejection or a bonus - is for a job of the requester's) or who holds a qualification of
    one of its first MESSAGE_TYPES_CHECKED types. Other ids, ids that are not our workers'
    and workers the requester blocked get a HardFailure status each; the others get the
    message."""
    subject = _text(body, "Subject", MAX_SUBJECT) or ""
    text = _text(body, "MessageText", MAX_MESSAGE) or ""
    worker_ids = body.get("WorkerIds")
    if not isinstance(worker_ids, list) or not worker_ids or \
            not all(isinstance(w, str) for w in worker_ids):
        raise _invalid("WorkerIds must be a non-empty list of worker ids")
    if len(worker_ids) > MAX_NOTIFIED:
        raise mturk.request_error(f"WorkerIds may name at most {MAX_NOTIFIED} workers")
    types, _ = _records(p).page(qual_kind(client.account_id), MESSAGE_TYPES_CHECKED, None)
    failures = []
    for worker_id in dict.fromkeys(worker_ids):
        problem = _why_not_message(p, client, worker_id, [t.name for t in types])
        if problem is not None:
            failures.append({"NotifyWorkersFailureCode": "HardFailure",
                             "NotifyWorkersFailureMessage": problem, "WorkerId": worker_id})
            continue
        _deliver(p, client, worker_account(worker_id) or "", subject, text)
    return {"NotifyWorkersFailureStatuses": failures}


def _why_not_message(p: Platform, client: Principal, worker_id: str, type_ids: list[str]
                     ) -> str | None:
    account = worker_account(worker_id)
    if account is None:
        return f"{worker_id[:64]} is not a worker of this platform"
    if _records(p).get(block_kind(client.account_id), worker_id) is not None:
        return f"you blocked worker {worker_id}"
    if not _worked_for(p, client.account_id, account) and \
            not any(_records(p).get(grant_kind(t), worker_id) for t in type_ids):
        return (f"worker {worker_id} has not worked for you and holds none of your "
                "qualifications")
    return None


def _worked_for(p: Platform, client_id: str, account: str) -> bool:
    entries, _ = p.ledger.entries(account, HISTORY_ENTRIES, None)
    for job_id in dict.fromkeys(e.job_id for e in entries if e.job_id):
        job = cached_job(p, job_id)
        if job is not None and job.client_id == client_id:
            return True
    return False


def _deliver(p: Platform, client: Principal, account: str, subject: str, text: str) -> None:
    now = p.now()
    key = f"{INBOX_CLOCK - int(now * 1000):015d}.{secrets.token_hex(4)}"
    _records(p).put_new(inbox_kind(account), key, {
        "subject": subject, "text": text, "from": client.account_id,
        "from_name": client.name}, now)


def inbox(p: Platform, worker: Principal, query: Mapping[str, str]) -> dict[str, Any]:
    """A page of the worker's messages from requesters, newest first (`?limit=`, default
    50, and `?cursor=`)."""
    v.reject_unknown(query, ("limit", "cursor"), "query.")
    records, cursor = _records(p).page(inbox_kind(worker.account_id), v.page_limit(query, 50),
                                   query.get("cursor"))
    return {"messages": [{"message_id": r.name, "subject": r.body["subject"],
                          "text": r.body["text"], "from": r.body["from"],
                          "from_name": r.body.get("from_name", ""),
                          "sent_at": iso(r.created_at)} for r in records],
            "next_cursor": cursor}


# --- enforcement on the lease path ---------------------------------------------------------

def _cached(p: Platform, key: tuple[str, str], read: Callable[[], Any]) -> Any:
    """A value this container read at most PRINCIPAL_CACHE_SECONDS ago (a write this
    container made drops it, so its next read sees the write)."""
    now = p.now()
    value = p.cache.mturk.get(key, now, PRINCIPAL_CACHE_SECONDS)
    if value is MISSING:
        value = p.cache.mturk.put(key, read(), now)
    return value


def _body(p: Platform, kind: str, name: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        record = _records(p).get(kind, name)
        return None if record is None else record.body
    return _cached(p, (kind, name), read)


def approval_figures(p: Platform, account: str) -> dict[str, int]:
    """A worker's system figures (PercentAssignmentsApproved, NumberHITsApproved,
    PercentAssignmentsRejected) from their newest HISTORY_ENTRIES ledger entries: answers a
    settlement paid are approved, each rejection record a rejection."""
    def read() -> dict[str, int]:
        entries, _ = p.ledger.entries(account, HISTORY_ENTRIES, None)
        approved = sum(e.answers or 0 for e in entries if e.kind == "settlement")
        rejected = sum(1 for e in entries if e.kind == "rejection")
        return reqs.approval_figures(approved, rejected)
    return _cached(p, ("figures", account), read)


def _values(p: Platform, worker: Principal, type_ids: list[str],
            owner: Callable[[], str | None]) -> dict[str, Any]:
    """What the worker holds of the named types: the approval figures, the locale the worker
    gave (from their principal: no read; none without a country), a Granted grant's value, or
    for a type of the HIT's owner that is AutoGranted its AutoGrantedValue (the worker would
    be granted it on asking). Adult and Masters are never held."""
    account = worker.account_id
    worker_id = mturk_worker_id(account)
    values: dict[str, Any] = {}
    for type_id in type_ids:
        if type_id in reqs.APPROVAL_TYPES:
            values[type_id] = approval_figures(p, account)[type_id]
            continue
        if type_id == reqs.LOCALE:
            locale = locale_value(worker.country, worker.subdivision)
            if locale is not None:
                values[type_id] = locale
            continue
        if type_id in reqs.SYSTEM_IDS:
            continue
        grant = _body(p, grant_kind(type_id), worker_id)
        if grant is not None:
            if grant.get("Status") == GRANTED:
                values[type_id] = grant.get("IntegerValue", 1)
            continue
        client_id = owner()
        kind = qual_kind(client_id) if client_id else None
        auto = _body(p, kind, type_id) if kind else None
        if auto is not None and auto.get("AutoGranted"):
            values[type_id] = auto.get("AutoGrantedValue", 1)
    return values


def _client_of(p: Platform, job: Job | Offer) -> str | None:
    if isinstance(job, Job):
        return job.client_id
    read = cached_job(p, job.job_id)
    return None if read is None else read.client_id


def admits(p: Platform, worker: Principal, job: Job | Offer, action: str) -> bool:
    """Whether the worker meets the HIT's QualificationRequirements that guard the action
    (reqs.DISCOVER, PREVIEW or ACCEPT); a job without requirements admits everyone."""
    requirements = list(job.mturk.get("requirements") or []) if job.mturk else []
    type_ids = reqs.named_types(requirements, action)
    if not type_ids:
        return reqs.admitted(requirements, {}, action)
    values = _values(p, worker, type_ids, lambda: _client_of(p, job))
    return reqs.admitted(requirements, values, action)


def blocked_by_client(p: Platform, client_id: str, account: str) -> bool:
    """Whether the client blocked the worker from its HITs (CreateWorkerBlock)."""
    return _body(p, block_kind(client_id), mturk_worker_id(account)) is not None


def refusal(p: Platform, worker: Principal, job: Job | Offer, action: str) -> str | None:
    """Why a HIT job refuses the worker the action ("blocked_by_requester" or
    "qualification_required"), or None; an ordinary job (no `mturk`) never does."""
    if not job.mturk:
        return None
    client_id = _client_of(p, job)
    if client_id is not None and blocked_by_client(p, client_id, worker.account_id):
        return "blocked_by_requester"
    if not admits(p, worker, job, action):
        return "qualification_required"
    return None


OPERATIONS: dict[str, Callable[[Platform, Principal, dict[str, Any]], dict[str, Any]]] = {
    "CreateQualificationType": create_qualification_type,
    "ListQualificationTypes": list_qualification_types,
    "DeleteQualificationType": delete_qualification_type,
    "AssociateQualificationWithWorker": associate_qualification_with_worker,
    "DisassociateQualificationFromWorker": disassociate_qualification_from_worker,
    "GetQualificationScore": get_qualification_score,
    "ListWorkersWithQualificationType": list_workers_with_qualification_type,
    "CreateWorkerBlock": create_worker_block,
    "DeleteWorkerBlock": delete_worker_block,
    "ListWorkerBlocks": list_worker_blocks,
    "NotifyWorkers": notify_workers,
}
