"""bench.cost's price arithmetic, its tables, the generated cost section of docs/operations.md
and the quote's figure it feeds, and how it meters an invocation."""
import argparse
import json
from pathlib import Path

import pytest

from bench import cost
from bench.cost import (
    GIB, LAMBDA_LOG_BYTES, SERVICES, JobUsage, Meter, infrastructure_figure, render_docs_section,
    render_from_data, render_table, replace_section, section_data,
)
from chalicelib.domain import pricing

ROOT = Path(__file__).resolve().parents[2]
PRICE = {service.key: service.dollars for service in SERVICES}


def _usage(judgments=1000, **units):
    return JobUsage("single tasks", 1, judgments, units)


def test_the_price_table_is_the_dated_us_east_1_list():
    assert cost.PRICES_DATE == "2026-12-06"
    assert PRICE == pytest.approx({
        "api_requests": 3.50e-6, "lambda_requests": 0.20e-6, "lambda_gb_seconds": 0.0000166667,
        "write_units": 0.625e-6, "read_units": 0.125e-6, "sqs_requests": 0.40e-6,
        "transitions": 25e-6, "log_bytes": 0.50 / 2 ** 30, "s3_puts": 0.005e-3,
        "s3_gets": 0.0004e-3}, rel=1e-12)


def test_dollars_per_million_judgments_are_units_per_judgment_times_the_price():
    # GIVEN 1,000 judgments that took 2,000 requests, 50 GB-s and 10,640 write units
    usage = _usage(api_requests=2000, lambda_gb_seconds=50, write_units=10_640,
                   log_bytes=1.5 * GIB)
    by_key = {service.key: usage.per_million(service) for service in SERVICES}
    # THEN two requests a judgment are $7 a million, 10.64 WRU $6.65, 0.05 GB-s $0.83,
    # 1.5 GiB per thousand judgments $750, and what was not used nothing
    assert by_key["api_requests"] == pytest.approx(7.00)
    assert by_key["write_units"] == pytest.approx(6.65)
    assert by_key["lambda_gb_seconds"] == pytest.approx(0.05 * 0.0000166667 * 1e6)
    assert by_key["log_bytes"] == pytest.approx(750.0)
    assert by_key["sqs_requests"] == 0
    assert usage.total_per_million() == pytest.approx(sum(by_key.values()))


def test_the_table_shows_each_service_and_the_total_from_the_same_arithmetic():
    jobs = [JobUsage("suites of 5", 5, 500, {"api_requests": 500, "write_units": 4000}),
            _usage(api_requests=2000, write_units=10_640)]
    table = render_table(jobs).splitlines()
    assert table[0].count("per judgment") == 2
    assert "| API Gateway (REST) | $3.50 / M | requests | 1.00 | 3.50 | 2.00 | 7.00 |" in table
    assert "| DynamoDB writes | $0.625 / M | WRU | 8.00 | 5.00 | 10.64 | 6.65 |" in table
    assert table[-1] == (f"| **total** | | | | **{jobs[0].total_per_million():.2f}** | "
                         f"| **{jobs[1].total_per_million():.2f}** |")
    assert len(table) == 2 + len(SERVICES) + 1


def test_the_docs_section_renders_again_from_the_measurement_it_keeps():
    # GIVEN a section rendered from a fixed measurement
    jobs = [_usage(api_requests=2143, write_units=11_260, log_bytes=1_443_000)]
    section = render_docs_section(jobs, ".venv/bin/python -m bench.cost --suite 1",
                                  "2026-12-06", "300 items")
    # THEN it holds the table and the prices' date, and renders again from its own data
    assert render_table(jobs) in section
    assert cost.PRICES_DATE in section and "`.venv/bin/python -m bench.cost --suite 1`" in section
    assert render_from_data(section_data(section)) == section
    assert f"${jobs[0].total_per_million():.2f} per million judgments" in section
    assert "single tasks only" in section and f"${infrastructure_figure(jobs)} a judgment" in \
        section.replace("\n", " ")
    # AND a changed figure in the text is told apart from the rendering
    assert render_from_data(section_data(section.replace("7.50", "7.49"))) != \
        section.replace("7.50", "7.49")


