"""Per-item aggregation: majority vote, the fitted model, text and numbers (pure domain)."""
from hypothesis import given, strategies as st

from chalicelib.domain.aggregation import aggregate_item, majority_vote, text_medoid


def _answers(values):
    return [{"answer": v, "worker_id": f"w{i}", "assignment_id": f"a{i}", "submitted_at": i}
            for i, v in enumerate(values)]


def test_majority_wins_with_its_share_as_confidence():
    result = aggregate_item("000001", "categorical", {"labels": ["pos", "neg"]},
                            _answers([{"label": "neg"}, {"label": "neg"}, {"label": "pos"}]))
    assert result.answer == {"label": "neg"}
    assert result.confidence == round(2 / 3, 4)
    assert result.n_answers == 3
    assert [entry["worker_id"] for entry in result.lineage] == ["w0", "w1", "w2"]


def test_ties_go_to_the_label_listed_first():
    winner, share = majority_vote([{"label": "b"}, {"label": "a"}], ["b", "a"])
    assert (winner, share) == ("b", 0.5)
    winner, _ = majority_vote([{"label": "b"}, {"label": "a"}], ["a", "b"])
    assert winner == "a"


def test_not_applicable_majority_makes_the_item_na_with_reasons():
    result = aggregate_item("000002", "categorical", {"labels": ["pos", "neg"]}, _answers(
        [{"not_applicable": "not English"}, {"not_applicable": "empty"}, {"label": "pos"}]))
    assert result.not_applicable and result.answer is None
    assert result.na_reasons == ("not English", "empty")


def test_text_medoid_picks_the_answer_closest_to_the_others():
    texts = ["the cat sat on the mat", "the cat sat on a mat", "a dog ran", "the cat sat on the mat."]
    index, confidence = text_medoid(texts)
    assert texts[index] == "the cat sat on the mat"
    assert 0 < confidence < 1


def test_single_text_answer_is_its_own_medoid():
    result = aggregate_item("000003", "translation", {}, _answers([{"text": "hola"}]))
    assert result.answer == {"text": "hola"} and result.confidence == 1.0


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=15))
def test_winner_is_an_observed_label_with_the_top_count(labels):
    winner, share = majority_vote([{"label": x} for x in labels], ["a", "b", "c"])
    assert winner in labels
    assert share == max(labels.count(x) for x in set(labels)) / len(labels)


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=15), st.randoms())
def test_vote_does_not_depend_on_answer_order(labels, rng):
    shuffled = list(labels)
    rng.shuffle(shuffled)
    assert majority_vote([{"label": x} for x in labels], ["c", "a", "b"]) == \
        majority_vote([{"label": x} for x in shuffled], ["c", "a", "b"])


def _model(answers):
    """The default model fitted on (item, worker, label) triples."""
    from chalicelib.domain.aggregation.fitted import CategoricalModel

    items, workers, labels = zip(*answers)
    return CategoricalModel.fit(items, workers, labels, ["pos", "neg"])


def test_with_a_model_an_item_gets_its_posterior_and_reliable_workers_outvote_others():
    # GIVEN two workers who agree with each other on 20 items and a third who gets
    # half of them the other way, fitted into one model
    triples = []
    for n in range(20):
        truth = "pos" if n % 2 else "neg"
        flipped = "neg" if truth == "pos" and n % 4 == 1 else truth
        triples += [(f"i{n}", "a", truth), (f"i{n}", "b", truth), (f"i{n}", "c", flipped)]
    model = _model(triples)
    # WHEN an item has one answer from the reliable worker and one from the unreliable one
    result = aggregate_item("x", "categorical", {"labels": ["pos", "neg"]}, [
        {"answer": {"label": "pos"}, "worker_id": "a", "assignment_id": "1", "submitted_at": 1},
        {"answer": {"label": "neg"}, "worker_id": "c", "assignment_id": "2", "submitted_at": 2}],
        model=model)
    # THEN the reliable worker wins, the confidence is the label's posterior
    assert result.answer == {"label": "pos"} and result.method == "DawidSkene"
    assert result.confidence == round(result.probabilities["pos"], 4) > 0.5
    assert abs(sum(result.probabilities.values()) - 1) < 1e-6


def test_a_fitted_model_survives_its_json_form_exactly():
    from chalicelib.domain.aggregation.fitted import CategoricalModel

    model = _model([("i1", "a", "pos"), ("i1", "b", "neg"), ("i2", "a", "neg"), ("i2", "b", "neg")])
    again = CategoricalModel.from_json(__import__("json").loads(__import__("json").dumps(model.to_json())))
    assert again.posterior(["a", "b"], ["pos", "neg"]) == model.posterior(["a", "b"], ["pos", "neg"])


def test_not_applicable_is_a_class_of_the_model_and_can_win():
    from chalicelib.domain.aggregation import NA_CLASS

    triples = [(f"i{n}", w, NA_CLASS if n < 5 else "pos") for n in range(10) for w in "abc"]
    model = _model(triples)
    answers = [{"answer": {"not_applicable": reason}, "worker_id": w, "assignment_id": w,
                "submitted_at": 0} for w, reason in (("a", "blank"), ("b", "blank"))]
    result = aggregate_item("x", "categorical", {"labels": ["pos", "neg"]}, answers, model=model)
    assert result.not_applicable and result.answer is None
    assert set(result.probabilities) == {"pos", "neg", "not_applicable"}
    assert result.confidence == round(result.probabilities["not_applicable"], 4)


def test_numbers_take_the_median_and_transcriptions_are_voted_token_by_token():
    numbers = aggregate_item("n", "numeric", {"min": 0, "max": 100, "integer": False},
                             _answers([{"value": 40}, {"value": 42}, {"value": 95}]))
    assert numbers.answer == {"value": 42} and numbers.method == "median"
    assert 0 < numbers.confidence < 1
    spoken = aggregate_item("t", "transcription", {}, _answers([
        {"text": "the quick brown fox"}, {"text": "the quick brown box"},
        {"text": "a quick brown fox"}, {"text": "the quack brown fox"}]))
    assert spoken.answer == {"text": "the quick brown fox"} and spoken.method == "rover"
