"""Categorical aggregators: majority vote, weighted majority vote, Dawid-Skene, one-coin (pure domain)."""
import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from chalicelib.domain.aggregation.categorical import (
    DEFAULT, DEFAULT_PARAMS, DawidSkene, MajorityVote, OneCoinDawidSkene, WeightedMajorityVote,
    HeldOutChoice, HybridPrior, default_dawid_skene, default_model, encode, hybrid_prior_pseudo,
    spammer_prior_mean)

AGGREGATORS = [MajorityVote, WeightedMajorityVote, DawidSkene, OneCoinDawidSkene, default_model]
DATASETS = Path("/work/shared/datasets")


def _long_form(answers):
    items, workers, labels = zip(*answers) if answers else ((), (), ())
    return list(items), list(workers), list(labels)


def _spammers_outvote_two_reliable_workers(n_items=40):
    truth = {f"t{i}": "a" if i % 2 else "b" for i in range(n_items)}
    answers = []
    for item, label in truth.items():
        answers += [(item, "reliable1", label), (item, "reliable2", label)]
        answers += [(item, f"spammer{s}", "a") for s in range(3)]
    return truth, answers


def _accuracy(labels, truth):
    return sum(labels[item] == label for item, label in truth.items()) / len(truth)


def test_encode_keeps_first_appearance_order_and_duplicate_answers():
    # GIVEN answers where one worker answered the same item twice
    items, workers, labels = ["i2", "i1", "i2", "i2"], ["w1", "w1", "w2", "w2"], ["y", "x", "y", "x"]
    # WHEN they are encoded
    encoded = encode(items, workers, labels)
    # THEN vocabularies follow first appearance and every answer stays
    assert (encoded.items_, encoded.workers_, encoded.classes_) == (["i2", "i1"], ["w1", "w2"], ["y", "x"])
    assert encoded.item_codes.tolist() == [0, 1, 0, 0]
    assert encoded.label_codes.tolist() == [0, 1, 0, 1]


def test_label_order_decides_class_order_and_majority_ties():
    # GIVEN a one-all tie between two labels
    answers = _long_form([("i", "w1", "no"), ("i", "w2", "yes")])
    # WHEN aggregated without and with an explicit label order
    first_seen = MajorityVote().fit(*answers)
    ordered = MajorityVote(label_order=["yes", "no"]).fit(*answers)
    # THEN the tie goes to the class listed first
    assert first_seen.classes_ == ["no", "yes"] and first_seen.labels_ == {"i": "no"}
    assert ordered.classes_ == ["yes", "no"] and ordered.labels_ == {"i": "yes"}
    assert ordered.probas_ == {"i": {"yes": 0.5, "no": 0.5}}


def test_unequal_lengths_are_rejected():
    with pytest.raises(ValueError):
        MajorityVote().fit(["i1", "i2"], ["w1"], ["a", "b"])


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_no_answers_give_empty_results(aggregator):
    model = aggregator().fit([], [], [])
    assert model.labels_ == {} and model.probas_ == {} and model.skills_ == {}


def test_dawid_skene_identifies_spammers_that_outvote_reliable_workers():
    # GIVEN three workers who always answer "a" and two who are always right
    truth, answers = _spammers_outvote_two_reliable_workers()
    # WHEN majority vote and Dawid-Skene aggregate them
    mv = MajorityVote().fit(*_long_form(answers))
    ds = DawidSkene().fit(*_long_form(answers))
    # THEN majority vote loses every "b" item while Dawid-Skene recovers all of them
    assert _accuracy(mv.labels_, truth) == 0.5
    assert _accuracy(ds.labels_, truth) == 1.0
    assert min(ds.skills_["reliable1"], ds.skills_["reliable2"]) > max(
        ds.skills_[f"spammer{s}"] for s in range(3))


def test_gold_clamping_tells_the_honest_worker_from_the_contrarian():
    # GIVEN one worker who is always right and one who always answers the opposite
    truth = {f"t{i}": "a" if i % 3 else "b" for i in range(12)}
    flip = {"a": "b", "b": "a"}
    answers = _long_form([(item, "honest", label) for item, label in truth.items()]
                         + [(item, "contrarian", flip[label]) for item, label in truth.items()])
    gold = {item: truth[item] for item in ["t0", "t1", "t2"]}
    # WHEN Dawid-Skene runs without gold and with gold on three items
    blind = DawidSkene().fit(*answers)
    informed = DawidSkene().fit(*answers, gold=gold)
    # THEN only gold reveals who to trust, and gold items are one-hot on their gold label
    assert _accuracy(blind.labels_, truth) < 1.0
    assert informed.labels_ == truth
    assert informed.skills_["honest"] > 0.5 > informed.skills_["contrarian"]
    assert informed.probas_["t0"] == {"a": 0.0, "b": 1.0}


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_a_gold_label_nobody_answered_becomes_a_class(aggregator):
    # GIVEN gold that uses a label no worker chose
    answers = _long_form([("i1", "w1", "a"), ("i1", "w2", "a"), ("i2", "w1", "b")])
    # WHEN fitted with that gold
    model = aggregator().fit(*answers, gold={"i1": "c", "unanswered": "d"})
    # THEN the gold label is a class and wins its item; gold for unanswered items is ignored
    assert model.classes_ == ["a", "b", "c"]
    assert model.labels_["i1"] == "c" and set(model.labels_) == {"i1", "i2"}