def test_a_section_with_a_suite_job_names_both_totals():
    jobs = [JobUsage("suites of 5", 5, 1000, {"api_requests": 1200}),
            _usage(api_requests=2000)]
    section = render_docs_section(jobs, "cmd", "2026-12-07", "300 items")
    text = section.replace("\n", " ")
    assert "**$4.20 per million judgments with suites of 5**" in text
    assert "**$7.00 per million judgments with single tasks**" in text
    assert "single tasks only" not in text


def test_replace_section_swaps_only_what_lies_between_the_markers():
    text = f"# Cost\n\nbefore\n{cost.MARK_START}\nold\n{cost.MARK_END}\nafter\n"
    new = f"{cost.MARK_START}\nnew\n{cost.MARK_END}"
    assert replace_section(text, new) == f"# Cost\n\nbefore\n{new}\nafter\n"
    with pytest.raises(ValueError):
        replace_section("# Cost\n", new)


def test_operations_docs_cost_section_is_the_bench_rendering():
    # The figures in docs/operations.md's cost section come from render_docs_section and the
    # measurement it keeps, not from text written by hand.
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    start, end = text.index(cost.MARK_START), text.index(cost.MARK_END) + len(cost.MARK_END)
    assert text[start:end] == render_from_data(section_data(text[start:end]))


def test_the_quote_figure_is_the_one_the_documented_run_printed():
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    jobs = [JobUsage.from_dict(job) for job in section_data(text)["jobs"]]
    assert pricing.INFRASTRUCTURE_DOLLARS_PER_JUDGMENT == infrastructure_figure(jobs)


def test_the_quote_figure_is_the_dearer_job_rounded_up():
    jobs = [_usage(api_requests=1000), _usage(api_requests=2001)]
    # 2.001 requests a judgment at $3.50 a million: $0.0000070035 a judgment
    assert str(infrastructure_figure(jobs)) == "0.00000701"
    assert cost.pricing_line(jobs) == \
        'INFRASTRUCTURE_DOLLARS_PER_JUDGMENT = Decimal("0.00000701")'


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _invoke(meter, clock, function, seconds, event=None, printed=""):
    with meter.invocation(function, event or {}):
        meter.printed(printed)
        clock.now += seconds


def test_an_invocation_is_billed_per_started_ms_at_its_memory_with_lambdas_own_log_lines(
        monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cost.time, "perf_counter", clock)
    meter = Meter(lambda function: {"api_handler": 512, "fit_model": 3008}.get(function, 128))
    meter.begin()
    # WHEN an API request runs 20.2 ms and prints a 100-byte line, a state machine task 1.0001 s
    _invoke(meter, clock, "api_handler", 0.0202, {"headers": {"x-api-key": "k"}}, "x" * 100)
    _invoke(meter, clock, "fit_model", 1.0001)
    units, functions = meter.end()
    # THEN each is one invocation, billed 21 ms at 0.5 GB and 1001 ms at 3008 MB
    assert units["lambda_requests"] == 2 and units["api_requests"] == 1
    assert functions["api_handler"].billed_ms == 21 and functions["fit_model"].billed_ms == 1001
    assert units["lambda_gb_seconds"] == pytest.approx(0.5 * 0.021 + 3008 / 1024 * 1.001)
    assert units["log_bytes"] == 100 + 2 * LAMBDA_LOG_BYTES


def test_a_consumer_batch_adds_the_mappings_receive_and_delete(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cost.time, "perf_counter", clock)
    meter = Meter(lambda function: 512)
    meter.begin()
    _invoke(meter, clock, "count_answers", 0.05)
    units, _ = meter.end()
    assert units["sqs_requests"] == 2 and units["lambda_requests"] == 1
    assert "api_requests" not in units


