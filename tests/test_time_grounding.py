"""[moments] time_grounding: one-to-one matching of predicted to reference moment times within a tolerance, closest
pairs first; precision / recall / F1 pooled over takes, time error and ROUGE-L of the matched pairs. Every expected
value below is worked out by hand in the comments."""
import pytest

from training.time_grounding import DEFAULT_TIME_TOLERANCES, check_tolerances, match_times, time_grounding


def m(time, text="x"):
    return {"time": time, "text": text}


def test_default_tolerances():
    assert DEFAULT_TIME_TOLERANCES == (2.0, 5.0, 10.0)


def test_closest_pairs_are_matched_first_not_the_first_in_time():
    # |0 - 2.5| = 2.5 but |3 - 2.5| = 0.5: the later prediction takes the reference
    assert match_times([0.0, 3.0], [2.5], tolerance=5) == [(1, 0)]
    # within the tolerance means |difference| <= tolerance, the edge included
    assert match_times([0.0], [2.0], tolerance=2) == [(0, 0)]
    assert match_times([0.0], [2.01], tolerance=2) == []


def test_one_reference_is_matched_once_even_with_two_predictions_near_it():
    # both predictions are 0.5 s from 10.5; the tie goes to the first prediction, the second stays unmatched
    assert match_times([10.0, 11.0], [10.5], tolerance=2) == [(0, 0)]
    # one prediction between two references matches only one of them (the closer: |5 - 4.5| = 0.5 < |5 - 6| = 1)
    assert match_times([5.0], [4.5, 6.0], tolerance=2) == [(0, 0)]


def test_a_wider_tolerance_lets_the_blocked_prediction_take_the_next_reference():
    # pairs and distances: p0-r0 1, p1-r0 1, p1-r1 3, p0-r1 5
    # tol 2: p0-r0; p1-r0 is blocked, p1-r1 (3) is too far -> 1 match
    # tol 5: p0-r0, then p1-r1 (3) -> 2 matches, errors 1 and 3
    result = time_grounding([[m(4), m(6)]], [[m(5), m(9)]], tolerances=(2, 5))
    two, five = result["overall"]["2"], result["overall"]["5"]
    assert (two["matched"], two["precision"], two["recall"], two["f1"]) == (1, 0.5, 0.5, 0.5)
    assert two["mean_abs_time_error"] == 1.0
    assert (five["matched"], five["precision"], five["recall"], five["f1"]) == (2, 1.0, 1.0, 1.0)
    assert five["mean_abs_time_error"] == 2.0  # (1 + 3) / 2


def test_micro_pooling_over_takes_and_per_scenario():
    predicted = [
        [m(10, "elbow flares"), m(11, "late jump")],  # basketball take: a double match candidate
        [],  # cooking take: no prediction where the reference has one
        [m(60, "nice")],  # cooking take: a prediction where the reference has none
    ]
    references = [[m(10.5, "the elbow flares")], [m(30, "knife grip")], []]
    scenarios = ["basketball", "cooking", "cooking"]
    result = time_grounding(predicted, references, scenarios, tolerances=(2,))
    assert result["tolerances"] == [2.0]
    assert result["num_items"] == 3
    overall = result["overall"]["2"]
    # 1 match (10 <-> 10.5); 3 predictions, 2 references in all
    assert overall["matched"] == 1 and overall["num_predicted"] == 3 and overall["num_reference"] == 2
    assert overall["precision"] == pytest.approx(1 / 3)
    assert overall["recall"] == pytest.approx(1 / 2)
    assert overall["f1"] == pytest.approx(2 * 1 / (3 + 2))  # = harmonic mean of 1/3 and 1/2 = 0.4
    assert overall["mean_abs_time_error"] == pytest.approx(0.5)
    # "elbow flares" vs "the elbow flares": LCS 2 words, P = 2/2, R = 2/3, F = 2PR/(P+R) = 0.8
    assert overall["rouge_l"] == pytest.approx(0.8)
    basketball = result["per_scenario"]["basketball"]["2"]
    assert (basketball["precision"], basketball["recall"]) == (0.5, 1.0)
    assert basketball["f1"] == pytest.approx(2 / 3)
    assert basketball["rouge_l"] == pytest.approx(0.8)
    cooking = result["per_scenario"]["cooking"]["2"]
    assert (cooking["matched"], cooking["precision"], cooking["recall"], cooking["f1"]) == (0, 0.0, 0.0, 0.0)
    assert cooking["mean_abs_time_error"] is None and cooking["rouge_l"] is None
    assert list(result["per_scenario"]) == ["basketball", "cooking"]


def test_the_double_match_tie_scores_the_first_predictions_text():
    # tie at 0.5 s: "late jump" (first) is matched to "late jump" -> ROUGE-L 1; the second "elbow" is not scored
    result = time_grounding([[m(10, "late jump"), m(11, "elbow")]], [[m(10.5, "late jump")]], tolerances=(2,))
    assert result["overall"]["2"]["rouge_l"] == 1.0
    # and with texts that share no word, ROUGE-L is 0
    result = time_grounding([[m(10, "nothing alike")]], [[m(10, "late jump")]], tolerances=(2,))
    assert result["overall"]["2"]["rouge_l"] == 0.0


def test_empty_predictions():
    result = time_grounding([[], []], [[m(5)], [m(7), m(9)]], tolerances=(5,))["overall"]["5"]
    # precision has no prediction to divide by; recall 0/3; F1 = 2*0/(0+3) = 0
    assert result == {"precision": None, "recall": 0.0, "f1": 0.0, "mean_abs_time_error": None, "rouge_l": None,
                      "matched": 0, "num_predicted": 0, "num_reference": 3}


def test_empty_references():
    result = time_grounding([[m(5), m(6)]], [[]], tolerances=(5,))["overall"]["5"]
    assert result == {"precision": 0.0, "recall": None, "f1": 0.0, "mean_abs_time_error": None, "rouge_l": None,
                      "matched": 0, "num_predicted": 2, "num_reference": 0}


def test_nothing_on_either_side():
    result = time_grounding([[]], [[]], tolerances=(2,))["overall"]["2"]
    assert result == {"precision": None, "recall": None, "f1": None, "mean_abs_time_error": None, "rouge_l": None,
                      "matched": 0, "num_predicted": 0, "num_reference": 0}
    assert time_grounding([], [])["overall"]["10"]["f1"] is None


def test_tolerance_keys_and_bad_tolerances():
    assert list(time_grounding([[m(1)]], [[m(1)]], tolerances=(2.5, 10))["overall"]) == ["2.5", "10"]
    for bad in ([], [0], [-1], [float("nan")], ["2"], [2, 2.0]):
        with pytest.raises(ValueError, match="tolerance"):
            check_tolerances(bad)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"references\[0\] moment 1: time 'soon'"):
        time_grounding([[m(1)]], [[m(1), {"time": "soon", "text": "x"}]])
    with pytest.raises(ValueError, match="1 predicted moment lists but 2 references"):
        time_grounding([[]], [[], []])
