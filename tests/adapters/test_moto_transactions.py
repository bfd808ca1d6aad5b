"""The item-level rollback shim leaves the same state as moto's whole-table rollback."""
import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from infra import moto_shims


def _table(ddb):
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])


def test_a_cancelled_transaction_restores_the_items_it_touched_and_keeps_the_rest():
    with mock_aws():
        moto_shims.install_all()
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _table(ddb)
        for key in ("a", "b", "c"):
            ddb.put_item(TableName="t", Item={"k": {"S": key}, "n": {"N": "1"}})
        # WHEN a transaction updates a, creates d, and fails a condition on b
        try:
            ddb.transact_write_items(TransactItems=[
                {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}},
                            "UpdateExpression": "SET n = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
                {"Put": {"TableName": "t", "Item": {"k": {"S": "d"}, "n": {"N": "9"}}}},
                {"Update": {"TableName": "t", "Key": {"k": {"S": "b"}},
                            "UpdateExpression": "SET n = :two",
                            "ConditionExpression": "n = :five",
                            "ExpressionAttributeValues": {":two": {"N": "2"}, ":five": {"N": "5"}}}},
            ])
            raised = None
        except ClientError as error:
            raised = error.response["Error"]["Code"]
        # THEN it is cancelled, a and b are as they were, d does not exist, c is untouched
        assert raised == "TransactionCanceledException"
        items = {i["k"]["S"]: i["n"]["N"] for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"a": "1", "b": "1", "c": "1"}
        # AND a transaction that succeeds applies all its writes
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}},
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "d"}, "n": {"N": "9"}}}}])
        items = {i["k"]["S"]: i["n"]["N"] for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"a": "2", "b": "1", "c": "1", "d": "9"}
