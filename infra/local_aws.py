"""Stand-ins for what AWS runs around the app, shared by the tests and the local stack.

- `LambdaContext`: the context object a Lambda handler receives (Powertools reads it).
- `SqsPump`: the SQS event-source mapping, i.e. receive a batch, call the Chalice
  `@app.on_sqs_message` handler, delete on success, make visible again on failure
  (so maxReceiveCount and the queue's DLQ behave as on AWS).
- `wait_for_execution`: poll a Step Functions execution until it stops.

Works against `moto.mock_aws` and against a moto server alike: it only uses the
boto3 clients it is given.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

_TERMINAL_EXECUTION_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass
class LambdaContext:
    """Minimal Lambda context: the attributes Chalice and Powertools read."""

    function_name: str = "local"
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    timeout_seconds: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        """Start the invocation clock and fill the names derived from the function name."""
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (simulated) Lambda timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_context(
    function_name: str,
    region: str = "us-east-1",
    timeout_seconds: float = 60.0,
    *,
    account_id: str = "",
    invoked_function_arn: str = "",
    memory_limit_in_mb: int = 128,
) -> LambdaContext:
    """A fresh context for one invocation of the named function."""
    return LambdaContext(
        function_name=function_name,
        invoked_function_arn=invoked_function_arn
        or f"arn:aws:lambda:{region}:{account_id}:function:{function_name}",
        timeout_seconds=timeout_seconds,
        memory_limit_in_mb=memory_limit_in_mb,
    )


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute (PascalCase keys) as Lambda's event spells it (camelCase)."""
    out: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [_b64(b) for b in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType"),
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    return out


def _handler_name(handler: Handler, default: str) -> str:
    """Function name of a handler (Chalice wraps the user function as `.func`)."""
    return str(getattr(getattr(handler, "func", handler), "__name__", default))


def _b64(data: bytes | str) -> str:
    """Binary values arrive base64-encoded in Lambda events; boto3 hands us raw bytes."""
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


class SqsPump:
    """Deliver SQS messages to Chalice SQS handlers the way a Lambda event-source mapping does."""

    def __init__(
        self,
        sqs_client: Any,
        routes: Mapping[str, Handler],
        *,
        visibility_timeout: int | None = None,
        function_name_prefix: str = "",
        batch_sizes: Mapping[str, int] | None = None,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        """routes maps a queue name to the handler called as handler(event, context).

        function_name_prefix (e.g. "crowd-dev-") makes the context's function_name
        `<prefix><handler function name>`, as Chalice names the deployed consumer.
        visibility_timeout overrides the queue's for each receive (None: the queue's).
        batch_sizes: the most messages a batch of each queue holds (default 10), as the
        event source mapping's batch size says; a bigger batch takes several receives.
        concurrency: the most batches of each queue handled at once (default 1), as the
        mapping's maximum concurrency says; `run_forever` runs that many pumping threads.
        """
        self._sqs = sqs_client
        self._routes = dict(routes)
        self._batch = {name: max(1, (batch_sizes or {}).get(name, 10)) for name in self._routes}
        self._visibility_timeout = visibility_timeout
        self._prefix = function_name_prefix
        self._queues: dict[str, tuple[str, str]] = {}
        self.concurrency = {name: max(1, (concurrency or {}).get(name, 1)) for name in self._routes}
        # Per queue, at most its concurrency of batches at once (SQS hands each message to one
        # receive), and queues pumped from different threads do not wait for each other (a long
        # ingest batch holds up no counting).
        self._locks = {name: threading.BoundedSemaphore(self.concurrency[name])
                       for name in self._routes}

    @property
    def queue_names(self) -> list[str]:
        """The queues this pump delivers from."""
        return list(self._routes)

    def _queue(self, name: str) -> tuple[str, str]:
        """(url, arn) of a queue, looked up once."""
        if name not in self._queues:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self._queues[name] = (url, arn)
        return self._queues[name]

    def _event(self, messages: list[dict[str, Any]], arn: str) -> dict[str, Any]:
        """The Lambda-shaped SQS event for one batch of received messages."""
        region = arn.split(":")[3]
        records = []
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": dict(m.get("Attributes", {})),
                    "messageAttributes": {k: _lambda_message_attribute(v) for k, v in m.get("MessageAttributes", {}).items()},
                    "md5OfBody": m.get("MD5OfBody"),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": region,
                }
            )
        return {"Records": records}

    def _pump_queue(self, name: str, handler: Handler, max_batch: int) -> int:
        """Receive one batch from one queue and hand it to its handler."""
        url, arn = self._queue(name)
        kwargs: dict[str, Any] = {
            "QueueUrl": url,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
            "WaitTimeSeconds": 0,
        }
        if self._visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self._visibility_timeout
        messages: list[dict[str, Any]] = []
        while len(messages) < max(1, max_batch):
            # SQS hands out at most 10 messages a receive.
            kwargs["MaxNumberOfMessages"] = max(1, min(max_batch - len(messages), 10))
            received = self._sqs.receive_message(**kwargs).get("Messages", [])
            messages += received
            if len(received) < kwargs["MaxNumberOfMessages"]:
                break
        if not messages:
            return 0
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        _, _, _, region, account_id, _ = arn.split(":", 5)
        context = lambda_context(f"{self._prefix}{_handler_name(handler, name)}", region, account_id=account_id)
        try:
            handler(self._event(messages, arn), context)
        except Exception:
            LOG.exception("SQS handler for %s failed; %d message(s) go back to the queue", name, len(messages))
            # A failed Lambda leaves the batch invisible until the visibility timeout
            # (360 s here); make it visible at once so retries and the DLQ can be
            # exercised without waiting. The receive count still goes up.
            for tens in _by_ten(entries):
                self._sqs.change_message_visibility_batch(
                    QueueUrl=url, Entries=[dict(e, VisibilityTimeout=0) for e in tens])
        else:
            for tens in _by_ten(entries):
                self._sqs.delete_message_batch(QueueUrl=url, Entries=tens)
        return len(messages)

    def _pump_locked(self, name: str, max_batch: int) -> int:
        """One batch from one queue, within that queue's concurrency."""
        with self._locks[name]:
            return self._pump_queue(name, self._routes[name], max_batch)

    def pump_once(self, max_batch: int | None = None) -> int:
        """Give each queue's handler at most one batch (of max_batch messages, or the queue's
        batch size); return how many messages were delivered."""
        return sum(self._pump_locked(name, self._batch[name] if max_batch is None else max_batch)
                   for name in self._routes)

    def drain(self, max_rounds: int = 1000) -> int:
        """Pump until no queue yields a message; return the total delivered."""
        total = 0
        for _ in range(max_rounds):
            delivered = self.pump_once()
            if delivered == 0:
                return total
            total += delivered
        raise RuntimeError(f"queues still not empty after {max_rounds} rounds ({total} messages delivered)")

    def run_forever(self, stop_event: threading.Event, wait_seconds: float = 1.0,
                    batching_window: float = 0.2, queues: list[str] | None = None) -> None:
        """Pump until stop_event is set: wait_seconds when the queues are empty, and
        batching_window when no queue had a full batch (as Lambda's
        MaximumBatchingWindowInSeconds does), so batches fill instead of trickling.
        queues limits it to those queues (a thread per queue pumps them side by side)."""
        names = list(self._routes) if queues is None else list(queues)
        while not stop_event.is_set():
            try:
                counts = [self._pump_locked(name, self._batch[name]) for name in names]
            except Exception:
                # e.g. the moto server shutting down under us; keep the thread alive.
                LOG.exception("SQS pump round failed")
                counts = [0]
            if not any(counts):
                stop_event.wait(wait_seconds)
            elif not any(count >= self._batch[name] for name, count in zip(names, counts)):
                stop_event.wait(batching_window)


