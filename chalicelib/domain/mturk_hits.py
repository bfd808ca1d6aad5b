"""MTurk HITs on our model, without I/O: a HIT is a job of one item whose MaxAssignments are
the item's slots. Reading a CreateHIT/CreateHITType request (Question XML, Reward, lifetimes,
QualificationRequirements), and rendering a HIT as GetHIT answers it, its status and its three
counters derived from the item and the job (study §3.4).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain import mturk
from chalicelib.domain.jobs import MAX_AUTO_APPROVE_SECONDS, MAX_DEADLINE_SECONDS
from chalicelib.domain.model import ACTIVE, INGESTING, ItemState, Job, StoredAnswer
from chalicelib.domain.mturk_ids import hit_id
from chalicelib.domain.pricing import MAX_REWARD_CENTS

# Answers live on the item record (400 KB): a HIT takes at most this many assignments.
MAX_HIT_ASSIGNMENTS = 100
# What the answers of one HIT may take on its item record, shared by its assignments.
ANSWER_BYTES = 300_000
MAX_ANSWER_CHARS = 16_000
# The Question as given is kept on the item (and its HTML content parsed out beside it).
MAX_QUESTION_BYTES = 32 * 1024
MIN_LIFETIME_SECONDS = 30
MIN_ASSIGNMENT_SECONDS = 30
# Leases of our marketplace last at most an hour (chalicelib.domain.jobs).
MAX_ASSIGNMENT_SECONDS = 3600
DEFAULT_AUTO_APPROVAL_SECONDS = MAX_AUTO_APPROVE_SECONDS  # MTurk's default: 30 days
MAX_TITLE = 128
MAX_DESCRIPTION = 2000
MAX_KEYWORDS = 1000
MAX_ANNOTATION = 255
MAX_REQUIREMENTS = 10
DEFAULT_FRAME_HEIGHT = 0
MAX_FRAME_HEIGHT = 10_000
COMPARATORS = ("LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo",
               "EqualTo", "NotEqualTo", "Exists", "DoesNotExist", "In", "NotIn")
ACTIONS_GUARDED = ("Accept", "PreviewAndAccept", "DiscoverPreviewAndAccept")
REVIEW_STATUSES = ("NotReviewed", "MarkedForReview", "ReviewedAppropriate",
                   "ReviewedInappropriate")
# The HIT type's defining properties (CreateHITType's members): same values, same HITTypeId.
TYPE_PROPERTIES = ("AutoApprovalDelayInSeconds", "AssignmentDurationInSeconds", "Reward",
                   "Title", "Keywords", "Description", "QualificationRequirements")

HIT_DOES_NOT_EXIST = "AWS.MechanicalTurk.HITDoesNotExist"
INVALID_HIT_STATE = "AWS.MechanicalTurk.InvalidHITState"

# The reason UpdateExpirationForHIT records on the job when it expires a HIT at once (its
# HITExpired is announced then, so the sweeper's later pass does not announce it again).
EXPIRED_BY_REQUEST = "expired by UpdateExpirationForHIT"


def hit_kind(client_id: str) -> str:
    """The MTurk records' partition of a client's HITs (named by HITId)."""
    return f"mturk#hit#{client_id}"


def hit_type_kind(client_id: str) -> str:
    """The MTurk records' partition of a client's HIT types (named by HITTypeId)."""
    return f"mturk#hittype#{client_id}"


def token_kind(client_id: str) -> str:
    """The MTurk records' partition of a client's UniqueRequestTokens
    (named `<operation>#<token>`)."""
    return f"mturk#token#{client_id}"


def invalid(message: str) -> mturk.MTurkError:
    """A request that breaks the model's shape (a missing member, a wrong type)."""
    return mturk.MTurkError("ValidationException", message)


