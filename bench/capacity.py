"""DynamoDB write and read units per judgment, by what they were spent on and by table and
index, from the real items on the local stack and DynamoDB's billing rules (bench/billing.py).

A client posts a categorical job (350 items x 3 answers and 20 gold items among them by
default) on the local stack; simulated workers lease and answer it over HTTP until every
slot is filled; the counting consumer drains, the round is aggregated; the client rejects
2% of the accepted answers and approves none one by one (by default; --reject-share and
--one-by-one-share) with the project's client (crowd_client, an Idempotency-Key on every
POST), then approves the whole job in bulk, and the sweeper settles every worker's pay
window (the money of all answers not rejected, the ones approved one by one included).
Workers are never blocked for their gold answers (block_after 0), so every judgment is one
of the job's own.

Every DynamoDB call the app makes goes through botocore's `BaseClient._make_api_call`, which
is wrapped for the run: each call is recorded with what it was made for (the innermost
function of the app's own code named in PURPOSES), its site (tests/functional/faults.py's
`write_site()`), and, for a write, every item it touched as it was before and after the call; for
a read, the size of what it read. Those before/after images and the reads' full items come
from extra GetItem, Query or Scan calls made beside the app's own, which are not counted;
all DynamoDB calls are serialised while recorded so the images are exact. Tables and indexes
come from DescribeTable on the deployed stack (infra/template.yaml).

Run: .venv/bin/python -m bench.capacity [--items 350] [--gold 20] [--redundancy 3]
[--workers 12] [--one-by-one-share 0] [--reject-share 0.02]
"""
from __future__ import annotations

import argparse
import io
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any

import botocore.client
from botocore.exceptions import ClientError

from bench import scenario
from bench.billing import ItemRead, ItemWrite, RecordedCall, Table, Totals, item_size, total
from bench.requests_per_judgment import PATHS, purpose_of
from tests.functional.faults import write_site

PURPOSES = {
    **PATHS,
    "next_task": "lease",  # the route: the worker's credentials, then lease_next_task
    "submit": "submit",  # the route: credentials, Idempotency-Key, then submit_answer
    "review_assignment": "approve", "approve_assignment": "approve", "approve_job": "approve",
    "auto_approve_due": "auto-approve",
    "finalize_due_jobs": "sweeper", "publish_due_job_events": "sweeper",
    "ingest_chunk": "ingest", "fit_model": "aggregation",
    "clients.create_quote": "post", "clients.create_job": "post",
    "register_worker": "accounts", "clients.get_job": "poll",
}
# The order of the tables' rows; a purpose not listed comes after these.
ORDER = ("lease", "submit", "count", "approve", "auto-approve", "ingest", "aggregation",
         "sweeper", "post", "accounts", "poll", "other")
PER_JUDGMENT_PATH = ("lease", "submit", "count", "approve", "auto-approve", "ingest",
                     "aggregation")
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
NARROWING = ("ProjectionExpression", "FilterExpression", "Select", "AttributesToGet",
             "QueryFilter", "ScanFilter", "ConditionalOperator")
FAILURES = ("ConditionalCheckFailedException", "TransactionCanceledException")

Send = Callable[[str, dict[str, Any]], dict[str, Any]]