def test_dawid_skene_smoothing_keeps_one_answer_workers_off_zero_and_one():
    # GIVEN a crowd where one worker gave a single answer
    _, answers = _spammers_outvote_two_reliable_workers(10)
    answers.append(("t0", "newcomer", "b"))
    # WHEN Dawid-Skene is fitted
    ds = DawidSkene().fit(*_long_form(answers))
    # THEN the newcomer's confusion matrix has no certain entries
    newcomer = ds.confusions_[ds.workers_.index("newcomer")]
    assert np.all((newcomer > 0.0) & (newcomer < 1.0))


def _dataset(name):
    with open(DATASETS / name / "answers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(DATASETS / name / "gold.csv", newline="") as handle:
        gold = {row["task"]: row["label"] for row in csv.DictReader(handle)}
    return [r["task"] for r in rows], [r["worker"] for r in rows], [r["label"] for r in rows], gold


@pytest.mark.parametrize("name", ["bluebird", "rte"])
def test_dawid_skene_is_at_least_as_accurate_as_majority_vote_on_real_data(name):
    # GIVEN a real data set with gold
    items, workers, labels, gold = _dataset(name)
    # WHEN both aggregate without seeing gold
    mv = MajorityVote().fit(items, workers, labels)
    ds = DawidSkene().fit(items, workers, labels)
    # THEN Dawid-Skene is at least as accurate, and EM never lowered its objective
    assert _accuracy(ds.labels_, gold) >= _accuracy(mv.labels_, gold)
    assert np.all(np.diff(ds.objective_history_) >= -1e-9 * np.abs(ds.objective_history_[:-1]))


ITEMS = ["i1", "i2", "i3", "i4"]
WORKERS = ["w1", "w2", "w3"]
LABELS = ["x", "y", "z"]
answer_lists = st.lists(st.tuples(st.sampled_from(ITEMS), st.sampled_from(WORKERS),
                                  st.sampled_from(LABELS)), min_size=1, max_size=30)
gold_maps = st.dictionaries(st.sampled_from(ITEMS + ["i9"]), st.sampled_from(LABELS + ["gold"]),
                            max_size=3)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
@settings(max_examples=40, deadline=None)
@given(answers=answer_lists, gold=gold_maps)
def test_results_are_observed_or_gold_labels_with_proper_posteriors(aggregator, answers, gold):
    # GIVEN any answers and gold
    items, workers, labels = _long_form(answers)
    # WHEN aggregated
    model = aggregator().fit(items, workers, labels, gold=gold)
    # THEN each result is a label someone chose or a gold label (a learned confusion may map
    # one worker's answer to another class), and posteriors are distributions
    assert set(model.labels_) == set(items)
    allowed = set(labels) | {label for item, label in gold.items() if item in set(items)}
    assert set(model.labels_.values()) <= allowed
    for item in items:
        if item in gold:
            assert model.labels_[item] == gold[item]
    assert np.all((model.probas_array_ >= 0.0) & (model.probas_array_ <= 1.0))
    assert np.allclose(model.probas_array_.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert all(abs(sum(p.values()) - 1.0) <= 1e-9 for p in model.probas_.values())


@pytest.mark.parametrize("aggregator", AGGREGATORS)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), answers=answer_lists, gold=gold_maps)
def test_results_do_not_depend_on_answer_order(aggregator, data, answers, gold):
    # GIVEN the same answers in two orders and a fixed label order
    shuffled = data.draw(st.permutations(answers))
    order = sorted(LABELS)
    # WHEN each order is aggregated
    first = aggregator(label_order=order).fit(*_long_form(answers), gold=gold)
    second = aggregator(label_order=order).fit(*_long_form(shuffled), gold=gold)
    # THEN labels agree exactly and posteriors within 1e-9
    assert first.labels_ == second.labels_
    for item, probas in first.probas_.items():
        for label, p in probas.items():
            assert abs(p - second.probas_[item][label]) <= 1e-9


