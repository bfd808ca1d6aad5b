"""MTurk QualificationRequirements judged against a worker's values (no I/O)."""
from __future__ import annotations

import pytest

from chalicelib.domain import mturk_requirements as r
from chalicelib.domain.mturk_requirements import ACCEPT, DISCOVER, PREVIEW

CUSTOM = "3CUSTOMTYPE0000000000000000001"


def _req(comparator: str, *, type_id: str = CUSTOM, **extra) -> dict:
    return {"QualificationTypeId": type_id, "Comparator": comparator, **extra}


@pytest.mark.parametrize("comparator, given, value, expected", [
    ("LessThan", [5], 4, True), ("LessThan", [5], 5, False),
    ("LessThanOrEqualTo", [5], 5, True), ("LessThanOrEqualTo", [5], 6, False),
    ("GreaterThan", [5], 6, True), ("GreaterThan", [5], 5, False),
    ("GreaterThanOrEqualTo", [95], 95, True), ("GreaterThanOrEqualTo", [95], 94, False),
    ("EqualTo", [1], 1, True), ("EqualTo", [1], 2, False),
    ("NotEqualTo", [1], 2, True), ("NotEqualTo", [1], 1, False),
    ("In", [1, 3], 3, True), ("In", [1, 3], 2, False),
    ("NotIn", [1, 3], 2, True), ("NotIn", [1, 3], 1, False),
])
def test_integer_comparators(comparator, given, value, expected):
    assert r.satisfied(_req(comparator, IntegerValues=given), value) is expected


@pytest.mark.parametrize("comparator, expected", [
    ("Exists", False), ("DoesNotExist", True), ("NotEqualTo", True), ("NotIn", True),
    ("EqualTo", False), ("In", False), ("GreaterThan", False), ("LessThan", False),
])
def test_a_type_not_held_satisfies_only_the_exclusions(comparator, expected):
    assert r.satisfied(_req(comparator, IntegerValues=[1]), None) is expected


def test_exists_and_does_not_exist_make_allow_and_block_lists():
    allow, block = _req("Exists"), _req("DoesNotExist")
    assert r.admitted([allow], {CUSTOM: 0}, ACCEPT)
    assert not r.admitted([allow], {}, ACCEPT)
    assert r.admitted([block], {}, ACCEPT)
    assert not r.admitted([block], {CUSTOM: 1}, ACCEPT)


@pytest.mark.parametrize("comparator, locales, value, expected", [
    ("EqualTo", [{"Country": "US"}], {"Country": "US"}, True),
    ("EqualTo", [{"Country": "US"}], {"Country": "CA"}, False),
    ("EqualTo", [{"Country": "US", "Subdivision": "NY"}], {"Country": "US", "Subdivision": "CA"}, False),
    ("EqualTo", [{"Country": "US", "Subdivision": "NY"}], {"Country": "US", "Subdivision": "NY"}, True),
    ("In", [{"Country": "US"}, {"Country": "GB"}], {"Country": "GB"}, True),
    ("In", [{"Country": "US"}, {"Country": "GB"}], {"Country": "IN"}, False),
    ("NotIn", [{"Country": "US"}], {"Country": "IN"}, True),
    ("NotIn", [{"Country": "US"}], {"Country": "US"}, False),
    ("NotEqualTo", [{"Country": "US"}], {"Country": "US"}, False),
    ("GreaterThan", [{"Country": "US"}], {"Country": "US"}, False),
])
def test_locale_comparators(comparator, locales, value, expected):
    requirement = _req(comparator, type_id=r.LOCALE, LocaleValues=locales)
    assert r.satisfied(requirement, value) is expected


def test_an_unknown_locale_passes_not_in_and_fails_in():
    mephisto = _req("In", type_id=r.LOCALE, ActionsGuarded="DiscoverPreviewAndAccept",
                    LocaleValues=[{"Country": c} for c in ("US", "CA", "GB", "AU", "NZ")])
    excluding = _req("NotIn", type_id=r.LOCALE, LocaleValues=[{"Country": "US"}])
    assert not r.admitted([mephisto], {}, DISCOVER)
    assert r.admitted([excluding], {}, ACCEPT)