def test_recording_overhead_and_a_nested_invocation_leave_the_duration(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cost.time, "perf_counter", clock)
    overhead = [0.0]
    meter = Meter(lambda function: 1024, overhead=lambda: overhead[0])
    meter.begin()
    with meter.invocation("count_answers", {}):
        clock.now += 0.010
        overhead[0] += 0.004  # the DynamoDB recording's own reads
        _invoke(meter, clock, "load_answers", 0.020)
    _, functions = meter.end()
    assert functions["count_answers"].billed_ms == 6
    assert functions["load_answers"].billed_ms == 20


def test_untracked_requests_and_requests_outside_a_measured_job_count_nothing(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cost.time, "perf_counter", clock)
    meter = Meter(lambda function: 512)
    _invoke(meter, clock, "api_handler", 0.01)  # before begin(): set-up
    meter.begin()
    with meter.invocation("api_handler", {"headers": {"X-Bench-Untracked": "1"}}):
        assert not meter.counting()
        meter.aws_call("sqs", "SendMessage", None)
    assert meter.counting()
    units, functions = meter.end()
    assert units == {} and functions == {}


def test_app_sqs_and_s3_requests_count_by_class(monkeypatch):
    meter = Meter(lambda function: 512)
    meter.begin()
    monkeypatch.setattr(cost, "_from_app", lambda frame: True)
    for service, operation in (("sqs", "SendMessageBatch"), ("s3", "PutObject"),
                               ("s3", "CompleteMultipartUpload"), ("s3", "GetObject"),
                               ("s3", "HeadObject"), ("dynamodb", "PutItem")):
        meter.aws_call(service, operation, None)
    monkeypatch.setattr(cost, "_from_app", lambda frame: False)
    meter.aws_call("sqs", "ReceiveMessage", None)  # the local pump's own, not the app's
    units, _ = meter.end()
    assert units == {"sqs_requests": 1, "s3_puts": 2, "s3_gets": 2}


def test_command_line_names_only_what_differs_from_the_defaults():
    args = argparse.Namespace(items=300, gold=20, suite=1, workers=12, reject_share=0.02)
    assert cost.command_line(args) == ".venv/bin/python -m bench.cost --suite 1"


def test_memory_comes_from_the_prod_stage():
    memory_of = cost.prod_memory(ROOT)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    prod = config["stages"]["prod"].get("lambda_functions", {})
    default = config["stages"]["prod"].get("lambda_memory_size", config["lambda_memory_size"])
    for function in ("api_handler", "count_answers", "fit_model", "aggregate_shard"):
        expected = prod.get(function, {}).get("lambda_memory_size", default)
        assert memory_of(function) == expected


class _Worker:
    token = "tok"

    def answer(self, truth):
        return truth


def _suite_api(monkeypatch, responses):
    """examples.demo.call answering from responses, in order; the requests it was sent."""
    from examples import demo

    sent = []

    def call(base_url, method, path, body=None, headers=None):
        sent.append((method, path, body))
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(demo, "call", call)
    return sent


def _task(n):
    return {"assignment_id": f"asg_{n}", "item": {"data": {"text": f"t{n}"}}}


