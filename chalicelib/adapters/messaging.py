"""SQS senders and the Step Functions starter."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import TransientError


class SqsQueue:
    """A queue addressed by name; its URL is looked up once."""

    def __init__(self, sqs: Any, name: str) -> None:
        self._sqs = sqs
        self._name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The queue URL (one GetQueueUrl per container)."""
        if self._url is None:
            self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message))

    def send_many(self, messages: Sequence[dict[str, Any]]) -> None:
        """Send JSON messages ten to a request; raises TransientError if any was refused."""
        for start in range(0, len(messages), 10):
            batch = messages[start:start + 10]
            response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(index), "MessageBody": json.dumps(message)}
                for index, message in enumerate(batch)
            ])
            if response.get("Failed"):
                raise TransientError(f"SQS refused {len(response['Failed'])} messages")


class StepFunctionsWorkflow:
    """Starts executions of the aggregation state machine."""

    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution named name; False when it already exists (a harmless repeat)."""
        try:
            self._sfn.start_execution(stateMachineArn=self._arn, name=name,
                                      input=json.dumps(payload))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return False
            raise
        return True