@pytest.mark.parametrize("prior", ["pooled", "spammer", "hybrid"])
@settings(max_examples=40, deadline=None)
@given(answers=answer_lists, gold=gold_maps)
def test_dawid_skene_objective_never_decreases(prior, answers, gold):
    # GIVEN any answers and gold
    # WHEN Dawid-Skene runs to convergence
    model = DawidSkene(tol=0.0, n_iter=30, prior=prior).fit(*_long_form(answers), gold=gold)
    # THEN each EM iteration raised (or kept) the MAP objective
    history = np.asarray(model.objective_history_)
    assert np.all(np.diff(history) >= -1e-9 * np.maximum(1.0, np.abs(history[:-1])))


def test_encode_puts_label_order_first_then_unseen_labels_then_extras():
    # GIVEN a label order that omits one answered label and lists one nobody chose
    encoded = encode(["i1", "i2", "i3"], ["w1", "w1", "w2"], ["c", "b", "c"],
                     label_order=["a", "b"], extra_classes=["d", "b"])
    # THEN classes are the order, then unseen labels by first appearance, then new extras
    assert encoded.classes_ == ["a", "b", "c", "d"]
    assert encoded.label_codes.tolist() == [2, 1, 2]


def test_spammer_prior_mean_of_a_constant_answerer_and_a_perfect_worker():
    # GIVEN expected counts (true x observed) of a worker who always says "a" on a balanced
    # set of items, and of one who is always right
    counts = np.array([[[5.0, 0.0], [5.0, 0.0]],
                       [[5.0, 0.0], [0.0, 5.0]]])
    # WHEN the MACE-shaped prior means are estimated
    mean = spammer_prior_mean(counts)
    # THEN the constant answerer is (almost) all spam on its label, the perfect worker mostly
    # knowing: a = 11/12 agreement, chance 1/2, so theta = 5/6
    assert np.allclose(mean.sum(axis=2), 1.0)
    assert np.allclose(mean[0], 0.01 * np.eye(2) + 0.99 * np.array([11 / 12, 1 / 12]))
    assert np.allclose(mean[1], 5 / 6 * np.eye(2) + 1 / 6 * 0.5)


def test_unknown_prior_is_rejected():
    with pytest.raises(ValueError):
        DawidSkene(prior="flat")


def test_default_model_chooses_between_the_documented_dawid_skene_and_one_coin():
    # WHEN the default is built, with and without overrides
    model = default_model(label_order=["b", "a"], smoothing=1.0)
    # THEN it chooses between DEFAULT configured by DEFAULT_PARAMS (with the overrides) and
    # one-coin Dawid-Skene, in the given label order
    assert isinstance(model, HeldOutChoice) and model.label_order == ["b", "a"]
    dawid_skene, one_coin = (make() for make in model.candidates)
    assert isinstance(dawid_skene, DEFAULT) and DEFAULT is DawidSkene
    assert dawid_skene.prior == DEFAULT_PARAMS["prior"] and dawid_skene.init == DEFAULT_PARAMS["init"]
    assert dawid_skene.smoothing == 1.0 and isinstance(one_coin, OneCoinDawidSkene)
    assert default_dawid_skene().smoothing == DEFAULT_PARAMS["smoothing"]


