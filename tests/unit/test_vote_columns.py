"""Vote columns (chalicelib.domain.aggregation.columns) and the engine's fit from integer codes."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from chalicelib.domain.aggregation import categorical
from chalicelib.domain.aggregation.categorical import (
    Encoded, default_model, encode, segment_slices, segment_sums)
from chalicelib.domain.aggregation.columns import RoundVotes, read_shard, shard_columns

DATASETS = Path("/work/shared/datasets")
REAL = ["bluebird", "rte", "dog", "face", "music_genre", "web", "product", "trec_rf10"]


def _dataset(name):
    with open(DATASETS / name / "answers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(DATASETS / name / "gold.csv", newline="") as handle:
        gold = {row["task"]: row["label"] for row in csv.DictReader(handle)}
    return [(r["task"], r["worker"], r["label"]) for r in rows], gold


def _shards(answers, gold, per_shard):
    """The answers cut as LoadAnswers cuts a round: runs of per_shard items, each item's
    answers together; returns (the votes objects, the answers in shard order, the gold)."""
    by_item: dict[str, list] = {}
    for answer in answers:
        by_item.setdefault(answer[0], []).append(answer)
    items = list(by_item)
    objects, ordered = [], []
    for start in range(0, len(items), per_shard):
        run = [a for item in items[start:start + per_shard] for a in by_item[item]]
        shard_gold = {item: gold[item] for item in items[start:start + per_shard] if item in gold}
        objects.append(json.loads(json.dumps(shard_columns(
            [a[0] for a in run], [a[1] for a in run], [a[2] for a in run], shard_gold))))
        ordered += run
    return objects, ordered


def _merged(objects, label_order=None):
    votes = RoundVotes(label_order)
    for body in objects:
        votes.add(read_shard(body))
    return votes


def _synthetic(n_items=300, redundancy=4, n_workers=25, seed=3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_items)
    skill = rng.uniform(0.3, 0.95, n_workers)
    answers = []
    for item in range(n_items):
        for worker in rng.choice(n_workers, redundancy, replace=False).tolist():
            right = rng.random() < skill[worker]
            label = truth[item] if right else rng.integers(0, 3)
            answers.append((f"item{item}", f"w{worker}", "abc"[label]))
    gold = {f"item{item}": "abc"[truth[item]] for item in range(0, n_items, 10)}
    return answers, gold


def test_a_shard_round_trips_through_its_columns_in_order_of_first_appearance():
    # GIVEN a shard's answers, one worker answering twice and a gold item nobody answered
    items = ["i1", "i1", "i2", "i2", "i2"]
    workers = ["w2", "w1", "w1", "w3", "w1"]
    labels = ["b", "a", "a", "b", "c"]
    # WHEN written as columns, through JSON, and read back
    shard = read_shard(json.loads(json.dumps(
        shard_columns(items, workers, labels, {"i2": "a", "i9": "b"}))))
    # THEN tables keep first appearance and the codes give back every answer in order
    assert (shard.items, shard.workers, shard.labels) == (["i1", "i2"], ["w2", "w1", "w3"],
                                                          ["b", "a", "c"])
    assert [shard.items[i] for i in shard.item_codes] == items
    assert [shard.workers[w] for w in shard.worker_codes] == workers
    assert [shard.labels[k] for k in shard.label_codes] == labels
    assert shard.item_codes.dtype == np.dtype("<i4")
    assert shard.gold == {"i2": "a", "i9": "b"}


def test_columns_take_a_fraction_of_the_lists_of_strings():
    # GIVEN a 500-item shard with 10 answers per item from workers with platform-style ids
    rng = np.random.default_rng(1)
    items = [f"{i:06d}" for i in range(500) for _ in range(10)]
    workers = [f"wrk_{w:016x}" for w in rng.integers(0, 2000, len(items))]
    labels = [f"label{k}" for k in rng.integers(0, 5, len(items))]
    # WHEN written both ways
    lists = json.dumps({"items": items, "workers": workers, "labels": labels, "gold": {}})
    columns = json.dumps(shard_columns(items, workers, labels, {}))
    # THEN the columns (with their tables) take under a half of the bytes
    assert len(columns) < len(lists) / 2


def test_a_shard_written_as_lists_of_strings_reads_the_same_as_its_columns():
    answers, gold = _synthetic(n_items=20)
    items, workers, labels = (list(column) for column in zip(*answers))
    legacy = read_shard({"items": items, "workers": workers, "labels": labels, "gold": gold})
    compact = read_shard(json.loads(json.dumps(shard_columns(items, workers, labels, gold))))
    assert (legacy.items, legacy.workers, legacy.labels, legacy.gold) == \
        (compact.items, compact.workers, compact.labels, compact.gold)
    for name in ("item_codes", "worker_codes", "label_codes"):
        assert np.array_equal(getattr(legacy, name), getattr(compact, name))


@pytest.mark.parametrize("damage, message", [
    (lambda body: body.update(answers=body["answers"] + 1), "holds 5 codes for 6 answers"),
    (lambda body: body.update(worker_table=body["worker_table"][:1]), "outside its table of 1"),
])
def test_a_damaged_shard_is_refused_by_name(damage, message):
    body = shard_columns(["i1"] * 3 + ["i2"] * 2, ["w1", "w2", "w3", "w1", "w2"],
                         ["a", "b", "a", "a", "b"], {})
    damage(body)
    with pytest.raises(ValueError, match=message):
        read_shard(body)


@pytest.mark.parametrize("name", REAL)
def test_shards_merge_into_the_codes_encode_gives_the_same_answers(name):
    # GIVEN a real data set cut into shards of 50 items, with half its gold
    answers, gold = _dataset(name)
    half = dict(list(gold.items())[::2])
    objects, ordered = _shards(answers, half, 50)
    # WHEN the shards are merged
    merged, gold_items, gold_classes = _merged(objects, ["z-first"]).encoded()
    # THEN the codes and vocabularies are exactly encode's on the answers in shard order
    items, workers, labels = (list(column) for column in zip(*ordered))
    expected = encode(items, workers, labels, ["z-first"])
    answered = set(items)
    for name_ in ("item_codes", "worker_codes", "label_codes"):
        assert np.array_equal(getattr(merged, name_), getattr(expected, name_))
    assert (merged.items_, merged.workers_, merged.classes_) == \
        (expected.items_, expected.workers_, expected.classes_)
    assert {merged.items_[i]: merged.classes_[k] for i, k in
            zip(gold_items.tolist(), gold_classes.tolist())} == \
        {item: label for item, label in half.items() if item in answered}


@pytest.mark.parametrize("name", REAL)
def test_the_default_fitted_from_merged_shards_equals_its_fit_on_strings(name):
    # GIVEN a real data set cut into shards of 100 items, with every third gold label
    answers, gold = _dataset(name)
    some_gold = dict(list(gold.items())[::3])
    objects, ordered = _shards(answers, some_gold, 100)
    # WHEN the default model fits the merged codes, and the same answers as strings
    encoded, gold_items, gold_classes = _merged(objects).encoded()
    from_codes = default_model().fit_encoded(encoded, gold_items, gold_classes)
    from_strings = default_model().fit(*(list(column) for column in zip(*ordered)), gold=some_gold)
    # THEN the same model is chosen and its posteriors and skills are the same numbers
    assert from_codes.chosen_ == from_strings.chosen_
    assert from_codes.items_ == from_strings.items_ and from_codes.classes_ == from_strings.classes_
    assert np.array_equal(from_codes.probas_array_, from_strings.probas_array_)
    assert np.array_equal(from_codes.skills_array_, from_strings.skills_array_)
    assert all(from_codes.labels_[item] == label for item, label in some_gold.items()
               if item in from_codes.labels_)


def test_a_gold_label_nobody_gave_becomes_a_class_as_in_a_fit_on_strings():
    # GIVEN synthetic shards where one gold item's label is a class no answer gave
    answers, gold = _synthetic()
    gold["item0"] = "d"
    objects, ordered = _shards(answers, gold, 40)
    # WHEN both ways fit
    encoded, gold_items, gold_classes = _merged(objects, ["c", "b", "a"]).encoded()
    from_codes = default_model(label_order=["c", "b", "a"]).fit_encoded(
        encoded, gold_items, gold_classes)
    from_strings = default_model(label_order=["c", "b", "a"]).fit(
        *(list(column) for column in zip(*ordered)), gold=gold)
    # THEN the class is last in both, the item is clamped to it, and the fits agree
    assert from_codes.classes_ == from_strings.classes_ == ["c", "b", "a", "d"]
    assert from_codes.labels_["item0"] == "d"
    assert np.array_equal(from_codes.probas_array_, from_strings.probas_array_)
    assert np.array_equal(from_codes.skills_array_, from_strings.skills_array_)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_segment_sums_slice_by_slice_are_the_sums_of_one_gather(size):
    # GIVEN segments of 1 to 30 rows over a table, one far longer than a slice
    rng = np.random.default_rng(size)
    lengths = np.append(rng.integers(1, 30, 200), 5000)
    rng.shuffle(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    index = rng.integers(0, 50, int(lengths.sum()))
    table = rng.random((50, 4))
    # WHEN summed slice by slice
    slices = segment_slices(starts, len(index), size)
    # THEN every slice holds whole segments and the sums are exactly reduceat's over one gather
    assert slices[0] == 0 and slices[-1] == len(starts) and np.all(np.diff(slices) > 0)
    assert np.array_equal(segment_sums(table, index, starts, slices),
                          np.add.reduceat(np.take(table, index, axis=0), starts, axis=0))


@pytest.mark.parametrize("name", ["trec_rf10", "web"])
def test_slicing_the_em_sums_leaves_the_default_fit_unchanged(name, monkeypatch):
    # GIVEN a real data set with gold, fitted with the EM sums in one slice
    answers, gold = _dataset(name)
    columns = [list(column) for column in zip(*answers)]
    monkeypatch.setattr(categorical, "SEGMENT_SLICE", 10 ** 9)
    whole = default_model().fit(*columns, gold=gold)
    # WHEN fitted again with slices of 257 answers
    monkeypatch.setattr(categorical, "SEGMENT_SLICE", 257)
    sliced = default_model().fit(*columns, gold=gold)
    # THEN the posteriors and skills are the same numbers
    assert np.array_equal(whole.probas_array_, sliced.probas_array_)
    assert np.array_equal(whole.skills_array_, sliced.skills_array_)


def _encoded(**changes):
    fields = {"item_codes": np.array([0, 0, 1]), "worker_codes": np.array([0, 1, 1]),
              "label_codes": np.array([0, 1, 1]), "items_": ["i1", "i2"],
              "workers_": ["w1", "w2"], "classes_": ["a", "b"]}
    return Encoded(**{**fields, **changes})


@pytest.mark.parametrize("encoded, gold, message", [
    (_encoded(label_codes=np.array([0, 1])), None, "differ in length"),
    (_encoded(worker_codes=np.array([0, 2, 1])), None, "worker code is outside its 2"),
    (_encoded(items_=["i1", "i2", "i3"]), None, "every item needs at least one answer"),
    (_encoded(), (np.array([0]), np.array([2])), "gold class code is outside its 2"),
    (_encoded(), (np.array([0, 1]), np.array([0])), "gold items and classes differ"),
])
def test_fitting_codes_that_do_not_fit_their_vocabularies_is_refused(encoded, gold, message):
    with pytest.raises(ValueError, match=message):
        default_model().fit_encoded(encoded, *(gold or ()))
