"""The S3 layout: every key of a job's objects, built in chalicelib/domain/keys.py only.

The layout is what a bucket already holds (results, reports, online models, a round's
shards): a key that moved would leave those objects unread.
"""
from __future__ import annotations

import re
from pathlib import Path

from chalicelib.domain import keys

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_keeps_its_layout():
    assert keys.results_key("job_a") == "jobs/job_a/results.jsonl"
    assert keys.results_csv_key("job_a") == "jobs/job_a/results.csv"
    assert keys.report_key("job_a") == "jobs/job_a/report.json"
    assert keys.report_key("job_a", 2) == "jobs/job_a/rounds/2/report.json"
    assert keys.online_model_key("job_a") == "jobs/job_a/online-model.json"
    assert keys.answers_key("job_a", 2, 7) == "jobs/job_a/rounds/2/answers/00007.json"
    assert keys.votes_key("job_a", 2, 7) == "jobs/job_a/rounds/2/votes/00007.json"
    assert keys.posteriors_key("job_a", 2, 7) == "jobs/job_a/rounds/2/posteriors/00007.json"
    assert keys.part_key("job_a", 2, 7) == "jobs/job_a/rounds/2/results/00007.jsonl"
    assert keys.csv_part_key("job_a", 2, 7) == "jobs/job_a/rounds/2/results/00007.csv"
    assert keys.workers_key("job_a", 2) == "jobs/job_a/rounds/2/workers.json"
    assert keys.manifest_key("job_a", 2) == "jobs/job_a/rounds/2/manifest.json"


def test_no_other_module_builds_an_s3_key():
    builders = [str(path.relative_to(ROOT)) for path in (ROOT / "chalicelib").rglob("*.py")
                if re.search(r"""["']jobs/""", path.read_text())]
    assert builders == ["chalicelib/domain/keys.py"]
