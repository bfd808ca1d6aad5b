"""Posting a job: validate the body against its quote, number the items, cut ingest chunks."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from chalicelib.domain import phases, pricing
from chalicelib.domain.leasing import MAX_SUITE_SIZE
from chalicelib.domain import validation as v
from chalicelib.domain.answers import NA_KEY, validate_answer
from chalicelib.domain.batching import batches
from chalicelib.domain.ids import is_upload_id, item_id, new_id
from chalicelib.domain.pricing import gold_rate_of, line_amount, line_quantity
from chalicelib.domain.model import (
    INGESTING, NA_ALLOWED, NA_NOT_ALLOWED, PILOT, PRODUCTION, Job, NewItem, Quote, answer_kind,
)
from chalicelib.domain.uploads import range_count
from chalicelib.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

MAX_ITEM_BYTES = 8 * 1024
MAX_LABELS = 50
MAX_TEXT_ANSWER = 5000
MAX_NUMBER = 1e12
MAX_INSTRUCTIONS = 20_000
DEFAULT_LEASE_SECONDS = 600
DEFAULT_DEADLINE_SECONDS = 7 * 24 * 3600
MAX_DEADLINE_SECONDS = 90 * 24 * 3600
# An ingest message carries at most one DynamoDB batch (25) and stays well under SQS's 256 KiB.
CHUNK_ITEMS = 25
CHUNK_BYTES = 200 * 1024

JOB_FIELDS = ("quote_id", "title", "instructions", "items", "items_from", "skip_bad_lines",
              "answer_schema", "not_applicable",
              "lease_seconds", "deadline", "required_skills", "report", "pilot", "promotion",
              "quality", "auto_approve_seconds", "min_skill_scores", "suite_size")
MAX_AUTO_APPROVE_SECONDS = 30 * 24 * 3600
DEFAULT_BLOCK_AFTER = 5
DEFAULT_BLOCK_BELOW = 0.6
DEFAULT_MIN_SECONDS = 2.0


def parse_timestamp(value: Any, field: str) -> float:
    """Seconds since the epoch from an ISO 8601 string with a time zone."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{field}' must be an ISO 8601 timestamp", field=field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{field}' must be an ISO 8601 timestamp", field=field) from None
    if parsed.tzinfo is None:
        raise InvalidRequest(f"'{field}' needs a time zone, e.g. 'Z'", field=field)
    return parsed.timestamp()