def _by_ten(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Batch entries in calls of 10, the most an SQS batch call takes."""
    return [entries[start:start + 10] for start in range(0, len(entries), 10)]


def sqs_batch_sizes(app: Any) -> dict[str, int]:
    """Each SQS event source's batch size, by queue name, as the Chalice app declares it."""
    return {source.queue: int(source.batch_size) for source in _sqs_sources(app)
            if hasattr(source, "batch_size")}


def sqs_concurrency(app: Any) -> dict[str, int]:
    """Each SQS event source's maximum concurrency, by queue name, as the Chalice app declares
    it (sources that declare none are left out: the pump gives them one batch at a time)."""
    return {source.queue: int(source.maximum_concurrency) for source in _sqs_sources(app)
            if getattr(source, "maximum_concurrency", None)}


def _sqs_sources(app: Any) -> list[Any]:
    """The Chalice app's SQS event sources (those naming a queue)."""
    return [source for source in getattr(app, "event_sources", [])
            if getattr(source, "queue", None)]


def wait_for_execution(
    sfn_client: Any, execution_arn: str, timeout: float = 60.0, poll_seconds: float = 0.05
) -> dict[str, Any]:
    """Poll describe_execution until the execution stops; return the last description."""
    deadline = time.monotonic() + timeout
    while True:
        description = sfn_client.describe_execution(executionArn=execution_arn)
        if description["status"] in _TERMINAL_EXECUTION_STATES:
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still {description['status']} after {timeout} s")
        time.sleep(poll_seconds)
