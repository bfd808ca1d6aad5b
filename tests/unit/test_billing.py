"""DynamoDB's billing arithmetic (bench/billing.py) and the capacity bench's recorder
(bench/capacity.py), on hand-made items and calls: no stack."""
import pytest

from bench.billing import (
    Index, ItemRead, ItemWrite, RecordedCall, Table, charges, index_write_units, item_size,
    number_size, read_units, total, write_units,
)
from bench.capacity import CapacityRecorder, report

KB = 1024


def s(n: int) -> dict:
    """A string value of n bytes."""
    return {"S": "x" * n}


def test_item_size_is_names_plus_values():
    assert item_size({"shirtColor": {"S": "R"}}) == 11
    assert item_size({"name": {"S": "é"}}) == 4 + 2  # UTF-8 bytes
    assert item_size({"b": {"B": b"abc"}, "c": {"B": "YWJj"}}) == 1 + 3 + 1 + 3
    assert item_size({"t": {"BOOL": True}, "n": {"NULL": True}}) == 4
    assert item_size({"ss": {"SS": ["a", "bc"]}}) == 2 + 3
    assert item_size(None) == 0


def test_lists_and_maps_cost_three_bytes_and_one_per_element():
    assert item_size({"m": {"M": {}}}) == 1 + 3
    assert item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + (1 + 1 + 2)
    assert item_size({"l": {"L": [{"N": "1"}, {"BOOL": False}]}}) == 1 + 3 + (1 + 2) + (1 + 1)


@pytest.mark.parametrize("text,size", [
    ("1", 2), ("12", 2), ("123", 3), ("12345", 4), ("100", 2), ("0.001", 2), ("-1.5", 3),
    ("1.5e-05", 2), ("1700000000.123456", 9),
])
def test_numbers_take_a_byte_per_two_significant_digits_plus_one(text, size):
    assert number_size(text) == size


def test_writes_round_up_to_1_kb_and_reads_to_4_kb():
    assert write_units(500) == 1  # a 500-byte item costs a whole unit
    assert write_units(KB) == 1
    assert write_units(KB + 1) == 2
    assert write_units(3584) == 4  # 3.5 KB
    assert write_units(0) == 1  # a failed write on no item still pays one
    assert read_units(3584, consistent=True) == 1.0  # 3.5 KB -> 4 KB
    assert read_units(3584, consistent=False) == 0.5
    assert read_units(10 * KB, consistent=True) == 3.0  # 10 KB -> 12 KB
    assert read_units(0, consistent=False) == 0.5


def test_batch_get_rounds_each_item_and_query_rounds_the_sum():
    # BatchGetItem of a 1.5 KB and a 6.5 KB item: 4 KB + 8 KB = 3 units.
    batch = RecordedCall("BatchGetItem", "p", reads=(
        ItemRead("t", None, (1536, 6656), True, per_item=True),))
    assert [c.read_units for c in charges(batch, {})] == [3.0]
    # A Query reading 10 items of 40.8 KB in all: 44 KB = 11 units (5.5 eventually consistent).
    sizes = (4178,) * 9 + (int(40.8 * KB) - 9 * 4178,)
    query = RecordedCall("Query", "p", reads=(ItemRead("t", "i", sizes, True, per_item=False),))
    assert [c.read_units for c in charges(query, {})] == [11.0]
    eventual = RecordedCall("Query", "p", reads=(ItemRead("t", "i", sizes, False, per_item=False),))
    assert [(c.target, c.read_units) for c in charges(eventual, {})] == [("t/i", 5.5)]


def test_transactions_cost_twice():
    table = Table("t", ("pk",))
    item = {"pk": s(KB - 2)}  # 1 KB
    put = RecordedCall("TransactWriteItems", "p", writes=(
        ItemWrite("t", None, item), ItemWrite("t", item, item, condition_only=True)))
    assert [c.write_units for c in charges(put, {"t": table})] == [2, 2]
    get = RecordedCall("TransactGetItems", "p", reads=(ItemRead("t", None, (4 * KB,), True, True),))
    assert [c.read_units for c in charges(get, {})] == [2.0]