def test_a_suite_worker_leases_submits_with_next_and_keeps_the_accepted(monkeypatch):
    truth = {f"t{n}": "pos" for n in range(4)}
    sent = _suite_api(monkeypatch, [
        (200, {"tasks": [_task(0), _task(1)], "suite_size": 2}),
        (200, {"results": [{"assignment_id": "asg_0", "status": "accepted"},
                           {"assignment_id": "asg_1", "status": "lease_expired"}],
               "next": {"tasks": [_task(2), _task(3)]}}),
        (200, {"results": [{"assignment_id": "asg_2", "status": "accepted"},
                           {"assignment_id": "asg_3", "status": "accepted"}], "next": None}),
    ])
    accepted = []
    cost.answer_in_suites("http://x", _Worker(), "job_1", truth, accepted, 2)
    # THEN it leased with count, submitted each suite with "next", and kept what was accepted
    assert sent[0][:2] == ("GET", "/tasks/next?job_id=job_1&count=2")
    assert sent[1] == ("POST", "/assignments/submit", {
        "answers": [{"assignment_id": "asg_0", "answer": {"label": "pos"}},
                    {"assignment_id": "asg_1", "answer": {"label": "pos"}}],
        "next": {"count": 2, "job_id": "job_1"}})
    assert len(sent) == 3 and accepted == ["asg_0", "asg_2", "asg_3"]


def test_an_app_without_suites_is_told_apart_from_an_error(monkeypatch):
    from examples.demo import ApiError

    # A lease that answers one task, not a suite
    _suite_api(monkeypatch, [(200, _task(0))])
    with pytest.raises(cost.SuitesUnavailable):
        cost.answer_in_suites("http://x", _Worker(), "job_1", {"t0": "pos"}, [], 5)
    # No suite submit route
    _suite_api(monkeypatch, [(200, {"tasks": [_task(0)]}), ApiError(404, {"error": "not_found"})])
    with pytest.raises(cost.SuitesUnavailable):
        cost.answer_in_suites("http://x", _Worker(), "job_1", {"t0": "pos"}, [], 5)
    # Any other error stays what it is
    _suite_api(monkeypatch, [(200, {"tasks": [_task(0)]}), ApiError(500, {"error": "x"})])
    with pytest.raises(ApiError):
        cost.answer_in_suites("http://x", _Worker(), "job_1", {"t0": "pos"}, [], 5)


def test_bench_exits_2_with_a_message_when_suites_are_missing(monkeypatch, capsys):
    def no_suites(args):
        raise cost.SuitesUnavailable("the app has no POST /assignments/submit")
    monkeypatch.setattr(cost, "measure", no_suites)
    assert cost.main(["--suite", "5"]) == 2
    err = capsys.readouterr().err
    assert "--suite 1" in err and "POST /assignments/submit" in err and "Traceback" not in err


def test_the_log_level_is_the_prod_stages_powertools_level_first(tmp_path):
    (tmp_path / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "crowd", "environment_variables": {"LOG_LEVEL": "INFO"},
              "stages": {"dev": {"environment_variables": {"POWERTOOLS_LOG_LEVEL": "DEBUG"}},
                         "prod": {"environment_variables": {}}}}
    path = tmp_path / ".chalice" / "config.json"
    path.write_text(json.dumps(config))
    assert cost.prod_log_level(tmp_path) == "INFO"
    config["stages"]["prod"]["environment_variables"]["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    path.write_text(json.dumps(config))
    assert cost.prod_log_level(tmp_path) == "WARNING"


def test_the_readme_cost_figures_are_the_documented_runs():
    # GIVEN the measurement docs/operations.md's cost section keeps
    jobs = [JobUsage.from_dict(job)
            for job in section_data(cost.DOCS.read_text(encoding="utf-8"))["jobs"]]
    readme = cost.README.read_text(encoding="utf-8")
    # THEN the README's phrase is that measurement rendered, each job's total and the date
    figures = cost.render_readme_figures(jobs)
    assert figures in readme
    for job in jobs:
        assert f"${job.total_per_million():.2f}" in figures
    assert cost.PRICES_DATE in figures
    # AND a figure edited by hand is told apart, and replacing the phrase rewrites only it
    edited = readme.replace(figures, figures.replace("$", "$1"))
    assert figures not in edited
    assert cost.replace_readme_figures(edited, figures) == readme


def test_a_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="cost"):
        cost.replace_readme_figures("no markers here", "x")
