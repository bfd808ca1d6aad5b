"""DynamoDB's conditional writes and transactions on the stack's tables (moto): a failed
condition is a lost race, throttling or a conflicting transaction is a TransientError.
The module's tests share one stack; each writes the stats of a worker of its own."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib import deps
from chalicelib.adapters.dynamo import conditional_update, transact_once
from chalicelib.adapters.models import ALL_MODELS, WorkerStatsModel
from chalicelib.errors import TransientError

GOLD = WorkerStatsModel.gold_answers


def _refuse(monkeypatch, operation: str, response: dict[str, Any]) -> None:
    """DynamoDB answers every `operation` with this error (after botocore's own retries),
    whichever model's connection sends it."""
    for model in ALL_MODELS:
        client = model._get_connection().connection.client
        monkeypatch.setattr(client, "_make_api_call", _refusing(client._make_api_call,
                                                                operation, response))


def _refusing(real: Any, operation: str, response: dict[str, Any]) -> Any:
    def call(name: str, params: dict) -> dict:
        if name == operation:
            raise ClientError(response, name)
        return real(name, params)
    return call


def _add_gold(worker: str) -> Callable[[Any], None]:
    """A transaction adding a gold answer to the worker's stats while it has exactly one."""
    def write(tx: Any) -> None:
        tx.update(WorkerStatsModel(worker, "*"), actions=[GOLD.add(1)], condition=GOLD == 1)
    return write


@pytest.fixture
def worker(module_stack: Any, uid: str) -> str:
    """The platform bound to the module's stack, and a worker no other test writes."""
    deps.platform()
    return f"w1-{uid}"


def test_a_conditional_update_returns_the_new_item_or_the_old_one_in_one_request(worker):
    ok, new = conditional_update(WorkerStatsModel, worker, "*", [GOLD.add(1)], None)
    assert ok and new["gold_answers"] == {"N": "1"}
    ok, old = conditional_update(WorkerStatsModel, worker, "*", [GOLD.add(1)], GOLD == 5)
    assert not ok and old["gold_answers"] == {"N": "1"}
    assert WorkerStatsModel.get(worker, "*").gold_answers == 1


def test_a_throttled_conditional_update_is_a_transient_error(worker, monkeypatch):
    _refuse(monkeypatch, "UpdateItem",
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}})
    with pytest.raises(TransientError, match="the database is busy"):
        conditional_update(WorkerStatsModel, worker, "*", [GOLD.add(1)], None)


def test_any_other_refused_update_is_raised_as_it_came(worker, monkeypatch):
    _refuse(monkeypatch, "UpdateItem", {"Error": {"Code": "ValidationException", "Message": "no"}})
    with pytest.raises(ClientError, match="ValidationException"):
        conditional_update(WorkerStatsModel, worker, "*", [GOLD.add(1)], None)


def test_a_transaction_is_false_when_its_condition_fails_and_writes_nothing(worker):
    conditional_update(WorkerStatsModel, worker, "*", [GOLD.add(1)], None)
    assert transact_once(_add_gold(worker)) is True
    assert transact_once(_add_gold(worker)) is False  # gold_answers is 2 now
    assert WorkerStatsModel.get(worker, "*").gold_answers == 2


@pytest.mark.parametrize("response, message", [
    ({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
      "CancellationReasons": [{"Code": "TransactionConflict"}]}, "a concurrent write"),
    ({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
      "CancellationReasons": [{"Code": "None"}, {"Code": "ThrottlingError"}]}, "a concurrent write"),
    ({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "the database is busy"),
])
def test_a_transaction_cancelled_by_other_writes_or_throttled_is_a_transient_error(
        worker, monkeypatch, response, message):
    _refuse(monkeypatch, "TransactWriteItems", response)
    with pytest.raises(TransientError, match=message):
        transact_once(_add_gold(worker))
