"""The FitModel stage on integer vote columns (chalicelib.workflows.aggregation.fit_model)."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from chalicelib.domain import keys
from chalicelib.domain.aggregation import NA_CLASS
from chalicelib.domain.aggregation.categorical import default_model
from chalicelib.domain.aggregation.columns import read_shard, shard_columns
from chalicelib.domain.model import WORKER
from chalicelib.handlers import accounts, rounds, tasks
from chalicelib.workflows import aggregation as stages
from tests.fakes import FakeBlobs, FakeClock, make_platform
from tests.unit.test_stages import _execution_input, _job

DATASETS = Path("/work/shared/datasets")
JOB = "job_fit"


def _round(name, per_shard, gold_every):
    """A real data set as a round's vote shards: (shards as answer lists, gold, labels)."""
    with open(DATASETS / name / "answers.csv", newline="") as handle:
        rows = [(r["task"], r["worker"], r["label"]) for r in csv.DictReader(handle)]
    with open(DATASETS / name / "gold.csv", newline="") as handle:
        gold = dict(list((r["task"], r["label"]) for r in csv.DictReader(handle))[::gold_every])
    by_item: dict[str, list] = {}
    for row in rows:
        by_item.setdefault(row[0], []).append(row)
    items = list(by_item)
    shards = [[a for item in items[start:start + per_shard] for a in by_item[item]]
              for start in range(0, len(items), per_shard)]
    return shards, gold, sorted({row[2] for row in rows})


def _platform(labels, blobs=None):
    job = SimpleNamespace(answer_schema={"labels": labels})
    return SimpleNamespace(blobs=blobs or FakeBlobs(),
                           jobs=SimpleNamespace(get_job=lambda _: job))


def _write(p, shards, gold, legacy=False):
    for shard, answers in enumerate(shards):
        items, workers, labels = (list(column) for column in zip(*answers))
        shard_gold = {item: gold[item] for item in dict.fromkeys(items) if item in gold}
        body = ({"items": items, "workers": workers, "labels": labels, "gold": shard_gold}
                if legacy else shard_columns(items, workers, labels, shard_gold))
        p.blobs.put_text(keys.votes_key(JOB, 1, shard), json.dumps(body), "application/json")


def _fit(p, shard_count):
    return stages.fit_model(p, {"job_id": JOB, "round": 1, "kind": "categorical",
                                "shard_count": shard_count})


def _written(p):
    return {key: body for key, (body, _) in p.blobs.objects.items() if "/votes/" not in key}


@pytest.mark.parametrize("name, gold_every", [("dog", 2), ("web", 3), ("trec_rf10", 1),
                                              ("music_genre", 10 ** 6)])
def test_each_shards_posteriors_are_the_fit_of_the_rounds_answers_as_strings(name, gold_every):
    # GIVEN a real data set's answers as a round of vote shards, some items with gold
    shards, gold, labels = _round(name, 200, gold_every)
    p = _platform(labels)
    _write(p, shards, gold)
    # WHEN FitModel runs
    _fit(p, len(shards))
    # THEN each shard's posteriors and the workers' skills are those of the default model
    # fitted on every answer as strings, with gold clamped or without it, as the round chose
    # (calibration.choose_fit: clamped only when it gets clearly more held-out gold right)
    chosen = json.loads(p.blobs.get_text(keys.calibration_key(JOB, 1)))
    everything = [a for shard in shards for a in shard]
    expected = default_model(label_order=labels).fit(
        *(list(column) for column in zip(*everything)),
        gold=gold if chosen["gold_clamped"] else None)
    method = expected.chosen_
    for shard, answers in enumerate(shards):
        written = json.loads(p.blobs.get_text(keys.posteriors_key(JOB, 1, shard)))
        members = list(dict.fromkeys(a[0] for a in answers))
        # (each shard also carries the round's calibration map: the same one in every shard)
        assert written.pop("calibration") == json.loads(
            p.blobs.get_text(keys.posteriors_key(JOB, 1, 0)))["calibration"]
        assert written == json.loads(json.dumps({
            "method": method, "classes": expected.classes_,
            "posteriors": {item: [round(p_, 6) for p_ in expected.probas_[item].values()]
                           for item in members}}))
    skills = json.loads(p.blobs.get_text(keys.workers_key(JOB, 1)))
    assert skills == {"method": method, "skills": {worker: round(skill, 6) for worker, skill
                                                   in expected.skills_.items()}}
    if chosen["gold_clamped"]:
        assert all(expected.labels_[item] == label for item, label in gold.items())