def integer(body: Mapping[str, Any], name: str, low: int, high: int,
            default: int | None = None, why: str = "") -> int:
    """A Long member within bounds; ValidationException when missing or not a whole number,
    RequestError when out of the range served here."""
    value = body.get(name, default)
    if value is None:
        raise invalid(f"Value null at '{name}' failed to satisfy constraint: "
                      "Member must not be null")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name} must be a whole number")
    if not low <= value <= high:
        raise mturk.request_error(f"{name} must be from {low} to {high}{why}; got {value}",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    return value


def text(body: Mapping[str, Any], name: str, max_length: int, required: bool = True
         ) -> str:
    """A String member: required ones non-empty, each at most max_length characters."""
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"Value null at '{name}' failed to satisfy constraint: "
                          "Member must not be null")
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    if required and not value.strip():
        raise mturk.request_error(f"{name} must not be empty",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    if len(value) > max_length:
        raise mturk.request_error(f"{name} must have at most {max_length} characters",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    return value


def reward_cents(body: Mapping[str, Any], floor_cents: int) -> int:
    """The Reward member ("0.05": dollars, at most two decimals) in cents, from the task
    type's floor (the marketplace's lowest reward) to the highest reward."""
    value = body.get("Reward")
    if value is None:
        raise invalid("Value null at 'reward' failed to satisfy constraint: "
                      "Member must not be null")
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or \
            amount != amount.quantize(Decimal("0.01")):
        raise invalid(f"Reward must be an amount in dollars such as \"0.05\"; got {value!r}")
    cents = int(amount * 100)
    if cents < floor_cents:
        raise mturk.request_error(
            f"Reward must be at least {mturk.money(floor_cents)} here (the lowest reward "
            f"per answer of this marketplace); got {mturk.money(cents)}",
            "AWS.MechanicalTurk.InvalidParameterValue")
    if cents > MAX_REWARD_CENTS:
        raise mturk.request_error(f"Reward may be at most {mturk.money(MAX_REWARD_CENTS)}",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    return cents


def requirements(raw: Any) -> list[dict[str, Any]]:
    """QualificationRequirements checked for shape and kept as given: each a
    QualificationTypeId, a Comparator of the model's enum, IntegerValues or LocaleValues as
    the comparator needs, and the optional ActionsGuarded / RequiredToPreview."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("QualificationRequirements must be a list")
    if len(raw) > MAX_REQUIREMENTS:
        raise mturk.request_error(f"a HIT takes at most {MAX_REQUIREMENTS} "
                                  "QualificationRequirements",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    return [_requirement(entry, index) for index, entry in enumerate(raw)]


def _requirement(entry: Any, index: int) -> dict[str, Any]:
    where = f"QualificationRequirements[{index}]"
    if not isinstance(entry, dict):
        raise invalid(f"{where} must be an object")
    known = ("QualificationTypeId", "Comparator", "IntegerValues", "LocaleValues",
             "RequiredToPreview", "ActionsGuarded")
    unknown = sorted(set(entry) - set(known))
    if unknown:
        raise invalid(f"{where} has unknown members: {', '.join(unknown)}")
    type_id = entry.get("QualificationTypeId")
    if not isinstance(type_id, str) or not type_id or len(type_id) > 64:
        raise invalid(f"{where}.QualificationTypeId must be a qualification type's id")
    comparator = entry.get("Comparator")
    if comparator not in COMPARATORS:
        raise invalid(f"{where}.Comparator must be one of {', '.join(COMPARATORS)}")
    integers, locales = entry.get("IntegerValues"), entry.get("LocaleValues")
    if integers is not None and (not isinstance(integers, list) or any(
            isinstance(n, bool) or not isinstance(n, int) for n in integers)):
        raise invalid(f"{where}.IntegerValues must be a list of whole numbers")
    if locales is not None:
        _locales(locales, where)
    values = len(integers or []) + len(locales or [])
    if comparator in ("Exists", "DoesNotExist") and values:
        raise mturk.request_error(f"{where}: {comparator} takes no values",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    if comparator in ("In", "NotIn") and not values:
        raise mturk.request_error(f"{where}: {comparator} needs IntegerValues or LocaleValues",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    if comparator not in ("Exists", "DoesNotExist", "In", "NotIn") and values != 1:
        raise mturk.request_error(f"{where}: {comparator} compares with exactly one value",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    if integers and locales:
        raise mturk.request_error(f"{where}: give IntegerValues or LocaleValues, not both",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    preview = entry.get("RequiredToPreview")
    if preview is not None and not isinstance(preview, bool):
        raise invalid(f"{where}.RequiredToPreview must be true or false")
    guarded = entry.get("ActionsGuarded")
    if guarded is not None and guarded not in ACTIONS_GUARDED:
        raise invalid(f"{where}.ActionsGuarded must be one of {', '.join(ACTIONS_GUARDED)}")
    return dict(entry)


def _locales(locales: Any, where: str) -> None:
    if not isinstance(locales, list):
        raise invalid(f"{where}.LocaleValues must be a list of locales")
    for locale in locales:
        if not isinstance(locale, dict) or set(locale) - {"Country", "Subdivision"}:
            raise invalid(f"{where}.LocaleValues holds {{Country, Subdivision}} objects")
        country = locale.get("Country")
        if not isinstance(country, str) or len(country) != 2 or not country.isalpha():
            raise invalid(f"{where}.LocaleValues: Country is an ISO 3166 two-letter code")
        subdivision = locale.get("Subdivision")
        if subdivision is not None and (not isinstance(subdivision, str)
                                        or not 1 <= len(subdivision) <= 3):
            raise invalid(f"{where}.LocaleValues: Subdivision is an ISO 3166-2 code")


def type_properties(body: Mapping[str, Any], floor_cents: int) -> dict[str, Any]:
    """A HIT type's defining properties from a CreateHITType (or CreateHIT) request, checked
    and normalised (Reward in MTurk's spelling, defaults filled in), so the same type
    registered twice gets the same HITTypeId."""
    return {
        "AutoApprovalDelayInSeconds": integer(body, "AutoApprovalDelayInSeconds", 0,
                                              MAX_AUTO_APPROVE_SECONDS,
                                              DEFAULT_AUTO_APPROVAL_SECONDS),
        "AssignmentDurationInSeconds": integer(body, "AssignmentDurationInSeconds",
                                               MIN_ASSIGNMENT_SECONDS, MAX_ASSIGNMENT_SECONDS,
                                               why=" here (a task's lease lasts at most an "
                                               "hour)"),
        "Reward": mturk.money(reward_cents(body, floor_cents)),
        "Title": text(body, "Title", MAX_TITLE),
        "Keywords": text(body, "Keywords", MAX_KEYWORDS, required=False),
        "Description": text(body, "Description", MAX_DESCRIPTION),
        "QualificationRequirements": requirements(body.get("QualificationRequirements")),
    }


@dataclass(frozen=True)
class Question:
    """A HIT's Question: its kind ("external", "html" or "form") and the item's data (the
    XML as given under "question", plus what the worker side needs parsed out of it)."""

    kind: str
    data: dict[str, Any]

    @property
    def frame_height(self) -> int:
        """The frame's height in pixels (0: fit the window)."""
        return int(self.data.get("frame_height", DEFAULT_FRAME_HEIGHT))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_question(body: Mapping[str, Any]) -> Question:
    """The Question member: an ExternalQuestion (ExternalURL, FrameHeight), an HTMLQuestion
    (HTMLContent, FrameHeight) or a QuestionForm (kept as given). HITLayoutId is not served,
    and XML that does not parse is a RequestError."""
    if body.get("HITLayoutId") is not None or body.get("HITLayoutParameters") is not None:
        raise mturk.request_error("HITLayoutId is not supported here: send the Question "
                                  "(ExternalQuestion, HTMLQuestion or QuestionForm) instead",
                                  "AWS.MechanicalTurk.OperationNotSupported")
    xml = body.get("Question")
    if xml is None:
        raise mturk.request_error("Question is required (an ExternalQuestion, HTMLQuestion "
                                  "or QuestionForm)", "AWS.MechanicalTurk.XMLParseError")
    if not isinstance(xml, str):
        raise invalid("Question must be a string of XML")
    if len(xml.encode("utf-8")) > MAX_QUESTION_BYTES:
        raise mturk.request_error(f"Question must be at most {MAX_QUESTION_BYTES} bytes here",
                                  "AWS.MechanicalTurk.InvalidParameterValue")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise mturk.request_error(f"The Question is not well-formed XML: {error}",
                                  "AWS.MechanicalTurk.XMLParseError") from None
    name = _local(root.tag)
    children = {_local(child.tag): (child.text or "").strip() for child in root}
    if name == "ExternalQuestion":
        url = children.get("ExternalURL", "")
        if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
            raise mturk.request_error("ExternalQuestion needs an ExternalURL (an http or "
                                      "https URL)", "AWS.MechanicalTurk.XMLParseError")
        return Question("external", {"question": xml, "external_url": url,
                                     "frame_height": _frame_height(children)})
    if name == "HTMLQuestion":
        content = next((child.text or "" for child in root
                        if _local(child.tag) == "HTMLContent"), "")
        if not content.strip():
            raise mturk.request_error("HTMLQuestion needs its HTMLContent",
                                      "AWS.MechanicalTurk.XMLParseError")
        return Question("html", {"question": xml, "html": content,
                                 "frame_height": _frame_height(children)})
    if name == "QuestionForm":
        return Question("form", {"question": xml, "frame_height": DEFAULT_FRAME_HEIGHT})
    raise mturk.request_error("The Question must be an ExternalQuestion, HTMLQuestion or "
                              f"QuestionForm; got <{name}>", "AWS.MechanicalTurk.XMLParseError")


def _frame_height(children: Mapping[str, str]) -> int:
    raw = children.get("FrameHeight", "")
    if not raw:
        return DEFAULT_FRAME_HEIGHT
    if not raw.isdigit() or int(raw) > MAX_FRAME_HEIGHT:
        raise mturk.request_error(f"FrameHeight must be a whole number of pixels from 0 to "
                                  f"{MAX_FRAME_HEIGHT}", "AWS.MechanicalTurk.XMLParseError")
    return int(raw)


def lifetime(body: Mapping[str, Any]) -> int:
    """LifetimeInSeconds: 30 seconds (MTurk's least) to our longest job deadline."""
    return integer(body, "LifetimeInSeconds", MIN_LIFETIME_SECONDS, MAX_DEADLINE_SECONDS,
                   why=" here (a job lasts at most 90 days)")


def max_assignments(body: Mapping[str, Any]) -> int:
    """MaxAssignments: 1 (MTurk's default) to MAX_HIT_ASSIGNMENTS."""
    return integer(body, "MaxAssignments", 1, MAX_HIT_ASSIGNMENTS, default=1)


def answer_schema(assignments: int) -> dict[str, Any]:
    """A HIT job's answer schema: QuestionFormAnswers XML whose length lets every one of its
    assignments' answers fit on the item together."""
    return {"min_length": 0, "max_length": min(MAX_ANSWER_CHARS, ANSWER_BYTES // assignments)}


@dataclass(frozen=True)
class Counts:
    """A HIT's assignments by where they stand."""

    available: int
    pending: int
    completed: int
    submitted: int  # answered, not reviewed yet

    @property
    def awaiting_review(self) -> int:
        """Submitted answers nobody approved or rejected yet."""
        return self.submitted


def counts(item: ItemState | None, now: float, auto_approve_seconds: float | None = None
           ) -> Counts:
    """Available = slots neither leased (live) nor answered; Pending = live leases;
    Completed = answers approved or rejected, an answer nobody reviewed counting as approved
    once auto_approve_seconds (the job's) have passed since it was submitted, as
    GetAssignment says; the rest of MaxAssignments are submitted answers awaiting review. A
    rejected answer keeps its slot (as on MTurk)."""
    if item is None:
        return Counts(0, 0, 0, 0)
    pending = sum(1 for lease in item.leases.values() if lease.expires_at > now)
    reviewed = sum(1 for answer in item.answers.values() if _reviewed(answer, now,
                                                                      auto_approve_seconds))
    answered = max(item.answer_count, len(item.answers))
    return Counts(max(0, item.redundancy - pending - answered), pending, reviewed,
                  answered - reviewed)


def _reviewed(answer: StoredAnswer, now: float, auto_approve_seconds: float | None) -> bool:
    if answer.review and answer.review.get("status") in ("approved", "rejected"):
        return True
    return auto_approve_seconds is not None and answer.submitted_at + auto_approve_seconds <= now


def is_expired(job: Job, now: float) -> bool:
    """Whether a HIT's job takes no more workers: its deadline passed, or it left the active
    state (expired early, deleted, aggregated)."""
    return now >= job.deadline or job.state not in (ACTIVE, INGESTING)


def status(job: Job, settings: Mapping[str, Any], tally: Counts, now: float) -> str:
    """HITStatus: Disposed after DeleteHIT; Reviewable once expired or when every assignment
    is submitted and none is pending; Unassignable when no slot is free but some are leased;
    Assignable otherwise."""
    if settings.get("disposed"):
        return "Disposed"
    if is_expired(job, now):
        return "Reviewable"
    if tally.available > 0:
        return "Assignable" if job.state == ACTIVE else "Unassignable"
    return "Unassignable" if tally.pending else "Reviewable"


def render_hit(job: Job, settings: Mapping[str, Any], item: ItemState | None,
               now: float) -> dict[str, Any]:
    """A HIT exactly as GetHIT returns it (the `HIT` member), every field of the model's HIT
    that applies, QualificationRequirements always present.

    - job: the HIT's job (its title, description, reward, deadline, lease time, state);
    - settings: the body of the HIT's `mturk#hit#<client>` record (hit_settings made it);
    - item: the job's one item as the item store reads it (slots, leases, answers with their
      reviews), or None before it is written;
    - now: the time the counters and the status are taken at (epoch seconds).
    """
    tally = counts(item, now, job.auto_approve_seconds)
    return {
        "HITId": hit_id(job.job_id),
        "HITTypeId": settings["HITTypeId"],
        "HITGroupId": settings["HITGroupId"],
        "CreationTime": mturk.epoch(settings["CreationTime"]),
        "Title": job.title,
        "Description": job.instructions,
        "Question": settings["Question"],
        "Keywords": settings.get("Keywords", ""),
        "HITStatus": status(job, settings, tally, now),
        "MaxAssignments": item.redundancy if item is not None else job.redundancy,
        "Reward": mturk.money(job.reward_cents),
        "AutoApprovalDelayInSeconds": int(settings["AutoApprovalDelayInSeconds"]),
        "Expiration": mturk.epoch(job.deadline),
        "AssignmentDurationInSeconds": job.lease_seconds,
        **({"RequesterAnnotation": settings["RequesterAnnotation"]}
           if settings.get("RequesterAnnotation") else {}),
        "QualificationRequirements": [
            {**requirement, "RequiredToPreview": bool(requirement.get("RequiredToPreview"))}
            for requirement in settings.get("QualificationRequirements", [])],
        "HITReviewStatus": settings.get("HITReviewStatus", "NotReviewed"),
        "NumberOfAssignmentsPending": tally.pending,
        "NumberOfAssignmentsAvailable": tally.available,
        "NumberOfAssignmentsCompleted": tally.completed,
    }


def hit_settings(question: Question, properties: Mapping[str, Any], type_id: str,
                 group_id: str, annotation: str, now: float) -> dict[str, Any]:
    """The body of a HIT's `mturk#hit#<client>` record: what MTurk keeps on a HIT that the
    job does not (the Question as given, Keywords, RequesterAnnotation, the requirements,
    the auto-approval delay, the review status, the HIT type and group, when it was made)
    and whether it was disposed."""
    return {
        "Question": question.data["question"], "QuestionKind": question.kind,
        "Keywords": properties.get("Keywords", ""), "RequesterAnnotation": annotation,
        "QualificationRequirements": list(properties.get("QualificationRequirements", [])),
        "AutoApprovalDelayInSeconds": int(properties["AutoApprovalDelayInSeconds"]),
        "HITReviewStatus": "NotReviewed", "disposed": False, "HITTypeId": type_id,
        "HITGroupId": group_id, "CreationTime": now,
    }
