"""Metrics from requests served side by side (the local API server runs them on threads)."""
from __future__ import annotations

import json
import threading

import pytest

from chalicelib import observability


def test_requests_counting_and_flushing_at_once_lose_no_metric_and_fail_none(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 8 threads, each counting a metric and flushing 300 times, as requests do
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def request_loop() -> None:
        start.wait()
        for _ in range(300):
            try:
                observability.count("Threaded")
                observability.flush()
            except BaseException as error:  # noqa: BLE001 - a failure is what is looked for
                errors.append(error)

    threads = [threading.Thread(target=request_loop) for _ in range(8)]
    # WHEN they run at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    observability.flush()

    # THEN no flush failed, and the EMF lines published add up to every count
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"Threaded"' in line]
    total = sum(sum(v if isinstance(v, list) else [v]) for v in
                (line["Threaded"] for line in lines))
    assert errors == []
    assert total == 8 * 300