def iso(timestamp: float | None) -> str | None:
    """An epoch timestamp as ISO 8601 UTC with a Z."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_answer_schema(task_type: str, raw: Any) -> dict[str, Any]:
    """The answer schema for a task type: a label list, or text length limits."""
    schema = v.require_object(raw, "answer_schema")
    prefix = "answer_schema."
    if answer_kind(task_type) == "categorical":
        v.reject_unknown(schema, ("labels",), prefix)
        # "not_applicable" names the N/A share in results' probabilities.
        labels = v.string_list(schema, "labels", min_items=2, max_items=MAX_LABELS,
                               max_length=64, prefix=prefix, reserved=(NA_KEY,))
        return {"labels": labels}
    if answer_kind(task_type) == "numeric":
        v.reject_unknown(schema, ("min", "max", "integer"), prefix)
        low = v.number(schema, "min", low=-MAX_NUMBER, high=MAX_NUMBER, prefix=prefix)
        high = v.number(schema, "max", low=-MAX_NUMBER, high=MAX_NUMBER, prefix=prefix)
        if high <= low:
            raise InvalidRequest("'answer_schema.max' must be greater than 'answer_schema.min'",
                                 field="answer_schema.max")
        return {"min": low, "max": high,
                "integer": v.boolean(schema, "integer", default=False, prefix=prefix)}
    v.reject_unknown(schema, ("min_length", "max_length"), prefix)
    high = v.integer(schema, "max_length", low=1, high=MAX_TEXT_ANSWER, default=MAX_TEXT_ANSWER,
                     prefix=prefix)
    low = v.integer(schema, "min_length", low=1, high=high, default=1, prefix=prefix)
    return {"min_length": low, "max_length": high}


MAX_REPORT_ATTRIBUTES = 10


def parse_report_settings(task_type: str, schema: Mapping[str, Any], raw: Any) -> dict[str, Any]:
    """What the quality report should add: an expected label distribution and item attributes."""
    if raw is None:
        return {}
    body = v.require_object(raw, "report")
    v.reject_unknown(body, ("expected_distribution", "attributes"), "report.")
    settings: dict[str, Any] = {}
    attributes = v.string_list(body, "attributes", max_items=MAX_REPORT_ATTRIBUTES, max_length=64,
                               prefix="report.")
    if attributes:
        settings["attributes"] = attributes
    expected = body.get("expected_distribution")
    if expected is not None:
        if answer_kind(task_type) != "categorical":
            raise InvalidRequest("'report.expected_distribution' is for label jobs",
                                 field="report.expected_distribution")
        shares = v.require_object(expected, "report.expected_distribution")
        v.reject_unknown(shares, schema["labels"], "report.expected_distribution.")
        for label in shares:
            v.number(shares, label, low=0, high=1e6, prefix="report.expected_distribution.")
        if not shares or sum(shares.values()) <= 0:
            raise InvalidRequest("'report.expected_distribution' needs a positive share",
                                 field="report.expected_distribution")
        total = sum(shares.values())
        settings["expected_distribution"] = {label: share / total for label, share in shares.items()}
    return settings


def parse_items(raw: Any, expected: int) -> list[NewItem]:
    """Items as posted: objects with 'data' (an object) and an optional 'external_id'."""
    if not isinstance(raw, list):
        raise InvalidRequest("'items' must be a list of objects", field="items")
    if expected > pricing.MAX_ITEMS:
        raise PayloadTooLarge(f"a job posts at most {pricing.MAX_ITEMS} items inline; the quote "
                              f"covers {expected}: upload them (POST /uploads) and post "
                              "'items_from'", field="items")
    if len(raw) > expected:
        raise PayloadTooLarge(f"the quote covers {expected} items; got {len(raw)}", field="items")
    if len(raw) != expected:
        raise InvalidRequest(f"the quote covers {expected} items; got {len(raw)}", field="items")
    items = []
    for index, entry in enumerate(raw):
        data, external, gold = parse_item(entry, f"items[{index}]")
        items.append(NewItem(item_id(index, expected), data, external, gold))
    return items


def parse_item(entry: Any, name: str
               ) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """One item as posted (`name` is where it is, for errors; empty for an uploaded line,
    whose errors name its fields): its data, external id and gold answer."""
    where = f"'{name}'" if name else "the line"
    prefix = f"{name}." if name else ""
    if not isinstance(entry, Mapping):
        raise InvalidRequest(f"{where} must be an object", field=name or None)
    v.reject_unknown(entry, ("data", "external_id", "gold"), prefix)
    data = entry.get("data")
    if not isinstance(data, Mapping) or not data:
        raise InvalidRequest(f"'{prefix}data' must be a non-empty object", field=f"{prefix}data")
    if v.json_bytes(data) > MAX_ITEM_BYTES:
        raise PayloadTooLarge(f"'{prefix}data' is over {MAX_ITEM_BYTES} bytes",
                              field=f"{prefix}data")
    external = v.text(entry, "external_id", max_length=128, required=False, prefix=prefix)
    gold = entry.get("gold")
    if gold is not None and not isinstance(gold, Mapping):
        raise InvalidRequest(f"'{prefix}gold' must be an answer object", field=f"{prefix}gold")
    return dict(data), external, None if gold is None else dict(gold)


def chunk_items(items: list[NewItem]) -> list[list[NewItem]]:
    """Cut items into ingest chunks of at most CHUNK_ITEMS items and CHUNK_BYTES bytes, measured
    as the queue message is written (JSON with non-ASCII escaped, so not json_bytes)."""
    return list(batches(items, CHUNK_ITEMS, CHUNK_BYTES,
                        lambda item: len(json.dumps([item.data, item.gold],
                                                    separators=(",", ":"))) + 200))


def parse_items_from(body: Mapping[str, Any]) -> str | None:
    """The upload a job body names for its items (`items_from: {"upload_id"}`), if any;
    `skip_bad_lines` goes with it only."""
    if "items_from" not in body:
        if "skip_bad_lines" in body:
            raise InvalidRequest("'skip_bad_lines' is for items from an upload ('items_from')",
                                 field="skip_bad_lines")
        return None
    if "items" in body:
        raise InvalidRequest("post 'items' or 'items_from', not both", field="items_from")
    source = v.require_object(body["items_from"], "items_from")
    v.reject_unknown(source, ("upload_id",), "items_from.")
    upload_id = v.text(source, "upload_id", max_length=64, prefix="items_from.")
    if not is_upload_id(upload_id):
        raise NotFound("no such upload", field="items_from.upload_id", code="upload_not_found")
    return upload_id


def build_job(quote: Quote, client_id: str, body: Mapping[str, Any], now: float,
              upload: Mapping[str, Any] | None = None) -> tuple[Job, list[list[NewItem]]]:
    """Validate a job body against the client's own quote; return the job and its chunks.
    With `upload` ({"key", "format", "bytes", "etag"}: the object items_from names) the items
    come from the file: the job is planned in byte ranges (chunk_count) and has no chunks
    here; its pilot is picked range by range as they are read."""
    if quote.job_id:
        raise Conflict("this quote was already used for a job", field="quote_id",
                       code="quote_used", details={"job_id": quote.job_id})
    if quote.expires_at <= now:
        raise Conflict("this quote has expired; ask for a new one", field="quote_id",
                       code="quote_expired")
    instructions = v.text(body, "instructions", max_length=MAX_INSTRUCTIONS)
    title = v.text(body, "title", max_length=200, required=False) or f"{quote.task_type} job"
    schema = parse_answer_schema(quote.task_type, body.get("answer_schema"))
    policy = v.choice(body, "not_applicable", (NA_ALLOWED, NA_NOT_ALLOWED), default=NA_NOT_ALLOWED)
    lease_seconds = v.integer(body, "lease_seconds", low=30, high=3600,
                              default=DEFAULT_LEASE_SECONDS)
    if body.get("deadline") is None:
        deadline = now + DEFAULT_DEADLINE_SECONDS
    else:
        deadline = parse_timestamp(body["deadline"], "deadline")
        if deadline < now + 60:
            raise InvalidRequest("'deadline' must be at least a minute from now", field="deadline")
        if deadline > now + MAX_DEADLINE_SECONDS:
            raise InvalidRequest("'deadline' may be at most 90 days away", field="deadline")
    skills = v.string_list(body, "required_skills", max_items=10, max_length=64)
    report = parse_report_settings(quote.task_type, schema, body.get("report"))
    if not skills:
        skills = list(quote.skills)
    min_scores = parse_min_scores(body.get("min_skill_scores"), skills)
    suite_size = v.integer(body, "suite_size", low=1, high=MAX_SUITE_SIZE, default=1)
    if upload is not None:
        job, chunks = _uploaded_job(quote, client_id, body, now, upload, title, instructions,
                                    schema, policy, lease_seconds, deadline, skills, report,
                                    min_scores)
        return replace(job, suite_size=suite_size), chunks
    if "items" not in body:
        raise InvalidRequest("'items' is required", field="items")
    items = parse_items(body["items"], quote.items)
    job = Job(
        job_id=new_id("job"), client_id=client_id, quote_id=quote.quote_id, title=title,
        task_type=quote.task_type, instructions=instructions, answer_schema=schema,
        not_applicable=policy,
        redundancy=quote.adaptive["min"] if quote.adaptive else quote.redundancy,
        adaptive=dict(quote.adaptive), reward_cents=quote.reward_cents,
        budget_cents=quote.total_cents, item_count=len(items), chunk_count=0,
        lease_seconds=lease_seconds, deadline=deadline, created_at=now,
        required_skills=tuple(skills), finalize_at=deadline, report_settings=report,
        min_skill_scores=min_scores, suite_size=suite_size,
    )
    items = [replace(item, gold=parse_gold(job, index, item.gold)) if item.gold else item
             for index, item in enumerate(items)]
    gold_items = sum(1 for item in items if item.gold is not None)
    items, gold_slots = allot_gold_slots(items, line_quantity(quote, "gold_answers")
                                         + gold_items * quote.redundancy)
    items, pilot_items = hold_for_production(items, phases.parse_pilot(body.get("pilot"),
                                                                        len(items) - gold_items))
    chunks = chunk_items(items)
    phase = PILOT if pilot_items else PRODUCTION
    posted = phases.record(now, None, None, job.state, phase, client_id,
                           f"posted with a pilot of {pilot_items} items" if pilot_items
                           else "posted without a pilot")
    return replace(job, chunk_count=len(chunks), phase=phase, pilot_items=pilot_items,
                   promotion=phases.parse_promotion(body.get("promotion")),
                   transitions=(posted,), gold_items=gold_items,
                   quality=parse_quality(body.get("quality"), quote.gold_rate),
                   gold_slots=gold_slots,
                   pool_cents=reward_pool(quote, gold_items, job.redundancy)
                   - gold_slots * quote.reward_cents,
                   auto_approve_seconds=v.integer(body, "auto_approve_seconds", low=0,
                                                  high=MAX_AUTO_APPROVE_SECONDS,
                                                  default=job.auto_approve_seconds)), chunks


def _uploaded_job(quote: Quote, client_id: str, body: Mapping[str, Any], now: float,
                  upload: Mapping[str, Any], title: str, instructions: str,
                  schema: dict[str, Any], policy: str, lease_seconds: int, deadline: float,
                  skills: list[str], report: dict[str, Any], min_scores: dict[str, float]
                  ) -> tuple[Job, list[list[NewItem]]]:
    """A job whose items are in an uploaded file: as many as the quote covers, none gold
    (gold items are posted inline), read in byte ranges."""
    pilot_items = phases.parse_pilot(body.get("pilot"), quote.items)
    skip = v.boolean(body, "skip_bad_lines", default=False)
    redundancy = quote.adaptive["min"] if quote.adaptive else quote.redundancy
    phase = PILOT if pilot_items else PRODUCTION
    posted = phases.record(now, None, None, INGESTING, phase, client_id,
                           f"posted with a pilot of {pilot_items} items from an upload"
                           if pilot_items else "posted without a pilot from an upload")
    job = Job(
        job_id=new_id("job"), client_id=client_id, quote_id=quote.quote_id, title=title,
        task_type=quote.task_type, instructions=instructions, answer_schema=schema,
        not_applicable=policy, redundancy=redundancy, adaptive=dict(quote.adaptive),
        reward_cents=quote.reward_cents, budget_cents=quote.total_cents,
        item_count=quote.items, chunk_count=range_count(int(upload["bytes"])),
        lease_seconds=lease_seconds, deadline=deadline, created_at=now,
        required_skills=tuple(skills), finalize_at=deadline, report_settings=report,
        min_skill_scores=min_scores, phase=phase, pilot_items=pilot_items,
        promotion=phases.parse_promotion(body.get("promotion")), transitions=(posted,),
        quality=parse_quality(body.get("quality"), quote.gold_rate),
        pool_cents=reward_pool(quote, 0, redundancy),
        upload={"key": upload["key"], "format": upload["format"],
                "bytes": int(upload["bytes"]), "etag": upload.get("etag"),
                "skip_bad_lines": skip, "pilot": pilot_items},
    )
    return replace(job, auto_approve_seconds=v.integer(
        body, "auto_approve_seconds", low=0, high=MAX_AUTO_APPROVE_SECONDS,
        default=job.auto_approve_seconds)), []


def allot_gold_slots(items: list[NewItem], gold_answers: int) -> tuple[list[NewItem], int]:
    """Share the answers paid for gold among the gold items as their slots (the quote's gold
    answers and the answers it quoted for the items that turned out gold; the first items
    get one more when they do not divide evenly); return the items and how many slots were
    allotted (none without gold items: that money stays in the pool).

    Paid up front like regular slots, a gold task is leased with the same single write as
    any other, so nothing in its timing tells it apart."""
    gold = [index for index, item in enumerate(items) if item.gold is not None]
    if not gold:
        return items, 0
    share, extra = divmod(gold_answers, len(gold))
    allotted = list(items)
    for rank, index in enumerate(gold):
        allotted[index] = replace(items[index], slots=share + (1 if rank < extra else 0))
    return allotted, gold_answers


def reward_pool(quote: Quote, gold_items: int, slots: int) -> int:
    """The job's reward money beyond its regular slots (`slots` per regular item): the quote's
    gold answers, the slots quoted for items that turned out to be gold (both set aside from
    it as the gold items' slots when there are gold items) and, for adaptive redundancy, the
    answers between min and max."""
    rewards = line_amount(quote, "worker_rewards") + line_amount(quote, "gold_answers")
    return rewards - (quote.items - gold_items) * slots * quote.reward_cents


def parse_min_scores(raw: Any, skills: list[str]) -> dict[str, float]:
    """The lowest qualification score a worker needs per required skill."""
    if raw is None:
        return {}
    body = v.require_object(raw, "min_skill_scores")
    v.reject_unknown(body, skills, "min_skill_scores.")
    return {skill: v.number(body, skill, low=0, high=1, prefix="min_skill_scores.")
            for skill in body}


def parse_quality(raw: Any, gold_rate: float) -> dict[str, float]:
    """Gold and worker-quality rules, defaults filled in.

    - gold_rate: the share of tasks served from gold items (default: the quote's, 10%);
    - block_after / block_below: a worker with at least block_after gold answers whose
      smoothed gold accuracy (Beta(1, 1): (correct + 1) / (answers + 2)) is below
      block_below is blocked from the job (0 turns the rule off);
    - min_seconds: answers submitted sooner than this after leasing are flagged.
    """
    body = v.require_object(raw if raw is not None else {}, "quality")
    v.reject_unknown(body, ("gold_rate", "block_after", "block_below", "min_seconds"), "quality.")
    return {
        "gold_rate": gold_rate_of(body, gold_rate, prefix="quality."),
        "block_after": v.integer(body, "block_after", low=0, high=1000,
                                 default=DEFAULT_BLOCK_AFTER, prefix="quality."),
        "block_below": v.number(body, "block_below", low=0, high=1,
                                default=DEFAULT_BLOCK_BELOW, prefix="quality."),
        "min_seconds": v.number(body, "min_seconds", low=0, high=3600,
                                default=DEFAULT_MIN_SECONDS, prefix="quality."),
    }


def hold_for_production(items: list[NewItem], pilot_size: int) -> tuple[list[NewItem], int]:
    """Mark every item outside an evenly spread pilot sample as held; return the items and
    how many the pilot answers. Gold items are never held: the pilot is where they count most.
    """
    if pilot_size == 0:
        return items, 0
    regular = [index for index, item in enumerate(items) if item.gold is None]
    sample = {regular[k] for k in phases.pilot_indices(len(regular), min(pilot_size, len(regular)))}
    marked = [item if item.gold is not None or index in sample else replace(item, held=True)
              for index, item in enumerate(items)]
    return marked, sum(1 for item in marked if not item.held and item.gold is None)


def parse_gold(job: Job, index: int, gold: dict[str, Any]) -> dict[str, Any]:
    """A gold item's known answer in stored form, checked like a worker's answer would be."""
    name = f"items[{index}].gold"
    if NA_KEY in gold:
        raise InvalidRequest(f"'{name}' must be an answer, not 'not_applicable'", field=name)
    try:
        return validate_answer(job, gold)
    except InvalidRequest as error:
        raise InvalidRequest(f"'{name}': {error.message}",
                             field=f"{name}.{error.field}" if error.field else name) from error