@pytest.mark.parametrize("requirement, guarded", [
    ({}, {ACCEPT}),
    ({"RequiredToPreview": False}, {ACCEPT}),
    ({"RequiredToPreview": True}, {PREVIEW, ACCEPT}),
    ({"ActionsGuarded": "Accept"}, {ACCEPT}),
    ({"ActionsGuarded": "PreviewAndAccept"}, {PREVIEW, ACCEPT}),
    ({"ActionsGuarded": "DiscoverPreviewAndAccept"}, {DISCOVER, PREVIEW, ACCEPT}),
    ({"ActionsGuarded": "Accept", "RequiredToPreview": True}, {ACCEPT}),
])
def test_which_actions_a_requirement_guards(requirement, guarded):
    assert r.guarded_actions(requirement) == guarded


def test_a_requirement_judges_only_the_actions_it_guards():
    accept_only = _req("Exists")
    assert r.admitted([accept_only], {}, DISCOVER)
    assert r.admitted([accept_only], {}, PREVIEW)
    assert not r.admitted([accept_only], {}, ACCEPT)
    assert r.named_types([accept_only], DISCOVER) == []
    assert r.named_types([accept_only, accept_only], ACCEPT) == [CUSTOM]


def test_every_requirement_must_hold():
    requirements = [_req("Exists"), _req("GreaterThanOrEqualTo", type_id=r.PERCENT_APPROVED,
                                         IntegerValues=[95])]
    assert r.admitted(requirements, {CUSTOM: 1, r.PERCENT_APPROVED: 95}, ACCEPT)
    assert not r.admitted(requirements, {CUSTOM: 1, r.PERCENT_APPROVED: 94}, ACCEPT)
    assert not r.admitted(requirements, {r.PERCENT_APPROVED: 100}, ACCEPT)


@pytest.mark.parametrize("requirement", [
    "not a dict", {"Comparator": "Exists"}, _req("Bigger", IntegerValues=[1]),
    _req("GreaterThan"), _req("GreaterThan", IntegerValues=[]),
    _req("GreaterThan", IntegerValues=[1, 2]), _req("GreaterThan", IntegerValues=["1"]),
    _req("EqualTo", IntegerValues=[True]),
])
def test_a_malformed_requirement_is_never_satisfied(requirement):
    assert not r.admitted([requirement], {CUSTOM: 1}, ACCEPT)


def test_an_integer_requirement_on_a_locale_value_is_not_satisfied():
    assert not r.satisfied(_req("EqualTo", IntegerValues=[1]), {"Country": "US"})
    assert not r.satisfied(_req("In", LocaleValues=[{"Country": "US"}]), 1)


def test_masters_is_never_held():
    masters = _req("Exists", type_id=r.MASTERS_LIVE)
    assert not r.admitted([masters], {}, ACCEPT)
    assert r.admitted([_req("DoesNotExist", type_id=r.MASTERS_SANDBOX)], {}, ACCEPT)


@pytest.mark.parametrize("approved, rejected, percent, rejected_percent", [
    (0, 0, 100, 0), (9, 1, 90, 10), (1, 2, 33, 67), (0, 3, 0, 100),
])
def test_approval_figures(approved, rejected, percent, rejected_percent):
    figures = r.approval_figures(approved, rejected)
    assert figures == {r.PERCENT_APPROVED: percent, r.NUMBER_APPROVED: approved,
                       r.PERCENT_REJECTED: rejected_percent}


def test_query_is_a_case_insensitive_substring_of_name_description_or_keywords():
    record = {"Name": "Experiment 7 done", "Description": "Took part", "Keywords": "lab,psych"}
    assert r.matches_query(record, "EXPERIMENT 7")
    assert r.matches_query(record, "TOOK")
    assert r.matches_query(record, "Psych")
    assert not r.matches_query(record, "experiment 8")