def test_a_write_pays_for_the_larger_of_the_item_before_and_after():
    table = {"t": Table("t", ("pk",))}
    grow = RecordedCall("UpdateItem", "p", writes=(
        ItemWrite("t", {"pk": s(10)}, {"pk": s(10), "a": s(2 * KB)}),))
    shrink = RecordedCall("UpdateItem", "p", writes=(
        ItemWrite("t", {"pk": s(10), "a": s(2 * KB)}, {"pk": s(10)}),))
    delete = RecordedCall("DeleteItem", "p", writes=(ItemWrite("t", {"pk": s(3 * KB)}, None),))
    assert [c.write_units for c in charges(grow, table)] == [3]
    assert [c.write_units for c in charges(shrink, table)] == [3]
    assert [c.write_units for c in charges(delete, table)] == [4]


def test_index_writes_follow_the_index_entry():
    keys_only = Index("by_due", ("queue", "due"), "KEYS_ONLY")
    everything = Index("by_state", ("state",), "ALL")
    include = Index("inc", ("state",), "INCLUDE", ("a",))
    table_keys = ("pk",)
    before = {"pk": s(10), "queue": s(1), "due": {"N": "1"}, "state": s(5), "a": s(2 * KB),
              "big": s(3 * KB)}
    same_keys = {**before, "big": s(3 * KB + 1)}
    moved = {**before, "due": {"N": "2"}}
    bare = {"pk": s(10)}
    assert index_write_units(keys_only, table_keys, bare, before) == 1  # enters
    assert index_write_units(keys_only, table_keys, before, bare) == 1  # leaves
    assert index_write_units(keys_only, table_keys, before, moved) == 2  # key changes
    assert index_write_units(keys_only, table_keys, before, same_keys) == 0  # entry unchanged
    assert index_write_units(keys_only, table_keys, bare, bare) == 0  # never in it
    assert index_write_units(everything, table_keys, before, same_keys) == 6  # 5+ KB entry
    assert index_write_units(include, table_keys, before, same_keys) == 0  # "big" not included
    assert index_write_units(include, table_keys, bare, before) == 3  # keys + "a": 2 KB+


def test_a_table_reads_its_indexes_from_describe_table():
    table = Table.from_description({
        "TableName": "jobs", "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": "due", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "q", "KeyType": "HASH"},
                           {"AttributeName": "at", "KeyType": "RANGE"}]},
            {"IndexName": "inc", "Projection": {"ProjectionType": "INCLUDE",
                                                "NonKeyAttributes": ["title"]},
             "KeySchema": [{"AttributeName": "client", "KeyType": "HASH"}]}]})
    assert table.keys == ("job_id",)
    assert table.indexes == (Index("due", ("q", "at"), "KEYS_ONLY"),
                             Index("inc", ("client",), "INCLUDE", ("title",)))


def test_a_recorded_call_list_adds_up_by_purpose_and_by_table():
    tables = {"items": Table("items", ("job", "item"), (Index("open", ("open",), "ALL"),)),
              "jobs": Table("jobs", ("job",))}
    item = {"job": s(5), "item": s(5), "open": s(3), "data": s(1500)}  # 1.5 KB
    calls = [
        RecordedCall("UpdateItem", "lease", site="tasks.lease > items.try_lease", writes=(
            ItemWrite("items", item, {**item, "lease": s(10)}),)),
        RecordedCall("UpdateItem", "lease", site="tasks.lease > items.try_lease", failed=True,
                     writes=(ItemWrite("items", item, item),)),
        RecordedCall("TransactWriteItems", "count", site="rounds.count > jobs.record", writes=(
            ItemWrite("jobs", {"job": s(5)}, {"job": s(5), "n": {"N": "3"}}),
            ItemWrite("items", item, item, condition_only=True))),
        RecordedCall("Query", "lease", site="tasks.lease > items.open_items", reads=(
            ItemRead("items", "open", (1500,) * 4, False, per_item=False),)),
    ]
    totals = total(calls, tables)
    # lease: 2 (item) + 2 (index) for the first write, 2 for the failed one; 1 read unit.
    assert totals.by_purpose["lease"] == [6.0, 1.0, 3]
    assert totals.by_purpose["count"] == [2.0 + 4.0, 0.0, 1]
    assert totals.failed == {"lease": 1}
    assert totals.by_target["items"] == [8.0, 0.0, 3]
    assert totals.by_target["items/open"] == [2.0, 1.0, 2]
    assert totals.by_target["jobs"] == [2.0, 0.0, 1]
    assert (totals.write_units, totals.read_units) == (12.0, 1.0)
    assert totals.mean_written("items") == (1543 + 1528 + 1528) / 3
    assert totals.mean_written("jobs") == 11
    assert totals.mean_written("results") is None
    table = report(totals, judgments=2, events={})
    assert "| lease | 3 | 6 | 1.0 | 3.00 | 0.50 | 1 |" in table
    assert "| **all-in** (everything above) | | 12 | 1.0 | **6.00** | **0.50** | | |" in table


