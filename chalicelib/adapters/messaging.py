"""SQS senders and the Step Functions starter."""
from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.aws_errors import error_code, raise_if_busy
from chalicelib.domain.batching import batches
from chalicelib.errors import TransientError


# SendMessageBatch takes at most 10 messages; 256 KiB keeps every batch within SQS's size
# limit in every region and API version.
BATCH_BYTES = 256 * 1024


class SqsQueue:
    """A queue addressed by name; its URL is looked up once."""

    def __init__(self, sqs: Any, name: str) -> None:
        self._sqs = sqs
        self._name = name
        self._url: str | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The queue URL (one GetQueueUrl per container)."""
        if self._url is None:
            with self._lock:
                if self._url is None:
                    self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        """Send one JSON message, visible after delay_seconds (SQS allows at most 900);
        TransientError if SQS is busy."""
        extra = {"DelaySeconds": delay_seconds} if delay_seconds else {}
        try:
            self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message), **extra)
        except ClientError as error:
            raise_if_busy(error, "SQS")
            raise

    def send_many(self, messages: Sequence[dict[str, Any]]) -> None:
        """Send JSON messages in batches of at most 10 and 256 KiB; TransientError if any is refused."""
        bodies = [json.dumps(message) for message in messages]
        for batch in batches(bodies, 10, BATCH_BYTES, lambda body: len(body.encode("utf-8"))):
            self._send_batch(batch)

    def _send_batch(self, bodies: list[str]) -> None:
        try:
            response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)])
        except ClientError as error:
            raise_if_busy(error, "SQS")
            raise
        if response.get("Failed"):
            raise TransientError(f"SQS refused {len(response['Failed'])} messages")


class StepFunctionsWorkflow:
    """Starts executions of the aggregation state machine."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution named name; False when one of that name already exists and AWS
        refuses the repeat (a finished one, or another input). A repeat of a running execution
        with the same input is accepted by AWS without starting a second one. TransientError
        if Step Functions is busy."""
        try:
            self._sfn.start_execution(stateMachineArn=self._arn, name=name,
                                      input=json.dumps(payload))
        except ClientError as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return False
            raise_if_busy(error, "Step Functions")
            raise
        return True
