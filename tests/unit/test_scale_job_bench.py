"""bench/scale_job.py at a tiny size: the job goes through every stage to done, each stage is
measured against the Lambda it runs in, and the download reads back every item's line."""
from __future__ import annotations

from bench import scale_job
from infra.stage_settings import MEMORY_MB


def test_a_tiny_job_runs_every_stage_to_its_downloaded_results():
    run = scale_job.Run(items=1200, redundancy=3, workers=30, trace_every=7)
    facts = run.run()
    assert facts["state"] == "done"
    assert (facts["answered"], facts["items_done"]) == (3600, 1200)
    assert facts["result_rows"] == facts["download_lines"] == 1200
    assert facts["shards"] == 3
    assert list(run.stages) == list(scale_job.FUNCTIONS)
    answers, counting = run.stages["answers"], run.stages["counting"]
    assert answers.store_calls["items.try_submit"] == 3600
    assert counting.calls == 360 and counting.store_calls["jobs.record_counted"] == 360
    # The round closed by the paged pass (a worker is blocked from the job): 200 items a page.
    assert run.stages["round close"].store_calls["items.item_page"] == 7
    assert run.stages["LoadAnswers"].store_calls["items.item_page"] == 13
    assert run.stages["AggregateShard"].calls == 3
    for stage in run.stages.values():
        assert stage.worst_seconds > 0 and stage.wall >= stage.worst_seconds
    assert run.stages["Publish"].worst_traced > 0 and run.stages["FitModel"].worst_traced > 0
    assert run.stages["answers"].traced_calls == 3600 // 7


def test_each_stage_is_held_to_its_function_in_the_chalice_config():
    assert scale_job.limits("fit_model") == (MEMORY_MB["fit_model"], 300)
    assert scale_job.limits("aggregate_shard") == (MEMORY_MB["aggregate_shard"], 300)
    assert scale_job.limits("count_answers") == (MEMORY_MB["count_answers"], 60)
    assert scale_job.limits("mark_done") == (MEMORY_MB["mark_done"], 30)
    # API Gateway's limit, under the function's
    assert scale_job.limits("api") == (MEMORY_MB["api_handler"], 29)


def test_the_table_has_a_row_per_stage_with_its_shares():
    run = scale_job.Run(items=600, redundancy=2, workers=10, trace_every=5)
    run.run()
    text = scale_job.table(run, baseline=70.0)
    assert "600 items, redundancy 2" in text
    for name in scale_job.FUNCTIONS:
        assert f"| {name}" in text
    fit = run.stages["FitModel"]
    memory = MEMORY_MB["fit_model"]
    share = f"{(70.0 + fit.worst_traced / scale_job.MIB) / memory:.0%}"
    assert f"| fit_model ({memory:,} / 300) | 1 |" in text and f"| {share} |" in text
