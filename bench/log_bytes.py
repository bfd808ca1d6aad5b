"""CloudWatch Logs bytes per judgment, by what writes them: the app's log lines, its EMF
metric lines, and Lambda's own START/END/REPORT lines.

Runs judgments (a lease and a submit each, then their counting) through the in-process stack:
moto, the Chalice app called as API Gateway calls it, and the counting consumer called with the
batches an SQS event source hands it. Everything an invocation writes is captured: the
powertools logger's lines, stdout (EMF metrics are printed there), stderr, and records that
reach Python's root logger (which Lambda's runtime sends to CloudWatch at WARNING and above).
Lambda's START, END and REPORT lines are not produced locally: they are an estimate of
PLATFORM_BYTES per invocation.
Run: .venv/bin/python -m bench.log_bytes [--judgments 60] [--log-level WARNING]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Any

# START (~90 bytes), END (~60) and REPORT (~110 with billed duration and memory): an estimate,
# since only Lambda writes them.
PLATFORM_BYTES = 260
PHASES = ("lease", "submit", "counting", "empty poll")
SOURCES = ("app log lines", "metrics (EMF)", "Lambda START/END/REPORT (est.)")
# Loggers of the local stand-ins for AWS: what they write would not be in the app's log group.
LOCAL_ONLY = ("moto", "werkzeug", "infra")


class _RootRecords(logging.Handler):
    """Formats the records reaching the root logger from the app and its libraries."""

    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(LOCAL_ONLY):
            self.sink.write(self.format(record) + "\n")


class LogMeter:
    """Bytes written per phase and source, and invocations per phase."""

    def __init__(self) -> None:
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.invocations: Counter[str] = Counter()
        self._last: Counter[tuple[str, str]] = Counter()  # the last invocation's bytes

    @contextmanager
    def invocation(self, phase: str) -> Iterator[None]:
        """Capture what one invocation writes and add it to phase."""
        from chalicelib.observability import logger

        out, err, root_sink = io.StringIO(), io.StringIO(), io.StringIO()
        handler = logger.registered_handler
        assert isinstance(handler, logging.StreamHandler)
        previous = handler.setStream(out)
        root = _RootRecords(root_sink)
        logging.getLogger().addHandler(root)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                yield
        finally:
            handler.setStream(previous)
            logging.getLogger().removeHandler(root)
        self.invocations[phase] += 1
        self.add(phase, out.getvalue() + err.getvalue() + root_sink.getvalue())

    def move(self, source: str, phase: str) -> None:
        """Count the last invocation of source as one of phase (known only once it ran)."""
        self.invocations[source] -= 1
        self.invocations[phase] += 1
        for kind in SOURCES:
            last = self._last.pop((source, kind), 0)
            self.bytes[(source, kind)] -= last
            self.bytes[(phase, kind)] += last

    def add(self, phase: str, text: str) -> None:
        """Add captured lines to phase: EMF blobs as metrics, everything else as log lines
        (each line and its newline, as CloudWatch Logs counts an event's bytes)."""
        self._last = Counter()
        for line in text.splitlines():
            source = SOURCES[1] if _is_emf(line) else SOURCES[0]
            self._last[(phase, source)] += len(line.encode()) + 1
        self.bytes.update(self._last)

    def lines(self, judgments: int) -> list[str]:
        """The table: bytes per judgment by phase and source, with totals."""
        header = f"| {'phase':<10} | {'invocations/judgment':>20} | " + \
            " | ".join(f"{s:>30}" for s in SOURCES) + f" | {'total':>7} |"
        rows = [header, "|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|"]
        totals = dict.fromkeys(SOURCES, 0.0)
        for phase in PHASES:
            self.bytes[(phase, SOURCES[2])] = PLATFORM_BYTES * self.invocations[phase]
            per = [self.bytes[(phase, s)] / judgments for s in SOURCES]
            for source, value in zip(SOURCES, per):
                totals[source] += value
            rows.append(f"| {phase:<10} | {self.invocations[phase] / judgments:>20.2f} | " +
                        " | ".join(f"{v:>30.0f}" for v in per) + f" | {sum(per):>7.0f} |")
        rows.append(f"| {'all':<10} | {sum(self.invocations.values()) / judgments:>20.2f} | " +
                    " | ".join(f"{totals[s]:>30.0f}" for s in SOURCES) +
                    f" | {sum(totals.values()):>7.0f} |")
        return rows


def _is_emf(line: str) -> bool:
    try:
        return "_aws" in json.loads(line)
    except (ValueError, TypeError):
        return False


def run(judgments: int, meter: LogMeter, batch: int = 10) -> int:
    """Post a job and have workers lease and answer `judgments` tasks, the results queue drained
    after every `batch` answers (the counting consumer's batch size); return the judgments."""
    from tests.conftest import deployed_stack
    from tests.functional.marketplace import Api

    import pytest

    with pytest.MonkeyPatch.context() as env, deployed_stack(env) as stack:
        api = Api(stack)
        # Items enough that no worker runs out of tasks it has not answered, all open at once
        # (no pilot).
        job = api.job(items=judgments, redundancy=3, pilot={"items": 0})
        tokens = [api.worker(f"w{n}") for n in range(6)]
        pending = stack.drain()  # anything the job's posting left queued
        assert pending == 0, pending
        done, turn, polls = 0, 0, 0
        while done < judgments:
            token = tokens[turn % len(tokens)]
            turn += 1
            with meter.invocation("lease"):
                status, task = api.lease(token, job["job_id"])
            if status == 204:  # none for this worker this time: it polls again later
                meter.move("lease", "empty poll")
                polls += 1
                assert polls < 10 * judgments, "the job stopped offering tasks"
                continue
            assert status == 200, (status, task)
            with meter.invocation("submit"):
                status, receipt = api.submit(token, task["assignment_id"], {"label": "pos"})
            assert status == 200, receipt
            done += 1
            if done % batch == 0 or done == judgments:
                _count(stack, meter)
    return done


def _count(stack: Any, meter: LogMeter) -> None:
    """Deliver the results queue's messages, a batch per counting invocation."""
    while True:
        with meter.invocation("counting"):
            delivered = stack.pump.pump_once()
        if not delivered:
            meter.invocations["counting"] -= 1  # an empty receive invokes nothing
            return


def main(argv: list[str] | None = None,
         print_line: Callable[[str], None] = print) -> int:
    """Print log bytes per judgment at a log level (default: the prod stage's)."""
    from infra.stage_settings import STAGES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=60)
    parser.add_argument("--log-level", default=STAGES["prod"].log_level)
    args = parser.parse_args(argv)
    os.environ["POWERTOOLS_LOG_LEVEL"] = args.log_level
    from chalicelib.observability import logger

    logger.setLevel(args.log_level)
    meter = LogMeter()
    judgments = run(args.judgments, meter)
    print_line(f"{judgments} judgments at log level {args.log_level}; Lambda's own lines "
               f"estimated at {PLATFORM_BYTES} bytes per invocation\n")
    print_line("bytes per judgment:")
    for line in meter.lines(judgments):
        print_line(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