class FakeDynamo:
    """Just enough of DynamoDB for the recorder: one table keyed on pk with an ALL index on
    state; PutItem, GetItem, Query (a Limit, a filter and a projection the recorder must see
    through)."""

    def __init__(self):
        self.items: dict[str, dict] = {}
        self.sent: list[str] = []

    def send(self, operation, params):
        self.sent.append(operation)
        if operation == "DescribeTable":
            return {"Table": {"TableName": "t", "KeySchema": [{"AttributeName": "pk"}],
                              "GlobalSecondaryIndexes": [{
                                  "IndexName": "by_state", "Projection": {"ProjectionType": "ALL"},
                                  "KeySchema": [{"AttributeName": "state"}]}]}}
        if operation == "GetItem":
            item = self.items.get(params["Key"]["pk"]["S"])
            return {"Item": item} if item else {}
        if operation == "PutItem":
            self.items[params["Item"]["pk"]["S"]] = params["Item"]
            return {}
        if operation == "Query":
            if "FilterExpression" not in params:  # what the recorder sends: no unused names
                assert set(params["ExpressionAttributeNames"]) == {"#s"}
                assert set(params["ExpressionAttributeValues"]) == {":s"}
            items = sorted(self.items.values(), key=lambda i: i["pk"]["S"])[:params["Limit"]]
            if "FilterExpression" in params:
                items = items[:1]
            if "ProjectionExpression" in params:
                items = [{"pk": i["pk"]} for i in items]
            return {"Items": items}
        raise AssertionError(operation)


def test_the_recorder_sees_items_before_and_after_and_whole_query_reads():
    dynamo = FakeDynamo()
    recorder = CapacityRecorder()
    new = {"pk": s(3), "state": s(6), "body": s(2100)}  # 2,120 bytes
    recorder.observe(dynamo.send, "PutItem", {"TableName": "t", "Item": new})
    recorder.observe(dynamo.send, "PutItem", {"TableName": "t", "Item": {**new, "pk": s(4)}})
    recorder.observe(dynamo.send, "Query", {
        "TableName": "t", "IndexName": "by_state", "Limit": 2,
        "KeyConditionExpression": "#s = :s", "FilterExpression": "#b > :b",
        "ProjectionExpression": "#p", "ExpressionAttributeNames": {"#s": "state", "#b": "body",
                                                                  "#p": "pk"},
        "ExpressionAttributeValues": {":s": {"S": "x"}, ":b": {"N": "1"}}})
    first, _, query = recorder.calls
    assert first.writes == (ItemWrite("t", None, new),)
    assert query.reads[0].sizes == (item_size(new), item_size({**new, "pk": s(4)}))
    totals = total(recorder.calls, recorder.tables)
    assert totals.by_target["t"][0] == 2 * 3  # two puts of 3 units
    # Two entries of 3 units; the query read both whole items (4,241 bytes: 2 units, halved).
    assert totals.by_target["t/by_state"] == [6.0, 1.0, 3]
    assert dynamo.sent.count("Query") == 2
