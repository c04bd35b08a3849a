"""The model card reports metrics.json's time_grounding (one row per tolerance) and says how it is computed; a card
of an evaluation without timed references has no such section."""
import json
import shutil

from huggingface_hub import ModelCard

from profvlm.cli import main


def figures(precision, recall, f1, error, rouge, matched, predicted, reference):
    return {"precision": precision, "recall": recall, "f1": f1, "mean_abs_time_error": error, "rouge_l": rouge,
            "matched": matched, "num_predicted": predicted, "num_reference": reference}


METRICS = {
    "accuracy": 0.9, "macro_f1": 0.88, "num_samples": 10,
    "per_scenario": {"Dance": 0.9}, "per_view_setting": {"ego_exos": 0.9},
    "feedback": {"rouge_l": 0.5},
    "provenance": {"dataset": {"name": "EgoExo4D demonstrator proficiency", "id": "egoexo4d_proficiency",
                               "kind": "egoexo4d", "synthetic": False, "split": "validation"}, "split": "validation"},
    "time_grounding": {
        "tolerances": [2.0, 5.0],
        "overall": {"2": figures(0.5, 0.25, 1 / 3, 1.5, 0.4, 3, 6, 12),
                    "5": figures(1.0, 0.5, 2 / 3, 2.0, None, 6, 6, 12)},
        "per_scenario": {}, "num_items": 4,
    },
}


def card_for(tiny_checkpoint, tmp_path, metrics: dict) -> str:
    copy = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert main(["card", "--model", str(copy), "--eval", str(tmp_path / "metrics.json")]) == 0
    return ModelCard.load(copy / "README.md").text


def test_card_reports_time_grounding_per_tolerance_and_how(tiny_checkpoint, tmp_path):
    text = card_for(tiny_checkpoint, tmp_path, METRICS)
    assert "### Time grounding of the feedback's moments" in text
    assert "| 2 | 0.5000 | 0.2500 | 0.3333 | 1.5000 | 0.4000 | 3 / 6 / 12 |" in text
    assert "| 5 | 1.0000 | 0.5000 | 0.6667 | 2.0000 | — | 6 / 6 / 12 |" in text
    for how in ("matched one to one", "closest pairs first", "within the tolerance", "micro", "floored"):
        assert how in text, how
    assert 'print(result["moments"])' in text  # the usage shows where the moments are


def test_card_without_time_grounding_has_no_section(tiny_checkpoint, tmp_path):
    text = card_for(tiny_checkpoint, tmp_path, {k: v for k, v in METRICS.items() if k != "time_grounding"})
    assert "Time grounding" not in text and "| 0.5000 | 0.2500 |" not in text


DEMONSTRATION = {"mAP@0.25": 0.125, "mAP@0.5": 0.25, "mAP@1.0": 0.5, "mAP": 0.875 / 3,
                 "AP": {"good_execution": {"0.25": 0.25, "0.5": 0.5, "1.0": 1.0},
                        "needs_improvement": {"0.25": 0.0, "0.5": 0.0, "1.0": 0.0}},
                 "num_takes": 4, "num_predictions": 7, "num_references": 9}


def test_card_reports_the_demonstration_map_per_threshold_and_category(tiny_checkpoint, tmp_path):
    text = card_for(tiny_checkpoint, tmp_path, {**METRICS, "demonstration": DEMONSTRATION})
    assert "### Demonstration proficiency (timed good executions and tips)" in text
    assert "| | k = 0.25 s | k = 0.5 s | k = 1.0 s | mean |" in text
    assert "| mAP | 0.1250 | 0.2500 | 0.5000 | 0.2917 |" in text
    assert "| AP good_execution | 0.2500 | 0.5000 | 1.0000 | |" in text
    assert "| AP needs_improvement | 0.0000 | 0.0000 | 0.0000 | |" in text
    assert "7 predictions and 9 reference points in 4 takes" in text
    for how in ("nearest unmatched reference", "all-point interpolated", "probability"):
        assert how in text, how
    assert "Demonstration proficiency" not in card_for(tiny_checkpoint, tmp_path / "plain", METRICS)