def _crowd(seed, confused=False, items=200, workers=12, per_item=3):
    """Simulated answers: accuracies 0.55-0.95; errors uniform, or (confused) always the next label."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, items)
    accuracy = np.linspace(0.55, 0.95, workers)
    triples = []
    for i in range(items):
        for w in rng.choice(workers, per_item, replace=False):
            if rng.random() < accuracy[w]:
                label = truth[i]
            elif confused:
                label = (truth[i] + 1) % 3
            else:
                label = rng.choice([k for k in range(3) if k != truth[i]])
            triples.append((f"i{i}", f"w{w}", "abc"[label]))
    return [list(column) for column in zip(*triples)], {f"i{i}": "abc"[t] for i, t in enumerate(truth)}


def test_the_default_takes_one_coin_for_a_small_crowd_with_even_errors():
    # GIVEN a 200-item job, 3 answers each, 12 workers whose errors are spread evenly
    (items, workers, labels), truth = _crowd(seed=3)
    # WHEN the default aggregates it
    model = default_model().fit(items, workers, labels)
    # THEN one coin per worker predicted held-out answers better than full confusion matrices
    assert model.chosen_ == "OneCoinDawidSkene" and model.scores_[1] > model.scores_[0]
    # AND its results are the one-coin model's
    assert model.labels_ == OneCoinDawidSkene().fit(items, workers, labels).labels_


def test_the_default_keeps_dawid_skene_when_workers_confuse_particular_labels():
    # GIVEN workers whose errors always name the next label
    (items, workers, labels), truth = _crowd(seed=3, confused=True, items=400)
    # WHEN the default aggregates it
    model = default_model().fit(items, workers, labels)
    # THEN full confusion matrices predicted held-out answers better, and it is as accurate
    # as one coin per worker or more
    assert model.chosen_ == "DawidSkene" and model.scores_[0] > model.scores_[1]
    one_coin = OneCoinDawidSkene().fit(items, workers, labels)
    assert _accuracy(model.labels_, truth) >= _accuracy(one_coin.labels_, truth)


def test_above_its_answer_limit_the_default_skips_the_check():
    (items, workers, labels), _ = _crowd(seed=1)
    model = HeldOutChoice([DawidSkene, OneCoinDawidSkene], max_answers=len(items) - 1)
    model.fit(items, workers, labels)
    assert model.chosen_ == "DawidSkene" and model.scores_ == [None, None]


def test_the_hybrid_prior_smooths_a_rare_class_less_and_leans_toward_being_right():
    # GIVEN initial counts of two workers on 90 items of class a and 10 of class b
    counts = np.array([[[80.0, 10.0], [2.0, 8.0]], [[85.0, 5.0], [1.0, 9.0]]])
    posteriors = np.vstack([np.tile([1.0, 0.0], (90, 1)), np.tile([0.0, 1.0], (10, 1))])
    # WHEN the hybrid pseudo-counts are built with smoothing 3
    pseudo = hybrid_prior_pseudo(counts, posteriors, 3.0, HybridPrior())
    # THEN the rare class's rows get far fewer pseudo-answers than the common class's
    strength = pseudo.sum(axis=2)
    assert np.all(strength[:, 1] < 0.2 * strength[:, 0])
    # AND each row's diagonal outweighs its off-diagonal
    assert np.all(pseudo[:, 0, 0] > pseudo[:, 0, 1]) and np.all(pseudo[:, 1, 1] > pseudo[:, 1, 0])
    # AND the strength of a row is smoothing * (K * share) ** 1.5 times its (damped) mean
    shares = (posteriors.sum(axis=0) + 1) / (posteriors.sum() + 2)
    expected = 3.0 * (2 * shares) ** 1.5
    mean = pseudo / expected[None, :, None]
    eye = np.eye(2)
    undamped = mean * (eye + (1 - eye) / 0.5)
    assert np.allclose(undamped.sum(axis=2), 1.0)


def test_default_model_identifies_spammers_that_outvote_reliable_workers():
    # GIVEN three workers who always answer "a" and two who are always right
    truth, answers = _spammers_outvote_two_reliable_workers()
    # WHEN the default model aggregates them
    model = default_model().fit(*_long_form(answers))
    # THEN it recovers every item
    assert _accuracy(model.labels_, truth) == 1.0


def _apply(model, answers_of_item):
    log_joint = np.log(model.priors_).copy()
    for worker, label in answers_of_item:
        log_joint += np.log(model.confusions_[model.workers_.index(worker), :,
                                              model.classes_.index(label)])
    probas = np.exp(log_joint - log_joint.max())
    return probas / probas.sum()


@pytest.mark.parametrize("make", [DawidSkene, default_model])
def test_fitted_priors_and_confusions_reproduce_each_items_posterior(make):
    # GIVEN a fitted model on a real data set
    items, workers, labels, _ = _dataset("bluebird")
    model = make().fit(items, workers, labels)
    by_item = {}
    for item, worker, label in zip(items, workers, labels):
        by_item.setdefault(item, []).append((worker, label))
    # WHEN any item's posterior is recomputed from priors_ and confusions_ alone
    # THEN it equals the fit's posterior (so the model can be applied shard by shard)
    assert model.confusions_.shape == (len(model.workers_),) + (len(model.classes_),) * 2
    assert np.allclose(model.confusions_.sum(axis=2), 1.0)
    for item in model.items_[:30]:
        expected = model.probas_array_[model.items_.index(item)]
        assert np.allclose(_apply(model, by_item[item]), expected, atol=1e-12)


def test_refitting_replaces_the_published_results():
    # GIVEN a model fitted once and read
    model = DawidSkene()
    first = model.fit(["i1", "i1"], ["w1", "w2"], ["a", "a"])
    assert first.labels_ == {"i1": "a"}
    # WHEN the same object is fitted on other answers
    model.fit(["i2", "i2"], ["w1", "w2"], ["b", "b"])
    # THEN every published view describes the second fit
    assert model.labels_ == {"i2": "b"} and set(model.probas_) == {"i2"}
    assert set(model.skills_) == {"w1", "w2"}
