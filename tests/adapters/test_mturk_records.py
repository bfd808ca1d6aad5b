"""The MTurk-compatible API's records on the stack's catalog table (moto), checked against
the in-memory fake the unit tests use: creation once, versioned replacement, deletion and
pages of one partition."""
from __future__ import annotations

import threading

import pytest

from chalicelib import deps
from chalicelib.adapters.mturk_records import DynamoMTurkRecords
from tests.fakes import FakeMTurkRecords


@pytest.fixture(params=["dynamo", "fake"])
def records(request, module_stack):
    if request.param == "fake":
        return FakeMTurkRecords(threading.RLock())
    found = deps.platform().mturk  # binds the models to the stack's tables
    assert isinstance(found, DynamoMTurkRecords)
    return found


def test_a_record_is_created_once_and_replaced_only_at_the_version_read(records, uid) -> None:
    kind = f"mturk#test#{uid}"
    assert records.put_new(kind, "one", {"a": 1}, 10.0) is True
    assert records.put_new(kind, "one", {"a": 2}, 11.0) is False
    first = records.get(kind, "one")
    assert (first.body, first.created_at, first.version) == ({"a": 1}, 10.0, 1)
    assert records.replace(first, {"a": 3}) is True
    assert records.replace(first, {"a": 4}) is False  # stale: another writer got there first
    second = records.get(kind, "one")
    assert (second.body, second.version) == ({"a": 3}, 2)
    assert records.delete(kind, "one") is True
    assert records.delete(kind, "one") is False
    assert records.get(kind, "one") is None


def test_pages_walk_one_partition_in_name_order(records, uid) -> None:
    kind = f"mturk#page#{uid}"
    for name in ("c", "a", "b", "d", "e"):
        records.put_new(kind, name, {"n": name}, 1.0)
    records.put_new(f"mturk#other#{uid}", "z", {}, 1.0)
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = records.page(kind, 2, cursor)
        seen += [r.name for r in page]
        pages += 1
        if cursor is None:
            break
    assert seen == ["a", "b", "c", "d", "e"]
    assert pages >= 3
