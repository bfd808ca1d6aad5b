"""MTurk QualificationRequirements, judged without I/O: which actions a requirement guards,
whether a worker's values satisfy it, and the system qualification types tools hard-code.

A worker's values are a dict from QualificationTypeId to what the worker holds: an integer
(a granted custom qualification's IntegerValue, or a system figure) or a locale
(`{"Country": "US", "Subdivision": "NY"}`); a type the worker does not hold is absent.
A requirement is judged as given: one that is malformed is never satisfied (fail closed).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DISCOVER, PREVIEW, ACCEPT = "Discover", "Preview", "Accept"

# What each ActionsGuarded value guards; a requirement with neither ActionsGuarded nor
# RequiredToPreview guards Accept alone (workers may find and preview the HIT), the deprecated
# RequiredToPreview=true is PreviewAndAccept, and ActionsGuarded wins when both are given.
GUARDS = {
    "Accept": frozenset((ACCEPT,)),
    "PreviewAndAccept": frozenset((PREVIEW, ACCEPT)),
    "DiscoverPreviewAndAccept": frozenset((DISCOVER, PREVIEW, ACCEPT)),
}
COMPARATORS = frozenset((
    "LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo", "EqualTo",
    "NotEqualTo", "Exists", "DoesNotExist", "In", "NotIn",
))
# Comparators a worker who does not hold the type satisfies: they hold no value, so none of
# the excluded ones.
SATISFIED_WITHOUT = frozenset(("DoesNotExist", "NotEqualTo", "NotIn"))

# The system types (MTurk's own ids, which tools hard-code).
PERCENT_APPROVED = "000000000000000000L0"
NUMBER_APPROVED = "00000000000000000040"
PERCENT_REJECTED = "000000000000000000S0"
LOCALE = "00000000000000000071"
ADULT = "00000000000000000060"
MASTERS_LIVE = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
MASTERS_SANDBOX = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"
# The figures computed from a worker's history (the others are never held).
APPROVAL_TYPES = frozenset((PERCENT_APPROVED, NUMBER_APPROVED, PERCENT_REJECTED))

SYSTEM_TYPES: tuple[dict[str, Any], ...] = (
    {"QualificationTypeId": PERCENT_APPROVED, "Name": "Worker_PercentAssignmentsApproved",
     "Description": "The percentage of the worker's reviewed assignments that were approved.",
     "Keywords": "system,approval"},
    {"QualificationTypeId": NUMBER_APPROVED, "Name": "Worker_NumberHITsApproved",
     "Description": "How many of the worker's assignments were approved.",
     "Keywords": "system,approval"},
    {"QualificationTypeId": PERCENT_REJECTED, "Name": "Worker_PercentAssignmentsRejected",
     "Description": "The percentage of the worker's reviewed assignments that were rejected.",
     "Keywords": "system,rejection"},
    {"QualificationTypeId": LOCALE, "Name": "Worker_Locale",
     "Description": "The worker's country and subdivision, as the worker gave them in "
                    "their profile (not held by a worker who gave none).",
     "Keywords": "system,locale,country"},
    {"QualificationTypeId": ADULT, "Name": "Worker_Adult",
     "Description": "The worker agreed to see adult content (never held here).",
     "Keywords": "system,adult"},
    {"QualificationTypeId": MASTERS_LIVE, "Name": "Masters",
     "Description": "MTurk Masters (no equivalent here: never held).", "Keywords": "system,masters"},
    {"QualificationTypeId": MASTERS_SANDBOX, "Name": "Masters (sandbox)",
     "Description": "MTurk sandbox Masters (no equivalent here: never held).",
     "Keywords": "system,masters"},
)
SYSTEM_IDS = frozenset(t["QualificationTypeId"] for t in SYSTEM_TYPES)


def guarded_actions(requirement: Mapping[str, Any]) -> frozenset[str]:
    """The actions a requirement guards (a worker failing it may not take them)."""
    guarded = requirement.get("ActionsGuarded")
    if guarded is not None:
        return GUARDS.get(guarded, GUARDS["DiscoverPreviewAndAccept"])
    if requirement.get("RequiredToPreview") is True:
        return GUARDS["PreviewAndAccept"]
    return GUARDS["Accept"]


def named_types(requirements: Iterable[Mapping[str, Any]], action: str) -> list[str]:
    """The QualificationTypeIds of the requirements guarding an action, each once, in order."""
    seen: dict[str, None] = {}
    for requirement in requirements:
        type_id = requirement.get("QualificationTypeId") if isinstance(requirement, Mapping) \
            else None
        if isinstance(type_id, str) and action in guarded_actions(requirement):
            seen.setdefault(type_id, None)
    return list(seen)


def admitted(requirements: Sequence[Any], values: Mapping[str, Any], action: str) -> bool:
    """Whether a worker with these values may take the action: every requirement guarding it
    is satisfied (a malformed one never is)."""
    for requirement in requirements:
        if not isinstance(requirement, Mapping):
            return False
        if action not in guarded_actions(requirement):
            continue
        type_id = requirement.get("QualificationTypeId")
        if not isinstance(type_id, str) or not satisfied(requirement, values.get(type_id)):
            return False
    return True


def satisfied(requirement: Mapping[str, Any], value: Any) -> bool:
    """Whether one requirement holds for the value the worker holds (None: not held)."""
    comparator = requirement.get("Comparator")
    if comparator not in COMPARATORS:
        return False
    if comparator == "Exists":
        return value is not None
    if value is None:
        return comparator in SATISFIED_WITHOUT
    if comparator == "DoesNotExist":
        return False
    if isinstance(value, Mapping):
        return _locale_holds(comparator, value, requirement.get("LocaleValues"))
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return _integer_holds(comparator, value, requirement.get("IntegerValues"))


def _integer_holds(comparator: str, value: int, given: Any) -> bool:
    if not isinstance(given, list) or not given or \
            not all(isinstance(n, int) and not isinstance(n, bool) for n in given):
        return False
    if comparator in ("In", "NotIn"):
        return (value in given) == (comparator == "In")
    if len(given) != 1:
        return False
    other = given[0]
    return {
        "LessThan": value < other, "LessThanOrEqualTo": value <= other,
        "GreaterThan": value > other, "GreaterThanOrEqualTo": value >= other,
        "EqualTo": value == other, "NotEqualTo": value != other,
    }.get(comparator, False)


def _locale_holds(comparator: str, value: Mapping[str, Any], given: Any) -> bool:
    if not isinstance(given, list) or not given or \
            not all(isinstance(g, Mapping) and isinstance(g.get("Country"), str) for g in given):
        return False
    if comparator in ("EqualTo", "NotEqualTo") and len(given) != 1:
        return False
    matches = any(_same_place(value, g) for g in given)
    if comparator in ("EqualTo", "In"):
        return matches
    if comparator in ("NotEqualTo", "NotIn"):
        return not matches
    return False  # the ordering comparators do not apply to a locale


def _same_place(value: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """A locale matches a wanted one: the same country, and the same subdivision when the
    wanted one names one."""
    if str(value.get("Country", "")).upper() != wanted["Country"].upper():
        return False
    subdivision = wanted.get("Subdivision")
    return subdivision is None or \
        str(value.get("Subdivision", "")).upper() == str(subdivision).upper()


def approval_figures(approved: int, rejected: int) -> dict[str, int]:
    """The system figures of a worker with this many approved and rejected assignments; a
    worker with none reviewed has 100% approved (as MTurk showed new workers) and 0."""
    reviewed = approved + rejected
    percent = 100 if reviewed == 0 else (100 * approved) // reviewed
    return {PERCENT_APPROVED: percent, NUMBER_APPROVED: approved,
            PERCENT_REJECTED: 100 - percent if reviewed else 0}


def matches_query(record: Mapping[str, Any], query: str) -> bool:
    """ListQualificationTypes' Query: a case-insensitive substring of the type's name,
    description or keywords."""
    wanted = query.casefold()
    return any(wanted in str(record.get(field) or "").casefold()
               for field in ("Name", "Description", "Keywords"))
