"""Publish merges the shards' report sums (chalicelib.workflows.aggregation, on the fakes): the
report is the one built from every published line, and Publish's memory does not grow with
the round."""
from __future__ import annotations

import json
from collections.abc import Iterable

from bench.publish_stage import make_round, measure_publish
from chalicelib.domain import keys
from chalicelib.domain.answers import matches_gold
from chalicelib.domain.report import build_report, calibration_section
from chalicelib.errors import NotFound
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeBlobs


def _published(p, event) -> tuple[list[dict], dict]:
    """The round's results lines (from the results object) and its report."""
    job_id = event["job_id"]
    body = p.blobs.get_text(keys.results_key(job_id))
    return ([json.loads(line) for line in body.splitlines()],
            json.loads(p.blobs.get_text(keys.report_key(job_id, event["round"]))))


def _report_of_lines(p, event, lines) -> dict:
    """The report of the lines in one pass, as Publish adds to it (the round's calibration
    object, when it has one)."""
    job = p.jobs.get_job(event["job_id"])
    report = build_report(job.job_id, event["round"], job.task_type, lines, None,
                          job.report_settings, lambda answer, gold: matches_gold(job, answer, gold))
    try:
        stored = json.loads(p.blobs.get_text(keys.calibration_key(job.job_id, event["round"])))
    except NotFound:
        stored = None
    return {**report, "calibration": calibration_section(stored), "phase": job.phase,
            "blocked_workers": []}


def test_the_published_report_is_the_report_of_every_published_line():
    # GIVEN a round of 3,300 items (7 shards, the last short) with gold, N/A answers and a
    # tagged attribute, each shard aggregated (writing its part and its sums)
    p, event = make_round(3300, workers=400, blobs=FakeBlobs())
    assert event["shard_count"] == 7
    stats = [k for k in p.blobs.objects if "/stats/" in k]
    assert sorted(stats) == [keys.stats_key(event["job_id"], 1, n) for n in range(7)]
    # WHEN Publish runs
    out = stages.publish_results(p, event)
    # THEN it counted every line, and its report is the one built from all the lines
    lines, report = _published(p, event)
    assert out["count"] == len(lines) == 3300
    assert report["gold"]["items"] and report["not_applicable"]["reasons"]
    assert report["by_attribute"]["source"]["values"]
    assert json.dumps(report) == json.dumps(_report_of_lines(p, event, lines))


def test_a_shard_aggregated_before_shards_wrote_their_sums_is_counted_from_its_part():
    # GIVEN a round whose shards 0 and 4 left no sums (aggregated by the code before them)
    p, event = make_round(2600, workers=300, blobs=FakeBlobs())
    for shard in (0, 4):
        del p.blobs.objects[keys.stats_key(event["job_id"], 1, shard)]
    # WHEN Publish runs THEN the report is still the report of every line
    stages.publish_results(p, event)
    lines, report = _published(p, event)
    assert json.dumps(report) == json.dumps(_report_of_lines(p, event, lines))


def test_a_retried_shard_rewrites_the_same_sums():
    p, event = make_round(700, workers=100, blobs=FakeBlobs())
    key = keys.stats_key(event["job_id"], 1, 1)
    first = p.blobs.get_text(key)
    stages.aggregate_shard(p, {"job_id": event["job_id"], "round": 1, "shard": 1,
                               "key": keys.answers_key(event["job_id"], 1, 1),
                               "posteriors_key": keys.posteriors_key(event["job_id"], 1, 1)})
    assert p.blobs.get_text(key) == first


class DroppedStream(FakeBlobs):
    """Blobs whose streamed objects are read and dropped, so only Publish's own memory counts."""

    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        for _ in chunks:
            pass
        self.objects[key] = ("", content_type)


def test_publishing_four_times_the_items_takes_no_more_memory():
    # GIVEN rounds of 1,500 and 6,000 items answered by the same 200 workers
    small = measure_publish(*make_round(1500, workers=200, blobs=DroppedStream()))[0]
    big = measure_publish(*make_round(6000, workers=200, blobs=DroppedStream()))[0]
    # THEN Publish's peak memory is about the same (holding the lines, it was 4 times more)
    assert big < 1.25 * small, (small, big)