def test_shards_written_as_lists_of_strings_fit_the_same():
    # GIVEN the same round written as integer columns and, as before, as lists of strings
    shards, gold, labels = _round("face", 100, 4)
    compact, legacy = _platform(labels), _platform(labels)
    _write(compact, shards, gold)
    _write(legacy, shards, gold, legacy=True)
    # WHEN FitModel runs on each
    assert _fit(compact, len(shards)) == _fit(legacy, len(shards))
    # THEN it writes the same objects
    assert _written(compact) == _written(legacy)


class FailingBlobs(FakeBlobs):
    """Blobs whose nth write (counted from the arming) fails once, as S3 throttling would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_at: int | None = None
        self.writes = 0

    def put_text(self, key, body, content_type):
        if self.fail_at is not None:
            self.writes += 1
            if self.writes == self.fail_at:
                raise RuntimeError("SlowDown")
        super().put_text(key, body, content_type)


def test_a_fit_that_fails_while_writing_posteriors_writes_them_all_when_retried():
    # GIVEN a round of 9 shards, and a store whose 5th write fails
    shards, gold, labels = _round("dog", 90, 2)
    clean, failing = _platform(labels), _platform(labels, FailingBlobs())
    _write(clean, shards, gold)
    _write(failing, shards, gold)
    expected = _fit(clean, len(shards))
    failing.blobs.fail_at = 5
    # WHEN FitModel fails on it, and Step Functions retries the stage
    with pytest.raises(RuntimeError, match="SlowDown"):
        _fit(failing, len(shards))
    # THEN the retry returns and leaves exactly what a run without the failure does
    assert _fit(failing, len(shards)) == expected
    assert _written(failing) == _written(clean)


def test_load_answers_writes_a_shards_votes_as_integer_columns():
    # GIVEN a 4-item job answered by three workers, one of whom says not applicable once
    p = make_platform(FakeClock())
    _, job = _job(p, items=4, redundancy=3)
    workers = [accounts.create_account(p, WORKER, f"w{n}")[0] for n in range(3)]
    given = []
    for index, worker in enumerate(workers):
        while (task := tasks.lease_next_task(p, worker, job.job_id)) is not None:
            p.clock.advance(1)
            answer = ({"not_applicable": "broken"} if index == 2 and not given[-1:]
                      else {"label": "pos" if index else "neg"})
            tasks.submit_answer(p, worker, task.assignment_id, answer)
            given.append((task.item.item_id, worker.account_id,
                          NA_CLASS if "not_applicable" in answer else answer["label"]))
    for message in p.results_queue.take():
        rounds.count_answers(p, [message])
    # WHEN the answers are loaded
    stages.load_answers(p, _execution_input(p, job))
    # THEN the votes object holds tables and base64 columns, not a string per answer
    body = json.loads(p.blobs.get_text(keys.votes_key(job.job_id, 1, 0)))
    assert set(body) == {"answers", "item_table", "worker_table", "label_table", "item_codes",
                         "worker_codes", "label_codes", "gold"}
    assert all(isinstance(body[name], str) for name in ("item_codes", "worker_codes", "label_codes"))
    # AND it decodes to every answer given, item by item
    shard = read_shard(body)
    decoded = [(shard.items[i], shard.workers[w], shard.labels[k]) for i, w, k in
               zip(shard.item_codes, shard.worker_codes, shard.label_codes)]
    assert sorted(decoded) == sorted(given) and len(decoded) == 12
    assert [item for item, _, _ in decoded] == sorted(item for item, _, _ in decoded)
