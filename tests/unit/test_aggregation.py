"""Per-item aggregation: majority vote, a fitted posterior, text and numbers (pure domain)."""
from hypothesis import given, strategies as st

from chalicelib.domain.aggregation import Posterior, aggregate_item, majority_vote, text_medoid


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


def _three(labels):
    return _answers([{"label": label} for label in labels])


def test_with_a_fitted_posterior_the_item_takes_its_most_probable_label():
    # GIVEN two "pos" answers and one "neg", and a model that trusts the "neg" worker more
    posterior = Posterior("DawidSkene", ["pos", "neg"], [0.3, 0.7])
    result = aggregate_item("x", "categorical", {"labels": ["pos", "neg"]},
                            _three(["pos", "pos", "neg"]), posterior=posterior)
    # THEN the posterior decides, and its probability is the confidence
    assert result.answer == {"label": "neg"} and result.method == "DawidSkene"
    assert result.confidence == 0.7 and result.probabilities == {"pos": 0.3, "neg": 0.7}


def test_a_posterior_tie_goes_to_the_label_listed_first():
    posterior = Posterior("DawidSkene", ["pos", "neg"], [0.5, 0.5])
    result = aggregate_item("x", "categorical", {"labels": ["pos", "neg"]},
                            _three(["neg", "neg", "pos"]), posterior=posterior)
    assert result.answer == {"label": "pos"}


def test_not_applicable_is_a_class_of_the_posterior_and_can_win():
    from chalicelib.domain.aggregation import NA_CLASS

    answers = [{"answer": {"not_applicable": "blank"}, "worker_id": w, "assignment_id": w,
                "submitted_at": 0} for w in "ab"]
    posterior = Posterior("DawidSkene", ["pos", "neg", NA_CLASS], [0.1, 0.2, 0.7])
    result = aggregate_item("x", "categorical", {"labels": ["pos", "neg"]}, answers,
                            posterior=posterior)
    assert result.not_applicable and result.answer is None
    assert result.probabilities == {"pos": 0.1, "neg": 0.2, "not_applicable": 0.7}
    assert result.confidence == 0.7 and result.na_reasons == ("blank", "blank")


def test_an_item_without_answers_has_no_method():
    result = aggregate_item("x", "numeric", {"min": 0, "max": 1, "integer": False}, [])
    assert (result.answer, result.confidence, result.method) == (None, 0.0, None)


def test_a_whole_number_job_publishes_a_whole_number_even_between_two():
    result = aggregate_item("n", "numeric", {"min": 0, "max": 10, "integer": True},
                            _answers([{"value": 2}, {"value": 3}]))
    assert result.answer == {"value": 2} and isinstance(result.answer["value"], int)


def test_numbers_take_the_median_and_transcriptions_are_voted_token_by_token():
    numbers = aggregate_item("n", "numeric", {"min": 0, "max": 100, "integer": False},
                             _answers([{"value": 40}, {"value": 42}, {"value": 95}]))
    assert numbers.answer == {"value": 42} and numbers.method == "median"
    assert 0 < numbers.confidence < 1
    spoken = aggregate_item("t", "transcription", {}, _answers([
        {"text": "the quick brown fox"}, {"text": "the quick brown box"},
        {"text": "a quick brown fox"}, {"text": "the quack brown fox"}]))
    assert spoken.answer == {"text": "the quick brown fox"} and spoken.method == "rover"
