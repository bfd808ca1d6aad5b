"""Sending MTurk notification documents: SNS Publish to a requester's topic, SQS SendMessage
to a requester's queue, in the destination's region, with the functions' own role (the
topic or queue must be in the deployment's account: the stage policy grants no other)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.aws_errors import error_code
from chalicelib.domain.mturk_notifications import SNS, NoticeRefused, destination_region

# Answers that mean the topic or queue can never take the document as addressed.
REFUSED_CODES = frozenset({
    "NotFound", "NotFoundException", "InvalidParameter", "InvalidParameterValue",
    "AuthorizationError", "AccessDenied", "AccessDeniedException", "KMSDisabled",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress",
})


def sender(client: Callable[[str, str], Any], default_region: str
           ) -> Callable[[str, str, str], None]:
    """send(transport, destination, body) with clients made by client(service, region);
    NoticeRefused when AWS says the destination cannot take it, the ClientError otherwise."""

    def send(transport: str, destination: str, body: str) -> None:
        region = destination_region(transport, destination) or default_region
        try:
            if transport == SNS:
                client("sns", region).publish(TopicArn=destination, Message=body)
            else:
                client("sqs", region).send_message(QueueUrl=destination, MessageBody=body)
        except ClientError as error:
            if error_code(error) in REFUSED_CODES:
                raise NoticeRefused(f"{error_code(error)}: {error}"[:300]) from error
            raise

    return send
