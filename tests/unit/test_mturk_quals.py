"""The MTurk API's qualifications on fakes: the system figures come from the worker's recent
ledger, each decision reads only the grants its requirements name, once a minute, and a type
name left reserved by a failed create is taken over once abandoned."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.domain import mturk_requirements as system
from chalicelib.domain.mturk import MTurkError
from chalicelib.domain.model import CLIENT, WORKER, LedgerEntry, Principal
from chalicelib.domain.mturk_ids import worker_id
from chalicelib.domain.mturk_requirements import ACCEPT, DISCOVER
from chalicelib.handlers import mturk_quals
from tests.fakes import FakeClock, make_platform

CLIENT_ID, ACCOUNT = "cli_00000000000000aa", "wrk_00000000000000bb"
WORKER_PRINCIPAL = Principal(ACCOUNT, WORKER, "w")
LAB = Principal(CLIENT_ID, CLIENT, "Lab")


class CountingRecords:
    """The records store, counting its keyed reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gets: list[tuple[str, str]] = []

    def get(self, kind: str, name: str) -> Any:
        self.gets.append((kind, name))
        return self.inner.get(kind, name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _hit(*requirements: dict) -> Any:
    """A HIT's open-jobs entry (only its job id and MTurk settings matter here)."""
    return SimpleNamespace(job_id="job_00000000000000cc", mturk={"requirements": list(requirements)})


def _platform() -> Any:
    p = make_platform(FakeClock())
    p.mturk = CountingRecords(p.mturk)
    return p


def _ledger(p: Any, *entries: tuple[str, int | None]) -> None:
    for n, (kind, answers) in enumerate(entries):
        p.ledger.rows[(ACCOUNT, f"e{n}")] = LedgerEntry(ACCOUNT, f"e{n}", kind, 0, p.now() + n,
                                                        "job_00000000000000cc", None, None,
                                                        None, answers)


def test_the_approval_figures_come_from_the_worker_s_newest_ledger_entries():
    p = _platform()
    assert mturk_quals.approval_figures(p, ACCOUNT) == {
        system.PERCENT_APPROVED: 100, system.NUMBER_APPROVED: 0, system.PERCENT_REJECTED: 0}
    p = _platform()
    _ledger(p, ("settlement", 5), ("settlement", 4), ("rejection", None), ("bonus", None))
    figures = mturk_quals.approval_figures(p, ACCOUNT)
    assert figures[system.PERCENT_APPROVED] == 90 and figures[system.NUMBER_APPROVED] == 9
    at_least = {"QualificationTypeId": system.PERCENT_APPROVED,
                "Comparator": "GreaterThanOrEqualTo"}
    assert mturk_quals.admits(p, WORKER_PRINCIPAL, _hit({**at_least, "IntegerValues": [90]}),
                              ACCEPT)
    assert not mturk_quals.admits(p, WORKER_PRINCIPAL,
                                  _hit({**at_least, "IntegerValues": [95]}), ACCEPT)


def test_a_decision_reads_only_the_named_grants_once_a_minute():
    p = _platform()
    hit = _hit({"QualificationTypeId": "3AAA", "Comparator": "Exists"},
               {"QualificationTypeId": "3BBB", "Comparator": "DoesNotExist",
                "ActionsGuarded": "DiscoverPreviewAndAccept"})
    wid = worker_id(ACCOUNT)
    assert mturk_quals.admits(p, WORKER_PRINCIPAL, hit, DISCOVER)  # 3AAA guards Accept only
    assert p.mturk.gets == [(mturk_quals.grant_kind("3BBB"), wid)]
    p.mturk.gets.clear()
    for _ in range(3):
        assert not mturk_quals.admits(p, WORKER_PRINCIPAL, hit, ACCEPT)
    # 3AAA's grant once (3BBB's is cached), and 3AAA's owner is asked whether it is
    # auto-granted (the entry names a job this platform does not have: no owner, no read)
    assert p.mturk.gets == [(mturk_quals.grant_kind("3AAA"), wid)]
    p.mturk.gets.clear()
    p.clock.advance(mturk_quals.PRINCIPAL_CACHE_SECONDS + 1)
    mturk_quals.admits(p, WORKER_PRINCIPAL, hit, ACCEPT)
    assert sorted(p.mturk.gets) == [(mturk_quals.grant_kind("3AAA"), wid),
                                    (mturk_quals.grant_kind("3BBB"), wid)]


def test_a_grant_or_block_written_by_this_container_counts_at_once():
    p = _platform()
    made = mturk_quals.create_qualification_type(p, LAB, {
        "Name": "ok", "Description": "d", "QualificationTypeStatus": "Active"})
    type_id = made["QualificationType"]["QualificationTypeId"]
    hit = _hit({"QualificationTypeId": type_id, "Comparator": "Exists"})
    assert not mturk_quals.admits(p, WORKER_PRINCIPAL, hit, ACCEPT)
    mturk_quals.associate_qualification_with_worker(p, LAB, {
        "QualificationTypeId": type_id, "WorkerId": worker_id(ACCOUNT)})
    assert mturk_quals.admits(p, WORKER_PRINCIPAL, hit, ACCEPT)
    assert not mturk_quals.blocked_by_client(p, CLIENT_ID, ACCOUNT)
    mturk_quals.create_worker_block(p, LAB, {"WorkerId": worker_id(ACCOUNT), "Reason": "spam"})
    assert mturk_quals.blocked_by_client(p, CLIENT_ID, ACCOUNT)
    mturk_quals.delete_worker_block(p, LAB, {"WorkerId": worker_id(ACCOUNT)})
    assert not mturk_quals.blocked_by_client(p, CLIENT_ID, ACCOUNT)


MEPHISTO = {"QualificationTypeId": system.LOCALE, "Comparator": "In",
            "LocaleValues": [{"Country": c} for c in ("US", "CA", "GB", "AU", "NZ")],
            "ActionsGuarded": "DiscoverPreviewAndAccept"}


@pytest.mark.parametrize("country, subdivision, requirement, admitted", [
    ("US", None, MEPHISTO, True),
    ("NZ", "AUK", MEPHISTO, True),
    ("DE", None, MEPHISTO, False),
    (None, None, MEPHISTO, False),
    # a subdivision is compared only when the requirement names one
    ("US", "CA", {**MEPHISTO, "LocaleValues": [{"Country": "US", "Subdivision": "CA"}]}, True),
    ("US", "NY", {**MEPHISTO, "LocaleValues": [{"Country": "US", "Subdivision": "CA"}]}, False),
    ("US", None, {**MEPHISTO, "LocaleValues": [{"Country": "US", "Subdivision": "CA"}]}, False),
    ("US", None, {**MEPHISTO, "Comparator": "EqualTo", "LocaleValues": [{"Country": "US"}]},
     True),
    ("US", None, {**MEPHISTO, "Comparator": "NotIn"}, False),
    ("DE", None, {**MEPHISTO, "Comparator": "NotIn"}, True),
    # a worker who gave no country holds no locale: the exclusions admit them
    (None, None, {**MEPHISTO, "Comparator": "NotEqualTo", "LocaleValues": [{"Country": "US"}]},
     True),
])
def test_the_locale_comes_from_the_worker_s_principal_without_a_read(country, subdivision,
                                                                      requirement, admitted):
    p = _platform()
    worker = Principal(ACCOUNT, WORKER, "w", country=country, subdivision=subdivision)
    for action in (DISCOVER, ACCEPT):
        assert mturk_quals.admits(p, worker, _hit(requirement), action) is admitted
    assert p.mturk.gets == []


def test_an_ordinary_job_is_never_refused_and_reads_nothing():
    p = _platform()
    plain = SimpleNamespace(job_id="job_00000000000000dd", mturk={})
    assert mturk_quals.refusal(p, WORKER_PRINCIPAL, plain, ACCEPT) is None
    assert p.mturk.gets == []


def test_a_name_left_reserved_by_a_failed_create_is_taken_over_once_abandoned():
    p = _platform()
    # a create that reserved the name and failed before writing its type
    p.mturk.put_new(f"mturk#qualname#{CLIENT_ID}", "consented", {"QualificationTypeId": "3GONE"},
                    p.now())
    body = {"Name": "Consented", "Description": "d", "QualificationTypeStatus": "Active"}
    with pytest.raises(MTurkError) as raised:  # it may still be running
        mturk_quals.create_qualification_type(p, LAB, body)
    assert raised.value.message.startswith(mturk_quals.DUPLICATE_NAME)
    p.clock.advance(mturk_quals.ABANDONED_SECONDS + 1)
    made = mturk_quals.create_qualification_type(p, LAB, body)["QualificationType"]
    assert made["Name"] == "Consented"
    with pytest.raises(MTurkError):  # now held by a type that exists
        p.clock.advance(mturk_quals.ABANDONED_SECONDS + 1)
        mturk_quals.create_qualification_type(p, LAB, body)
