"""DynamoDB's conditional writes and transactions, and what their failures mean: a failed
condition is a lost race (False), throttling or a conflicting transaction is a TransientError
(read in chalicelib.adapters.aws_errors, as for every AWS service), anything else is raised."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.constants import KEY, UPDATE_ITEM
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.aws_errors import error_code, raise_if_busy
from chalicelib.adapters.models import JobModel
from chalicelib.errors import TransientError

# Reasons DynamoDB gives for cancelling one item of a transaction because of other writes.
CONTENDED = frozenset({"TransactionConflict", "ThrottlingError"})


def raise_transient(error: BaseException) -> None:
    """TransientError when DynamoDB was busy (throttled, or a transaction conflicted)."""
    raise_if_busy(error, "the database")


def cancellation_reasons(error: TransactWriteError) -> list[str | None]:
    """Why each item of a cancelled transaction was refused, in order (None: it was not)."""
    return [r.code if r is not None else None for r in (error.cancellation_reasons or [])]


def cancelled_by_condition(error: TransactWriteError) -> bool:
    """True if a condition cancelled the transaction (nothing was written); TransientError
    if throttling or a concurrent write did; False for any other failure (to be raised)."""
    raise_transient(error)
    if CONTENDED & set(cancellation_reasons(error)):
        raise TransientError("a concurrent write got there first; try again") from error
    return error.cause_response_code == "TransactionCanceledException"


def transact_once(write: Callable[[TransactWrite], None]) -> bool:
    """Run write(tx) in one transaction: True if it went through, False if a condition
    cancelled it (nothing was written); throttling is a TransientError."""
    try:
        with TransactWrite(connection=JobModel._get_connection().connection) as tx:
            write(tx)
    except TransactWriteError as error:
        if cancelled_by_condition(error):
            return False
        raise
    return True


def conditional_update(model: type[Model], hash_key: str, range_key: str | None, actions: list,
                       condition: Any) -> tuple[bool, dict[str, Any] | None]:
    """UpdateItem returning (True, new item) or (False, old item) without a second read.

    pynamodb's Model.update cannot ask for ReturnValuesOnConditionCheckFailure, so the
    expression is built by pynamodb and sent through its connection.
    """
    connection = model._get_connection()
    kwargs = connection.get_operation_kwargs(
        hash_key, range_key=range_key, key=KEY, actions=actions, condition=condition,
        return_values="ALL_NEW", return_values_on_condition_failure="ALL_OLD",
    )
    try:
        response = connection.connection.dispatch(UPDATE_ITEM, kwargs)
    except ClientError as error:
        raise_transient(error)
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        # pynamodb re-raises without the returned item; botocore's original error has it.
        original = error.__cause__ if isinstance(error.__cause__, ClientError) else error
        return False, original.response.get("Item")
    return True, response.get("Attributes")
