"""Majority vote and text medoid (pure domain)."""
from hypothesis import given, strategies as st

from chalicelib.domain.aggregation import aggregate_item, majority_vote, text_medoid


def _answers(values):
    return [{"answer": v, "worker_id": f"w{i}", "assignment_id": f"a{i}", "submitted_at": i}
            for i, v in enumerate(values)]


def test_majority_wins_with_its_share_as_confidence():
    result = aggregate_item("000001", "categorical", ["pos", "neg"],
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
    result = aggregate_item("000002", "categorical", ["pos", "neg"], _answers(
        [{"not_applicable": "not English"}, {"not_applicable": "empty"}, {"label": "pos"}]))
    assert result.not_applicable and result.answer is None
    assert result.na_reasons == ("not English", "empty")


def test_text_medoid_picks_the_answer_closest_to_the_others():
    texts = ["the cat sat on the mat", "the cat sat on a mat", "a dog ran", "the cat sat on the mat."]
    index, confidence = text_medoid(texts)
    assert texts[index] == "the cat sat on the mat"
    assert 0 < confidence < 1


def test_single_text_answer_is_its_own_medoid():
    result = aggregate_item("000003", "text", [], _answers([{"text": "hola"}]))
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
