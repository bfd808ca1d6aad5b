"""A round's report merged from its shards' sums (chalicelib.domain.report.ReportStats) is the
report of all its lines, for label, number and text jobs, on the real data sets."""
from __future__ import annotations

import csv
import functools
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from chalicelib.domain.report import MAX_ATTRIBUTE_VALUES, build_report, merge_stats, shard_stats

DATASETS = Path("/work/shared/datasets")
REASONS = ["Not English", "not  english", "broken image", "Broken image ", "off topic"]
SETTINGS = {"attributes": ["source", "batch"],
            "expected_distribution": {"0": 0.6, "1": 0.3, "2": 0.1}}
SKILLS_SHARE = 0.8  # the share of workers the fitted model gives an accuracy


@functools.cache
def _read(name: str) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """A data set's answers per task (worker, label) in file order, and its gold labels
    (read once; not to be changed)."""
    folder = DATASETS / name
    if not folder.exists():
        pytest.skip(f"data set {name} not on this machine")
    answers: dict[str, list[tuple[str, str]]] = {}
    with open(folder / "answers.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            answers.setdefault(row["task"], []).append((row["worker"], row["label"]))
    with open(folder / "gold.csv", newline="") as handle:
        gold = {row["task"]: row["label"] for row in csv.DictReader(handle)}
    return answers, gold


def _answer(task_type: str, label: str) -> dict:
    if task_type == "numeric":
        return {"value": int(label) if label.lstrip("-").isdigit() else len(label)}
    if task_type == "categorical":
        return {"label": label}
    return {"text": f"the answer is {label}"}


def _iso(second: int) -> str:
    return f"2026-12-06T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"


def dataset_lines(name: str, task_type: str, seed: int = 0, limit: int | None = None) -> list[dict]:
    """Result lines as Publish reads them, made from a real data set's answers: about 5% of
    answers are N/A with a reason, some too fast; a quarter of the gold tasks are gold items
    (their result is the gold), the others' result is the majority (N/A when it wins); two
    attributes, one of more than MAX_ATTRIBUTE_VALUES values."""
    rng = random.Random(seed)
    answers, gold = _read(name)
    lines = []
    for index, (task, given) in enumerate(list(answers.items())[:limit]):
        entries = []
        for worker, label in given:
            leased = rng.randrange(0, 80_000)
            entry = {"worker_id": f"w{worker}", "assignment_id": f"a{index}-{worker}",
                     "answer": ({"not_applicable": rng.choice(REASONS)} if rng.random() < 0.05
                                else _answer(task_type, label)),
                     "leased_at": _iso(leased), "submitted_at": _iso(leased + rng.randrange(0, 90)),
                     "instruction_version": 1}
            if rng.random() < 0.03:
                entry["flags"] = ["too_fast"]
            entries.append(entry)
        votes = Counter(json.dumps(e["answer"], sort_keys=True) if "not_applicable" not in e["answer"]
                        else "na" for e in entries)
        winner, top = votes.most_common(1)[0] if votes else (None, 0)
        not_applicable = winner == "na"
        line = {"item_id": f"{index:07d}", "external_id": f"ext-{task}",
                "answer": None if winner is None or not_applicable else json.loads(winner),
                "confidence": round(top / len(entries), 4) if entries else 0.0,
                "n_answers": len(entries), "not_applicable": not_applicable,
                "na_reasons": [e["answer"]["not_applicable"] for e in entries
                               if "not_applicable" in e["answer"]],
                "method": ("majority_vote" if task_type == "categorical" else "median"
                           if task_type == "numeric" else "medoid") if entries else None,
                "answers": entries,
                "attributes": {"source": rng.choice(["web", "app", None, 3]),
                               "batch": f"b{rng.randrange(0, MAX_ATTRIBUTE_VALUES + 30)}"}}
        if task in gold and rng.random() < 0.25:  # a gold item's result is its known answer
            line["gold"] = _answer(task_type, gold[task])
            line.update(answer=line["gold"], confidence=1.0, not_applicable=False,
                        na_reasons=[], method="gold")
        lines.append(line)
    return lines


def _skills(lines: list[dict], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    workers = sorted({e["worker_id"] for line in lines for e in line["answers"]})
    return {w: rng.random() for w in workers if rng.random() < SKILLS_SHARE}


def _judge(answer, gold):
    return "not_applicable" not in answer and answer == gold


def _splits(n: int, rng: random.Random) -> list[tuple[int, int]]:
    """Contiguous runs covering 0..n (shards cut the round in item order), some empty."""
    cuts = sorted([0, n] + [rng.randint(0, n) for _ in range(rng.randint(1, 12))])
    return list(zip(cuts, cuts[1:])) + [(n, n)]


def _merged_report(task_type, lines, splits, skills, settings, two_pass=False):
    """The report Publish builds: each run's sums through JSON (as S3 holds them), merged."""
    stored = [json.loads(json.dumps(shard_stats(task_type, lines[a:b], settings, _judge)))
              for a, b in splits]
    if not two_pass:
        merged = merge_stats(task_type, stored, settings)
    else:
        merged = merge_stats(task_type, stored, settings, details={})
        kept = merged.kept_values()
        for stats in stored:
            merged.merge_details(stats, kept)
    return merged.report("job_m", 2, skills, settings)


CASES = [("rte", "categorical"), ("dog", "categorical"), ("trec_rf10", "categorical"),
         ("music_genre", "numeric"), ("trec_rf10", "numeric"), ("face", "translation"),
         ("bluebird", "transcription")]


@pytest.mark.parametrize("name,task_type", CASES)
def test_merging_the_sums_of_any_split_gives_exactly_the_report_of_all_lines(name, task_type):
    # GIVEN a round's result lines made from a real data set, with gold, N/A and attributes
    lines = dataset_lines(name, task_type, limit=3000)
    skills = _skills(lines, 1) if task_type == "categorical" else None
    whole = build_report("job_m", 2, task_type, lines, skills, SETTINGS, _judge)
    # (the lines exercise every part of the report)
    assert whole["gold"]["answers"] and whole["not_applicable"]["reasons"]
    assert whole["too_fast_answers"] and whole["median_seconds_per_task"] is not None
    assert whole["by_attribute"]["batch"]["other_values_items"] > 0
    if task_type in ("categorical", "numeric"):
        assert whole["agreement"]["krippendorff_alpha"] is not None
    rng = random.Random(name + task_type)
    for _ in range(4):
        splits = _splits(len(lines), rng)
        # WHEN each run's sums are written and merged, in one pass or in Publish's two
        for two_pass in (False, True):
            merged = _merged_report(task_type, lines, splits, skills, SETTINGS, two_pass)
            # THEN the report is the same, to the byte (key order included)
            assert json.dumps(merged) == json.dumps(whole), (splits, two_pass)


def test_a_round_of_one_item_per_shard_and_of_empty_shards_only_merges_the_same():
    lines = dataset_lines("dog", "categorical", seed=3, limit=40)
    whole = build_report("job_m", 2, "categorical", lines, None, SETTINGS, _judge)
    each = [(i, i + 1) for i in range(len(lines))] + [(0, 0)] * 3
    assert json.dumps(_merged_report("categorical", lines, each, None, SETTINGS)) == json.dumps(whole)
    empty = _merged_report("categorical", [], [(0, 0)] * 4, None, SETTINGS)
    assert empty == build_report("job_m", 2, "categorical", [], None, SETTINGS, _judge)
    assert empty["items"] == 0 and empty["mean_confidence"] is None


def test_the_merged_sums_hold_the_crowd_and_the_labels_not_the_items():
    # GIVEN 10,000 items of trec_rf10 in 20 shards
    lines = dataset_lines("trec_rf10", "categorical", limit=10_000)
    crowd = {entry["worker_id"] for line in lines for entry in line["answers"]}
    assert len(crowd) > 500 and sum(len(line["answers"]) for line in lines) > 40_000
    stored = [json.loads(json.dumps(shard_stats("categorical", lines[a:a + 500], SETTINGS, _judge)))
              for a in range(0, len(lines), 500)]
    merged = merge_stats("categorical", stored, SETTINGS, details={})
    # THEN they hold one tally per worker, a count per label, per distinct duration and per
    # N/A reason, the ten least certain items, and only the item counts of attribute values
    assert len(merged.workers) == len(crowd)
    assert len(merged.agreement.labels) <= 4 and len(merged.seconds) <= 90
    assert len(merged.reasons) <= len(REASONS) and len(merged.lowest) == 10
    assert all(details == {} for details in merged.attribute_details.values())
    # AND the report from them is the one-pass report
    for stats in stored:
        merged.merge_details(stats, merged.kept_values())
    assert sum(len(d) for d in merged.attribute_details.values()) <= 2 * MAX_ATTRIBUTE_VALUES
    assert merged.report("job_m", 2, None, SETTINGS) == build_report(
        "job_m", 2, "categorical", lines, None, SETTINGS, _judge)


def test_a_text_job_breaks_attributes_down_by_items_only():
    # GIVEN a translation round tagged with a source
    lines = dataset_lines("face", "translation", limit=200)
    report = build_report("job_t", 1, "translation", lines, None, SETTINGS, _judge)
    # THEN each value counts its items, with neither agreement nor result shares (a text
    # result is as unique as its item, as the round's own shares leave text out)
    values = report["by_attribute"]["source"]["values"]
    assert sum(v["items"] for v in values.values()) == 200
    assert all(v["krippendorff_alpha"] is None and v["result_distribution"] == {}
               for v in values.values())
