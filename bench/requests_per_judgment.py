"""AWS requests per judgment over the demo, counted with botocore event hooks.

Runs `make demo`'s flow on an in-process local stack and counts every AWS request the
app makes, by what it was done for: leasing, submitting and counting (the per-judgment
path), aggregation (excluded from the target), and the rest (posting, ingest, polling).
Run: .venv/bin/python -m bench.requests_per_judgment [--items 200] [--workers 12]
"""
from __future__ import annotations

import argparse
import io
import logging
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

PATHS = {  # the function whose frame is on the stack -> what the request was for
    "lease_next_task": "lease", "lease_suite": "lease", "submit_answer": "submit",
    "_store_answer": "submit", "submit_suite": "submit", "count_answers": "count",
    "load_answers": "aggregation", "aggregate_shard": "aggregation",
    "publish_results": "aggregation", "mark_done": "aggregation", "mark_failed": "aggregation",
}
PER_JUDGMENT = ("lease", "submit", "count")


def purpose_of(frame: FrameType | None, paths: Mapping[str, str] = PATHS,
               default: str = "other") -> str:
    """What a request was made for: the purpose of the innermost frame of the app's own code
    (chalicelib) named in paths, by function name or by `module.function` (module: the
    file's name), e.g. `lease_next_task` or `clients.create_job`."""
    while frame is not None:
        code = frame.f_code
        if "chalicelib" in code.co_filename:
            qualified = f"{Path(code.co_filename).stem}.{code.co_name}"
            if qualified in paths:
                return paths[qualified]
            if code.co_name in paths:
                return paths[code.co_name]
        frame = frame.f_back
    return default


class RequestCounter:
    """Counts (purpose, service, operation) of every request made through hooked clients."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def hook(self, client: Any) -> None:
        """Count this client's requests (botocore's before-call event)."""
        client.meta.events.register("before-call.*.*", self._before_call)

    def _before_call(self, model: Any, **_: Any) -> None:
        purpose = purpose_of(sys._getframe(1))
        with self._lock:
            self.counts[(purpose, model.service_model.service_name, model.name)] += 1

    def total(self, purposes: tuple[str, ...], service: str) -> int:
        """Requests to service made for any of purposes."""
        return sum(n for (p, s, _), n in self.counts.items() if p in purposes and s == service)


def hook_platform(counter: RequestCounter) -> None:
    """Hook every client the app's Platform uses: pynamodb's per model, SQS, S3, Step Functions."""
    from chalicelib.adapters import aws
    from chalicelib.adapters.models import ALL_MODELS
    from chalicelib.deps import platform

    platform()
    for model in ALL_MODELS:
        counter.hook(model._get_connection().connection.client)
    for client in list(aws._clients.values()):
        counter.hook(client)


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print requests per judgment by purpose and service."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    from examples.demo import run_demo
    from infra.local_stack import local_stack

    counter = RequestCounter()
    with local_stack(port=0, pump_interval=0.5, finalize_interval=1.0) as stack:
        hook_platform(counter)
        summary = run_demo(stack.base_url, stack.client_key, args.items, workers=args.workers,
                           out=io.StringIO())
    judgments = summary["answered"]
    print(f"demo: {args.items} items, {args.workers} workers, {judgments} judgments, "
          f"accuracy {summary['accuracy']:.1%}, {summary['seconds']:.1f} s\n")
    print(f"| {'purpose':<12} | {'service':<15} | {'operation':<22} | {'requests':>8} | {'per judgment':>12} |")
    print(f"|{'-' * 14}|{'-' * 17}|{'-' * 24}|{'-' * 10}|{'-' * 14}|")
    for (purpose, service, operation), n in sorted(counter.counts.items()):
        print(f"| {purpose:<12} | {service:<15} | {operation:<22} | {n:>8} | {n / judgments:>12.3f} |")
    ddb = counter.total(PER_JUDGMENT, "dynamodb") / judgments
    sqs_sends = sum(n for (p, s, op), n in counter.counts.items()
                    if p in PER_JUDGMENT and s == "sqs" and op.startswith("SendMessage")) / judgments
    print(f"\nper judgment (lease + submit + counting): DynamoDB {ddb:.2f} requests "
          f"(target <= 3), SQS sends {sqs_sends:.2f} (target <= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
