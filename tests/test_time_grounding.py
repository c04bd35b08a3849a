"""[moments] time_grounding: one-to-one matching of predicted to reference moment times within a tolerance, closest
pairs first; precision / recall / F1 pooled over takes, time error and ROUGE-L of the matched pairs. Every expected
value below is worked out by hand in the comments."""
import pytest

from training.time_grounding import (
    check_tolerances,
    every_token_f1,
    match_times,
    time_grounding,
    time_grounding_from_predictions,
)


def m(time, text="x"):
    return {"time": time, "text": text}


def test_without_tolerances_moments_are_scored_within_2_5_and_10_seconds():
    # README: "per tolerance (default 2, 5 and 10 s)". Each prediction lies 1.5, 4, 8 and 12 s after its own
    # reference, 100 s from the others: 1 match within 2 s, 2 within 5 s, 3 within 10 s, never the 12 s one.
    predicted = [m(1.5), m(104), m(208), m(312)]
    references = [m(0), m(100), m(200), m(300)]
    result = time_grounding([predicted], [references])
    assert result["tolerances"] == [2.0, 5.0, 10.0]
    assert {key: figures["matched"] for key, figures in result["overall"].items()} == {"2": 1, "5": 2, "10": 3}
    line = {"predicted_moments": predicted, "reference_moments": [references]}
    from_lines = time_grounding_from_predictions([line])["overall"]
    assert {key: figures["matched"] for key, figures in from_lines.items()} == {"2": 1, "5": 2, "10": 3}
    from training.evaluate_profvlm import parse_args

    args = parse_args(["--model", "m", "--data_dir", "d", "--output_dir", "o", "--moments"])
    assert args.time_tolerances == [2.0, 5.0, 10.0]  # the command line's default is the same


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


# ---- wired into evaluation: predictions.jsonl lines carry the moments, metrics.json["time_grounding"] is recomputed
# from them, and an evaluation without moments is unchanged.

import json  # noqa: E402

from modeling_profvlm.configuration_profvlm import PROFICIENCY_LABELS  # noqa: E402
from tests.test_evaluate import COMMENTARY, LABEL_KEYS, hand_built_predictions  # noqa: E402
from training.evaluate_profvlm import (  # noqa: E402
    compute_metrics,
    metrics_from_predictions,
    read_predictions,
    write_outputs,
)

MOMENT_ROWS = [  # take x expert reference rows, as the demonstrator_moments config gives them
    {"take_uid": "t0", "feedback": "[0:05] the elbow flares", "moments": [m(5.0, "the elbow flares")]},
    {"take_uid": "t1", "feedback": "[0:10] smooth", "moments": [m(10.0, "smooth")]},
    {"take_uid": "t1", "feedback": "", "moments": []},  # a second expert with no moment
    {"take_uid": "t2", "feedback": "[0:20] x", "moments": [m(20.0, "x")]},
]


def moments_predictions():
    preds = hand_built_predictions()
    for uid, text in {"t0": "[0:04] elbow flares [0:30] late", "t1": "[0:10] smooth", "t2": "no moments here"}.items():
        preds.answers[uid].feedback = text
    return preds


def test_evaluation_writes_moments_and_metrics_json_equals_the_recomputation(tmp_path):
    preds = moments_predictions()
    metrics, confusion = compute_metrics(preds, MOMENT_ROWS, PROFICIENCY_LABELS, time_tolerances=(2.0, 10.0))
    write_outputs(metrics, confusion, preds, PROFICIENCY_LABELS, tmp_path, MOMENT_ROWS)
    lines = read_predictions(tmp_path / "predictions.jsonl")
    t0 = next(line for line in lines if line["take_uid"] == "t0" and line["view_setting"] == "ego_exos")
    assert t0["predicted_moments"] == [m(4.0, "elbow flares"), m(30.0, "late")]
    assert t0["reference_moments"] == [[m(5.0, "the elbow flares")]]
    assert all("predicted_moments" not in line for line in lines if line["view_setting"] != "ego_exos")

    # by hand, tolerance 2 s: t0 4<->5 (error 1; 30 unmatched), t1 vs expert A 10<->10 (error 0), t1 vs expert B
    # nothing to match (1 prediction, 0 references), t2 no prediction (1 reference): 2 matched of 4 predicted and
    # 3 reference moments; ROUGE-L 0.8 ("elbow flares" / "the elbow flares") and 1.0
    two = metrics["time_grounding"]["overall"]["2"]
    assert (two["matched"], two["num_predicted"], two["num_reference"]) == (2, 4, 3)
    assert two["precision"] == pytest.approx(0.5) and two["recall"] == pytest.approx(2 / 3)
    assert two["f1"] == pytest.approx(4 / 7)
    assert two["mean_abs_time_error"] == pytest.approx(0.5) and two["rouge_l"] == pytest.approx(0.9)
    assert metrics["time_grounding"]["overall"]["10"] == two  # nothing more within 10 s: 30 is 25 s from 5
    assert list(metrics["time_grounding"]["per_scenario"]) == ["Cooking"]  # t0..t2 are the cooking takes

    written = json.loads((tmp_path / "metrics.json").read_text())
    recomputed = metrics_from_predictions(tmp_path / "predictions.jsonl", PROFICIENCY_LABELS, (2.0, 10.0))
    assert set(recomputed) == LABEL_KEYS | {"time_grounding"}
    assert {k: written[k] for k in recomputed} == recomputed
    # the lines really are the source: move one predicted time and the figures change
    for line in lines:
        if "predicted_moments" in line and line["take_uid"] == "t1":
            line["predicted_moments"] = [m(13.0, "smooth")]
    assert metrics_from_predictions(lines, PROFICIENCY_LABELS, (2.0, 10.0))["time_grounding"] != recomputed[
        "time_grounding"]


