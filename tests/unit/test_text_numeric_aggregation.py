"""Text (ROVER, medoid) and numeric (median) aggregation of one item's answers (pure domain)."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from chalicelib.domain.aggregation.numeric import median_with_confidence
from chalicelib.domain.aggregation.text import medoid, rover

WORDS = ["the", "a", "cat", "cart", "sat", "set", "on", "mat", "hat", "now", "no"]
texts_strategy = st.lists(
    st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join), min_size=1, max_size=7)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------------------------- ROVER
def test_rover_fixes_a_word_each_answer_gets_wrong_in_a_different_place():
    # GIVEN three answers, each wrong in a different word
    answers = ["the quick brown box", "a quick brown fox", "the quack brown fox"]
    # WHEN they are aggregated
    text, confidence = rover(answers)
    picked, _ = medoid(answers)
    # THEN ROVER votes every word right, which the medoid (one of the answers) cannot
    assert text == "the quick brown fox"
    assert picked in answers and picked != text
    assert 0.0 < confidence < 1.0


def test_rover_outvotes_three_different_errors_next_to_a_correct_answer():
    answers = ["the quick brown fox", "the quick brown box", "a quick brown fox",
               "the quack brown fox"]
    assert rover(answers)[0] == "the quick brown fox"


def test_rover_drops_an_insertion_and_restores_a_deletion_made_by_single_answers():
    # GIVEN one answer that inserts a word, one that drops one, one with a wrong word
    answers = ["the black cat sat on the mat", "the cat sat on mat", "the cat sat on the hat"]
    # WHEN they are aggregated
    text, _ = rover(answers)
    # THEN only the words most answers agree on remain
    assert text == "the cat sat on the mat"


def test_rover_restores_a_word_the_medoid_lacks_when_most_answers_have_it():
    # GIVEN two identical answers without "do" (the word-level medoid, so the backbone) and
    # three with it, each with another, different error
    answers = ["p q r s", "p q r s", "p do q r t", "p do q x s", "p do y r s"]
    # WHEN they are aggregated
    text, _ = rover(answers)
    # THEN the three insertions at the same place are merged into one slot and win it
    assert text == "p do q r s" and text not in answers


def test_identical_answers_come_back_verbatim_with_full_confidence():
    assert rover(["Hello,  world"] * 4) == ("Hello,  world", 1.0)
    assert rover(["only one answer "]) == ("only one answer ", 1.0)
    assert medoid(["same", "same"]) == ("same", 1.0)


def test_answers_that_differ_only_in_whitespace_agree_fully():
    assert rover(["a  b", " a b", "a b\n"]) == ("a b", 1.0)


def test_empty_answers_give_an_empty_result():
    assert rover(["", "  "]) == ("", 1.0)
    assert rover(["", "", "stray"]) == ("", pytest.approx(5 / 6))  # (2/3 + majority) / 2


def test_more_disagreement_means_less_confidence():
    reference = "one two three four five six"
    mild = [reference, reference, "one two tree four five six"]
    strong = [reference, "one too three for five", "won two three four fix six seven"]
    assert rover(mild)[1] > rover(strong)[1]


def test_a_full_tie_goes_to_the_first_answer_in_sorted_order_whatever_the_arrival_order():
    assert rover(["x y z", "p q r"]) == rover(["p q r", "x y z"]) == ("p q r", 0.25)


def test_long_unrelated_answers_fall_back_to_the_first_in_sorted_order_with_low_confidence():
    # GIVEN three 25-word answers that share no word (too long to realign word by word)
    answers = [" ".join(f"{letter}{i}" for i in range(25)) for letter in "zyx"]
    # WHEN they are aggregated
    text, confidence = rover(answers)
    # THEN every slot is a three-way tie won by the backbone, and each scores (1/3 + 0) / 2
    assert text == answers[-1]
    assert confidence == pytest.approx(1 / 6)


def test_no_answers_are_rejected():
    with pytest.raises(ValueError):
        rover([])
    with pytest.raises(ValueError):
        medoid([])


@settings(max_examples=300, deadline=None)
@given(texts_strategy)
def test_rover_only_outputs_tokens_that_some_answer_contains(texts):
    text, confidence = rover(texts)
    assert set(text.split()) <= {token for answer in texts for token in answer.split()}
    assert 0.0 <= confidence <= 1.0


@settings(max_examples=300, deadline=None)
@given(texts_strategy, st.data())
def test_rover_and_medoid_do_not_depend_on_answer_order(texts, data):
    shuffled = data.draw(st.permutations(texts))
    assert rover(shuffled) == rover(texts)
    assert medoid(shuffled) == medoid(texts)


@settings(max_examples=200, deadline=None)
@given(texts_strategy)
def test_confidence_is_full_exactly_when_all_answers_have_the_same_tokens(texts):
    unanimous = len({tuple(answer.split()) for answer in texts}) == 1
    assert (rover(texts)[1] == 1.0) == unanimous


# ----------------------------------------------------------------------------------- median
def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values():
    assert median_with_confidence([10, 1, 3, 2])[0] == 2.5
    assert median_with_confidence([7, 1, 3])[0] == 3


def test_agreeing_values_give_full_confidence():
    assert median_with_confidence([42.0, 42.0, 42.0], scale=100) == (42.0, 1.0)
    assert median_with_confidence([-3.5]) == (-3.5, 1.0)


def test_confidence_falls_with_the_spread_relative_to_half_the_scale():
    # GIVEN answers 10 apart on a 0-100 scale: MAD 10, mean absolute deviation 20/3
    median, confidence = median_with_confidence([40, 50, 60], scale=100)
    # THEN the confidence is 1 - (10 + 20/3) / 2 / 50, and 0 for an even split between the ends
    assert (median, confidence) == (50, pytest.approx(1 - (10 + 20 / 3) / 2 / 50))
    assert median_with_confidence([0, 100, 0, 100], scale=100) == (50, 0.0)


def test_a_dissenting_minority_lowers_confidence():
    # a 1-5 rating where two say 4 and one says 1: the median ignores the 1, the confidence does
    # not (MAD 0, mean absolute deviation 1, half the scale 2)
    assert median_with_confidence([4, 4, 1], scale=4) == (4, 0.75)


def test_without_a_scale_spread_is_relative_to_the_median_size():
    assert median_with_confidence([10, 12]) == (11, pytest.approx(1 - 1 / 11))
    assert median_with_confidence([-0.5, 0.5]) == (0, 0.5)  # |median| < 1: relative to 1


@pytest.mark.parametrize("values, scale", [
    ([], None), ([1.0, math.nan], None), ([math.inf], None), ([1.0, -math.inf], 10),
    ([1.0], 0), ([1.0], -5), ([1.0], math.nan), ([1.0], math.inf),
])
def test_missing_or_non_finite_input_is_rejected(values, scale):
    with pytest.raises(ValueError):
        median_with_confidence(values, scale)


@settings(max_examples=300)
@given(st.lists(finite_floats, min_size=1, max_size=15),
       st.none() | st.floats(min_value=1e-6, max_value=1e6), st.data())
def test_median_lies_within_the_values_and_ignores_their_order(values, scale, data):
    median, confidence = median_with_confidence(values, scale)
    assert min(values) <= median <= max(values)
    assert 0.0 <= confidence <= 1.0
    assert median_with_confidence(data.draw(st.permutations(values)), scale) == (median, confidence)


@settings(max_examples=300)
@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=15),
       st.floats(min_value=0, max_value=1))
def test_pulling_answers_towards_the_median_never_lowers_confidence(values, pull):
    median, confidence = median_with_confidence(values, scale=100)
    closer = [median + pull * (value - median) for value in values]
    assert median_with_confidence(closer, scale=100)[1] >= confidence - 1e-9
