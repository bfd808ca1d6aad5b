"""The local stack's keyed queries (infra/moto_shims.py) answer every query as moto does.

A table with a sparse index, a numeric index, an index without a range key and a local index
takes random puts, updates (that add, change and remove index keys), deletes and transactions
(some cancelled); after each round every kind of query, paged to the end, must give page for
page what moto's own query gives on the same data.
"""
import random
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

from infra import moto_shims

TABLE = "keyed"
PARTITIONS = ["p0", "p1", "p2"]
SORTS = [f"s{n:02d}" for n in range(30)]
GROUPS = ["g0", "g1"]
PAGE_LIMITS = [None, 1, 2, 5]
CONDITIONS = ["none", "=", "<", "<=", ">", ">=", "between", "begins"]


@pytest.fixture
def dynamodb():
    with mock_aws():
        moto_shims.install_all()
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in (
                ("pk", "S"), ("sk", "S"), ("slot", "S"), ("grp", "S"), ("num", "N"))],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                _index("sparse", "slot", "sk"), _index("by_num", "grp", "num"),
                _index("hash_only", "grp", None)],
            LocalSecondaryIndexes=[_index("local", "pk", "num")])
        undo = moto_shims.install_keyed_queries()
        try:
            yield client
        finally:
            undo()


def _index(name, hash_key, range_key):
    keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return {"IndexName": name, "KeySchema": keys, "Projection": {"ProjectionType": "ALL"}}


@contextmanager
def _moto_alone():
    """moto's own query (writes still keep the keyed items in step)."""
    from moto.dynamodb.models.table import Table

    keyed = Table.__dict__["query"]
    Table.query = keyed.__wrapped__
    try:
        yield
    finally:
        Table.query = keyed


def _key(rng):
    return {"pk": {"S": rng.choice(PARTITIONS)}, "sk": {"S": rng.choice(SORTS)}}


def _random_item(rng):
    item = _key(rng)
    if rng.random() < 0.6:
        item["slot"] = {"S": rng.choice(PARTITIONS)}
    if rng.random() < 0.7:
        item["grp"] = {"S": rng.choice(GROUPS)}
    if rng.random() < 0.7:
        item["num"] = {"N": str(rng.randint(-5, 20))}
    item["payload"] = {"S": "x" * rng.randint(0, 50)}
    return item


