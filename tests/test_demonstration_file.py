"""The demonstration-proficiency output file: every listed take present (an empty list when the model found nothing or
the take could not be read), each categorised moment as {video_time, category, probability} in the annotation file's
field names, moments without a category left out; and the probability of a span of generated text."""
import json

from modeling_profvlm.label_scoring import GeneratedText
from profvlm.demonstration_file import write_demonstration_file


def line(uid: str, moments: list[dict]) -> dict:
    return {"take_uid": uid, "take_name": uid, "proficiency": "Novice", "probabilities": {"Novice": 1.0}, "moments": moments}


def test_every_listed_take_is_in_the_file_with_its_categorised_moments(tmp_path):
    lines = [
        line("a", [{"time": 1.2, "text": "clean rep", "category": "good_execution", "probability": 0.8, "camera": "ego"},
                   {"time": 2.0, "text": "a remark", "camera": "ego", "probability": 0.9},  # no category: left out
                   {"time": 3.7, "text": "slip", "category": "needs_improvement", "probability": 0.25,
                    "camera": "exo1"}]),
        line("b", [{"time": 0.5, "text": "plain", "camera": None, "probability": 0.5}]),  # nothing categorised
    ]
    summary = write_demonstration_file(tmp_path / "out" / "demo.json", lines, ["a", "b", "c"])  # c: unreadable
    written = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert written == {"version": 1, "takes": {
        "a": [{"video_time": 1.2, "category": "good_execution", "probability": 0.8},
              {"video_time": 3.7, "category": "needs_improvement", "probability": 0.25}],
        "b": [], "c": []}}
    assert list(written["takes"]) == ["a", "b", "c"]  # in the listed order
    assert summary == {"takes": 3, "entries": 2, "empty": 2, "unpredicted": ["c"]}
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_a_probability_outside_zero_one_is_refused_before_writing(tmp_path):
    import pytest

    bad = [line("a", [{"time": 1.0, "text": "x", "category": "good_execution", "probability": 0.0, "camera": None}])]
    with pytest.raises(ValueError, match="probability"):
        write_demonstration_file(tmp_path / "demo.json", bad, ["a"])
    assert not (tmp_path / "demo.json").exists()


def test_probability_of_a_span_is_the_product_over_the_tokens_that_wrote_it():
    # tokens: "[0" "0:" "01] " "good" ": slip"  (ends 2, 4, 8, 12, 18)
    generated = GeneratedText("[00:01] good: slip", [-0.1, -0.2, -0.3, -0.4, -0.5], [2, 4, 8, 12, 18])
    assert abs(generated.probability_of(0, 7) - 2.718281828 ** -0.6) < 1e-6  # the marker: first three tokens
    assert abs(generated.probability_of(8, 12) - 2.718281828 ** -0.4) < 1e-6  # "good"
    assert abs(generated.probability_of(0, 18) - 2.718281828 ** -1.5) < 1e-6
    assert generated.probability_of(18, 20) is None  # no token wrote past the end
    with_special = GeneratedText("ab", [-1.0, -0.5, -2.0], [1, 1, 2])  # a special token decodes to nothing
    assert abs(with_special.probability_of(1, 2) - 2.718281828 ** -2.0) < 1e-6


def test_a_written_file_scores_through_evaluate_without_a_model(tmp_path, capsys):
    """`profvlm predict`'s writer, then `training/evaluate_profvlm.py --demonstration_json`: a file that states every
    reference point (and one wrong extra) scores mAP 1 at every threshold; a take left out scores 0 for its points."""
    from dataset_scripts.synthetic_egoexo4d import generate_synthetic_egoexo4d
    from training import evaluate_profvlm
    from training.demonstration_metric import demonstration_references

    root = generate_synthetic_egoexo4d(tmp_path / "tree", 6, seed=1, size=16, seconds=3.0, progress=False,
                                       write_videos=False, events=True)
    references = demonstration_references(root, "validation")
    assert sum(map(len, references.values())) > 0
    lines = [line(uid, [{"time": p["video_time"], "text": "x", "category": p["category"], "probability": 0.9,
                         "camera": "ego"} for p in points]) for uid, points in references.items()]
    first = next(uid for uid, points in references.items() if points)
    lines[0]["moments"].append({"time": 99.0, "text": "far", "category": "good_execution", "probability": 0.1,
                                "camera": "ego"})  # ranked last: a false positive after every hit
    path = tmp_path / "demo.json"
    write_demonstration_file(path, lines, list(references))
    scores = evaluate_profvlm.main(["--demonstration_json", str(path), "--data_dir", str(root), "--split",
                                    "validation", "--output_dir", str(tmp_path / "eval")])
    assert scores["mAP@0.25"] == scores["mAP@0.5"] == scores["mAP@1.0"] == scores["mAP"] == 1.0
    assert json.loads((tmp_path / "eval" / "demonstration_metrics.json").read_text())["mAP"] == 1.0
    assert '"mAP": 1.0' in capsys.readouterr().out

    write_demonstration_file(path, [li for li in lines if li["take_uid"] != first], list(references))
    partial = evaluate_profvlm.main(["--demonstration_json", str(path), "--data_dir", str(root), "--split",
                                     "validation", "--output_dir", str(tmp_path / "eval2")])
    assert partial["mAP"] < 1.0 and partial["counts"]["takes"]["without_predictions"] >= 1