class CapacityRecorder:
    """Records every DynamoDB call made through botocore while `recording()`."""

    def __init__(self, purposes: Mapping[str, str] = PURPOSES,
                 include: Callable[[], bool] = lambda: True) -> None:
        """include says whether a call made now, on this thread, is recorded (one that is not
        goes straight through)."""
        self.purposes = purposes
        self.calls: list[RecordedCall] = []
        self.tables: dict[str, Table] = {}
        self._include = include
        self._lock = threading.RLock()
        self._thread = threading.local()

    def overhead_seconds(self) -> float:
        """Seconds this thread has spent so far in the recording itself: the uncounted reads
        around its calls and the waits for other threads' recordings, not the calls."""
        return float(getattr(self._thread, "overhead", 0.0))

    @contextmanager
    def recording(self) -> Iterator["CapacityRecorder"]:
        """Wrap BaseClient._make_api_call for the with-block."""
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if client.meta.service_model.service_name != "dynamodb" or \
                    operation not in WRITES + READS or not recorder._include():
                return original(client, operation, params)
            return recorder.timed(lambda name, p: original(client, name, p), operation, params)

        botocore.client.BaseClient._make_api_call = call
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = original

    def timed(self, send: Send, operation: str, params: dict[str, Any]) -> Any:
        """observe(), adding the time it took beyond the call itself to this thread's
        overhead_seconds()."""
        own = [0.0]

        def timed_send(name: str, p: dict[str, Any]) -> dict[str, Any]:
            if p is not params:  # one of the recording's own reads
                return send(name, p)
            started = time.perf_counter()
            try:
                return send(name, p)
            finally:
                own[0] += time.perf_counter() - started

        started = time.perf_counter()
        try:
            return self.observe(timed_send, operation, params, _frame=sys._getframe(1))
        finally:
            # Only the app's own call counts as its time; the recording's reads do not.
            self._thread.overhead = self.overhead_seconds() + (
                time.perf_counter() - started - own[0])

    def observe(self, send: Send, operation: str, params: dict[str, Any],
                _frame: Any = None) -> Any:
        """Make the call through send and record it (send also makes the uncounted reads)."""
        purpose = purpose_of(_frame or sys._getframe(1), self.purposes)
        site = write_site()
        with self._lock:
            if operation in READS:
                result = send(operation, params)
                self.calls.append(RecordedCall(operation, purpose,
                                               reads=self._reads(send, operation, params, result),
                                               site=site))
                return result
            targets = self._targets(send, operation, params)
            before = [self._get(send, table, key) for table, key, _ in targets]
            failure: ClientError | None = None
            try:
                result = send(operation, params)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in FAILURES:
                    raise
                failure, result = error, {}
            writes = tuple(ItemWrite(table, old, self._get(send, table, key), check)
                           for (table, key, check), old in zip(targets, before))
            self.calls.append(RecordedCall(operation, purpose, writes=writes, site=site,
                                           failed=failure is not None))
            if failure is not None:
                raise failure
            return result

    def _table(self, send: Send, name: str) -> Table:
        if name not in self.tables:
            self.tables[name] = Table.from_description(
                send("DescribeTable", {"TableName": name})["Table"])
        return self.tables[name]

    def _get(self, send: Send, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The whole item as stored now (strongly consistent), or None."""
        return send("GetItem", {"TableName": table, "Key": dict(key),
                                "ConsistentRead": True}).get("Item")

    def _targets(self, send: Send, operation: str, params: Mapping[str, Any]
                 ) -> list[tuple[str, dict[str, Any], bool]]:
        """(table, key, is a condition check) of every item a write call touches."""
        if operation == "PutItem":
            table = self._table(send, params["TableName"])
            return [(table.name, table.key_of(params["Item"]), False)]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], params["Key"], False)]
        out = []
        if operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                (kind, body), = action.items()
                table = self._table(send, body["TableName"])
                key = table.key_of(body["Item"]) if kind == "Put" else body["Key"]
                out.append((table.name, key, kind == "ConditionCheck"))
            return out
        for name, requests in params["RequestItems"].items():  # BatchWriteItem
            table = self._table(send, name)
            for request in requests:
                if "PutRequest" in request:
                    out.append((name, table.key_of(request["PutRequest"]["Item"]), False))
                else:
                    out.append((name, request["DeleteRequest"]["Key"], False))
        return out

    def _reads(self, send: Send, operation: str, params: Mapping[str, Any],
               result: Mapping[str, Any]) -> tuple[ItemRead, ...]:
        """What a read call read, item by item, whatever it returned of them."""
        if operation == "GetItem":
            item = result.get("Item")
            if item is not None and any(k in params for k in NARROWING):
                item = self._get(send, params["TableName"], params["Key"])
            return (ItemRead(params["TableName"], None, (item_size(item),),
                             bool(params.get("ConsistentRead")), per_item=True),)
        if operation == "TransactGetItems":
            gets = [action["Get"] for action in params["TransactItems"]]
            return tuple(ItemRead(get["TableName"], None,
                                  (item_size(self._get(send, get["TableName"], get["Key"])),),
                                  True, per_item=True) for get in gets)
        if operation == "BatchGetItem":
            unprocessed = result.get("UnprocessedKeys") or {}
            reads = []
            for name, request in params["RequestItems"].items():
                skipped = unprocessed.get(name, {}).get("Keys", [])
                sizes = tuple(item_size(self._get(send, name, key))
                              for key in request["Keys"] if key not in skipped)
                reads.append(ItemRead(name, None, sizes, bool(request.get("ConsistentRead")),
                                      per_item=True))
            return tuple(reads)
        items = result.get("Items", [])
        if any(k in params for k in NARROWING):
            items = send(operation, _unnarrowed(operation, params)).get("Items", [])
        return (ItemRead(params["TableName"], params.get("IndexName"),
                         tuple(item_size(item) for item in items),
                         bool(params.get("ConsistentRead")), per_item=False),)


def _unnarrowed(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A Query or Scan that reads the same items as params but returns each one whole (no
    projection, filter or count), keeping only the expression names and values its key
    condition still uses."""
    plain = {k: v for k, v in params.items() if k not in NARROWING}
    used = plain.get("KeyConditionExpression", "") if operation == "Query" else ""
    names = {k: v for k, v in plain.pop("ExpressionAttributeNames", {}).items()
             if re.search(re.escape(k) + r"\b", used)}
    values = {k: v for k, v in plain.pop("ExpressionAttributeValues", {}).items()
              if re.search(re.escape(k) + r"\b", used)}
    if names:
        plain["ExpressionAttributeNames"] = names
    if values:
        plain["ExpressionAttributeValues"] = values
    return plain


# --- the scenario -------------------------------------------------------------------------------

def run_scenario(stack: Any, items: int, gold: int, redundancy: int, workers: int,
                 one_by_one: float, rejected: float = 0.0, seed: int = 1) -> dict[str, Any]:
    """Post, answer, count, aggregate and approve one job on the stack; return what happened."""
    rng = random.Random(seed)
    poll = _client_poll(stack)
    job = scenario.post_job(stack, items, gold, redundancy, poll)
    crowd = scenario.register_workers(stack.base_url, workers, rng)
    scenario.progress(f"job {job.job_id} is {job.state}: {workers} workers answering")
    scenario.answer_until_filled(
        job, crowd, poll, lambda worker, job_id, truth, accepted: scenario.answer_one_by_one(
            stack.base_url, worker, job_id, truth, accepted))
    scenario.progress(f"{len(job.accepted)} answers accepted; counting and aggregation")
    scenario.wait_until_done(job, poll)
    reviewed = scenario.review_and_settle(stack, job, poll, rng, rejected, one_by_one)
    return {"job_id": job.job_id, "judgments": len(job.accepted), "items": items, "gold": gold,
            "redundancy": redundancy, "workers": workers, **reviewed}


def _client_poll(stack: Any) -> scenario.Poll:
    """The job's view as the client reads it (GET /jobs/{job_id}), counted like any request."""
    from crowd_client import Client

    client = Client(stack.base_url, stack.client_key)
    return client.job


# --- the tables ---------------------------------------------------------------------------------

def _ordered(keys: Any) -> list[str]:
    return sorted(keys, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k))