def test_an_evaluation_without_moments_is_unchanged(tmp_path):
    preds = hand_built_predictions()
    metrics, confusion = compute_metrics(preds, COMMENTARY, PROFICIENCY_LABELS)
    assert "time_grounding" not in metrics
    write_outputs(metrics, confusion, preds, PROFICIENCY_LABELS, tmp_path, COMMENTARY)
    lines = read_predictions(tmp_path / "predictions.jsonl")
    assert not any("predicted_moments" in line or "reference_moments" in line for line in lines)
    assert "time_grounding" not in metrics_from_predictions(lines, PROFICIENCY_LABELS)


def test_evaluating_a_folder_with_moments_end_to_end(tiny_text_dir, tmp_path, one_thread):
    from tests.evaluation_fixtures import FOLDER_LABELS, evaluate, folder_checkpoint, write_folder_dataset

    data = write_folder_dataset(tmp_path / "my_folder")
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    for row in rows:  # the 8-frame videos last 0.27 s: one moment at 0.1 s per take
        row.pop("feedback", None)
        row["moments"] = [{"time": 0.1, "text": f"remark on {row['take_id']}"}]
    (data / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "eval"
    metrics = evaluate(folder_checkpoint(tiny_text_dir, tmp_path / "ckpt"), data, out, "--moments",
                       "--time_tolerances", "1", "3")
    assert metrics["time_grounding"]["tolerances"] == [1.0, 3.0]
    lines = [line for line in read_predictions(out / "predictions.jsonl") if "reference_moments" in line]
    assert len(lines) == 3  # the validation takes' all-views lines
    # the references as annotated (0.1 s, no category); the predictions are whole seconds
    assert all(line["reference_moments"] == [[m(0.1, f"remark on {line['take_uid']}")]] for line in lines)
    assert metrics["time_grounding"]["overall"]["1"]["num_reference"] == 3
    written = json.loads((out / "metrics.json").read_text())
    assert written["time_grounding"] == metrics_from_predictions(out / "predictions.jsonl", FOLDER_LABELS,
                                                                 (1.0, 3.0))["time_grounding"]


def test_every_token_base_rate_is_the_f1_of_naming_every_token_blind():
    # Take "a": tokens at 0-3 s, two experts ([1.1]; [0.0, 3.5]); take "b": tokens at 0.4 and 2.57 s (written
    # floored: 0 and 2), one expert who named nothing. Within 1 s: a/1 matches 1 of 4, a/2 matches 2 of 4
    # (0-0.0, 3-3.5), b matches 0 of 2: F1 = 2 x 3 / (10 predicted + 3 references).
    lines = [{"take_uid": "a", "reference_moments": [[{"time": 1.1, "text": "x"}],
                                                     [{"time": 0.0, "text": "y"}, {"time": 3.5, "text": "z"}]]},
             {"take_uid": "a", "view_setting": "ego"},  # a line without references counts for nothing
             {"take_uid": "b", "reference_moments": [[]]}]
    times = {"a": [0.0, 1.0, 2.0, 3.0], "b": [0.4, 2.57]}
    assert every_token_f1(lines, times, 1.0) == pytest.approx(6 / 13)
    assert every_token_f1(lines, times, 0.05) == pytest.approx(2 * 1 / 13)  # only 0-0.0
    assert every_token_f1([lines[1]], times, 1.0) is None

