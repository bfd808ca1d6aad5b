"""Idempotency-Key on requests, kept by aws-lambda-powertools' idempotency utility in DynamoDB.

A request carrying `Idempotency-Key` runs once per (account, method, path, key): its first
successful response is stored for 24 hours and returned again for the same key and body; the
same key with another body is refused (422); while the first is still running, a second gets
409. Failed requests are not stored, so a retry after an error runs again. A large response
(a suite of tasks, each with its job's instructions) is stored compressed, so it fits in the
record (DynamoDB items hold 400 KB).
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError, IdempotencyValidationError,
)

from chalicelib.errors import Conflict, UnprocessableEntity

KEEP_SECONDS = 24 * 3600
# A response body longer than this, as JSON, is stored compressed. The record's JSON escapes
# every non-ASCII character (up to 12 bytes each), so a response well under 400 KB may not
# fit as it is.
PACK_ABOVE = 32 * 1024


def pack(result: dict[str, Any]) -> dict[str, Any]:
    """The result as stored: a large body compressed (xz, base64), whose repeats (the same
    instructions in each task of a suite) cost next to nothing."""
    text = json.dumps(result["body"], separators=(",", ":"))
    if len(text) <= PACK_ABOVE:
        return result
    import lzma  # only a large response is packed: kept off the cold start

    packed = lzma.compress(text.encode("utf-8"), preset=1)
    return {"status": result["status"], "packed": base64.b64encode(packed).decode("ascii")}


def unpack(result: dict[str, Any]) -> dict[str, Any]:
    """The result as it was returned, from its stored form."""
    if "packed" not in result:
        return result
    import lzma  # only a packed response is unpacked: kept off the cold start

    body = json.loads(lzma.decompress(base64.b64decode(result["packed"])).decode("utf-8"))
    rest = {key: value for key, value in result.items() if key != "packed"}
    return {**rest, "body": body}


def _replayed(response: Any, idempotent_data: Any) -> dict[str, Any]:
    return {**response, "replayed": True}


class DynamoIdempotency:
    """Runs a request's handler at most once per idempotency key."""

    def __init__(self, table: str, client: Any) -> None:
        layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="body",
                                   expires_after_seconds=KEEP_SECONDS, response_hook=_replayed)

        @idempotent_function(data_keyword_argument="request", persistence_store=layer,
                             config=config)
        def run(request: dict[str, Any], handler: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            return handler()

        self._run = run
        self._config = config

    def once(self, key: str, body: str, handler: Callable[[], dict[str, Any]],
             lambda_context: Any = None) -> dict[str, Any]:
        """handler()'s first result for this key ({"status", "body"}), "replayed" when stored.

        With the Lambda context, a request still "in progress" when its Lambda timed out
        can be retried as soon as that time is up."""
        if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
            self._config.register_lambda_context(lambda_context)
        try:
            return unpack(self._run(request={"key": key, "body": body},
                                    handler=lambda: pack(handler())))
        except IdempotencyValidationError:
            raise UnprocessableEntity("this Idempotency-Key was used with another body",
                                      field="Idempotency-Key", code="idempotency_key_reused") from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict("a request with this Idempotency-Key is still being processed; retry "
                           "in a moment", field="Idempotency-Key",
                           code="idempotency_key_in_progress") from None
