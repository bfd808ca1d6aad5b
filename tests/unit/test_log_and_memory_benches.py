"""bench/log_bytes.py and bench/lambda_memory.py: what they count, and their sizing rule."""
from __future__ import annotations

import json

import pytest

from bench import lambda_memory, log_bytes
from chalicelib.observability import logger

EMF = json.dumps({"_aws": {"CloudWatchMetrics": []}, "Leases": [1.0]})
LINE = json.dumps({"level": "INFO", "message": "task leased"})


def test_a_meter_counts_emf_lines_as_metrics_and_the_rest_as_log_lines_with_lambdas_own():
    meter = log_bytes.LogMeter()
    meter.invocations["lease"] += 2
    meter.add("lease", f"{EMF}\n{LINE}\nnot json\n")
    meter.invocations["lease"] += 1
    meter.add("lease", f"{EMF}\n")
    meter.move("lease", "empty poll")  # the last one turned out to be a 204
    table = "\n".join(meter.lines(judgments=2))
    log_line, metric = len(LINE) + 1 + len("not json") + 1, len(EMF) + 1
    assert meter.bytes[("lease", log_bytes.SOURCES[0])] == log_line
    assert meter.bytes[("lease", log_bytes.SOURCES[1])] == metric
    assert meter.bytes[("empty poll", log_bytes.SOURCES[1])] == metric
    assert meter.invocations == {"lease": 2, "empty poll": 1}
    # Lambda's lines: the estimate per invocation, per judgment
    lease = next(row for row in table.splitlines() if row.startswith("| lease"))
    assert f"{log_bytes.PLATFORM_BYTES:>30}" in lease
    assert f"{(log_line + metric) / 2 + log_bytes.PLATFORM_BYTES:>7.0f} |" in lease


@pytest.mark.parametrize("level, app_lines", [("WARNING", False), ("DEBUG", True)])
def test_judgments_on_the_stack_log_app_lines_only_at_debug(monkeypatch, level, app_lines):
    before = logger.log_level
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", level)
    printed: list[str] = []
    try:
        log_bytes.main(["--judgments", "4", "--log-level", level], print_line=printed.append)
    finally:
        logger.setLevel(before)
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in printed if line.startswith("| ")}
    invocations, app, metrics, platform, _ = rows["all"]
    assert float(invocations) >= 2.0 and float(metrics) > 0
    assert float(platform) == float(invocations) * log_bytes.PLATFORM_BYTES
    assert (float(app) > 0) is app_lines


def test_a_size_holds_the_peak_twice_and_the_worst_call_in_half_the_timeout():
    assert lambda_memory.size_mb(40) == 128  # Lambda's least
    assert lambda_memory.size_mb(99) == 256  # 198 MiB, in 64 MB steps
    # an I/O-bound call: the rule on memory alone
    assert lambda_memory.sized(99, (0.5, 20), timeout=29) == 256
    # a CPU-bound one: 10 s of CPU is 69 s at 256 MB, over half of 60 s; 30 s fits at 640
    assert lambda_memory.sized(99, (10.0, 0), timeout=60) == 640
    assert lambda_memory.seconds_at(640, 10.0, 0) <= 30 < lambda_memory.seconds_at(576, 10.0, 0)
    assert lambda_memory.seconds_at(3008, 1.0, 100) == pytest.approx(2.0)  # a whole vCPU


def test_the_report_sizes_each_function_and_sums_the_apis_routes():
    meter = lambda_memory.Meter()
    meter.by_name = {
        "api_handler: GET /tasks/next": lambda_memory.Calls(10, 2 * 2**20, 0.5, 0.05, 11,
                                                            (0.01, 1)),
        "api_handler: POST /jobs": lambda_memory.Calls(1, 30 * 2**20, 0.6, 0.4, 19, (0.4, 19)),
        "count_answers": lambda_memory.Calls(5, 2**20, 0.1, 0.05, 8, (0.02, 2)),
        "fit_model": lambda_memory.Calls(1, 2**20, 0.4, 0.3, 3, (0.3, 3)),
    }
    rows, sizes = lambda_memory.report(meter, {False: 70.0, True: 88.0})
    assert sizes["api_handler"] == lambda_memory.size_mb(70 + 30)
    assert sizes["deliver_webhooks"] == sizes["count_answers"]  # its stand-in
    # FitModel is sized on the largest fit measured, not on this small one
    largest_fit = lambda_memory.LARGEST_JOB_PEAK_MIB["fit_model"]
    assert sizes["fit_model"] == lambda_memory.size_mb(largest_fit)
    # the API's row: its routes' calls, CPU (0.45 s) and requests (30) summed: 0.45 s of CPU
    # against 0.3 s of requests is CPU-bound
    api = next(row for row in rows if row.startswith("| api_handler |"))
    assert api.startswith("| api_handler | 11 | 30.0 |") and "| 60% | CPU |" in api
