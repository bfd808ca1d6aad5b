"""AWS errors are read in one place: "busy" from any service is a TransientError (503, retried
by Step Functions), and each adapter keeps its own meaning of the other codes."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, TransactWriteError

from chalicelib.adapters.aws_errors import error_code, raise_if_busy
from chalicelib.adapters.messaging import SqsQueue, StepFunctionsWorkflow
from chalicelib.adapters.storage import S3Blobs
from chalicelib.errors import NotFound, TransientError


def aws_error(code: str, operation: str = "Call") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class Refusing:
    """A boto3 client whose every call fails with one error code."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.calls: list[str] = []

    def get_queue_url(self, QueueName: str) -> dict:
        return {"QueueUrl": f"https://sqs.local/{QueueName}"}

    def __getattr__(self, operation: str) -> Any:
        def call(**_: Any) -> dict:
            self.calls.append(operation)
            raise aws_error(self.code, operation)
        return call


def test_the_code_is_read_from_a_boto_error_and_from_the_aws_answer_behind_a_pynamodb_one():
    assert error_code(aws_error("SlowDown")) == "SlowDown"
    assert error_code(PutError("put failed", cause=aws_error("ThrottlingException"))) == \
        "ThrottlingException"
    assert error_code(TransactWriteError("failed")) is None
    assert error_code(ValueError("not from AWS")) is None


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException",
                                  "RequestLimitExceeded", "TransactionConflictException",
                                  "Throttling", "RequestThrottled", "SlowDown",
                                  "ServiceUnavailable", "InternalError", "RequestTimeout", "503"])
def test_a_busy_answer_from_any_service_is_a_transient_error_naming_the_service(code):
    error = aws_error(code)
    with pytest.raises(TransientError, match="^S3 is busy; try again$") as raised:
        raise_if_busy(error, "S3")
    assert raised.value.__cause__ is error
    assert raised.value.to_body()["error"] == "try_again"


@pytest.mark.parametrize("error", [aws_error("AccessDenied"), aws_error("ValidationException"),
                                   PutError("put failed",
                                            cause=aws_error("ConditionalCheckFailedException")),
                                   ValueError("not from AWS")])
def test_any_other_error_is_left_to_the_adapter(error):
    assert raise_if_busy(error, "S3") is None


def test_a_throttled_queue_is_a_transient_error_and_a_refusal_stays_what_it_was():
    with pytest.raises(TransientError, match="SQS is busy"):
        SqsQueue(Refusing("RequestThrottled"), "q").send({"n": 1})
    with pytest.raises(TransientError, match="SQS is busy"):
        SqsQueue(Refusing("ThrottlingException"), "q").send_many([{"n": n} for n in range(3)])
    with pytest.raises(ClientError, match="AccessDenied"):
        SqsQueue(Refusing("AccessDenied"), "q").send({"n": 1})
    with pytest.raises(ClientError, match="AccessDenied"):
        SqsQueue(Refusing("AccessDenied"), "q").send_many([{"n": 1}])


def test_a_repeated_execution_is_false_a_throttled_start_transient_and_a_refusal_stays():
    assert StepFunctionsWorkflow(Refusing("ExecutionAlreadyExists"), "arn").start("x", {}) is False
    with pytest.raises(TransientError, match="Step Functions is busy"):
        StepFunctionsWorkflow(Refusing("ThrottlingException"), "arn").start("x", {})
    with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
        StepFunctionsWorkflow(Refusing("StateMachineDoesNotExist"), "arn").start("x", {})


def test_a_missing_object_is_not_found_a_busy_bucket_transient_and_a_refusal_stays():
    with pytest.raises(NotFound):
        S3Blobs(Refusing("NoSuchKey"), "b").get_text("k")
    with pytest.raises(TransientError, match="S3 is busy"):
        S3Blobs(Refusing("SlowDown"), "b").get_text("k")
    with pytest.raises(TransientError, match="S3 is busy"):
        S3Blobs(Refusing("503"), "b").put_text("k", "body", "text/plain")
    with pytest.raises(TransientError, match="S3 is busy"):
        S3Blobs(Refusing("InternalError"), "b").put_stream("k", iter(["a"]), "text/plain")
    with pytest.raises(ClientError, match="AccessDenied"):
        S3Blobs(Refusing("AccessDenied"), "b").get_text("k")