def _random_update(rng):
    """An UpdateItem's arguments that set or remove index keys, sometimes conditionally."""
    sets, removes, values = [], [], {}
    for name, make in (("slot", lambda: {"S": rng.choice(PARTITIONS)}),
                       ("grp", lambda: {"S": rng.choice(GROUPS)}),
                       ("num", lambda: {"N": str(rng.randint(-5, 20))})):
        roll = rng.random()
        if roll < 0.35:
            sets.append(f"{name} = :{name}")
            values[f":{name}"] = make()
        elif roll < 0.55:
            removes.append(name)
    if not sets and not removes:
        sets.append("payload = :p")
        values[":p"] = {"S": "y"}
    expression = " ".join(part for part in (
        "SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "")
        if part)
    args = {"TableName": TABLE, "Key": _key(rng), "UpdateExpression": expression}
    if values:
        args["ExpressionAttributeValues"] = values
    if rng.random() < 0.3:
        args["ConditionExpression"] = "attribute_exists(pk)"
    return args


def _write(client, rng):
    roll = rng.random()
    try:
        if roll < 0.4:
            client.put_item(TableName=TABLE, Item=_random_item(rng))
        elif roll < 0.75:
            client.update_item(**_random_update(rng))
        elif roll < 0.9:
            client.delete_item(TableName=TABLE, Key=_key(rng))
        else:
            keys = {tuple(sorted((k, v["S"]) for k, v in _key(rng).items())) for _ in range(3)}
            ops = []
            for key in keys:
                key = {k: {"S": v} for k, v in key}
                if rng.random() < 0.5:
                    update = _random_update(rng)
                    update["Key"] = key
                    ops.append({"Update": update})
                else:
                    ops.append({"Put": {"TableName": TABLE, "Item": {**_random_item(rng), **key}}})
            if rng.random() < 0.3:  # a condition that fails cancels the whole transaction
                ops[0][next(iter(ops[0]))]["ConditionExpression"] = "attribute_not_exists(pk)"
            client.transact_write_items(TransactItems=ops)
    except (client.exceptions.ConditionalCheckFailedException,
            client.exceptions.TransactionCanceledException):
        pass


def _random_query(rng):
    """A Query's arguments on the table or one of its indexes, with any range condition."""
    index = rng.choice([None, "sparse", "by_num", "hash_only", "local"])
    hash_name, range_name, values = {
        None: ("pk", "sk", "S"), "sparse": ("slot", "sk", "S"), "by_num": ("grp", "num", "N"),
        "hash_only": ("grp", None, None), "local": ("pk", "num", "N")}[index]
    hash_value = rng.choice(GROUPS if hash_name == "grp" else PARTITIONS)
    args = {"TableName": TABLE, "ScanIndexForward": rng.random() < 0.6,
            "ExpressionAttributeNames": {"#h": hash_name},
            "ExpressionAttributeValues": {":h": {"S": hash_value}}}
    condition = "#h = :h"
    kind = "none" if range_name is None else rng.choice(CONDITIONS)
    if kind == "begins" and values == "N":
        kind = ">="

    def value():
        return {"S": rng.choice(SORTS)[:rng.choice([2, 3])] if kind == "begins"
                else rng.choice(SORTS)} if values == "S" else {"N": str(rng.randint(-6, 21))}

    if kind != "none":
        args["ExpressionAttributeNames"]["#r"] = range_name
        args["ExpressionAttributeValues"][":a"] = value()
        if kind == "between":
            low, high = value(), value()
            if (float(low["N"]) if values == "N" else low["S"]) > (
                    float(high["N"]) if values == "N" else high["S"]):
                low, high = high, low
            args["ExpressionAttributeValues"].update({":a": low, ":b": high})
            condition += " AND #r BETWEEN :a AND :b"
        elif kind == "begins":
            condition += " AND begins_with(#r, :a)"
        else:
            condition += f" AND #r {kind} :a"
    args["KeyConditionExpression"] = condition
    if index:
        args["IndexName"] = index
    limit = rng.choice(PAGE_LIMITS)
    if limit:
        args["Limit"] = limit
    if rng.random() < 0.3:
        args["ProjectionExpression"] = rng.choice(["pk, sk, num", "payload", "sk, grp, payload"])
    if rng.random() < 0.2:
        args["FilterExpression"] = "attribute_exists(payload) AND size(payload) > :s"
        args["ExpressionAttributeValues"][":s"] = {"N": "10"}
    return args


def _pages(client, args):
    """Every page of a query: items, counts and the key it stops at."""
    pages, start = [], None
    while True:
        page = client.query(**args, **({"ExclusiveStartKey": start} if start else {}))
        pages.append((page["Items"], page["Count"], page["ScannedCount"],
                      page.get("LastEvaluatedKey")))
        start = page.get("LastEvaluatedKey")
        if not start or len(pages) > 200:
            return pages


@pytest.mark.parametrize("seed", range(3))
def test_queries_answer_as_moto_does_after_random_writes_deletes_and_transactions(dynamodb, seed):
    rng = random.Random(seed)
    compared = 0
    for _ in range(8):
        for _ in range(25):
            _write(dynamodb, rng)
        for _ in range(25):
            args = _random_query(rng)
            keyed = _pages(dynamodb, args)
            with _moto_alone():
                plain = _pages(dynamodb, args)
            assert keyed == plain, args
            compared += sum(len(items) for items, *_ in plain)
    assert compared > 300  # the comparison saw real results, not only empty pages


def test_a_query_reads_only_its_hash_key_s_items(dynamodb, monkeypatch):
    # GIVEN a table whose index was queried once (which builds it) and items of other keys
    from moto.dynamodb.models.table import Table

    for n in range(50):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "big"}, "sk": {"S": f"s{n:03d}"},
                                                 "slot": {"S": "big"}})
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "p0"}, "sk": {"S": "s1"},
                                             "slot": {"S": "p0"}})
    query = {"TableName": TABLE, "IndexName": "sparse", "KeyConditionExpression": "#o = :o",
             "ExpressionAttributeNames": {"#o": "slot"},
             "ExpressionAttributeValues": {":o": {"S": "p0"}}}
    table_query = {"TableName": TABLE, "KeyConditionExpression": "pk = :p AND sk > :s", "Limit": 3,
                   "ExpressionAttributeValues": {":p": {"S": "big"}, ":s": {"S": "s010"}}}
    dynamodb.query(**query)
    dynamodb.query(**table_query)
    walks = []
    all_items = Table.all_items
    monkeypatch.setattr(Table, "all_items", lambda self: walks.append(self) or all_items(self))
    # WHEN it and the table are queried again after more writes
    dynamodb.update_item(TableName=TABLE, Key={"pk": {"S": "big"}, "sk": {"S": "s007"}},
                         UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": "slot"},
                         ExpressionAttributeValues={":o": {"S": "p0"}})
    found = dynamodb.query(**query)["Items"]
    page = dynamodb.query(**table_query)
    # THEN no query walked the whole table, and they found what was written
    assert walks == []
    assert sorted(i["sk"]["S"] for i in found) == ["s007", "s1"]
    assert [i["sk"]["S"] for i in page["Items"]] == ["s011", "s012", "s013"]