def report(totals: Totals, judgments: int, events: Mapping[str, int]) -> str:
    """The Markdown tables: units per judgment by purpose, by table or index, by site."""
    lines = ["| purpose | calls | WRU | RRU | WRU / judgment | RRU / judgment "
             "| failed conditional writes | WRU per own event |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for purpose in _ordered(totals.by_purpose):
        wru, rru, calls = totals.by_purpose[purpose]
        own = events.get(purpose)
        per_event = f"{wru / own:.2f} ({own:,})" if own else ""
        lines.append(f"| {purpose} | {calls:,} | {wru:,.0f} | {rru:,.1f} | {wru / judgments:.2f} "
                     f"| {rru / judgments:.2f} | {totals.failed.get(purpose, 0):,} | {per_event} |")
    path_w = sum(totals.by_purpose[p][0] for p in PER_JUDGMENT_PATH if p in totals.by_purpose)
    path_r = sum(totals.by_purpose[p][1] for p in PER_JUDGMENT_PATH if p in totals.by_purpose)
    lines.append(f"| **per-judgment path** ({', '.join(PER_JUDGMENT_PATH)}) | | {path_w:,.0f} "
                 f"| {path_r:,.1f} | **{path_w / judgments:.2f}** "
                 f"| **{path_r / judgments:.2f}** | | |")
    lines.append(f"| **all-in** (everything above) | | {totals.write_units:,.0f} "
                 f"| {totals.read_units:,.1f} | **{totals.write_units / judgments:.2f}** "
                 f"| **{totals.read_units / judgments:.2f}** | | |")
    lines += ["", "| table / index | calls | WRU | RRU | WRU / judgment | RRU / judgment "
              "| mean item written (bytes) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for target, (wru, rru, calls) in sorted(totals.by_target.items(), key=lambda kv: -kv[1][0]):
        mean = totals.mean_written(target)
        lines.append(f"| {target} | {calls:,} | {wru:,.0f} | {rru:,.1f} | {wru / judgments:.2f} "
                     f"| {rru / judgments:.2f} | {'' if mean is None else f'{mean:,.0f}'} |")
    lines += ["", "| purpose | site | operation | calls | WRU / judgment | RRU / judgment |",
              "|---|---|---|---:|---:|---:|"]
    rows = sorted(totals.by_site.items(), key=lambda kv: (
        ORDER.index(kv[0][0]) if kv[0][0] in ORDER else len(ORDER), -kv[1][0], -kv[1][1]))
    for (purpose, site, operation), (wru, rru, calls) in rows:
        lines.append(f"| {purpose} | `{site}` | {operation} | {calls:,} | {wru / judgments:.2f} "
                     f"| {rru / judgments:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario on a local stack and print its DynamoDB units per judgment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=350)
    parser.add_argument("--gold", type=int, default=20)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--one-by-one-share", type=float, default=0.0,
                        help="share of the answers the client approves one by one before "
                             "approving the job in bulk")
    parser.add_argument("--reject-share", type=float, default=0.02,
                        help="share of the answers the client rejects one by one")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    from infra.local_stack import local_stack

    started = time.monotonic()
    recorder = CapacityRecorder()
    # The app's metrics lines and the API server's request log, shown only if the run fails.
    chatter = io.StringIO()
    try:
        with redirect_stdout(chatter), redirect_stderr(chatter), \
                local_stack(**scenario.STACK_OPTIONS) as stack, recorder.recording():
            summary = run_scenario(stack, args.items, args.gold, args.redundancy, args.workers,
                                   args.one_by_one_share, args.reject_share)
    except BaseException:
        sys.stderr.write(chatter.getvalue()[-20_000:])
        raise
    judgments = summary["judgments"]
    totals = total(recorder.calls, recorder.tables)
    print(f"{summary['items']} items + {summary['gold']} gold x {summary['redundancy']} answers, "
          f"{summary['workers']} workers: **{judgments:,} judgments** (accepted answers, gold "
          f"included), {summary['results']} results; rejected by the client "
          f"{summary['rejected_by_client']:,}, approved one by one "
          f"{summary['approved_by_client']:,}, in bulk or by the sweeper "
          f"{summary['approved_automatically']:,}; {len(recorder.calls):,} DynamoDB calls; "
          f"{time.monotonic() - started:.0f} s\n")
    events = {"approve": summary["approved_by_client"] + summary["rejected_by_client"],
              "auto-approve": summary["settled"]}
    print(report(totals, judgments, events))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
