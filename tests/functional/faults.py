"""Fault injection: crash the code right after one of its AWS writes succeeded.

Every botocore call goes through `BaseClient._make_api_call` (boto3's clients and pynamodb's
alike). `crash_after_writes` wraps it: while armed it records the writes the app makes and, after
the first one (or the nth) from the planned site has reached AWS (moto), raises `Crash` in the caller, which is what a
Lambda dying at that moment looks like to everything around it: the HTTP caller gets a 5xx
and retries, SQS redelivers the batch, Step Functions retries the task. Each write is
recorded with its *site*: the first frame in the app's own code that led to it.
"""
from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.client

ROOT = Path(__file__).resolve().parents[2]
APP_CODE = (str(ROOT / "chalicelib"), str(ROOT / "app.py"))
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem",
          "SendMessage", "SendMessageBatch", "PutObject", "CreateMultipartUpload",
          "UploadPart", "CompleteMultipartUpload", "StartExecution", "PutEvents"}


class Crash(Exception):
    """The process died right after a write."""


# A function whose process died is reported by Lambda as Runtime.ExitError (the state
# machine retries it, as every stage is idempotent).
Crash.__name__ = Crash.__qualname__ = "Runtime.ExitError"


@dataclass
class Plan:
    """Where to crash: after the nth write from crash_site (None: nowhere; nth 1: its
    first); and every write seen while armed."""

    crash_site: str | None = None
    # Which of the site's writes to crash after (counting those `only` accepts), e.g. the
    # transaction an ingest chunk ends with, after its items' single puts.
    nth: int = 1
    # If given, only a write it accepts (operation, parameters) is crashed after, e.g. one
    # that touches a gold item's servings.
    only: Callable[[str, dict], bool] | None = None
    armed: bool = False
    writes: list[tuple[str, str]] = field(default_factory=list)
    # The sites of the writes `only` accepted.
    matched: set[str] = field(default_factory=set)
    crashed: tuple[str, str] | None = None
    # How many writes from crash_site (that `only` accepted) were seen.
    site_writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


DOMAIN_DIRS = tuple(ROOT / "chalicelib" / part for part in ("handlers", "domain", "workflows"))
DOMAIN_CODE = tuple(str(path) for path in DOMAIN_DIRS)


def _domain_module(filename: str) -> str:
    """A handler, domain or workflow module's dotted name below its folder: `tasks`,
    `webhooks.delivery` (a package's own modules keep the package's name)."""
    path = Path(filename)
    for base in DOMAIN_DIRS:
        if path.is_relative_to(base):
            parts = path.relative_to(base).with_suffix("").parts
            return ".".join(part for part in parts if part != "__init__")
    return path.stem


def write_site() -> str:
    """Where a write came from: the innermost domain (or workflow) function and the adapter
    method it called (module and function), e.g. `tasks.submit_answer > items.try_submit`,
    `webhooks.delivery.deliver > webhooks.claim_attempt`."""
    domain = adapter = None
    for frame in reversed(traceback.extract_stack()):  # innermost first
        if not frame.filename.startswith(APP_CODE):
            continue
        name = f"{Path(frame.filename).stem}.{frame.name}"
        if frame.filename.startswith(DOMAIN_CODE):
            domain = f"{_domain_module(frame.filename)}.{frame.name}"
            break
        if "adapters" in frame.filename:
            adapter = name  # the outermost adapter frame below the domain one
    return f"{domain or '?'} > {adapter or '?'}"


def _table(params: dict) -> str:
    name = params.get("TableName") or params.get("QueueUrl") or ""
    if not name and params.get("TransactItems"):
        first = params["TransactItems"][0]
        name = next(iter(first.values())).get("TableName", "")
    return name.rsplit("/", 1)[-1]


@contextmanager
def crash_after_writes(plan: Plan) -> Iterator[Plan]:
    """Count (and crash after) the app's writes while plan.armed."""
    original = botocore.client.BaseClient._make_api_call

    def call(self, operation_name, api_params):  # noqa: ANN001 (botocore's signature)
        result = original(self, operation_name, api_params)
        if plan.armed and operation_name in WRITES and not _table(api_params).endswith(
                "-idempotency"):
            site = write_site()
            accepted = plan.only is None or plan.only(operation_name, api_params)
            with plan.lock:
                plan.writes.append((operation_name, site))
                if plan.only is not None and accepted:
                    plan.matched.add(site)
                if site == plan.crash_site and accepted:
                    plan.site_writes += 1
                hit = plan.crashed is None and site == plan.crash_site and accepted \
                    and plan.site_writes == plan.nth
                if hit:
                    plan.crashed = plan.writes[-1]
            if hit:
                raise Crash(f"crashed after {operation_name} in {site}")
        return result

    botocore.client.BaseClient._make_api_call = call
    try:
        yield plan
    finally:
        botocore.client.BaseClient._make_api_call = original


@contextmanager
def messages_sent() -> Iterator[list[tuple[str, str]]]:
    """Every SQS message sent inside the block, as (queue URL, body), kept for redelivery."""
    sent: list[tuple[str, str]] = []
    base = botocore.client.BaseClient._make_api_call

    def record(self, name, params):  # noqa: ANN001 (botocore's signature)
        if name == "SendMessage":
            sent.append((params["QueueUrl"], params["MessageBody"]))
        elif name == "SendMessageBatch":
            sent.extend((params["QueueUrl"], e["MessageBody"]) for e in params["Entries"])
        return base(self, name, params)

    botocore.client.BaseClient._make_api_call = record
    try:
        yield sent
    finally:
        botocore.client.BaseClient._make_api_call = base


def redeliver(sent: list[tuple[str, str]], copies: int) -> None:
    """Send every kept message `copies` more times, as SQS may."""
    sqs = boto3.client("sqs")
    for url, body in sent:
        for _ in range(copies):
            sqs.send_message(QueueUrl=url, MessageBody=body)