def test_moto_keeps_no_copy_of_the_items_and_messages_it_made_once_untracked(dynamodb):
    # GIVEN moto's lists of every item and message it made, with the local stack's shim on
    from moto.dynamodb.models.dynamo_type import Item
    from moto.sqs.models import Message

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="untracked")["QueueUrl"]

    def churn():
        for n in range(20):
            dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "p0"}, "sk": {"S": f"s{n}"}})
            dynamodb.update_item(TableName=TABLE, Key={"pk": {"S": "p0"}, "sk": {"S": f"s{n}"}},
                                 UpdateExpression="SET num = :n",
                                 ExpressionAttributeValues={":n": {"N": str(n)}})
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        dynamodb.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                       ExpressionAttributeValues={":p": {"S": "p0"}})
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)

    with moto_shims.install_untracked_items():
        # WHEN items are written, updated and read and messages sent and received
        churn()
        # THEN moto lists none of them
        assert len(Item.instances_tracked) == len(Message.instances_tracked) == 0
    # AND without the shim moto lists every copy it made (what grew the local stack)
    items, messages = len(Item.instances_tracked), len(Message.instances_tracked)
    churn()
    assert len(Item.instances_tracked) - items > 40
    assert len(Message.instances_tracked) - messages >= 20


def test_the_moto_server_finds_the_same_service_packages_without_listing_them_each_time(
        monkeypatch):
    # GIVEN moto's own listing of its service packages, and a count of directory listings
    import os

    from moto import backends

    expected = list(backends.list_of_moto_modules())
    listings = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listings.append(path) or listdir(path))
    # WHEN the server asks for them many times with the shim on
    with moto_shims.install_listed_moto_modules():
        answers = [list(backends.list_of_moto_modules()) for _ in range(50)]
    # THEN every answer is moto's, and the directory was listed once
    assert answers == [expected] * 50
    assert len(listings) == 1
    assert backends.list_of_moto_modules.__name__ == "list_of_moto_modules"
    assert list(backends.list_of_moto_modules()) == expected and len(listings) == 2


def test_items_projected_on_plain_names_are_what_moto_projects(dynamodb):
    # GIVEN items with nested, listed and numeric attributes, some of the names missing
    from moto.dynamodb.models.dynamo_type import Item

    rng = random.Random(7)
    for n in range(30):
        item = _random_item(rng)
        item["leases"] = {"M": {f"w{k}": {"M": {"exp": {"N": str(k * 1.5)}, "aid": {"S": "a"}}}
                                for k in range(rng.randint(0, 3))}}
        item["seen"] = {"SS": [f"w{k}" for k in range(rng.randint(1, 4))]}
        item["tags"] = {"L": [{"S": "x"}, {"N": "2"}]}
        dynamodb.put_item(TableName=TABLE, Item=item)
    projections = ["pk, sk, leases, seen, num", "num, tags, gone1", "sk", "leases.w0, sk",
                   "tags[1], pk"]
    with moto_shims.install_named_projections():
        for expression in projections:
            for index in (None, "sparse"):
                query = {"TableName": TABLE, "KeyConditionExpression": "#h = :h",
                         "ExpressionAttributeNames": {"#h": "slot" if index else "pk"},
                         "ExpressionAttributeValues": {":h": {"S": "p1"}},
                         "ProjectionExpression": expression, **({"IndexName": index} if index else {})}
                # WHEN a query projects them, with the shim and with moto's own projection
                fast = dynamodb.query(**query)["Items"]
                named = Item.__dict__["project"]
                Item.project = named.__wrapped__
                try:
                    plain = dynamodb.query(**query)["Items"]
                finally:
                    Item.project = named
                # THEN the items are the same
                assert fast == plain and plain, expression


def test_a_message_sent_under_the_cheap_send_is_what_moto_sends(monkeypatch):
    # GIVEN a standard queue with a backlog and FIFO queues with and without content dedup
    from moto.sqs.models import Queue

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        dedup = sqs.create_queue(QueueName="dedup.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        explicit = sqs.create_queue(QueueName="explicit.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"]
        counted = []
        attributes = Queue.attributes
        monkeypatch.setattr(Queue, "attributes", property(
            lambda queue: counted.append(queue.name) or attributes.fget(queue)))
        with moto_shims.install_cheap_sqs_send():
            # WHEN messages are sent
            for n in range(30):
                sqs.send_message(QueueUrl=plain, MessageBody=f"m{n}")
            sqs.send_message(QueueUrl=dedup, MessageBody="same", MessageGroupId="g")
            sqs.send_message(QueueUrl=dedup, MessageBody="same", MessageGroupId="g")
            sqs.send_message_batch(QueueUrl=plain, Entries=[
                {"Id": str(n), "MessageBody": f"b{n}"} for n in range(5)])
            # THEN no send counted the standard queue, and a FIFO queue still needs a deduplication id
            assert "plain" not in counted
            with pytest.raises(sqs.exceptions.ClientError):
                sqs.send_message(QueueUrl=explicit, MessageBody="x", MessageGroupId="g")
        # AND the queues hold what moto's own sends leave: content deduplication still applies
        depth = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"]
        assert depth["ApproximateNumberOfMessages"] == "35"
        received = sqs.receive_message(QueueUrl=dedup, MaxNumberOfMessages=10,
                                       AttributeNames=["All"])["Messages"]
        assert [m["Body"] for m in received] == ["same"]
